"""Campaigns: designs, executors, the Parquet store and manifest, resume.

Public API
----------
load_dataset, read_manifest
    Read a campaign folder (``seilab.campaign.store``).
run_campaign, CampaignConfig, plan_campaign
    Run or resume a campaign (``seilab.campaign.runner``, ``seilab.campaign.config``).
run_param_sets
    Simulate a list of parameter sets as a campaign, one row per run back.
slurm_job_script
    The SLURM job script dask-jobqueue would submit (``seilab.campaign.backends``).

Everything loads on first use, so worker processes that unpickle
:func:`seilab.campaign.task.run_one` import neither pandas nor pyarrow nor Numba up front.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from seilab.campaign.backends import slurm_job_script
    from seilab.campaign.batch import run_param_sets
    from seilab.campaign.config import CampaignConfig
    from seilab.campaign.plan import plan_campaign
    from seilab.campaign.runner import run_campaign
    from seilab.campaign.store import campaign_status, load_dataset, read_manifest

__all__ = [
    "CampaignConfig",
    "campaign_status",
    "load_dataset",
    "plan_campaign",
    "read_manifest",
    "run_campaign",
    "run_param_sets",
    "slurm_job_script",
]

_LAZY = {
    "CampaignConfig": "seilab.campaign.config",
    "run_campaign": "seilab.campaign.runner",
    "run_param_sets": "seilab.campaign.batch",
    "plan_campaign": "seilab.campaign.plan",
    "slurm_job_script": "seilab.campaign.backends",
    "campaign_status": "seilab.campaign.store",
    "load_dataset": "seilab.campaign.store",
    "read_manifest": "seilab.campaign.store",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seilab.campaign' has no attribute {name!r}")
