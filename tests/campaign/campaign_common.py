"""Shared constants and helpers of the campaign tests (imported by name; not a conftest)."""

from __future__ import annotations

import os
import subprocess
import sys

#: Campaign-wide simulator options that make a run take ~0.2 s (2 cycles, 4x4x16, 2 events).
#: A stall (a half with no acceptable draw, frequent in so small a box) must not end these
#: runs early: the tests count rows.
TINY_CYCLES = 2
TINY_BOX = (4, 4, 16)
TINY_SET = {"protocol.event_budget": 2, "protocol.stall_ends_run": False}
TINY_ARGS = [
    "--cycles",
    "2",
    "--box",
    "4",
    "4",
    "16",
    "--set",
    "protocol.event_budget=2",
    "--set",
    "protocol.stall_ends_run=false",
]


def cli(*args: str, timeout: float = 300, check: bool = False) -> subprocess.CompletedProcess:
    """Run ``python -m seilab.campaign ARGS`` (same code as ``seilab campaign``)."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "seilab.campaign", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc
