"""Same statistics before and after an engine change: per-half event counts over many seeds.

A change to the event loop (a faster stall path, a new state layout) may change which random
numbers are drawn, so tables are no longer equal bit for bit; what must not change is the
distribution.  This script simulates ``--seeds`` seeds of each model and stores, per run, the
mean per-half counts (reactions, fragment hops, rejected draws of each half) and the mean CE.
With ``--compare FILE`` it runs two-sample tests (Mann-Whitney U and Kolmogorov-Smirnov) of
every quantity against a sample saved earlier (``--save``) with the other engine, and prints
the p-values (small p: the distributions differ).

Usage::

    python benchmarks/event_stats.py --save benchmarks/event_stats_before.json   # old engine
    python benchmarks/event_stats.py --compare benchmarks/event_stats_before.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

QUANTITIES = (
    "n_events_ch",
    "n_events_dis",
    "n_diffusion_ch",
    "n_diffusion_dis",
    "n_rejected_ch",
    "n_rejected_dis",
    "ce_pct",
    "n_cycles",
)

CHILD = r"""
import json, sys
QUANTITIES = json.loads(sys.argv[4])
from seilab.kmc import simulate
model, cycles = sys.argv[1], int(sys.argv[2])
out = []
for s in json.loads(sys.argv[3]):
    df = simulate(model, cycles=cycles, seed=s).to_pandas()
    row = {q: float(df[q].mean()) for q in QUANTITIES if q in df}
    row["n_cycles"] = float(len(df))
    out.append(row)
print(json.dumps(out))
"""


def sample(model: str, seeds: list[int], cycles: int, jobs: int) -> list[dict]:
    """Per-run means of the per-half counts, seeds split over ``jobs`` processes."""
    parts = [seeds[k::jobs] for k in range(jobs)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                model,
                str(cycles),
                json.dumps(p),
                json.dumps(QUANTITIES[:-1]),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for p in parts
        if p
    ]
    rows: list[dict] = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"simulation child failed ({p.returncode})")
        rows.extend(json.loads(out.strip().splitlines()[-1]))
    return rows


def compare(old: list[dict], new: list[dict]) -> dict[str, dict[str, float]]:
    """Two-sample p-values (Mann-Whitney U, Kolmogorov-Smirnov) per quantity."""
    import numpy as np
    from scipy.stats import ks_2samp, mannwhitneyu

    out = {}
    for q in QUANTITIES:
        a = np.array([r[q] for r in old if q in r and r[q] == r[q]])
        b = np.array([r[q] for r in new if q in r and r[q] == r[q]])
        if len(a) < 3 or len(b) < 3:
            continue
        if np.all(a == a[0]) and np.all(b == b[0]):
            out[q] = {"mean_old": a.mean(), "mean_new": b.mean(), "mw_p": 1.0, "ks_p": 1.0}
            continue
        out[q] = {
            "mean_old": float(a.mean()),
            "mean_new": float(b.mean()),
            "mw_p": float(mannwhitneyu(a, b).pvalue),
            "ks_p": float(ks_2samp(a, b).pvalue),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="paper,paper-legacy")
    ap.add_argument("--seeds", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=1000, help="seeds first..first+n-1")
    ap.add_argument("--cycles", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--save", type=Path, default=None, help="write the samples here")
    ap.add_argument("--compare", type=Path, default=None, help="test against this sample")
    args = ap.parse_args(argv)
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.seeds} seeds x {args.cycles} cycles")
    result: dict = {"seeds": seeds, "cycles": args.cycles, "samples": {}}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        t0 = time.perf_counter()
        result["samples"][model] = sample(model, seeds, args.cycles, args.jobs)
        print(f"{model}: {len(seeds)} runs in {time.perf_counter() - t0:.1f} s")
    if args.save:
        args.save.write_text(json.dumps(result, indent=1))
        print(f"saved {args.save}")
    if args.compare:
        ref = json.loads(args.compare.read_text())
        if ref.get("cycles") != args.cycles:
            raise SystemExit(
                f"{args.compare}: cycles {ref.get('cycles')} != --cycles {args.cycles}"
            )
        worst = 1.0
        for model, rows in result["samples"].items():
            if model not in ref["samples"]:
                continue
            print(f"\n{model}: per-run mean per-half counts, old vs new ({len(rows)} seeds each)")
            print(
                f"  {'quantity':16s} {'mean old':>10s} {'mean new':>10s} {'MW p':>7s} {'KS p':>7s}"
            )
            for q, r in compare(ref["samples"][model], rows).items():
                worst = min(worst, r["mw_p"], r["ks_p"])
                print(
                    f"  {q:16s} {r['mean_old']:10.2f} {r['mean_new']:10.2f} "
                    f"{r['mw_p']:7.3f} {r['ks_p']:7.3f}"
                )
        print(f"\nsmallest p-value {worst:.3f} (over all tests; expect > 0.01 for the same law)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
