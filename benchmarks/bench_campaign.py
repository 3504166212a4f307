"""Campaign machinery benchmarks: backend overhead, parallel efficiency, the full paper campaign.

Usage::

    python benchmarks/bench_campaign.py                 # quick parts (~1-2 min on 2 cores)
    python benchmarks/bench_campaign.py --full          # + the 380-run paper campaign (default box,
                                                        #   100 cycles) on --workers processes
    python benchmarks/bench_campaign.py --backends process --runs 24
    python benchmarks/bench_campaign.py --backends process,dask,slurm   # needs a SLURM
                                                        #   (scripts/slurm-local.sh start)

What is measured
----------------
1. **Per-run overhead of each backend** (``process``, ``dask``, ``slurm``): a campaign of
   ``--runs`` trivial simulations (1 cycle, box 4x4x16, 1 event per half-cycle) on ONE worker
   (for ``slurm``: one job of one core and one worker process, partition ``--slurm-queue``),
   so runs are serial.
   With ``t_i`` the time the parent receives result ``i`` and ``w_i`` the run's own wall time
   (measured in the worker: simulation + writing its Parquet file), the steady-state overhead
   of a run is ``median_i (t_i - t_{i-1} - w_i)`` for ``i >= 2``: submission, transfer,
   scheduling and the parent's bookkeeping (manifest writes included).  Also printed: the time
   from the call to the first result (planning, folder, pool or cluster start, the first run)
   and that first run's own time (it includes the worker's import of the simulator and the
   Numba cache load); ``wall`` includes shutting the pool or cluster down.
2. **Parallel efficiency** of 2 workers against 1 on ``--eff-runs`` identical small runs (same
   parameters, one seed per replicate; 3 cycles, box 4x4x16, 5 events per half-cycle), process
   backend: ``E = T1 / (2 T2)`` on the campaign wall times (start-up included), and the same on
   the summed run times to show how much two concurrent simulations slow each other.
3. ``--full``: wall time of ``seilab campaign run --design paper`` (380 runs x 100 cycles, box
   of the default model), start-up included.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path


def _campaign(out: Path, **cfg_kw) -> tuple[float, list[tuple[float, float]], object]:
    from seilab.campaign import CampaignConfig, run_campaign

    stamps: list[tuple[float, float]] = []

    def on_result(rec: dict) -> None:
        stamps.append((time.perf_counter(), float(rec.get("wall_s") or 0.0)))

    t0 = time.perf_counter()
    res = run_campaign(CampaignConfig(**cfg_kw), out, progress=False, on_result=on_result)
    wall = time.perf_counter() - t0
    if res.n_failed:
        raise SystemExit(f"benchmark campaign had failures: {res.failures[:3]}")
    return wall, [(t - t0, w) for t, w in stamps], res


def bench_overhead(tmp: Path, backend: str, runs: int, queue: str = "debug") -> dict:
    """Serial trivial runs on one worker: start-up and steady-state overhead per run."""
    slurm = {
        "queue": queue,
        "cores": 1,
        "processes": 1,
        "memory": "1GB",
        "walltime": "00:30:00",
        "jobs": 1,
        "log_directory": str(tmp / "slurm-logs"),
    }
    wall, stamps, _ = _campaign(
        tmp / f"overhead-{backend}",
        design="sets",
        param_sets=[{}],
        replicates=runs,
        cycles=1,
        box=(4, 4, 16),
        set={"protocol.event_budget": 1},
        backend=backend,
        workers=1,
        slurm=slurm if backend == "slurm" else {},
    )
    stamps.sort()
    gaps = [stamps[i][0] - stamps[i - 1][0] - stamps[i][1] for i in range(1, len(stamps))]
    return {
        "backend": backend,
        "runs": runs,
        "wall_s": wall,
        "first_result_s": stamps[0][0],
        "first_run_s": stamps[0][1],
        "run_median_s": statistics.median(w for _, w in stamps[1:]),
        "overhead_median_ms": 1000 * statistics.median(gaps),
        "overhead_mean_ms": 1000 * statistics.fmean(gaps),
    }


def bench_efficiency(tmp: Path, runs: int) -> dict:
    """Identical small runs on 1 and on 2 worker processes."""
    out = {}
    for w in (1, 2):
        wall, stamps, _ = _campaign(
            tmp / f"eff-{w}",
            design="sets",
            param_sets=[{}],
            replicates=runs,
            cycles=3,
            box=(4, 4, 16),
            set={"protocol.event_budget": 5},
            backend="process",
            workers=w,
        )
        out[w] = (wall, sum(x for _, x in stamps))
    (t1, s1), (t2, s2) = out[1], out[2]
    return {
        "runs": runs,
        "t1_s": t1,
        "t2_s": t2,
        "efficiency": t1 / (2 * t2),
        "speedup": t1 / t2,
        "run_time_sum_1_s": s1,
        "run_time_sum_2_s": s2,
        "per_run_slowdown_2_workers": s2 / s1,
    }


def bench_full(tmp: Path, workers: int, backend: str) -> dict:
    """The paper campaign (380 runs, default box, 100 cycles)."""
    wall, stamps, res = _campaign(tmp / "paper", design="paper", backend=backend, workers=workers)
    runs = [w for _, w in stamps]
    return {
        "runs": len(runs),
        "wall_s": wall,
        "workers": workers,
        "run_mean_s": statistics.fmean(runs) if runs else float("nan"),
        "run_max_s": max(runs) if runs else float("nan"),
        "folder": str(res.folder),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--backends", default="process,dask", help="comma-separated (process,dask,slurm)"
    )
    ap.add_argument("--slurm-queue", default="debug", help="partition of the slurm backend")
    ap.add_argument("--runs", type=int, default=24, help="trivial runs per backend")
    ap.add_argument(
        "--eff-runs", type=int, default=16, help="runs of the efficiency test (0: skip)"
    )
    ap.add_argument("--full", action="store_true", help="also run the 380-run paper campaign")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="for --full")
    ap.add_argument("--full-backend", default="process", help="backend of --full")
    ap.add_argument("--keep", type=Path, default=None, help="keep the folders here")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="seilab-bench-") as td:
        tmp = args.keep or Path(td)
        tmp.mkdir(parents=True, exist_ok=True)
        print(f"cpu_count={os.cpu_count()}  load average={os.getloadavg()}")
        print("\n1. per-run overhead (1 worker, serial trivial runs: 1 cycle, 4x4x16, 1 event)")
        print(
            f"{'backend':8} {'runs':>5} {'wall s':>7} {'1st result s':>13} {'1st run s':>10} "
            f"{'run s':>6} {'overhead ms (median)':>21} {'(mean)':>7}"
        )
        for b in [x.strip() for x in args.backends.split(",") if x.strip()]:
            r = bench_overhead(tmp, b, args.runs, args.slurm_queue)
            print(
                f"{r['backend']:8} {r['runs']:>5} {r['wall_s']:>7.2f} "
                f"{r['first_result_s']:>13.2f} {r['first_run_s']:>10.2f} "
                f"{r['run_median_s']:>6.3f} {r['overhead_median_ms']:>21.1f} "
                f"{r['overhead_mean_ms']:>7.1f}"
            )
        if args.eff_runs > 0:
            print(
                f"\n2. parallel efficiency, process backend, {args.eff_runs} identical runs "
                "(3 cycles, 4x4x16, 5 events)"
            )
            e = bench_efficiency(tmp, args.eff_runs)
            print(f"   load average after: {os.getloadavg()}")
            print(
                f"   T1 = {e['t1_s']:.2f} s, T2 = {e['t2_s']:.2f} s: speed-up {e['speedup']:.2f}, "
                f"efficiency T1/(2 T2) = {e['efficiency']:.2f}"
            )
            print(
                f"   summed run time: {e['run_time_sum_1_s']:.2f} s on 1 worker, "
                f"{e['run_time_sum_2_s']:.2f} s on 2 (x{e['per_run_slowdown_2_workers']:.2f} per run)"
            )
        if args.full:
            from seilab.model import load_model

            box = "x".join(map(str, load_model("paper").spec.lattice.box))
            print(
                f"\n3. full paper campaign: 380 runs x 100 cycles, default box {box}, "
                f"{args.workers} workers, {args.full_backend}"
            )
            f = bench_full(tmp, args.workers, args.full_backend)
            print(
                f"   wall {f['wall_s']:.1f} s ({f['wall_s'] / 60:.1f} min); run mean "
                f"{f['run_mean_s']:.2f} s, max {f['run_max_s']:.2f} s"
            )


if __name__ == "__main__":
    main()
