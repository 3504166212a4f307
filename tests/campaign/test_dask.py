"""The Dask backend with a real LocalCluster (two worker processes)."""

from __future__ import annotations

from pathlib import Path

import pytest
from campaign_common import TINY_BOX, TINY_CYCLES, TINY_SET

from seilab.campaign import CampaignConfig, read_manifest, run_campaign

distributed = pytest.importorskip("distributed")


def _cfg(**kw) -> CampaignConfig:
    return CampaignConfig(
        design="oat", pairs=["Li-Li"], cycles=TINY_CYCLES, box=TINY_BOX, set=dict(TINY_SET), **kw
    )


def test_dask_scheduler_address_runs_and_resumes(tmp_path: Path):
    """An existing cluster by address; a failing run; then a local cluster resumes the folder."""
    from distributed import LocalCluster

    out = tmp_path / "camp"
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        cfg = _cfg(backend="dask", scheduler=cluster.scheduler_address)
        from seilab.campaign.runner import plan_campaign

        plan = plan_campaign(cfg)
        assert len(plan.runs) == 16
        # stop half-way: run only the first 6 runs' worth by interrupting through a callback
        seen = []

        def on_result(rec):
            seen.append(rec["run_id"])
            if len(seen) == 6:
                raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            run_campaign(cfg, out, progress=False, on_result=on_result)
        assert len(cluster.workers) == 2
    man = read_manifest(out)
    assert (man["status"] == "done").sum() >= 6
    # resume on a LocalCluster started by the backend itself (no address): 2 worker processes
    res = run_campaign(_cfg(backend="dask", workers=2), out, progress=False)
    assert res.counts == {"done": 16, "failed": 0, "pending": 0}
    assert res.skipped >= 6 and res.backend.startswith("dask LocalCluster, 2 workers")
    man = read_manifest(out)
    assert len(man) == 16 and man["run_id"].is_unique and (man["status"] == "done").all()
    assert sorted(p.stem for p in (out / "runs").glob("*.parquet")) == sorted(man["run_id"])
