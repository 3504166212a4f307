"""What the ``bo`` stage writes into ``DIR/bo``: its declared file names and Optuna storage.

The declared names below are the only files the stage writes (the report imports them); the
stage itself, :class:`seilab.stages.bo_run.BOStage`, and its driver live in
:mod:`seilab.stages.bo_run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seilab.stages.base import OutputWriter

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
