"""Fixtures of the report tests: one tiny `seilab run` shared by the tests."""

from __future__ import annotations

import time

import pytest
from report_common import TINY_RUN, FinishedRun, seilab


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> FinishedRun:
    """`seilab run` on a tiny campaign (8 runs x 3 cycles, 2 workers), progress output on."""
    folder = tmp_path_factory.mktemp("run") / "results"
    t0 = time.perf_counter()
    proc = seilab("run", "--out", folder, *TINY_RUN, "--progress")
    wall = time.perf_counter() - t0
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    print(f"tiny seilab run: {wall:.1f} s")
    return FinishedRun(folder, proc, wall)
