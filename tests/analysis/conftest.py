"""Shared fixtures of the analysis tests: synthetic campaign folders in the documented schema."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from synthetic import write_synthetic_campaign  # noqa: E402


@pytest.fixture(scope="session")
def synthetic_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small campaign folder (16 finished runs x 40 cycles, one failed run, one early end)."""
    folder = tmp_path_factory.mktemp("synthetic_campaign")
    write_synthetic_campaign(folder, n_runs=16, n_cycles=40, seed=1, early_end={3: 25}, n_failed=1)
    return folder


@pytest.fixture()
def make_campaign(tmp_path: Path):
    """Factory ``make_campaign(name="camp", **kwargs) -> folder`` around write_synthetic_campaign."""

    def _make(name: str = "camp", **kwargs) -> Path:
        folder = tmp_path / name
        write_synthetic_campaign(folder, **kwargs)
        return folder

    return _make
