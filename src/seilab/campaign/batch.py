"""Python API: simulate given parameter sets through a campaign folder (BO verification)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from seilab import schema
from seilab.campaign import design as D
from seilab.campaign import store
from seilab.campaign.config import (
    CampaignConfig,
)
from seilab.campaign.runner import run_campaign
from seilab.errors import CampaignError


# ------------------------------------------------------------------------------ Python API
def run_param_sets(
    param_sets: Sequence[Mapping[str, Any]],
    replicates: int = 1,
    out_dir: str | Path | None = None,
    *,
    base_model: str | Path = "paper",
    cycles: int | None = None,
    box: Sequence[int] | None = None,
    overrides: Mapping[str, Any] | None = None,
    backend: str = "process",
    workers: int | None = None,
    seed: int = 0,
    scheduler: str | None = None,
    progress: bool = False,
) -> Any:
    """Simulate parameter sets (``replicates`` seeds each) as a resumable campaign folder.

    Parameters
    ----------
    param_sets
        One dict per set, keyed by pair name (``"SFO-Li"``) or model key
        (``"protocol.event_budget"``).
    replicates
        Seeds per set.
    out_dir
        Campaign folder (re-running with the same arguments resumes it; other arguments on an
        existing folder are refused).
    base_model
        Bundled model name or TOML path.
    cycles, box, overrides
        Campaign-wide simulator options (``overrides`` = ``--set``).
    backend, workers, scheduler
        Execution backend (``process``, ``dask``, ``slurm``).
    seed
        Campaign seed (run seeds derive from it, see :mod:`seilab.campaign.design`).
    progress
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``spec`` (index into ``param_sets``), ``replicate``, ``run_id``, the
        parameters as given, ``seed``, ``status``, ``ce_mean_pct`` (mean of ``ce_pct`` over the
        run's cycles, NaN-skipping; NaN for failed runs), ``n_cycles``, ``end_reason``,
        ``wall_s``, ``error``.
    """
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    if out_dir is None:
        raise CampaignError("run_param_sets needs out_dir (the campaign folder)")
    sets = D.normalise_sets(list(param_sets), source="param_sets")
    if not sets:
        raise CampaignError("run_param_sets: param_sets is empty")
    cfg = CampaignConfig(
        design="sets",
        param_sets=sets,
        replicates=int(replicates),
        seed=int(seed),
        model=str(base_model),
        cycles=cycles,
        box=None if box is None else tuple(int(v) for v in box),
        set=dict(overrides or {}),
        backend=backend,
        workers=workers,
        scheduler=scheduler,
    )
    result = run_campaign(cfg, out_dir, progress=progress)
    man = store.read_manifest(result.folder)
    rows = []
    keys: list[str] = []
    for s in sets:
        keys += [k for k in s if k not in keys]
    for r in man.itertuples(index=False):
        rec = r._asdict()
        spec = int(rec["design_index"])
        ce = float("nan")
        path = store.run_path(result.folder, rec["run_id"])
        if rec["status"] == "done" and path.is_file():
            col = pq.read_table(path, columns=[schema.TARGET]).column(0)
            vals = np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)
            ce = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
        row = {"spec": spec, "replicate": int(rec["replicate"]), "run_id": rec["run_id"]}
        row.update({k: sets[spec].get(k) for k in keys})
        row.update(
            seed=int(rec["seed"]),
            status=rec["status"],
            ce_mean_pct=ce,
            n_cycles=rec["n_cycles"],
            end_reason=rec["end_reason"],
            wall_s=rec["wall_s"],
            error=rec["error"],
        )
        rows.append(row)
    return pd.DataFrame(rows)
