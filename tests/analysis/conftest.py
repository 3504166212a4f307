"""Shared fixtures of the analysis tests: synthetic campaign folders in the documented schema,
and one small *real* campaign run by the simulator through the campaign machinery."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from real_campaign import REAL_CAMPAIGN  # noqa: E402
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


@pytest.fixture(scope="session")
def real_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The campaign folder of :data:`REAL_CAMPAIGN`, run once per session (about 20 s).

    Built with ``seilab.campaign.run_campaign`` (process pool, real simulator); every run must
    finish.  Treat it as read-only: tests that change files work on a copy.
    """
    from seilab.campaign import CampaignConfig, run_campaign

    folder = tmp_path_factory.mktemp("real") / "campaign"
    result = run_campaign(CampaignConfig(**copy.deepcopy(REAL_CAMPAIGN)), folder, progress=False)
    assert result.counts["done"] == REAL_CAMPAIGN["n"], result.failures
    return folder


@pytest.fixture(scope="session")
def real_data(real_campaign: Path) -> pd.DataFrame:
    """The per-cycle data set of the real campaign (``seilab.campaign.load_dataset``)."""
    from seilab.campaign import load_dataset

    return load_dataset(real_campaign)
