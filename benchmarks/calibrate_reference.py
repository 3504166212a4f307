"""Benchmark: the reference-run calibration of the `paper` model within a wall-time budget.

Runs ``seilab.calibrate.calibrate`` with the shipped spec ``paper-reference`` and targets
``reference-run`` (issue 11: at most 30 minutes on the project's 2-core machine) and prints
the number of simulations, their summed run time, the wall time, the final loss, the best knob
values, the per-target table and the load average.  Running it again on the same folder
continues the study (a second budget adds trials).

Usage::

    python benchmarks/calibrate_reference.py --out /work/calibrate-runs/paper-reference \\
        --max-minutes 30 --workers 2
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    from seilab.calibrate import bundled_file, calibrate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/work/calibrate-runs/paper-reference"))
    ap.add_argument("--model", default=None, help="model (default: the spec's, paper-2025-study)")
    ap.add_argument("--spec", default="paper-reference")
    ap.add_argument("--targets", default="reference-run")
    ap.add_argument("--max-minutes", type=float, default=30.0)
    ap.add_argument("--trials", type=int, default=400, help="upper bound; the budget decides")
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    load0 = os.getloadavg()
    t0 = time.perf_counter()

    def on_trial(rec: dict) -> None:
        vals = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in rec["values"].items()
        )
        print(
            f"[{time.perf_counter() - t0:6.0f} s] trial {rec['trial']}: loss {rec['loss']:.4g} ({vals})",
            flush=True,
        )

    res = calibrate(
        a.model,
        bundled_file("specs", a.spec),
        bundled_file("targets", a.targets),
        a.out,
        trials=a.trials,
        workers=a.workers,
        on_trial=on_trial,
        max_wall_s=60.0 * a.max_minutes,
    )
    load1 = os.getloadavg()
    b = res.best
    print(f"trials completed (all sessions): {len(res.trials)}")
    print(
        f"simulations (all sessions): {res.n_simulations}, summed run time {res.sim_wall_s:.0f} s"
    )
    print(f"wall time of this session: {res.wall_s:.0f} s (budget {a.max_minutes:g} min)")
    print(f"best trial {int(b['trial'])}: loss {res.best_loss:.4g}")
    print(f"load average 1/5/15 min: start {load0}, end {load1}")
    print((a.out / "candidates.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
