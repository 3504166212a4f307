"""Simulator speed and memory: prints events/s, seconds per simulation, peak memory, compile time.

Usage: python benchmarks/bench_simulator.py [--cycles 100] [--repeats 3] [--big]

`--big` also runs the paper's literal 40 x 40 x 160-cube box (about 4 million sites).
Each measurement runs in a fresh process so that peak memory (ru_maxrss) is per simulation; the
compiled kernels are loaded from Numba's cache (and warmed on a 1-cycle run) before the clock
starts, as in a campaign worker; that once-per-process cost is printed separately.  The load
average is printed too: on a busy machine wall times exceed CPU times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from seilab.kmc import simulate
box = tuple(json.loads(sys.argv[1])); cycles = int(sys.argv[2]); seed = int(sys.argv[3])
t1 = time.perf_counter()
simulate("paper", cycles=1, seed=seed, box=(4, 4, 16))  # loads the compiled kernels from cache
t1b = time.perf_counter()
c1 = time.process_time()
res = simulate("paper", cycles=cycles, seed=seed, box=box)
t2 = time.perf_counter()
cpu = time.process_time() - c1
df = res.to_pandas()
events = int(df["n_events_ch"].sum() + df["n_events_dis"].sum())
hops = int(df["n_diffusion"].sum())
print(json.dumps({"import_s": t1 - t0, "load_s": t1b - t1, "sim_s": t2 - t1b, "cpu_s": cpu,
                  "events": events, "hops": hops,
                  "rows": len(df), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run(box, cycles, seed, env=None):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(box), str(cycles), str(seed)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--big", action="store_true")
    ap.add_argument(
        "--cold", action="store_true", help="measure compile time with an empty Numba cache"
    )
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.cold:
        import tempfile

        env = dict(os.environ, NUMBA_CACHE_DIR=tempfile.mkdtemp())
        t = time.perf_counter()
        r = run([4, 4, 16], 1, 0, env)
        print(
            f"cold start (compile, 1 cycle of 4x4x16): {time.perf_counter() - t:.1f} s (sim {r['sim_s']:.1f} s)"
        )
    run([4, 4, 16], 1, 0)  # warm the cache
    from seilab.model import load_model

    default_box = list(load_model("paper").spec.lattice.box)
    boxes = [default_box] + ([[10, 10, 40]] if default_box != [10, 10, 40] else [])
    for box in boxes:
        label = "default box" if box == default_box else "box"
        report(box, label, args)
    if args.big:
        r = run([40, 40, 160], args.cycles, 0)
        print(
            f"paper literal box 40x40x160 (4.1 M sites), {args.cycles} cycles: {r['sim_s']:.1f} s wall"
            f" ({r['cpu_s']:.1f} s CPU, set-up included), peak {r['peak_mb']:.0f} MB"
        )


def report(box, label, args) -> None:
    """Time ``--repeats`` seeds on one box and print the figures."""
    rs = [run(box, args.cycles, s) for s in range(args.repeats)]
    sims = [r["sim_s"] for r in rs]
    ev = sum(r["events"] + r["hops"] for r in rs) / sum(sims)
    print(f"{label} {'x'.join(map(str, box))}, {args.cycles} cycles, {args.repeats} seeds:")
    print(
        f"  median {statistics.median(sims):.2f} s wall per simulation (min {min(sims):.2f}, max {max(sims):.2f}),"
        f" median CPU {statistics.median(r['cpu_s'] for r in rs):.2f} s"
    )
    print(
        f"  once per process: import {statistics.median(r['import_s'] for r in rs):.2f} s,"
        f" kernel cache load + 1-cycle warm-up {statistics.median(r['load_s'] for r in rs):.2f} s"
    )
    print(
        f"  {ev:,.0f} events/s (reactions + fragment hops), reactions per run {statistics.mean(r['events'] for r in rs):,.0f}, hops per run {statistics.mean(r['hops'] for r in rs):,.0f}"
    )
    print(f"  peak memory {max(r['peak_mb'] for r in rs):.0f} MB")


if __name__ == "__main__":
    main()
