"""The ``campaign`` stage: the simulations of a run into ``DIR/campaign`` (a campaign folder)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seilab import schema
from seilab.stages.base import Stage, StageContext

CONFIG = schema.CAMPAIGN_CONFIG
MANIFEST = schema.MANIFEST
RUNS_DIR = schema.RUNS_DIR
OUTPUTS: tuple[str, ...] = (CONFIG, MANIFEST, RUNS_DIR)

#: Fields of a preset that decide the campaign (a resumed folder must match them).
CAMPAIGN_FIELDS: tuple[str, ...] = ("design", "n", "pairs", "replicates", "cycles", "box", "set")


def campaign_identity(ctx: StageContext) -> dict[str, Any]:
    """The settings that decide the campaign's runs (compared on resume)."""
    p = ctx.preset.to_dict()
    return {**{k: p[k] for k in CAMPAIGN_FIELDS}, "model": ctx.model, "seed": ctx.seed}


def campaign_config(ctx: StageContext) -> Any:
    """The :class:`seilab.campaign.CampaignConfig` of a run's campaign."""
    from seilab.campaign.config import CampaignConfig

    p = ctx.preset
    return CampaignConfig(
        design=p.design,
        n=p.n,
        pairs=None if p.pairs is None else list(p.pairs),
        replicates=p.replicates,
        seed=ctx.seed,
        model=ctx.model,
        cycles=p.cycles,
        box=p.box,
        set=dict(p.set),
        backend=ctx.backend,
        workers=ctx.workers,
        scheduler=ctx.scheduler,
    )


class CampaignStage(Stage):
    """The campaign of simulations (resumes by itself: finished runs are kept)."""

    name = "campaign"
    title = "campaign (simulations)"
    folder = "campaign"
    summary = MANIFEST

    def outputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return OUTPUTS

    def settings(self, ctx: StageContext) -> dict[str, Any]:
        return campaign_identity(ctx)

    def run(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        from seilab.campaign.runner import run_campaign

        res = run_campaign(campaign_config(ctx), out, progress=ctx.progress)
        c = res.counts
        note = (
            f"{c.get('done', 0)} of {res.n_runs} runs done ({res.skipped} already finished, "
            f"{res.ran} run now), {c.get('failed', 0)} failed"
        )
        for rid, err in res.failures[:3]:
            ctx.log(f"    [red]run {rid} failed[/red]: {err.splitlines()[0] if err else ''}")
        return {"note": note, "runs": c, "resumed": bool(res.skipped)}
