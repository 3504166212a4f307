"""Per-run and per-half cost of the paper design's parameter sets (the slow discharge halves).

``--scan`` runs every set of the paper design (``oat`` 304 + ``random`` 76, campaign seed 0,
the runs' own seeds) in ``--jobs`` processes, kills a run after ``--limit`` seconds of wall time,
and prints the finished runs' CPU time (sum, median) and the slowest or killed runs.
``--run RUN_ID`` runs one set half by half and prints, per half, its CPU time, events, fragment
hops, rejected draws, failed draws and end reason.

Usage::

    python benchmarks/slow_sets.py --scan --limit 20 --jobs 2 --out /tmp/scan.json
    python benchmarks/slow_sets.py --run random-00003-r0 --cycles 100
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any


def paper_runs(campaign_seed: int = 0) -> list[dict[str, Any]]:
    """Run id, seed and model overrides of every run of the paper design."""
    from seilab.campaign import design as D
    from seilab.model import load_model

    pairs = list(load_model("paper").pair_energies())
    specs = D.expand(
        D.design_sets("paper", pairs=pairs, campaign_seed=campaign_seed),
        replicates=1,
        campaign_seed=campaign_seed,
    )
    return [
        {
            "run_id": s.run_id,
            "seed": int(s.seed),
            "overrides": {D.override_key(k, pairs): v for k, v in s.params.items()},
        }
        for s in specs
    ]


def simulate_run(run_id: str, max_steps: int, cycles: int = 100) -> Any:
    """Simulate one run of the paper design (its own seed and overrides) with a step budget."""
    from seilab.kmc import simulate
    from seilab.model import load_model

    run = {r["run_id"]: r for r in paper_runs()}[run_id]
    over = {**run["overrides"], "protocol.max_steps": max_steps}
    return simulate(load_model("paper").with_overrides(over), seed=run["seed"], cycles=cycles)


def run_halves(
    run: dict[str, Any], cycles: int, cpu_limit: float, model: str = "paper"
) -> dict[str, Any]:
    """Run one set half by half (as :func:`seilab.kmc.simulate` does) and record each half."""
    from seilab.kmc import kernels as K
    from seilab.kmc.engine import END_NAMES, Simulation
    from seilab.model import load_model

    m = load_model(model).with_overrides(run["overrides"])
    sim = Simulation(m, run["seed"])
    halves = []
    c0 = time.process_time()
    kind = "charge"
    end = "completed"
    for _ in range(2 * cycles):
        t0 = time.process_time()
        rec = sim.run_half(kind)
        hc = rec.hc
        halves.append(
            {
                "kind": kind,
                "cpu_s": time.process_time() - t0,
                "events": int(hc[K.H_EVENTS]),
                "hops": int(hc[K.H_DIFF]),
                "rejected": int(hc[K.H_REJECTED]),
                "failed": int(hc[K.H_FAILED]),
                "end": END_NAMES[int(hc[K.H_END])],
                "t": rec.t,
            }
        )
        kind = "discharge" if kind == "charge" else "charge"
        if int(hc[K.H_END]) == K.END_STALLED and m.spec.protocol.stall_ends_run:
            end = "stalled"
            break
        if time.process_time() - c0 > cpu_limit:
            end = "cpu_limit"
            break
    return {
        "run_id": run["run_id"],
        "cpu_s": time.process_time() - c0,
        "end": end,
        "n_halves": len(halves),
        "halves": halves,
    }


def _child(runs: list[dict[str, Any]], cycles: int, cpu_limit: float, out: str) -> None:
    for r in runs:
        with open(out, "a") as f:  # the parent kills a run that outlives its limit
            f.write(json.dumps({"start": r["run_id"], "at": time.time()}) + "\n")
        x = run_halves(r, cycles, cpu_limit)
        h = x.pop("halves")
        x["rejected"] = sum(v["rejected"] for v in h)
        x["hops"] = sum(v["hops"] for v in h)
        x["max_half_cpu_s"] = max(v["cpu_s"] for v in h)
        x["slow_halves"] = [
            {k: v[k] for k in ("kind", "cpu_s", "events", "hops", "rejected", "end")} | {"i": i}
            for i, v in enumerate(h)
            if v["cpu_s"] > 0.5
        ]
        with open(out, "a") as f:
            f.write(json.dumps(x) + "\n")


def _read(path: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Finished runs and the run in progress (its start record) of a child's log."""
    done, cur = [], None
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                x = json.loads(line)
                if "start" in x:
                    cur = x
                else:
                    done.append(x)
                    cur = None
    return done, cur


def scan(runs: list[dict[str, Any]], cycles: int, limit: float, jobs: int, out: str) -> list:
    """Run ``runs`` in ``jobs`` processes; a run past ``limit`` wall seconds is killed."""
    todo = list(runs)
    slots: list[Any] = [None] * jobs
    results: list[dict[str, Any]] = []
    n = 0
    while todo or any(slots):
        for k in range(jobs):
            if slots[k] is None and todo:
                part, todo = todo[:10], todo[10:]
                path = f"{out}.{n}"
                n += 1
                cmd = [sys.executable, __file__, "--cycles", str(cycles), "--limit", str(limit)]
                cmd += ["--child", json.dumps(part), path]
                slots[k] = (subprocess.Popen(cmd), path, part)
        time.sleep(0.5)
        for k in range(jobs):
            if slots[k] is None:
                continue
            proc, path, part = slots[k]
            done, cur = _read(path)
            if proc.poll() is not None:
                results += done
                slots[k] = None
            elif cur is not None and time.time() - cur["at"] > limit:
                proc.kill()
                proc.wait()
                results += done
                results.append(
                    {
                        "run_id": cur["start"],
                        "cpu_s": limit,
                        "end": "killed",
                        "n_halves": -1,
                        "rejected": -1,
                        "hops": -1,
                        "max_half_cpu_s": -1,
                    }
                )
                ids = {x["run_id"] for x in results}
                todo = [r for r in part if r["run_id"] not in ids] + todo
                slots[k] = None
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scan", action="store_true")
    p.add_argument("--run", default=None)
    p.add_argument("--cycles", type=int, default=100)
    p.add_argument("--limit", type=float, default=20.0, help="CPU seconds per run")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--only", default=None, help="comma-separated run ids to scan")
    p.add_argument("--out", default="/tmp/slow_sets.json")
    p.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        _child(json.loads(a.child[0]), a.cycles, a.limit, a.child[1])
        return
    runs = paper_runs()
    if a.run:
        r = next(r for r in runs if r["run_id"] == a.run)
        print(r)
        x = run_halves(r, a.cycles, a.limit)
        for i, h in enumerate(x["halves"]):
            print(i, json.dumps(h))
        print(json.dumps({k: v for k, v in x.items() if k != "halves"}))
        return
    if a.only:
        ids = set(a.only.split(","))
        runs = [r for r in runs if r["run_id"] in ids]
    t0 = time.perf_counter()
    res = scan(runs, a.cycles, a.limit, a.jobs, a.out)
    with open(a.out, "w") as f:
        json.dump(res, f)
    res.sort(key=lambda x: -x["cpu_s"])
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = [x["cpu_s"] for x in res if x["end"] != "killed"]
    killed = [x["run_id"] for x in res if x["end"] == "killed"]
    print(
        f"{len(res)} runs, wall {time.perf_counter() - t0:.0f} s, CPU {ru.ru_utime + ru.ru_stime:.0f} s, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    if done:
        print(
            f"{len(done)} finished: {sum(done):.0f} CPU s in all, median {statistics.median(done):.2f} s, "
            f"mean {statistics.mean(done):.2f} s"
        )
    print(f"{len(killed)} killed after {a.limit:.0f} s: {', '.join(killed)}")
    for x in res[:40]:
        print(
            x["run_id"],
            f"{x['cpu_s']:.1f}",
            x["end"],
            x["n_halves"],
            x["rejected"],
            x["hops"],
            f"{x['max_half_cpu_s']:.2f}",
        )


if __name__ == "__main__":
    main()
