"""Benchmark of the CE analysis on a paper-size synthetic campaign (380 runs x 100 cycles).

Times every step of ``seilab analyze ce`` (data set, each regressor, SHAP, plots) and of
``seilab optimize`` (surrogate, BO with 150 trials, plots), and prints the figures.  Target:
the whole CE analysis in at most 5 minutes on a 2-core CPU machine.

Usage::

    python benchmarks/bench_analysis.py [--runs 380] [--cycles 100] [--trials 150] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "analysis"))

from synthetic import write_synthetic_campaign  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=380)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--trials", type=int, default=150)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--surrogate", default="xgboost")
    ap.add_argument(
        "--keep", type=Path, default=None, help="Keep the data and outputs in this folder."
    )
    args = ap.parse_args(argv)

    from seilab.analysis.ce import CESettings
    from seilab.analysis.optimize import BOSettings
    from seilab.stages.bo_run import run_optimization
    from seilab.stages.ce import run_ce_analysis

    base = args.keep or Path(tempfile.mkdtemp(prefix="bench_analysis_"))
    base.mkdir(parents=True, exist_ok=True)
    camp = base / "campaign"
    t0 = time.perf_counter()
    if not (camp / "manifest.parquet").is_file():
        write_synthetic_campaign(camp, n_runs=args.runs, n_cycles=args.cycles, seed=args.seed)
    t_write = time.perf_counter() - t0

    t_all = time.perf_counter()
    ce = run_ce_analysis(
        camp, base / "ce", CESettings(seed=args.seed, n_jobs=args.jobs), progress=False
    )
    t_ce = time.perf_counter() - t_all
    t1 = time.perf_counter()
    bo = run_optimization(
        camp,
        base / "bo",
        BOSettings(trials=args.trials, seed=args.seed, surrogate=args.surrogate, n_jobs=args.jobs),
        ranking=base / "ce" / "shap_ranking.csv",
        progress=False,
    )
    t_bo = time.perf_counter() - t1
    total = time.perf_counter() - t_all

    print(
        f"data set: {args.runs} runs x {args.cycles} cycles = {len(ce.dataset.y)} rows, "
        f"{len(ce.dataset.features)} features (synthetic campaign written in {t_write:.1f} s, not counted)"
    )
    print("\nseilab analyze ce")
    for k, v in ce.timings.items():
        print(f"  {k:<28s} {v:7.1f} s")
    print(f"  {'total':<28s} {t_ce:7.1f} s")
    print("\nseilab optimize")
    for k, v in bo.timings.items():
        print(f"  {k:<28s} {v:7.1f} s")
    print(f"  {'total':<28s} {t_bo:7.1f} s")
    print(
        f"\nwhole CE analysis: {total:.1f} s ({'within' if total <= 300 else 'OVER'} the 5 min target)"
    )
    cols = ["test_rmse", "test_r2", "train_r2", "interval_halfwidth", "test_coverage", "fit_s"]
    print("\n" + ce.metrics[cols].round(3).to_string())
    s = bo.summary
    print(
        f"\nBO: {s['trials']} trials, converged at trial {bo.converged_trial}, params {bo.params}, "
        f"best {s['best_value_pct']:.2f} % vs DFT {s['dft_predicted_pct']:.2f} %; surrogate "
        f"run-mean test RMSE {s['surrogate']['test_runmean_rmse']:.2f} %, "
        f"interval coverage {s['surrogate']['test_coverage_runmean']:.2f}"
    )
    (base / "bench.json").write_text(
        json.dumps({"ce": ce.timings, "optimize": bo.timings, "total_s": total}, indent=2)
    )
    print(f"\noutputs in {base}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
