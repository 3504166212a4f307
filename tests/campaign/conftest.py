"""Fixtures of the campaign tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from campaign_common import TINY_ARGS, TINY_BOX, TINY_CYCLES, TINY_SET, cli  # noqa: F401


@pytest.fixture(scope="session")
def tiny_campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 4-run random campaign (process pool, 2 workers), shared by reader tests."""
    from seilab.campaign import CampaignConfig, run_campaign

    out = tmp_path_factory.mktemp("tiny") / "camp"
    cfg = CampaignConfig(
        design="random",
        n=4,
        seed=3,
        cycles=TINY_CYCLES,
        box=TINY_BOX,
        set=dict(TINY_SET),
        workers=2,
    )
    res = run_campaign(cfg, out, progress=False)
    assert res.counts == {"done": 4, "failed": 0, "pending": 0}, res
    return out
