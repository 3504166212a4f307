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


def write_ce_outputs(res: Any, out: str | Path, *, figures: bool = True) -> dict[str, Any]:
    """Write the tables, figures and summary of a :class:`~seilab.analysis.ce.CEResult`.

    Returns
    -------
    dict
        The summary written to ``out/summary.json`` (with ``outputs`` and ``skipped``).
    """
    import numpy as np

    from seilab.analysis.ce import GROUP_TITLES
    from seilab.plotting import ce as plots
    from seilab.plotting.shap import beeswarm
    from seilab.schema import REGRESSOR_TITLES

    settings = res.summary.get("settings", {})
    groups = tuple(settings.get("groups", SHAP_GROUPS))
    w = OutputWriter(Path(out), ce_outputs(res.metrics.index, groups))
    w.csv(METRICS, res.metrics.reset_index())
    w.parquet(METRICS_PARQUET, res.metrics.reset_index())
    w.parquet(PREDICTIONS, res.predictions)
    if figures:
        w.figure(PARITY, plots.parity_grid(res.panels, res.metrics, titles=REGRESSOR_TITLES))
    for name, vals in res.shap_values.items():
        w.parquet(shap_values_file(name), vals)
    if len(res.ranking):
        w.csv(SHAP_RANKING, res.ranking)
        w.parquet(SHAP_RANKING_PARQUET, res.ranking)
        if figures:
            w.figure(SHAP_RANKING_PLOT, plots.ranking_bars(res.ranking))
            rows = res.explained_rows
            for name, expl in res.explanations.items():
                for grp in groups:
                    cols = list(res.dataset.feature_groups[grp])
                    idx = [list(rows.columns).index(c) for c in cols]
                    title = GROUP_TITLES.get(grp, grp)
                    fig = beeswarm(
                        np.asarray(expl.values)[:, idx],
                        rows[cols].to_numpy(),
                        cols,
                        title=f"SHAP, {REGRESSOR_TITLES[name]}: {title}",
                        xlabel="SHAP value (impact on predicted CE, percentage points)",
                    )
                    w.figure(shap_beeswarm_file(name, grp), fig)
    else:
        for n in w.declared:
            if n.startswith("shap_") and not n.startswith("shap_ranking_stability"):
                w.skip(n, "no regressor explained with SHAP")
    stability = getattr(res, "stability", None)
    if stability is not None and len(stability):
        w.csv(SHAP_RANKING_STABILITY, stability)
        w.parquet(SHAP_RANKING_STABILITY_PARQUET, stability)
    else:
        for n in (SHAP_RANKING_STABILITY, SHAP_RANKING_STABILITY_PARQUET):
            w.skip(n, "ranking stability not computed (stability_models empty)")
    if not figures:
        for n in w.declared:
            if n.endswith(".png"):
                w.skip(n, "figures not requested")
    summary = w.finish(SUMMARY, res.summary)
    res.out = Path(out)
    res.files = [Path(out) / n for n in (*w.written,)]
    return summary


def run_ce_analysis(
    folder: str | Path | None,
    out: str | Path,
    settings: Any = None,
    *,
    data: Any = None,
    progress: bool = True,
) -> Any:
    """Analyse a campaign folder (or a data set in memory) and write every output to ``out``.

    The CE stage of ``seilab run`` and ``seilab analyze ce``: :func:`seilab.analysis.ce.analyse_ce`
    then :func:`write_ce_outputs`; warnings of the libraries go to the summary, and with
    ``progress`` each step's time is shown on stderr as it ends (the analysis returns the
    timings, :attr:`~seilab.analysis.ce.CEResult.timings`, also in ``summary.json``).

    Returns
    -------
    seilab.analysis.ce.CEResult
        With ``out`` and ``files`` (the files written) set.
    """
    from seilab.analysis.ce import analyse_ce
    from seilab.analysis.dataset import load_campaign
    from seilab.errors import AnalysisError
    from seilab.io import captured_warnings
    from seilab.stages.base import console_steps

    if data is None:
        if folder is None:
            raise AnalysisError("no campaign folder given")
        data = load_campaign(folder)
        source = str(folder)
    else:
        source = "in-memory data"
    with captured_warnings() as caught:
        res = analyse_ce(data, settings, source=source, steps=console_steps(progress))
    res.summary["warnings"] = caught
    write_ce_outputs(res, out)
    return res


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
        res = run_ce_analysis(ctx.campaign, out, self.recipe(ctx), progress=ctx.progress)
        best = res.metrics["test_rmse"].idxmin()
        return {"note": f"best test RMSE: {best} ({res.metrics.loc[best, 'test_rmse']:.3g} %)"}
