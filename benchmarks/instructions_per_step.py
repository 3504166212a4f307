"""Instructions and cache misses per kMC step of a slow parameter set (valgrind cachegrind).

Wall-clock figures on a shared 2-core machine vary by a quarter from one hour to the next for
the same code (docs/engine.md, "Start-up and speed"), too much to see a kernel change of a few
per cent.  Instruction counts do not vary: this script runs one set of the paper design under
cachegrind twice, once up to the first step and once for ``--steps`` steps, and prints the
difference per step (instructions ``Ir``, first-level and last-level cache misses).  The
kernels are compiled for a generic x86-64 CPU (``NUMBA_CPU_NAME=generic``, so the figure does
not depend on the host) into a private Numba cache, before the measured runs.

Needs ``valgrind``.  About seven minutes for the default 100,000 steps.

Usage::

    python benchmarks/instructions_per_step.py                         # random-00003, 1e5 steps
    python benchmarks/instructions_per_step.py --src /tmp/other/src    # another checkout's code
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# the development machine's caches (AMD EPYC Zen 5: 32 KiB L1 instruction, 48 KiB L1 data,
# 1 MiB L2 per core; cachegrind's last level stands for the L2)
CACHE = ["--I1=32768,8,64", "--D1=49152,12,64", "--LL=1048576,16,64"]


def child(run_id: str, steps: int) -> None:
    """Compile on a tiny box, then run ``run_id`` for ``steps`` steps (0: stop after compiling)."""
    sys.path.insert(0, str(HERE))
    from slow_sets import simulate_run

    from seilab.kmc import simulate

    simulate("paper", cycles=1, seed=1, box=(4, 4, 16))
    if steps:
        simulate_run(run_id, steps)


def _summary(path: Path) -> dict[str, int]:
    events: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("summary:"):
            return dict(zip(events, map(int, line.split()[1:]), strict=True))
    raise SystemExit(f"{path}: no summary line (did cachegrind fail?)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="random-00003-r0", help="a run of the paper design")
    ap.add_argument("--steps", type=int, default=100_000)
    ap.add_argument("--src", type=Path, default=None, help="measure the seilab under this src/")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.run, args.child)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions_per_step.py: valgrind not found (apt install valgrind)")
    with tempfile.TemporaryDirectory(prefix="seilab-cg-") as d:
        env = dict(
            os.environ,
            NUMBA_CPU_NAME="generic",
            NUMBA_CACHE_DIR=f"{d}/cache",
            NUMBA_NUM_THREADS="1",
        )
        if args.src:
            env["PYTHONPATH"] = str(args.src.resolve())
        me = [sys.executable, __file__, "--run", args.run]
        subprocess.run([*me, "--child", "0"], env=env, check=True)  # fills the cache
        out = {}
        for n in (0, args.steps):
            f = Path(d) / f"cg.{n}"
            cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", *CACHE]
            cmd += [f"--cachegrind-out-file={f}", *me, "--child", str(n)]
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            out[n] = _summary(f)
    per = {k: (out[args.steps][k] - out[0][k]) / args.steps for k in out[0]}
    print(f"{args.run}, {args.steps} steps, per step (cachegrind, generic x86-64 code):")
    names = {
        "Ir": "instructions",
        "I1mr": "L1 instruction misses",
        "Dr": "data reads",
        "D1mr": "L1 data read misses",
        "DLmr": "last-level data read misses",
        "Dw": "data writes",
        "D1mw": "L1 data write misses",
    }
    for k, label in names.items():
        if k in per:
            print(f"  {label:30s} {per[k]:12,.1f}")


if __name__ == "__main__":
    main()
