"""The ``dataset`` stage: the data-set section of the report into ``DIR/dataset``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seilab.stages.base import OutputWriter, Stage, StageContext

CE_VS_CYCLE = "ce_vs_cycle.png"
DESCRIPTIVE_STATS = "descriptive_stats.csv"
RUNS = "runs.csv"
SUMMARY = "summary.json"
VALIDATION = "validation.csv"
OUTPUTS: tuple[str, ...] = (CE_VS_CYCLE, DESCRIPTIVE_STATS, RUNS, VALIDATION, SUMMARY)


def summarise_dataset(campaign_dir: str | Path, out: str | Path) -> dict[str, Any]:
    """CE against cycle, descriptive statistics and the per-run table of a campaign folder.

    Parameters
    ----------
    campaign_dir
        Campaign folder.
    out
        Output folder: ``ce_vs_cycle.png``, ``descriptive_stats.csv`` (the paper's table of
        per-cycle features and CE), ``runs.csv`` (one row per run), ``validation.csv`` (the
        data-set statistics next to the paper's, :mod:`seilab.calibrate.validation`) and
        ``summary.json`` (last).

    Returns
    -------
    dict
        The summary.
    """
    import pandas as pd

    from seilab.analysis.describe import describe_dataset
    from seilab.calibrate.validation import validate_campaign
    from seilab.campaign.store import load_dataset, read_manifest
    from seilab.plotting.report import ce_vs_cycle

    campaign_dir = Path(campaign_dir)
    data = load_dataset(campaign_dir)
    d = describe_dataset(data, read_manifest(campaign_dir))
    w = OutputWriter(Path(out), OUTPUTS)
    w.csv(DESCRIPTIVE_STATS, d.descriptive, index=True)
    w.csv(RUNS, d.runs, index=True)
    w.figure(CE_VS_CYCLE, ce_vs_cycle(data))
    rows, _ = validate_campaign(campaign_dir, data, keys=True)
    table = pd.DataFrame(rows, columns=["key", "statistic", "paper", "this_run"])
    w.csv(VALIDATION, table, index=False)
    return w.finish(SUMMARY, {"campaign": str(campaign_dir), **d.summary})


class DatasetStage(Stage):
    """Data-set summary (CE against cycle, descriptive statistics) into ``DIR/dataset``."""

    name = "dataset"
    title = "data set summary"
    folder = "dataset"
    summary = SUMMARY

    def outputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return OUTPUTS

    def run(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        with ctx.spinner("data set summary ..."):
            s = summarise_dataset(ctx.campaign, out)
        return {"note": f"{s['n_runs_done']} runs, {s['n_rows']} cycles"}
