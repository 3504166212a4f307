"""The failure recipe: all settings in one dataclass, one pure call from data to results.

:func:`analyse_failure` computes every part of the failure analysis and returns a
:class:`FailureResult`; it writes no file and draws nothing (the ``failure`` stage,
:mod:`seilab.stages.failure`, does).  Parts that cannot be computed (e.g. no run fails, so there
is nothing to classify) are left ``None`` with a message in ``result.messages``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.failure.classifiers import (
    _METRICS,
    SELECTION_RULE,
    ClassifierResults,
    fit_classifiers,
    shap_importance,
    shap_values,
)
from seilab.analysis.failure.early_warning import EARLY_WARNING_N, early_warning
from seilab.analysis.failure.outcomes import (
    CE_EDGES,
    DEFAULT_THRESHOLD,
    IntervalTable,
    ce_interval_table,
    default_heatmap_features,
    failure_cycle_stats,
    failure_vs_nonfailure_table,
    run_outcomes,
)
from seilab.analysis.failure.survival import fit_survival_model, kaplan_meier, km_median
from seilab.errors import AnalysisError


@dataclass(frozen=True)
class FailureSettings:
    """Every setting of the failure analysis (hashed for resume, recorded in the summary).

    Attributes
    ----------
    threshold
        Failure threshold on the CE in %.
    seed
        Seed of splits, folds and models.
    horizon
        See :func:`seilab.analysis.failure.run_outcomes`.
    grouping
        Failure against non-failure grouping (``"run"`` or ``"cycle"``).
    early_n
        Numbers of observed cycles for early warning.
    test_size, cv_splits, cv_repeats
        Held-out fraction and repeated stratified CV of the classifiers and early warning.
    n_jobs
        Threads of the random forest and CatBoost (XGBoost runs single-threaded).
    small
        Small models (tests, quick looks).
    """

    threshold: float = DEFAULT_THRESHOLD
    seed: int = 0
    horizon: int | None = None
    grouping: str = "run"
    early_n: tuple[int, ...] = EARLY_WARNING_N
    test_size: float = 0.4
    cv_splits: int = 5
    cv_repeats: int = 5
    n_jobs: int = 2
    small: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain data (round-trips through ``FailureSettings(**d)``)."""
        d = asdict(self)
        d["early_n"] = list(self.early_n)
        return d


@dataclass
class FailureResult:
    """Everything :func:`analyse_failure` computed (``None``: the part could not be computed).

    Attributes
    ----------
    settings
        The settings used.
    outcomes
        One row per run (failure cycle, event, censoring, label, pair energies).
    stats
        Failure-cycle statistics (:func:`seilab.analysis.failure.failure_cycle_stats`).
    intervals
        CE-interval table (None without per-cycle features).
    vs_nonfailure
        Failure against non-failure table.
    classifiers
        Fitted classifiers with their metrics.
    shap
        ``{"values", "X", "unit", "importance"}`` of the chosen classifier.
    km
        Kaplan-Meier table.
    survival
        The survival model's result (:func:`seilab.analysis.failure.fit_survival_model`).
    early_warning
        Early-warning table.
    summary
        JSON-ready summary (no file names).
    messages
        Why a part is missing, and caveats.
    """

    settings: FailureSettings
    outcomes: pd.DataFrame
    stats: dict[str, Any]
    km: pd.DataFrame
    intervals: IntervalTable | None = None
    vs_nonfailure: pd.DataFrame | None = None
    classifiers: ClassifierResults | None = None
    shap: dict[str, Any] | None = None
    survival: dict[str, Any] | None = None
    early_warning: pd.DataFrame | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)


def jsonable(obj: Any) -> Any:
    """Plain JSON data: NumPy scalars to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def analyse_failure(data: pd.DataFrame, settings: FailureSettings | None = None) -> FailureResult:
    """Run the whole failure analysis on a per-cycle data set (pure: no file, no figure).

    Parameters
    ----------
    data
        Per-cycle data set (``seilab.campaign.load_dataset``).
    settings
        The recipe (default :class:`FailureSettings`).

    Returns
    -------
    FailureResult
    """
    s = settings or FailureSettings()
    threshold = s.threshold
    messages: list[str] = []
    note = messages.append

    outcomes = run_outcomes(data, threshold=threshold, horizon=s.horizon)
    stats = failure_cycle_stats(outcomes)
    n_ce_missing = int(outcomes["n_ce_missing"].sum())
    if n_ce_missing:
        note(
            f"{n_ce_missing} cycle(s) have no CE (no charge in the cycle); they never count as "
            "failure and fall in no CE interval"
        )
    if stats["n_failed"] == 0:
        note(
            f"no run has a cycle with CE < {threshold:g} %: 0 of {stats['n_runs']} runs fail. "
            "Failure-cycle boxplot, failure/non-failure comparison, classifiers, SHAP, "
            "survival model and early warning are skipped; the CE-interval heatmap and the "
            "Kaplan-Meier curve (flat at 1) are written"
        )
    elif stats["n_failed"] == stats["n_runs"] - stats["n_cut_by_budget"]:
        note(
            f"every run {'with a known outcome ' if stats['n_cut_by_budget'] else ''}fails "
            f"(CE < {threshold:g} %); there is no non-failing class to compare"
        )
    if stats["n_cut_by_budget"]:
        note(
            f"{stats['n_cut_by_budget']} run(s) were ended by the step budget "
            "(protocol.max_steps) before failing: censored in the survival analysis, left out "
            "of the classifiers (their outcome is unknown); "
            f"{stats['n_failed']} of the {stats['n_runs'] - stats['n_cut_by_budget']} runs "
            "with a known outcome fail"
        )
    if stats["n_censored_early"]:
        note(
            f"{stats['n_censored_early']} run(s) end before the longest run without failing; "
            "they are censored in the survival analysis"
            + (" and count as non-failing in the classifiers" if s.horizon is None else "")
        )
    summary: dict[str, Any] = {
        "threshold_pct": threshold,
        "failure_definition": f"first cycle with CE < {threshold:g} %; NaN CE is never a failure; "
        "a later recovery does not undo the failure",
        "label": "fails before the end of the run"
        if s.horizon is None
        else f"fails by cycle {s.horizon}",
        "seed": s.seed,
        "settings": s.to_dict(),
        **{
            k: stats[k]
            for k in (
                "n_runs",
                "n_failed",
                "fraction_failing",
                "n_cut_by_budget",
                "fraction_failing_known",
                "n_censored_early",
            )
        },
        "failure_cycle": {k: stats[k] for k in ("median", "q1", "q3", "iqr", "mean", "min", "max")},
        "n_cycles_ce_missing": n_ce_missing,
    }
    km = kaplan_meier(outcomes["time"].to_numpy(), outcomes["event"].to_numpy())
    res = FailureResult(settings=s, outcomes=outcomes, stats=stats, km=km, messages=messages)

    # -- CE-interval table
    feats = default_heatmap_features(data)
    if not feats:
        note("no per-cycle event or mobility columns; heatmaps skipped")
    else:
        it = ce_interval_table(data, feats)
        res.intervals = it
        summary["ce_intervals"] = {
            "edges_pct": list(CE_EDGES),
            "n_cycles": {k: int(v) for k, v in it.counts.items()},
            "n_cycles_below_10": it.outside["below"],
            "n_cycles_above_100": it.outside["above"],
            "n_cycles_ce_missing": it.outside["missing"],
            "features_dropped_constant": it.dropped,
        }
        if it.outside["above"] or it.outside["below"]:
            note(
                f"{it.outside['above']} cycle(s) with CE > {CE_EDGES[-1]:g} % and "
                f"{it.outside['below']} with CE < {CE_EDGES[0]:g} % lie outside the CE intervals"
            )
        if it.normalised.empty:
            note("every heatmap feature is constant; CE-interval heatmap skipped")

    # -- failure vs non-failure
    if feats and 0 < stats["n_failed"]:
        try:
            fv = failure_vs_nonfailure_table(data, outcomes, feats, grouping=s.grouping)
        except AnalysisError as exc:
            note(f"failure/non-failure comparison skipped: {exc}")
        else:
            res.vs_nonfailure = fv
            top = fv["rel_change_pct"].abs().sort_values(ascending=False).head(5).index
            summary["failure_vs_nonfailure"] = {
                "grouping": s.grouping,
                "largest_relative_changes_pct": {
                    f: float(fv.loc[f, "rel_change_pct"]) for f in top
                },
            }

    # -- classifiers + SHAP
    pairs = [c for c in schema.PAIR_COLUMNS if c in outcomes.columns]
    summary["classifiers"] = None
    summary["chosen_classifier"] = None
    labelled = outcomes[outcomes["label"].notna()]
    if not pairs:
        note("no pair-energy columns; classifiers, SHAP and survival model skipped")
    elif stats["n_failed"]:
        pairs = [c for c in pairs if labelled[c].nunique() > 1] or pairs
        try:
            cr = fit_classifiers(
                labelled[pairs],
                labelled["label"].to_numpy(dtype=int),
                seed=s.seed,
                test_size=s.test_size,
                cv_splits=s.cv_splits,
                cv_repeats=s.cv_repeats,
                n_jobs=s.n_jobs,
                small=s.small,
            )
        except AnalysisError as exc:
            note(f"classifiers skipped: {exc}")
        else:
            res.classifiers = cr
            summary["classifiers"] = {
                name: {
                    k: row[k]
                    for k in (*_METRICS, "cv_auc_mean", "cv_auc_sd", "cv_f1_mean", "cv_f1_sd")
                }
                for name, row in cr.metrics.iterrows()
            }
            summary["classifier_split"] = {
                "test_size": s.test_size,
                "n_train": int(len(cr.X_train)),
                "n_test": int(len(cr.X_test)),
                "n_cv_folds": int(cr.metrics["n_cv_folds"].iloc[0]),
            }
            summary["chosen_classifier"] = cr.chosen
            summary["selection_rule"] = SELECTION_RULE
            X_all = labelled[pairs].astype(float)
            vals, unit = shap_values(cr.chosen, cr.models[cr.chosen], X_all, cr.X_train)
            imp = shap_importance(vals, pairs)
            res.shap = {"values": vals, "X": X_all, "unit": unit, "importance": imp}
            summary["shap"] = {
                "classifier": cr.chosen,
                "unit": unit,
                "explained_rows": "all labelled runs (model fitted on the training split)",
                "ranking": [
                    {"feature": r.feature, "label": r.label, "mean_abs_shap": r.mean_abs_shap}
                    for r in imp.itertuples()
                ],
            }

    # -- survival
    summary["km_median_cycle"] = km_median(km)
    if summary["km_median_cycle"] is None:
        note("the failure-free fraction never falls to 0.5: the Kaplan-Meier median is undefined")
    summary["survival_model"] = None
    if pairs and stats["n_failed"]:
        try:
            sm = fit_survival_model(
                outcomes[pairs],
                outcomes["time"].to_numpy(),
                outcomes["event"].to_numpy(),
                seed=s.seed,
                test_size=s.test_size,
                small=s.small,
            )
        except AnalysisError as exc:
            note(f"survival model skipped: {exc}")
        else:
            res.survival = sm
            summary["survival_model"] = {
                k: sm[k]
                for k in (
                    "model",
                    "c_index_test",
                    "c_index_train",
                    "n_train",
                    "n_test",
                    "n_events_train",
                    "n_events_test",
                )
            }
    summary["c_index"] = (summary["survival_model"] or {}).get("c_index_test")

    # -- early warning
    summary["early_warning"] = None
    if stats["n_failed"]:
        ew, _ = early_warning(
            data,
            outcomes,
            ns=s.early_n,
            seed=s.seed,
            cv_splits=s.cv_splits,
            cv_repeats=s.cv_repeats,
            small=s.small,
        )
        res.early_warning = ew
        summary["early_warning"] = ew.to_dict(orient="records")
        for r in ew.itertuples():
            if r.note:
                note(f"early warning at N = {r.n_cycles}: {r.note}")

    # -- compact headline figures for the report
    summary["classifier_auc"] = (
        {
            name: {"test": c["auc"], "cv_mean": c["cv_auc_mean"], "cv_sd": c["cv_auc_sd"]}
            for name, c in summary["classifiers"].items()
        }
        if summary["classifiers"]
        else None
    )
    summary["early_warning_auc"] = (
        {str(r["n_cycles"]): r["auc_mean"] for r in summary["early_warning"]}
        if summary["early_warning"]
        else None
    )
    summary["messages"] = messages
    res.summary = jsonable(summary)
    return res


def failure_settings(
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    horizon: int | None = None,
    grouping: str = "run",
    early_n: Sequence[int] = EARLY_WARNING_N,
    **kwargs: Any,
) -> FailureSettings:
    """:class:`FailureSettings` from keywords (``early_n`` as any sequence)."""
    return FailureSettings(
        threshold=threshold,
        seed=seed,
        horizon=horizon,
        grouping=grouping,
        early_n=tuple(int(n) for n in early_n),
        **kwargs,
    )
