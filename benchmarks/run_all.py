"""Every speed and memory figure of issue 13 in one command, compared with stored figures.

Usage::

    python benchmarks/run_all.py                 # everything but the 380-run campaign (~5 min)
    python benchmarks/run_all.py --quick         # no cold start, no big box, small campaign
    python benchmarks/run_all.py --full          # + the 380-run paper campaign on 2 workers
    python benchmarks/run_all.py --save benchmarks/figures_after.json
    python benchmarks/run_all.py --src /path/to/other/checkout/src   # time another version

Figures (each measured in fresh processes; wall times depend on the machine's load, which is
printed with every block; CPU times are steadier on a shared machine):

* ``cold_first_sim_s``: a fresh process on an EMPTY Numba cache, import to the end of a 1-cycle
  simulation of the default model (compilation included).
* ``cold_two_procs_s`` / ``cold_two_procs_cpu_s`` (``--full``): two such processes started at
  once (a campaign's two workers): wall time until both are done, and their summed CPU time.
* ``first_sim_s``: a fresh process on a FULL cache (after ``seilab warmup`` / setup.sh), import
  to the end of the first 1-cycle simulation; ``first_sim_100_s``: the same with the default
  100 cycles (what ``seilab simulate`` does).
* ``import_s``, ``load_s``: import of the simulator; loading the kernels from the cache.
* ``run_s_<model>`` / ``run_cpu_s_<model>``: median per-run wall / CPU time of the model's
  default run (its box and cycles) over ``--seeds`` seeds after start-up; ``events_per_s``.
* ``big_s`` / ``big_peak_mb``: the paper's literal 40 x 40 x 160 box, 100 cycles, set-up
  included, and the process's peak resident memory.
* ``campaign_runs_per_min`` and ``campaign_380_projected_s``: ``--campaign-runs`` default runs
  on ``--workers`` processes (start-up included), and 380 runs at that rate;
  ``campaign_380_s`` with ``--full``: the paper design itself.
* ``machine_ref_s``: a fixed Python + NumPy workload that no seilab change touches, timed in
  every run: the speed of the machine that day (compare a figure's ratio with this one's);
  ``machine_kernel_ref_s``: a fixed compiled workload shaped like the kMC hop path (neighbour
  counters through a neighbour table), for the kernels' figures.  Every block also prints the
  CPU time the hypervisor gave to other guests meanwhile (``steal``, from /proc/stat).
* ``dataset_load_s`` / ``dataset_peak_mb``: loading a synthetic campaign of
  ``--dataset-runs`` runs x 100 cycles and building the CE data set, peak memory of that
  process (``dataset_frame_mb``: the size of the loaded table itself).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_COMPARE = ROOT / "benchmarks" / "figures_before.json"

FIRST = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from seilab.kmc import simulate
t1 = time.perf_counter()
simulate("paper", cycles=int(sys.argv[1]), seed=0)
t2 = time.perf_counter()
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"import_s": t1 - t0, "sim_s": t2 - t1, "cpu_s": ru.ru_utime + ru.ru_stime}))
"""

RUNS = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from seilab.kmc import simulate
t1 = time.perf_counter()
simulate("paper", cycles=1, seed=0, box=(4, 4, 16))  # loads the kernels from the cache
t2 = time.perf_counter()
model = sys.argv[1]; seeds = json.loads(sys.argv[2]); box = json.loads(sys.argv[3])
runs = []
for s in seeds:
    w = time.perf_counter(); c = time.process_time()
    df = simulate(model, seed=s, box=box).to_pandas()
    runs.append({"wall": time.perf_counter() - w, "cpu": time.process_time() - c,
                 "events": int(df["n_events_ch"].sum() + df["n_events_dis"].sum()),
                 "hops": int(df["n_diffusion"].sum()), "rows": len(df)})
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "runs": runs,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

DATASET = r"""
import json, resource, sys, time
from seilab.analysis.dataset import build_ce_dataset, load_campaign
t0 = time.perf_counter()
data = load_campaign(sys.argv[1])
frame_mb = data.memory_usage(deep=True).sum() / 2**20
ds = build_ce_dataset(data, source=sys.argv[1])
print(json.dumps({"load_s": time.perf_counter() - t0, "rows": len(ds.y), "frame_mb": frame_mb,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def child(code: str, *args: str, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run ``code`` in a fresh interpreter and return the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    if out.returncode:
        raise SystemExit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def load() -> float:
    return round(os.getloadavg()[0], 2)


def steal_s() -> float:
    """CPU time the hypervisor gave to other guests since boot, all cores (0 where unknown)."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def bench_cold(env: dict, two: bool) -> dict:
    """First simulation on an empty Numba cache (one process; two at once with ``two``)."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="seilab-cold-") as d:
        e = dict(env, NUMBA_CACHE_DIR=d)
        t = time.perf_counter()
        r = child(FIRST, "1", env=e)
        out["cold_first_sim_s"] = time.perf_counter() - t
        out["cold_first_sim_cpu_s"] = r["cpu_s"]
    if two:
        with tempfile.TemporaryDirectory(prefix="seilab-cold2-") as d:
            e = dict(env, NUMBA_CACHE_DIR=d)
            t = time.perf_counter()
            ps = [
                subprocess.Popen(
                    [sys.executable, "-c", FIRST, "1"], env=e, stdout=subprocess.PIPE, text=True
                )
                for _ in range(2)
            ]
            cpu = 0.0
            for p in ps:
                o, _ = p.communicate()
                cpu += json.loads(o.strip().splitlines()[-1])["cpu_s"]
            out["cold_two_procs_s"] = time.perf_counter() - t
            out["cold_two_procs_cpu_s"] = cpu
    return out


def bench_first(env: dict) -> dict:
    """A fresh process on a full cache: first 1-cycle and first default simulation."""
    child(FIRST, "1", env=env)  # make sure the cache is full
    t = time.perf_counter()
    child(FIRST, "1", env=env)
    first = time.perf_counter() - t
    t = time.perf_counter()
    child(FIRST, "100", env=env)
    return {"first_sim_s": first, "first_sim_100_s": time.perf_counter() - t}


def bench_runs(env: dict, model: str, seeds: int) -> dict:
    """Per-run time of a model's default run, after start-up, median over seeds."""
    from seilab.model import load_model

    box = list(load_model(model).spec.lattice.box)
    r = child(RUNS, model, json.dumps(list(range(seeds))), json.dumps(box), env=env)
    runs = r["runs"]
    key = model.replace("-", "_")
    ev = sum(x["events"] + x["hops"] for x in runs)
    return {
        "import_s": r["import_s"],
        "load_s": r["load_s"],
        f"run_s_{key}": statistics.median(x["wall"] for x in runs),
        f"run_cpu_s_{key}": statistics.median(x["cpu"] for x in runs),
        f"events_per_s_{key}": ev / sum(x["cpu"] for x in runs),
        f"events_per_run_{key}": ev / len(runs),
        f"box_{key}": "x".join(map(str, box)),
    }


def bench_big(env: dict) -> dict:
    """The paper's literal 40 x 40 x 160 box for 100 cycles, set-up included."""
    r = child(RUNS, "paper", "[0]", "[40, 40, 160]", env=env)
    run = r["runs"][0]
    return {"big_s": run["wall"], "big_cpu_s": run["cpu"], "big_peak_mb": r["peak_mb"]}


CAMPAIGN = r"""
import json, sys, time
from seilab.campaign import CampaignConfig, run_campaign
t = time.perf_counter()
kw = json.loads(sys.argv[2])
res = run_campaign(CampaignConfig(**kw), sys.argv[1], progress=False)
print(json.dumps({"wall_s": time.perf_counter() - t, "failed": res.n_failed}))
"""


def bench_campaign(env: dict, runs: int, workers: int, full: bool) -> dict:
    """Campaign throughput on a process pool (start-up included)."""
    out: dict = {}
    with tempfile.TemporaryDirectory(prefix="seilab-camp-") as d:
        kw = {
            "design": "sets",
            "param_sets": [{}],
            "replicates": runs,
            "backend": "process",
            "workers": workers,
        }
        r = child(CAMPAIGN, str(Path(d) / "c"), json.dumps(kw), env=env)
        out["campaign_runs"] = runs
        out["campaign_s"] = r["wall_s"]
        out["campaign_runs_per_min"] = 60 * runs / r["wall_s"]
        out["campaign_380_projected_s"] = 380 * r["wall_s"] / runs
        if full:
            kw = {"design": "paper", "backend": "process", "workers": workers}
            r = child(CAMPAIGN, str(Path(d) / "paper"), json.dumps(kw), env=env)
            out["campaign_380_s"] = r["wall_s"]
    return out


def write_big_campaign(folder: Path, runs: int, distinct: int = 40) -> None:
    """A campaign folder of ``runs`` runs x 100 cycles: ``distinct`` synthetic run tables
    (tests/analysis/synthetic.py), each linked under many run ids (hard links: fast to make,
    read like distinct files)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path.insert(0, str(ROOT / "tests" / "analysis"))
    from synthetic import write_synthetic_campaign

    man = write_synthetic_campaign(folder, n_runs=min(distinct, runs), n_cycles=100, seed=0)
    rows = []
    for k in range(runs):
        src = man.iloc[k % len(man)]
        rid = f"big{k:06d}"
        dst = folder / "runs" / f"{rid}.parquet"
        try:
            os.link(folder / "runs" / f"{src['run_id']}.parquet", dst)
        except OSError:
            import shutil

            shutil.copyfile(folder / "runs" / f"{src['run_id']}.parquet", dst)
        rows.append(dict(src, run_id=rid, seed=k))
    for rid in man["run_id"]:
        (folder / "runs" / f"{rid}.parquet").unlink()
    big = pd.DataFrame(rows).astype({c: man[c].dtype for c in man.columns})
    pq.write_table(pa.Table.from_pandas(big, preserve_index=False), folder / "manifest.parquet")


def bench_dataset(env: dict, runs: int) -> dict:
    """Load a campaign of ``runs`` runs x 100 cycles and build the CE data set."""
    with tempfile.TemporaryDirectory(prefix="seilab-ds-") as d:
        t = time.perf_counter()
        write_big_campaign(Path(d) / "c", runs)
        t_write = time.perf_counter() - t
        r = child(DATASET, str(Path(d) / "c"), env=env)
    return {
        "dataset_runs": runs,
        "dataset_rows": r["rows"],
        "dataset_write_s": t_write,
        "dataset_load_s": r["load_s"],
        "dataset_peak_mb": r["peak_mb"],
        "dataset_frame_mb": r["frame_mb"],
    }


MACHINE = r"""
import json, time
import numpy as np
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    acc = 0
    for i in range(2_000_000):  # interpreter speed
        acc += i * i % 7
    x = np.random.default_rng(0).random(4_000_000)
    np.sort(x)  # NumPy speed, memory bandwidth
    best = min(best, time.perf_counter() - t)
print(json.dumps({"machine_ref_s": best}))
"""

# A compiled workload shaped like the kMC hop path (neighbour-counter updates of int8 rows
# read through a neighbour table, a stamp-deduplicated queue, a data-dependent branch), fixed
# here so that no seilab change touches it.  The interpreter + NumPy figure above moved 5 %
# in an evening when the kernels' speed moved 20 %; this one is meant to follow the kernels.
MACHINE_KERNEL = r"""
import json, time
import numpy as np
from numba import njit

@njit(cache=False)
def work(nbr, near, cnt, c2, stamp, queue, steps):
    n, m = nbr.shape
    x = np.uint64(88172645463325252)
    mark = 0
    acc = 0
    for step in range(steps):
        mark += 1
        nq = 0
        for _c in range(15):  # ~15 site changes per hop
            x ^= x << np.uint64(13); x ^= x >> np.uint64(7); x ^= x << np.uint64(17)
            i = np.int64(x % np.uint64(n // 8))  # changes stay near a surface band
            old = np.int64((x >> np.uint64(20)) % np.uint64(4))
            new = np.int64((x >> np.uint64(30)) % np.uint64(4))
            for k in range(m):
                j = nbr[i, k]
                cnt[j, old] -= 1
                cnt[j, new] += 1
                if near[i, k]:
                    c2[j, 0] += 1 if new == 1 else 0
                if stamp[j] != mark:
                    stamp[j] = mark
                    queue[nq] = j
                    nq += 1
        for q in range(nq):  # a settle-like pass over the queued sites
            j = queue[q]
            acc += cnt[j, 1] > cnt[j, 2]
    return acc

rng = np.random.default_rng(0)
n, m = 54400, 34  # the default model's lattice size and neighbour count
nbr = (np.arange(n)[:, None] + rng.integers(-600, 600, (n, m))) % n
near = rng.random((n, m)) < 0.4
cnt = np.full((n, 11), 8, dtype=np.int8)
c2 = np.zeros((n, 9), dtype=np.int8)
stamp = np.zeros(n, dtype=np.int64)
queue = np.zeros(15 * m, dtype=np.int64)
work(nbr, near, cnt, c2, stamp, queue, 10)
best = float("inf")
for _ in range(3):
    t = time.perf_counter()
    work(nbr, near, cnt, c2, stamp, queue, 100_000)
    best = min(best, time.perf_counter() - t)
print(json.dumps({"machine_kernel_ref_s": best}))
"""


def bench_machine(env: dict) -> dict:
    """Fixed workloads that no seilab change touches, best of 3 each: a Python loop + NumPy
    sort (``machine_ref_s``) and a compiled loop shaped like the hop path
    (``machine_kernel_ref_s``).

    Shared machines change speed from day to day: a figure's ratio against stored figures
    means something only next to this one's ratio.
    """
    return {**child(MACHINE, env=env), **child(MACHINE_KERNEL, env=env)}


LOWER_IS_BETTER = ("_s", "_mb")


def compare(now: dict, ref: dict) -> None:
    """Print each figure next to the stored one, with the ratio now / before."""
    print(f"\ncomparison with {ref.get('_label', 'stored figures')}:")
    print(f"  {'figure':32s} {'before':>10s} {'now':>10s} {'now/before':>11s}")
    for k, v in now.items():
        if k.startswith("_") or not isinstance(v, int | float):
            continue
        b = ref.get(k)
        if not isinstance(b, int | float) or b == 0:
            print(f"  {k:32s} {'-':>10s} {v:10.3f}")
            continue
        print(f"  {k:32s} {b:10.3f} {v:10.3f} {v / b:11.2f}")
    for k in ("_load_start", "_load_end", "_commit"):
        print(f"  {k[1:]:32s} before {ref.get(k)}  now {now.get(k)}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="skip cold start and big box")
    ap.add_argument("--full", action="store_true", help="+ two cold processes, 380-run campaign")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--campaign-runs", type=int, default=None)
    ap.add_argument("--dataset-runs", type=int, default=None)
    ap.add_argument("--src", type=Path, default=None, help="time the seilab under this src/")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated blocks: cold,cold2,first,runs,big,campaign,dataset",
    )
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--label", default="")
    ap.add_argument("--compare", type=Path, default=DEFAULT_COMPARE)
    args = ap.parse_args(argv)
    env = dict(os.environ, NUMBA_NUM_THREADS="1", OMP_NUM_THREADS="1")
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    camp_runs = args.campaign_runs or (8 if args.quick else 24)
    ds_runs = args.dataset_runs or (1000 if args.quick else 10000)
    try:
        commit = subprocess.run(
            ["git", "-C", str(args.src or ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        commit = ""
    fig: dict = {"_label": args.label or commit, "_commit": commit, "_load_start": load()}
    print(f"seilab benchmarks ({commit}); load average {load()} on {os.cpu_count()} cores")

    def block(name: str, fn, *a) -> None:
        l0 = load()
        s0 = steal_s()
        t = time.perf_counter()
        r = fn(*a)
        fig.update(r)
        stolen = steal_s() - s0
        fig.setdefault("_steal_s", {})[name] = round(stolen, 2)
        shown = ", ".join(
            f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()
        )
        print(
            f"[{name}] {shown}  ({time.perf_counter() - t:.0f} s; load {l0} -> {load()}; "
            f"steal {stolen:.1f} s)"
        )

    want = set(args.only.split(",")) if args.only else None

    def on(name: str, default: bool = True) -> bool:
        return name in want if want is not None else default

    block("machine", bench_machine, env)
    if on("cold", not args.quick) or on("cold2", False):
        block("cold start", bench_cold, env, args.full or on("cold2", False))
    if on("first"):
        block("first simulation", bench_first, env)
    if on("runs"):
        for model in ("paper", "paper-legacy"):
            block(f"per run {model}", bench_runs, env, model, args.seeds)
    if on("big", not args.quick):
        block("big box", bench_big, env)
    if on("campaign"):
        block("campaign", bench_campaign, env, camp_runs, args.workers, args.full)
    if on("dataset"):
        block("data set", bench_dataset, env, ds_runs)
    fig["_load_end"] = load()
    if args.save:
        if args.only and args.save.is_file():
            # a partial run updates the stored figures it measured; the stored label, commit
            # and loads stay, and the update is listed with its own commit and load
            stored = json.loads(args.save.read_text())
            new = {k: v for k, v in fig.items() if not k.startswith("_")}
            meta = {k[1:]: v for k, v in fig.items() if k.startswith("_")}
            fig = {**stored, **new}
            fig["_partial_updates"] = [
                *stored.get("_partial_updates", []),
                {"figures": sorted(new), **meta},
            ]
        # the stored figures are the next comparison's baseline: never leave them half-written
        from seilab.io import atomic_write_json

        atomic_write_json(fig, args.save, indent=1)
        print(f"saved {args.save}")
    if args.compare and args.compare.is_file():
        compare(fig, json.loads(args.compare.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
