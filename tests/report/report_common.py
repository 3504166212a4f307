"""Shared constants and helpers of the report tests (imported by name; not a conftest)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

#: A tiny pipeline: the smoke preset (4 x 4 x 16 box, 2 events per half-cycle) made smaller.
TINY_RUN = ["--preset", "smoke", "--n", "8", "--cycles", "3", "--trials", "12", "--workers", "2"]


def seilab(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``python -m seilab.cli ARGS`` (the ``seilab`` command) and capture its output."""
    env = {**os.environ, "COLUMNS": "200", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "seilab.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


@dataclass
class FinishedRun:
    """A run folder produced by one `seilab run`, with the command's output and wall time."""

    folder: Path
    proc: subprocess.CompletedProcess
    wall_s: float
