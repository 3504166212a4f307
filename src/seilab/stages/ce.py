"""The ``ce`` stage: the CE analysis (regressors, intervals, SHAP) into ``DIR/ce``.

The declared names below are the only files the stage writes (the report imports them).  The
beeswarm and SHAP-value files depend on the explained models and the feature groups:
:func:`shap_beeswarm_file`, :func:`shap_values_file`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from seilab.stages.base import OutputWriter, Stage, StageContext

METRICS = "metrics.csv"
METRICS_PARQUET = "metrics.parquet"
PREDICTIONS = "predictions.parquet"
PARITY = "parity.png"
SHAP_RANKING = "shap_ranking.csv"
SHAP_RANKING_PARQUET = "shap_ranking.parquet"
SHAP_RANKING_PLOT = "shap_ranking.png"
#: Stability of the SHAP ranking over refits with shadow features (issue 14).
SHAP_RANKING_STABILITY = "shap_ranking_stability.csv"
SHAP_RANKING_STABILITY_PARQUET = "shap_ranking_stability.parquet"
SUMMARY = "summary.json"
#: Regressors explained with SHAP (when trained), in the report's order.
SHAP_MODELS: tuple[str, ...] = ("dense_nn", "xgboost")
#: Feature groups of the beeswarms, in the report's order.
SHAP_GROUPS: tuple[str, ...] = ("events", "mobility", "pairs")


def shap_beeswarm_file(model: str, group: str) -> str:
    """The beeswarm of one explained model and one feature group."""
    return f"shap_{model}_{group}.png"


def shap_values_file(model: str) -> str:
    """The SHAP values of one explained model."""
    return f"shap_values_{model}.parquet"


def ce_outputs(models: Iterable[str], groups: Iterable[str]) -> tuple[str, ...]:
    """Every output of the CE analysis with these regressors and feature groups."""
    explained = [m for m in SHAP_MODELS if m in tuple(models)]
    groups = tuple(groups)
    return (
        METRICS,
        METRICS_PARQUET,
        PREDICTIONS,
        PARITY,
        SHAP_RANKING,
        SHAP_RANKING_PARQUET,
        SHAP_RANKING_PLOT,
        SHAP_RANKING_STABILITY,
        SHAP_RANKING_STABILITY_PARQUET,
        *(shap_values_file(m) for m in explained),
        *(shap_beeswarm_file(m, g) for m in explained for g in groups),
        SUMMARY,
    )


def record_ce_outputs(
    out: Path, models: Iterable[str], groups: Iterable[str], warnings: list[str] | None = None
) -> dict[str, Any]:
    """Rewrite ``summary.json`` of a finished CE analysis with ``outputs`` and ``skipped``."""
    import json

    w = OutputWriter(out, ce_outputs(models, groups))
    summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    for name in w.declared:
        if name != SUMMARY and (out / name).is_file():
            w.mark(name)
    if not summary.get("shap", {}).get("explainers"):
        for name in w.declared:
            if name.startswith("shap_"):
                w.skip(name, "no regressor explained with SHAP")
    if warnings is not None:
        summary["warnings"] = warnings
    return w.finish(SUMMARY, summary)


class CEStage(Stage):
    """CE analysis (four regressors, conformal intervals, SHAP) into ``DIR/ce``."""

    name = "ce"
    title = "CE analysis (regressors, SHAP)"
    folder = "ce"
    summary = SUMMARY

    def recipe(self, ctx: StageContext) -> Any:
        """The :class:`~seilab.analysis.ce.CESettings` of a run."""
        from seilab.analysis.ce import CESettings

        p = ctx.preset
        return CESettings(
            seed=ctx.seed,
            size=p.ce_size,
            n_jobs=ctx.jobs,
            shap_samples=p.shap_samples,
            shap_background=p.shap_background,
        )

    def settings(self, ctx: StageContext) -> dict[str, Any]:
        from dataclasses import asdict

        s = asdict(self.recipe(ctx))
        s.pop("n_jobs")  # threads do not change the results' identity
        return s

    def outputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        from seilab.analysis.regressors import MODEL_NAMES

        return ce_outputs(settings.get("models", MODEL_NAMES), settings.get("groups", SHAP_GROUPS))

    def run(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        from seilab.analysis.ce import run_ce_analysis

        s = self.recipe(ctx)
        res = run_ce_analysis(ctx.campaign, out, s, progress=ctx.progress)
        record_ce_outputs(out, s.models, s.groups)
        best = res.metrics["test_rmse"].idxmin()
        return {"note": f"best test RMSE: {best} ({res.metrics.loc[best, 'test_rmse']:.3g} %)"}
