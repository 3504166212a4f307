"""The ``bo`` stage: Bayesian optimisation of the pair energies and its verification, ``DIR/bo``.

The declared names below are the only files the stage writes (the report imports them).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seilab.stages.base import OutputWriter, Stage, StageContext

STUDY_DB = "optuna.db"
SURROGATE = "surrogate.pkl"
PAIR_RANKING = "pair_ranking.csv"
HISTORY = "history.csv"
HISTORY_PLOT = "history.png"
BEST_ENERGIES = "best_energies.csv"
BEST_VS_DFT = "best_vs_dft_prediction.csv"
PAIR_CURVES = "pair_curves.csv"
PAIR_CURVES_PLOT = "pair_curves.png"
SURFACE = "surface_sfo-li_f-li.csv"
SURFACE_PLOT = "surface_sfo-li_f-li.png"
VERIFICATION = "verification.csv"
VERIFICATION_PLOT = "verification.png"
VERIFY_DIR = "verify"
SUMMARY = "summary.json"
OUTPUTS: tuple[str, ...] = (
    STUDY_DB,
    SURROGATE,
    PAIR_RANKING,
    HISTORY,
    HISTORY_PLOT,
    BEST_ENERGIES,
    BEST_VS_DFT,
    PAIR_CURVES,
    PAIR_CURVES_PLOT,
    SURFACE,
    SURFACE_PLOT,
    VERIFICATION,
    VERIFICATION_PLOT,
    VERIFY_DIR,
    SUMMARY,
)


def study_storage(out: str | Path) -> str:
    """The Optuna storage of the stage: the SQLite URL of ``OUT/optuna.db`` (:data:`STUDY_DB`).

    The analysis takes the URL (:func:`seilab.analysis.optimize.open_study`); only the stage
    knows the file.
    """
    return f"sqlite:///{(Path(out) / STUDY_DB).resolve()}"


def record_bo_outputs(out: Path, warnings: list[str] | None = None) -> dict[str, Any]:
    """Rewrite ``summary.json`` of a finished optimisation with ``outputs`` and ``skipped``."""
    import json

    w = OutputWriter(out, OUTPUTS)
    summary = json.loads((out / SUMMARY).read_text(encoding="utf-8"))
    for name in OUTPUTS:
        if name != SUMMARY and (out / name).exists():
            w.mark(name)
    if not summary.get("verification"):
        for name in (VERIFICATION, VERIFICATION_PLOT, VERIFY_DIR):
            w.skip(name, "no verification requested (verify = 0)")
    if PAIR_RANKING not in w.written:
        w.skip(PAIR_RANKING, "pairs given or taken from the CE stage's SHAP ranking")
    if warnings is not None:
        summary["warnings"] = warnings
    return w.finish(SUMMARY, summary)


class BOStage(Stage):
    """Bayesian optimisation (Optuna TPE on a CE surrogate) with verification, ``DIR/bo``."""

    name = "bo"
    title = "Bayesian optimisation + verification"
    folder = "bo"
    summary = SUMMARY
    after = "ce"

    def outputs(self, settings: Mapping[str, Any]) -> tuple[str, ...]:
        return OUTPUTS

    def recipe(self, ctx: StageContext) -> Any:
        """The :class:`~seilab.analysis.optimize.BOSettings` of a run (the stage's one recipe)."""
        from seilab.analysis.optimize import BOSettings

        p = ctx.preset
        return BOSettings(
            top_k=p.bo_top_k,
            surrogate=p.bo_surrogate,
            size=p.bo_size,
            n_jobs=ctx.jobs,
            trials=p.bo_trials,
            seed=ctx.seed,
            verify=p.verify,
            replicates=p.verify_replicates,
        )

    def settings(self, ctx: StageContext) -> dict[str, Any]:
        """The recipe's identity (threads left out) and the simulator of the verification."""
        from seilab.stages.campaign import campaign_identity

        return {**self.recipe(ctx).identity(), "simulator": campaign_identity(ctx)}

    def run(self, ctx: StageContext, out: Path) -> dict[str, Any]:
        from seilab.stages.bo_run import run_optimization
        from seilab.stages.ce import SHAP_RANKING

        p = ctx.preset
        ranking = ctx.stage_dir("ce") / SHAP_RANKING
        res = run_optimization(
            ctx.campaign,
            out,
            self.recipe(ctx),
            ranking=ranking if ranking.is_file() else None,
            simulator_options={
                "base_model": ctx.model,
                "cycles": p.cycles,
                "box": None if p.box is None else list(p.box),
                "overrides": dict(p.set) or None,
                "workers": ctx.workers,
                "seed": ctx.seed,
                "backend": ctx.backend,
                "scheduler": ctx.scheduler,
            },
            progress=ctx.progress,
        )
        record_bo_outputs(out)
        note = f"converged at trial {res.converged_trial} of {res.summary['trials']}"
        v = res.summary.get("verification")
        if v:
            note += f"; verification: holds = {v.get('holds')}"
        return {"note": note}
