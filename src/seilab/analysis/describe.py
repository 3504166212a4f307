"""Descriptive statistics of a campaign's data set (the paper's table), pure.

:func:`describe_dataset` takes the per-cycle data set and the manifest and returns the tables
and numbers of the report's data-set section; the ``dataset`` stage writes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema


@dataclass
class DatasetDescription:
    """What :func:`describe_dataset` returns.

    Attributes
    ----------
    descriptive
        Mean, standard deviation, min, 25/50/75 % percentiles and max of every per-cycle event
        and mobility feature and of the CE (index: column; ``feature``: its label).
    runs
        One row per finished run: cycles, mean/min/last CE and manifest fields.
    summary
        Counts, CE statistics and end reasons (JSON-ready).
    """

    descriptive: pd.DataFrame
    runs: pd.DataFrame
    summary: dict[str, Any]


def describe_dataset(data: pd.DataFrame, manifest: pd.DataFrame) -> DatasetDescription:
    """Describe a per-cycle data set and its campaign manifest.

    Parameters
    ----------
    data
        Per-cycle data set (``seilab.campaign.load_dataset``).
    manifest
        The campaign manifest (``seilab.campaign.store.read_manifest``).

    Returns
    -------
    DatasetDescription
    """
    feats = [
        c
        for c in (
            *schema.FEATURE_GROUPS["events"],
            *schema.FEATURE_GROUPS["mobility"],
            schema.TARGET,
        )
        if c in data.columns
    ]
    desc = data[feats].apply(pd.to_numeric, errors="coerce").describe().T
    desc.insert(0, "feature", [schema.label(c) for c in desc.index])
    desc.index.name = "column"

    ce = pd.to_numeric(data[schema.TARGET], errors="coerce")
    g = data.assign(_ce=ce).groupby(schema.RUN_ID, sort=False)
    runs = pd.DataFrame(
        {
            "n_cycles": g[schema.CYCLE].count(),
            "ce_mean_pct": g["_ce"].mean(),
            "ce_min_pct": g["_ce"].min(),
            "ce_last_pct": g["_ce"].last(),
        }
    )
    # a run can finish without a complete cycle (its step budget ends the first discharge):
    # it has no row in the data but is a finished run of the campaign
    done = (
        manifest["run_id"]
        if "status" not in manifest
        else manifest.loc[manifest["status"] == "done", "run_id"]
    )
    empty = pd.Index(done).difference(runs.index)
    if len(empty):
        runs = pd.concat(
            [runs, pd.DataFrame({"n_cycles": 0}, index=pd.Index(empty, name=runs.index.name))]
        )
    keep = [c for c in ("design_set", "seed", "end_reason", "wall_s") if c in manifest.columns]
    runs = runs.join(manifest.set_index("run_id")[keep], how="left")

    finite = ce[np.isfinite(ce)]
    man = manifest
    summary: dict[str, Any] = {
        "n_runs_design": int(len(man)),
        "n_runs_done": int(runs.shape[0]),
        "n_runs_no_cycle": int(len(empty)),
        "n_runs_failed": int((man["status"] == "failed").sum()) if "status" in man else 0,
        "n_rows": int(len(data)),
        "cycles_per_run": {
            "min": int(runs["n_cycles"].min()),
            "max": int(runs["n_cycles"].max()),
        },
        "ce_pct": {
            "mean": float(finite.mean()) if len(finite) else None,
            "median": float(finite.median()) if len(finite) else None,
            "min": float(finite.min()) if len(finite) else None,
            "max": float(finite.max()) if len(finite) else None,
            "n_missing": int(len(ce) - len(finite)),
            "fraction_above_100": float((finite > 100).mean()) if len(finite) else None,
        },
        "end_reasons": {str(k): int(v) for k, v in man["end_reason"].value_counts().items()}
        if "end_reason" in man
        else {},
        "features": feats,
    }
    return DatasetDescription(descriptive=desc, runs=runs, summary=summary)
