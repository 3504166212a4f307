"""Failure analysis: when and why the Coulombic efficiency collapses, and who predicts it first.

A run *fails* at the first cycle whose CE is below a threshold (the paper's 70 %).  This module
holds the pure computations behind ``seilab analyze failure`` (see ``docs/analysis-failure.md``):

* per-run outcomes: failure cycle, event indicator and right-censoring (:func:`failure_cycle`,
  :func:`run_outcomes`);
* the CE-interval table (mean min-max-normalised features in each 10 % CE interval) and the
  failure against non-failure table (:func:`ce_interval_table`,
  :func:`failure_vs_nonfailure_table`);
* the failure-cycle distribution (:func:`failure_cycle_stats`);
* five binary classifiers of failure from the Li-X pair energies with a seeded stratified 60/40
  split and repeated stratified cross-validation, the selection rule and SHAP values of the chosen
  one (:func:`fit_classifiers`, :func:`choose_classifier`, :func:`shap_values`);
* survival analysis: Kaplan-Meier estimate, Harrell's concordance index and an XGBoost
  accelerated-failure-time model (:func:`kaplan_meier`, :func:`concordance_index`,
  :func:`fit_survival_model`);
* early warning: failure predicted from the first N cycles only
  (:func:`early_warning_features`, :func:`early_warning_labels`, :func:`early_warning`);
* the driver that ties them together and writes the outputs (:func:`run_failure_analysis`).

Heavy libraries (scikit-learn, XGBoost, CatBoost, SHAP) are imported inside the functions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.errors import AnalysisError

#: The paper's failure threshold: CE below 70 % (in %).
DEFAULT_THRESHOLD: float = 70.0
#: Edges of the CE intervals (in %): [10, 20), [20, 30), ..., [80, 90), [90, 100].
CE_EDGES: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
#: Interval codes of CE values outside the intervals (see :func:`assign_ce_interval`).
BELOW_RANGE: int = -1
ABOVE_RANGE: int = -2
MISSING_CE: int = -3
#: Default numbers of observed cycles for the early-warning models.
EARLY_WARNING_N: tuple[int, ...] = (10, 20, 30, 50)
#: The five classifiers of the paper, in the order of its table.
CLASSIFIER_NAMES: tuple[str, ...] = schema.CLASSIFIER_NAMES
#: XGBoost threads.  On data this small threads only add overhead, and OpenMP spin-waiting
#: on a loaded machine makes it dramatic (300 runs x 19 features, 300 trees: 0.07 s with one
#: thread, 18 s with two on a busy 2-core machine), so XGBoost always runs single-threaded.
XGB_THREADS: int = 1
#: Fewest runs of each class (failing / not failing) for which classifiers are trained.
MIN_PER_CLASS: int = 5
#: The documented rule by which the classifier explained with SHAP is chosen.
SELECTION_RULE: str = (
    "highest mean F1 over the repeated stratified cross-validation folds; ties (within 1e-9) "
    "broken by the higher mean cross-validated ROC AUC, then by the order "
    "LogisticRegression, RandomForest, GradientBoosting, CatBoost, XGBoost"
)


# ---------------------------------------------------------------------------- outcomes
def failure_cycle(
    ce: Sequence[float] | np.ndarray,
    cycles: Sequence[int] | np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> int | None:
    """First cycle whose CE is below the threshold.

    Parameters
    ----------
    ce
        CE of each cycle in %, in cycle order.  NaN (no charge in the cycle, CE undefined) never
        counts as a failure.
    cycles
        Cycle numbers matching ``ce``; default ``1, 2, ...``.
    threshold
        Failure threshold in %; a cycle fails when ``ce < threshold`` (strictly).

    Returns
    -------
    int or None
        The failure cycle, or None when no cycle is below the threshold (the run is then
        right-censored at its last cycle).  A later recovery above the threshold does not undo
        the failure: only the first crossing counts.
    """
    values = np.asarray(ce, dtype=float)
    cyc = np.arange(1, len(values) + 1) if cycles is None else np.asarray(cycles)
    if len(cyc) != len(values):
        raise ValueError("ce and cycles differ in length")
    order = np.argsort(cyc, kind="stable")
    values, cyc = values[order], cyc[order]
    below = np.flatnonzero(values < threshold)  # NaN compares False
    return int(cyc[below[0]]) if below.size else None


def _require(data: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise AnalysisError(f"data set lacks column(s) {', '.join(missing)} (see docs/schema.md)")


def run_outcomes(
    data: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    horizon: int | None = None,
) -> pd.DataFrame:
    """One row per run: failure cycle, event indicator, censoring time, class label, pair energies.

    Parameters
    ----------
    data
        Per-cycle data set (``run_id``, ``cycle``, ``ce_pct`` and the ``e_pair_*_ev`` columns).
    threshold
        Failure threshold on the CE in %.
    horizon
        None (default): the label is "fails before the end of the run", whatever the run's
        length.  An integer H: the label is "fails at a cycle <= H"; runs that neither fail by
        H nor were observed up to H get a NaN label (excluded from the classifiers).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``run_id`` with columns ``n_cycles`` (rows), ``last_cycle``, ``n_ce_missing``
        (cycles with NaN CE), ``failure_cycle`` (NaN when the run never fails), ``event`` (bool),
        ``time`` (failure cycle, or last cycle for a censored run), ``label`` (1.0 / 0.0 / NaN)
        and one column per pair energy present in the data.
    """
    _require(data, [schema.RUN_ID, schema.CYCLE, schema.TARGET])
    if data.empty:
        raise AnalysisError("data set is empty")
    d = data[[schema.RUN_ID, schema.CYCLE, schema.TARGET]].sort_values(
        [schema.RUN_ID, schema.CYCLE], kind="stable"
    )
    ce = d[schema.TARGET].to_numpy(dtype=float)
    g = d.groupby(schema.RUN_ID, sort=True)
    out = pd.DataFrame(
        {
            "n_cycles": g.size(),
            "last_cycle": g[schema.CYCLE].max(),
            "n_ce_missing": pd.Series(np.isnan(ce), index=d.index).groupby(d[schema.RUN_ID]).sum(),
        }
    )
    fc = d.loc[ce < threshold].groupby(schema.RUN_ID)[schema.CYCLE].min()
    out["failure_cycle"] = fc.reindex(out.index).astype(float)
    out["event"] = out["failure_cycle"].notna()
    out["time"] = np.where(out["event"], out["failure_cycle"], out["last_cycle"]).astype(float)
    if horizon is None:
        out["label"] = out["event"].astype(float)
    else:
        fails_by_h = out["event"] & (out["failure_cycle"] <= horizon)
        seen_to_h = out["last_cycle"] >= horizon
        out["label"] = np.where(fails_by_h, 1.0, np.where(seen_to_h, 0.0, np.nan))
    pairs = [c for c in schema.PAIR_COLUMNS if c in data.columns]
    if pairs:
        energies = data.groupby(schema.RUN_ID, sort=True)[pairs].first()
        out = out.join(energies)
    out.index.name = schema.RUN_ID
    return out


# ---------------------------------------------------------------------------- CE intervals
def ce_interval_labels(edges: Sequence[float] = CE_EDGES) -> list[str]:
    """Labels of the CE intervals, e.g. ``"[10, 20)"`` ... ``"[90, 100]"`` (last one closed)."""
    e = [f"{x:g}" for x in edges]
    labs = [f"[{a}, {b})" for a, b in zip(e[:-1], e[1:], strict=True)]
    labs[-1] = labs[-1][:-1] + "]"
    return labs


def assign_ce_interval(
    ce: Sequence[float] | np.ndarray, edges: Sequence[float] = CE_EDGES
) -> np.ndarray:
    """Interval index of each CE value.

    Parameters
    ----------
    ce
        CE values in %.
    edges
        Increasing interval edges; interval k is ``[edges[k], edges[k+1])`` and the last one is
        closed, ``[edges[-2], edges[-1]]``.

    Returns
    -------
    numpy.ndarray
        int array: 0 .. len(edges) - 2 for a value in an interval, :data:`BELOW_RANGE` (-1)
        below ``edges[0]``, :data:`ABOVE_RANGE` (-2) above ``edges[-1]`` and :data:`MISSING_CE`
        (-3) for NaN.
    """
    x = np.asarray(ce, dtype=float)
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise ValueError("edges must be a strictly increasing sequence of at least two values")
    idx = np.searchsorted(e, x, side="right") - 1
    idx = np.where(x == e[-1], len(e) - 2, idx)
    idx = np.where(x < e[0], BELOW_RANGE, idx)
    idx = np.where(x > e[-1], ABOVE_RANGE, idx)
    idx = np.where(np.isnan(x), MISSING_CE, idx)
    return idx.astype(int)


def minmax_normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Min-max normalise each column to [0, 1] over its finite values.

    A column without spread (max == min) or without finite values becomes NaN: it carries no
    information and is left out of the heatmaps.
    """
    lo = frame.min(skipna=True)
    hi = frame.max(skipna=True)
    span = (hi - lo).where(lambda s: s > 0)
    return (frame - lo) / span


def default_heatmap_features(data: pd.DataFrame) -> list[str]:
    """Per-cycle features of the heatmaps: the paper's event and mobility groups present in ``data``."""
    cols = [*schema.FEATURE_GROUPS["events"], *schema.FEATURE_GROUPS["mobility"]]
    return [c for c in cols if c in data.columns]


@dataclass
class IntervalTable:
    """Result of :func:`ce_interval_table`.

    Attributes
    ----------
    normalised
        Features x intervals: mean of the min-max-normalised feature over the cycles in the
        interval (NaN for an empty interval).
    absolute
        Features x intervals: mean of the raw feature.
    counts
        Number of cycles in each interval.
    outside
        Cycles left out: ``below`` (CE < first edge), ``above`` (CE > last edge), ``missing``
        (NaN CE).
    dropped
        Features left out because they are constant or entirely missing.
    """

    normalised: pd.DataFrame
    absolute: pd.DataFrame
    counts: pd.Series
    outside: dict[str, int]
    dropped: list[str] = field(default_factory=list)


def ce_interval_table(
    data: pd.DataFrame,
    features: Sequence[str] | None = None,
    edges: Sequence[float] = CE_EDGES,
) -> IntervalTable:
    """Mean min-max-normalised (and raw) features in each CE interval.

    Every cycle (row) with a CE inside ``[edges[0], edges[-1]]`` is assigned to one interval by
    :func:`assign_ce_interval`; the normalisation uses all rows of ``data`` so both heatmaps
    share one scale.

    Parameters
    ----------
    data
        Per-cycle data set.
    features
        Feature columns; default :func:`default_heatmap_features`.
    edges
        Interval edges in %.

    Returns
    -------
    IntervalTable
    """
    _require(data, [schema.TARGET])
    feats = list(features) if features is not None else default_heatmap_features(data)
    _require(data, feats)
    raw = data[feats].apply(pd.to_numeric, errors="coerce").astype(float)
    norm = minmax_normalise(raw)
    dropped = [c for c in feats if norm[c].isna().all()]
    keep = [c for c in feats if c not in dropped]
    codes = assign_ce_interval(data[schema.TARGET].to_numpy(dtype=float), edges)
    labels = ce_interval_labels(edges)
    inside = codes >= 0
    key = pd.Categorical.from_codes(np.where(inside, codes, -1), categories=labels)
    absolute = raw.loc[inside, keep].groupby(key[inside], observed=False).mean().T
    normalised = norm.loc[inside, keep].groupby(key[inside], observed=False).mean().T
    counts = pd.Series(
        np.bincount(codes[inside], minlength=len(labels)), index=labels, name="n_cycles"
    )
    outside = {
        "below": int(np.sum(codes == BELOW_RANGE)),
        "above": int(np.sum(codes == ABOVE_RANGE)),
        "missing": int(np.sum(codes == MISSING_CE)),
    }
    for t in (absolute, normalised):
        t.index.name = "feature"
        t.columns = pd.Index(labels, name="ce_interval_pct")
    return IntervalTable(normalised, absolute, counts, outside, dropped)


# ---------------------------------------------------------------------------- failure vs not
def failure_region_mask(
    data: pd.DataFrame, outcomes: pd.DataFrame, grouping: str = "run"
) -> np.ndarray:
    """Boolean mask of the rows of ``data`` that belong to the failure group.

    Parameters
    ----------
    data
        Per-cycle data set.
    outcomes
        :func:`run_outcomes` of the same data.
    grouping
        ``"run"`` (the paper): every cycle of a run that fails is in the failure group.
        ``"cycle"``: only the cycles at or after the run's failure cycle are.

    Returns
    -------
    numpy.ndarray
    """
    fc = data[schema.RUN_ID].map(outcomes["failure_cycle"]).to_numpy(dtype=float)
    if grouping == "run":
        return ~np.isnan(fc)
    if grouping == "cycle":
        return data[schema.CYCLE].to_numpy(dtype=float) >= fc  # NaN compares False
    raise ValueError(f"grouping must be 'run' or 'cycle', not {grouping!r}")


def failure_vs_nonfailure_table(
    data: pd.DataFrame,
    outcomes: pd.DataFrame,
    features: Sequence[str] | None = None,
    grouping: str = "run",
) -> pd.DataFrame:
    """Mean features in the failure and the non-failure group, and the relative change.

    Parameters
    ----------
    data
        Per-cycle data set.
    outcomes
        :func:`run_outcomes` of the same data.
    features
        Feature columns; default :func:`default_heatmap_features`.
    grouping
        See :func:`failure_region_mask`.

    Returns
    -------
    pandas.DataFrame
        Indexed by feature: ``mean_nonfailure``, ``mean_failure`` (raw means over the cycles of
        each group), ``norm_nonfailure``, ``norm_failure`` (means of the min-max-normalised
        feature, normalised over all rows) and ``rel_change_pct`` =
        100 (mean_failure - mean_nonfailure) / |mean_nonfailure| (NaN when the non-failure mean
        is 0), and ``rel_change_norm_pct``, the same on the normalised means (depends on the
        feature's minimum; given for comparison with the paper's percentages).  Constant
        features are dropped.

    Raises
    ------
    AnalysisError
        When one of the two groups is empty.
    """
    feats = list(features) if features is not None else default_heatmap_features(data)
    _require(data, feats)
    mask = failure_region_mask(data, outcomes, grouping)
    if mask.all() or not mask.any():
        which = "failure" if not mask.any() else "non-failure"
        raise AnalysisError(f"the {which} group is empty; nothing to compare")
    raw = data[feats].apply(pd.to_numeric, errors="coerce").astype(float)
    norm = minmax_normalise(raw)
    keep = [c for c in feats if not norm[c].isna().all()]
    table = pd.DataFrame(
        {
            "mean_nonfailure": raw.loc[~mask, keep].mean(),
            "mean_failure": raw.loc[mask, keep].mean(),
            "norm_nonfailure": norm.loc[~mask, keep].mean(),
            "norm_failure": norm.loc[mask, keep].mean(),
        }
    )
    base = table["mean_nonfailure"].abs().where(lambda s: s > 0)
    table["rel_change_pct"] = 100.0 * (table["mean_failure"] - table["mean_nonfailure"]) / base
    nbase = table["norm_nonfailure"].where(lambda s: s > 0)
    table["rel_change_norm_pct"] = (
        100.0 * (table["norm_failure"] - table["norm_nonfailure"]) / nbase
    )
    table["n_cycles_nonfailure"] = int((~mask).sum())
    table["n_cycles_failure"] = int(mask.sum())
    table.index.name = "feature"
    return table


def failure_cycle_stats(outcomes: pd.DataFrame) -> dict[str, Any]:
    """Summary of the failure-cycle distribution.

    Returns
    -------
    dict
        ``n_runs``, ``n_failed``, ``fraction_failing``, ``n_censored_early`` (runs that never
        fail and end before the longest run), and over the failing runs ``median``, ``q1``,
        ``q3``, ``iqr`` (q3 - q1, linear-interpolation quantiles), ``mean``, ``min``, ``max``
        (None when no run fails).
    """
    n = len(outcomes)
    fc = outcomes["failure_cycle"].dropna().to_numpy(dtype=float)
    longest = float(outcomes["last_cycle"].max()) if n else float("nan")
    early = int(((~outcomes["event"]) & (outcomes["last_cycle"] < longest)).sum())
    stats: dict[str, Any] = {
        "n_runs": int(n),
        "n_failed": int(fc.size),
        "fraction_failing": float(fc.size / n) if n else None,
        "n_censored_early": early,
        "longest_run_cycles": longest if n else None,
    }
    if fc.size:
        q1, med, q3 = np.quantile(fc, [0.25, 0.5, 0.75])
        stats.update(
            median=float(med),
            q1=float(q1),
            q3=float(q3),
            iqr=float(q3 - q1),
            mean=float(fc.mean()),
            min=float(fc.min()),
            max=float(fc.max()),
        )
    else:
        stats.update(median=None, q1=None, q3=None, iqr=None, mean=None, min=None, max=None)
    return stats


# ---------------------------------------------------------------------------- classifiers
def binary_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    y_score: Sequence[float] | np.ndarray | None = None,
) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (positive class = failure) and ROC AUC.

    Parameters
    ----------
    y_true, y_pred
        True and predicted labels (1 = fails).
    y_score
        Scores for the ROC AUC (e.g. predicted probability of failure); AUC is NaN without them
        or when ``y_true`` holds a single class.

    Returns
    -------
    dict
        ``accuracy``, ``precision``, ``recall``, ``f1``, ``auc``; a precision or recall with an
        empty denominator is 0 (as scikit-learn's ``zero_division=0``).
    """
    t = np.asarray(y_true).astype(int)
    p = np.asarray(y_pred).astype(int)
    tp = int(np.sum((t == 1) & (p == 1)))
    fp = int(np.sum((t == 0) & (p == 1)))
    fn = int(np.sum((t == 1) & (p == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    auc = float("nan")
    if y_score is not None and len(np.unique(t)) == 2:
        auc = roc_auc(t, np.asarray(y_score, dtype=float))
    return {
        "accuracy": float(np.mean(t == p)) if t.size else float("nan"),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        "auc": float(auc),
    }


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney probability that a positive outscores a negative (ties 1/2)."""
    t = np.asarray(y_true).astype(bool)
    s = np.asarray(score, dtype=float)
    pos, neg = s[t], s[~t]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = pd.Series(s).rank(method="average").to_numpy()
    return float((ranks[t].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def make_classifiers(seed: int = 0, n_jobs: int = 2, small: bool = False) -> dict[str, Any]:
    """The five classifiers, unfitted, with fixed seeds.

    Parameters
    ----------
    seed
        Random seed of every model.
    n_jobs
        Threads of the random forest and CatBoost (keep <= the cores available); XGBoost runs
        single-threaded (:data:`XGB_THREADS`).
    small
        Fewer trees/iterations (for tests and quick looks).

    Returns
    -------
    dict
        Name -> estimator with ``fit`` / ``predict_proba`` (scikit-learn API).
    """
    from catboost import CatBoostClassifier
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from xgboost import XGBClassifier

    n_trees = 40 if small else 300
    return {
        "LogisticRegression": Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=2000))]
        ),
        "RandomForest": RandomForestClassifier(
            n_estimators=n_trees, random_state=seed, n_jobs=n_jobs
        ),
        "GradientBoosting": GradientBoostingClassifier(
            n_estimators=40 if small else 150, max_depth=3, random_state=seed
        ),
        "CatBoost": CatBoostClassifier(
            iterations=40 if small else 300,
            depth=4,
            learning_rate=0.1,
            random_seed=seed,
            verbose=0,
            thread_count=n_jobs,
            allow_writing_files=False,
        ),
        "XGBoost": XGBClassifier(
            n_estimators=40 if small else 300,
            max_depth=3,
            learning_rate=0.1,
            random_state=seed,
            n_jobs=XGB_THREADS,
            eval_metric="logloss",
        ),
    }


@dataclass
class ClassifierResults:
    """Result of :func:`fit_classifiers`.

    Attributes
    ----------
    metrics
        One row per classifier: test-split ``accuracy``, ``precision``, ``recall``, ``f1``,
        ``auc`` and the repeated-CV ``cv_<metric>_mean`` / ``cv_<metric>_sd``.
    folds
        One row per (classifier, CV fold) with the fold's metrics.
    test_scores
        Classifier -> predicted probability of failure on the test split.
    y_test
        True labels of the test split.
    models
        Classifier -> model fitted on the training split.
    features
        Feature columns, in model order.
    X_train, X_test
        The split feature matrices (DataFrames indexed by run_id).
    chosen
        Name of the chosen classifier (:func:`choose_classifier`).
    """

    metrics: pd.DataFrame
    folds: pd.DataFrame
    test_scores: dict[str, np.ndarray]
    y_test: np.ndarray
    models: dict[str, Any]
    features: list[str]
    X_train: pd.DataFrame
    X_test: pd.DataFrame
    chosen: str


def _cv_splits(y: np.ndarray, n_splits: int, n_repeats: int, seed: int) -> list:
    from sklearn.model_selection import RepeatedStratifiedKFold

    minority = int(min(np.sum(y == 1), np.sum(y == 0)))
    k = min(n_splits, minority)
    if k < 2 or n_repeats < 1:
        return []
    rskf = RepeatedStratifiedKFold(n_splits=k, n_repeats=n_repeats, random_state=seed)
    return list(rskf.split(np.zeros(len(y)), y))


def fit_classifiers(
    X: pd.DataFrame,
    y: Sequence[int] | np.ndarray,
    seed: int = 0,
    test_size: float = 0.4,
    cv_splits: int = 5,
    cv_repeats: int = 5,
    n_jobs: int = 2,
    small: bool = False,
    names: Sequence[str] = CLASSIFIER_NAMES,
) -> ClassifierResults:
    """Train the classifiers on a stratified seeded split and cross-validate them.

    Parameters
    ----------
    X
        Features, one row per run (the pair energies).
    y
        Labels, 1 = fails.
    seed
        Seed of the split, the CV folds and the models.
    test_size
        Fraction of runs held out (the paper: 0.4).
    cv_splits, cv_repeats
        Repeated stratified k-fold on all runs (k is capped at the minority count); gives the
        mean and standard deviation of each metric.
    n_jobs
        Threads of the random forest and CatBoost (XGBoost runs single-threaded).
    small
        Small models (see :func:`make_classifiers`).
    names
        Subset of :data:`CLASSIFIER_NAMES` to train.

    Returns
    -------
    ClassifierResults

    Raises
    ------
    AnalysisError
        When a class has fewer than :data:`MIN_PER_CLASS` runs.
    """
    from sklearn.base import clone
    from sklearn.model_selection import train_test_split

    yv = np.asarray(y).astype(int)
    n_pos, n_neg = int(yv.sum()), int(len(yv) - yv.sum())
    if min(n_pos, n_neg) < MIN_PER_CLASS:
        raise AnalysisError(
            f"classifiers need at least {MIN_PER_CLASS} failing and {MIN_PER_CLASS} non-failing "
            f"runs; the data set has {n_pos} failing and {n_neg} non-failing"
        )
    Xf = X.astype(float)
    X_tr, X_te, y_tr, y_te = train_test_split(
        Xf, yv, test_size=test_size, stratify=yv, random_state=seed
    )
    protos = make_classifiers(seed=seed, n_jobs=n_jobs, small=small)
    splits = _cv_splits(yv, cv_splits, cv_repeats, seed)
    rows, fold_rows = [], []
    models, scores = {}, {}
    for name in names:
        model = clone(protos[name]).fit(X_tr, y_tr)
        s = model.predict_proba(X_te)[:, 1]
        m = binary_metrics(y_te, (s >= 0.5).astype(int), s)
        models[name], scores[name] = model, s
        for k, (tr, te) in enumerate(splits):
            cv_model = clone(protos[name]).fit(Xf.iloc[tr], yv[tr])
            cs = cv_model.predict_proba(Xf.iloc[te])[:, 1]
            fm = binary_metrics(yv[te], (cs >= 0.5).astype(int), cs)
            fold_rows.append({"classifier": name, "fold": k, **fm})
        rows.append({"classifier": name, **m})
    folds = pd.DataFrame(fold_rows, columns=["classifier", "fold", *_METRICS])
    metrics = pd.DataFrame(rows).set_index("classifier")
    for met in _METRICS:
        g = folds.groupby("classifier")[met]
        metrics[f"cv_{met}_mean"] = g.mean().reindex(metrics.index)
        metrics[f"cv_{met}_sd"] = g.std(ddof=1).reindex(metrics.index)
    metrics["n_train"] = len(y_tr)
    metrics["n_test"] = len(y_te)
    metrics["n_cv_folds"] = len(splits)
    chosen = choose_classifier(metrics)
    return ClassifierResults(
        metrics=metrics,
        folds=folds,
        test_scores=scores,
        y_test=np.asarray(y_te),
        models=models,
        features=list(X.columns),
        X_train=X_tr,
        X_test=X_te,
        chosen=chosen,
    )


_METRICS = ("accuracy", "precision", "recall", "f1", "auc")


def choose_classifier(metrics: pd.DataFrame) -> str:
    """Pick the classifier to explain, by :data:`SELECTION_RULE`.

    Uses ``cv_f1_mean`` and ``cv_auc_mean`` when present (repeated CV), else the test-split
    ``f1`` and ``auc``.  NaN counts as worst.
    """
    f1 = "cv_f1_mean" if "cv_f1_mean" in metrics and metrics["cv_f1_mean"].notna().any() else "f1"
    auc = (
        "cv_auc_mean"
        if "cv_auc_mean" in metrics and metrics["cv_auc_mean"].notna().any()
        else "auc"
    )
    order = {n: i for i, n in enumerate(CLASSIFIER_NAMES)}
    best: tuple[float, float, int] | None = None
    chosen = str(metrics.index[0])
    for name, row in metrics.iterrows():
        f = float(row[f1]) if np.isfinite(row[f1]) else -np.inf
        a = float(row[auc]) if np.isfinite(row[auc]) else -np.inf
        key = (round(f, 9), round(a, 9), -order.get(str(name), len(order)))
        if best is None or key > best:
            best, chosen = key, str(name)
    return chosen


def shap_values(
    name: str, model: Any, X: pd.DataFrame, X_background: pd.DataFrame
) -> tuple[np.ndarray, str]:
    """SHAP values of the probability-of-failure model.

    Parameters
    ----------
    name
        Classifier name (one of :data:`CLASSIFIER_NAMES`).
    model
        The fitted model.
    X
        Rows to explain.
    X_background
        Background data (the training split); used by the linear model.

    Returns
    -------
    values : numpy.ndarray
        n_rows x n_features SHAP values for the failure class.
    unit : str
        What the values add up to: ``"log-odds of failure"`` or ``"probability of failure"``.
    """
    if name == "LogisticRegression":
        # Exact interventional SHAP of a linear model: coef * (x - mean of the background).
        scale, clf = model.named_steps["scale"], model.named_steps["clf"]
        xs = scale.transform(X.astype(float))
        xb = scale.transform(X_background.astype(float)).mean(axis=0)
        return clf.coef_[0] * (xs - xb), "log-odds of failure"
    import shap

    explainer = shap.TreeExplainer(model)
    vals = explainer.shap_values(X.astype(float), check_additivity=False)
    if isinstance(vals, list):
        vals = vals[1]
    vals = np.asarray(vals, dtype=float)
    if vals.ndim == 3:
        vals = vals[:, :, 1]
    unit = "probability of failure" if name == "RandomForest" else "log-odds of failure"
    return vals, unit


def shap_importance(values: np.ndarray, features: Sequence[str]) -> pd.DataFrame:
    """Mean |SHAP| per feature, sorted decreasingly, with rank 1 = most important."""
    imp = pd.DataFrame(
        {"feature": list(features), "mean_abs_shap": np.abs(values).mean(axis=0)}
    ).sort_values("mean_abs_shap", ascending=False, kind="stable")
    imp["rank"] = np.arange(1, len(imp) + 1)
    imp["label"] = [schema.label(f) for f in imp["feature"]]
    return imp.reset_index(drop=True)


# ---------------------------------------------------------------------------- survival
def kaplan_meier(
    time: Sequence[float] | np.ndarray, event: Sequence[bool] | np.ndarray, alpha: float = 0.05
) -> pd.DataFrame:
    """Kaplan-Meier estimate of the failure-free fraction.

    Parameters
    ----------
    time
        Failure cycle of a failing run, last observed cycle of a censored one.
    event
        True when the run failed at ``time``; False when it is right-censored there.  A run
        censored at t is still at risk at t (censoring happens after the failures of t).
    alpha
        1 - confidence of the pointwise band (Greenwood variance, log(-log) transform).

    Returns
    -------
    pandas.DataFrame
        One row at t = 0 (S = 1) then one per distinct time: ``time``, ``n_at_risk``,
        ``n_events``, ``n_censored``, ``survival``, ``ci_lower``, ``ci_upper``.
    """
    from scipy.stats import norm

    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    if t.shape != e.shape:
        raise ValueError("time and event differ in length")
    z = float(norm.ppf(1 - alpha / 2))
    rows = [
        {
            "time": 0.0,
            "n_at_risk": int(t.size),
            "n_events": 0,
            "n_censored": 0,
            "survival": 1.0,
            "ci_lower": 1.0,
            "ci_upper": 1.0,
        }
    ]
    s, gw = 1.0, 0.0
    for u in np.unique(t):
        n = int(np.sum(t >= u))
        d = int(np.sum((t == u) & e))
        c = int(np.sum((t == u) & ~e))
        if d:
            s *= 1.0 - d / n
            gw = gw + d / (n * (n - d)) if n > d else math.inf
        lo, hi = _loglog_band(s, gw, z)
        rows.append(
            {
                "time": float(u),
                "n_at_risk": n,
                "n_events": d,
                "n_censored": c,
                "survival": s,
                "ci_lower": lo,
                "ci_upper": hi,
            }
        )
    return pd.DataFrame(rows)


def _loglog_band(s: float, gw: float, z: float) -> tuple[float, float]:
    if s >= 1.0:
        return 1.0, 1.0
    if s <= 0.0 or not math.isfinite(gw):
        return 0.0, 0.0 if s <= 0.0 else 1.0
    sigma = math.sqrt(gw) / abs(math.log(s))
    return s ** math.exp(z * sigma), s ** math.exp(-z * sigma)


def km_median(km: pd.DataFrame) -> float | None:
    """Median failure-free time: the first time with survival <= 0.5 (None if never reached)."""
    hit = km.loc[km["survival"] <= 0.5, "time"]
    return float(hit.iloc[0]) if len(hit) else None


def concordance_index(
    time: Sequence[float] | np.ndarray,
    predicted_time: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
) -> float:
    """Harrell's concordance index of predicted failure times.

    A pair (i, j) is comparable when run i failed (event) and either ``time_i < time_j`` or the
    times tie and j is censored; it is concordant when ``predicted_i < predicted_j`` and counts
    1/2 when the predictions tie.

    Returns
    -------
    float
        Concordant / comparable pairs (0.5 = chance, 1 = perfect ranking); NaN when no pair is
        comparable.
    """
    t = np.asarray(time, dtype=float)
    p = np.asarray(predicted_time, dtype=float)
    e = np.asarray(event, dtype=bool)
    if not (t.shape == p.shape == e.shape):
        raise ValueError("time, predicted_time and event differ in length")
    n_pairs, total = 0, 0.0
    rows = np.flatnonzero(e)
    for start in range(0, rows.size, 512):  # blocks of failing runs: memory O(512 n)
        i = rows[start : start + 512]
        ti, pi = t[i, None], p[i, None]
        comparable = (ti < t[None, :]) | ((ti == t[None, :]) & ~e[None, :])
        n_pairs += int(comparable.sum())
        score = np.where(pi < p[None, :], 1.0, np.where(pi == p[None, :], 0.5, 0.0))
        total += float((score * comparable).sum())
    return total / n_pairs if n_pairs else float("nan")


def fit_survival_model(
    X: pd.DataFrame,
    time: Sequence[float] | np.ndarray,
    event: Sequence[bool] | np.ndarray,
    seed: int = 0,
    test_size: float = 0.4,
    small: bool = False,
) -> dict[str, Any]:
    """Censoring-aware model of the failure cycle: XGBoost ``survival:aft``.

    Failing runs carry the exact failure cycle (lower = upper bound); censored runs the interval
    [last cycle, +inf).  The split is seeded and stratified by the event indicator.

    Parameters
    ----------
    X
        Features, one row per run (the pair energies).
    time, event
        As in :func:`kaplan_meier`.
    seed, test_size, small
        Split seed and test fraction, fewer boosting rounds.  XGBoost runs single-threaded (:data:`XGB_THREADS`).

    Returns
    -------
    dict
        ``model`` (description), ``c_index_test``, ``c_index_train``, ``n_train``, ``n_test``,
        ``n_events_train``, ``n_events_test``, ``predictions`` (DataFrame of the test runs:
        ``time``, ``event``, ``predicted_cycle``), ``booster``.

    Raises
    ------
    AnalysisError
        When fewer than two runs fail.
    """
    import xgboost as xgb
    from sklearn.model_selection import train_test_split

    t = np.asarray(time, dtype=float)
    e = np.asarray(event, dtype=bool)
    if e.sum() < 2:
        raise AnalysisError(f"survival model needs at least 2 failing runs; found {int(e.sum())}")
    strat = e.astype(int) if min(e.sum(), (~e).sum()) >= 2 else None
    idx = np.arange(len(t))
    tr, te = train_test_split(idx, test_size=test_size, stratify=strat, random_state=seed)
    Xf = X.astype(float)

    def dmat(rows: np.ndarray) -> Any:
        d = xgb.DMatrix(Xf.iloc[rows].to_numpy(), feature_names=list(X.columns))
        d.set_float_info("label_lower_bound", t[rows])
        d.set_float_info("label_upper_bound", np.where(e[rows], t[rows], np.inf))
        return d

    params = {
        "objective": "survival:aft",
        "eval_metric": "aft-nloglik",
        "aft_loss_distribution": "normal",
        "aft_loss_distribution_scale": 1.0,
        "tree_method": "hist",
        "learning_rate": 0.05,
        "max_depth": 3,
        "min_child_weight": 1.0,
        "seed": seed,
        "nthread": XGB_THREADS,
    }
    dtr, dte = dmat(tr), dmat(te)
    booster = xgb.train(params, dtr, num_boost_round=60 if small else 400)
    p_tr, p_te = booster.predict(dtr), booster.predict(dte)
    preds = pd.DataFrame(
        {"time": t[te], "event": e[te], "predicted_cycle": p_te}, index=X.index[te]
    )
    return {
        "model": "XGBoost survival:aft (normal, scale 1.0) on the pair energies",
        "c_index_test": concordance_index(t[te], p_te, e[te]),
        "c_index_train": concordance_index(t[tr], p_tr, e[tr]),
        "n_train": len(tr),
        "n_test": len(te),
        "n_events_train": int(e[tr].sum()),
        "n_events_test": int(e[te].sum()),
        "predictions": preds,
        "booster": booster,
    }


# ---------------------------------------------------------------------------- early warning
def early_warning_feature_columns(data: pd.DataFrame) -> list[str]:
    """Per-cycle columns summarised by the early-warning models: heatmap features and CE."""
    cols = default_heatmap_features(data)
    return [*cols, schema.TARGET] if schema.TARGET in data.columns else cols


def early_warning_features(
    data: pd.DataFrame, n_cycles: int, features: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per-run summaries of the first ``n_cycles`` cycles, built only from cycles <= N.

    The rows with ``cycle > n_cycles`` are dropped before anything else is computed.  For each
    feature f: ``f__mean`` (mean over cycles 1..N, NaN skipped), ``f__last`` (value at the
    last cycle <= N that has one), ``f__slope`` (least-squares slope against cycle, per cycle;
    NaN with fewer than two values).

    Parameters
    ----------
    data
        Per-cycle data set.
    n_cycles
        N, the number of cycles observed.
    features
        Per-cycle columns; default :func:`early_warning_feature_columns`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``run_id`` (runs with at least one cycle <= N).
    """
    feats = list(features) if features is not None else early_warning_feature_columns(data)
    _require(data, [schema.RUN_ID, schema.CYCLE, *feats])
    d = data.loc[data[schema.CYCLE] <= n_cycles, [schema.RUN_ID, schema.CYCLE, *feats]]
    d = d.sort_values([schema.RUN_ID, schema.CYCLE], kind="stable")
    keys = d[schema.RUN_ID]
    y = d[feats].apply(pd.to_numeric, errors="coerce").astype(float)
    x = d[schema.CYCLE].astype(float)
    finite = y.notna()
    xm = finite.mul(x, axis=0)  # cycle where the feature is finite, else 0
    ym = y.where(finite, 0.0)
    g = lambda frame: frame.groupby(keys, sort=True).sum()  # noqa: E731
    n, sx, sy = g(finite.astype(float)), g(xm), g(ym)
    sxx, sxy = g(xm**2), g(xm * ym)
    den = n * sxx - sx**2
    slope = (n * sxy - sx * sy) / den.where((den > 0) & (n >= 2))
    mean = y.groupby(keys, sort=True).mean()
    last = y.groupby(keys, sort=True).last()
    out = pd.concat(
        [mean.add_suffix("__mean"), last.add_suffix("__last"), slope.add_suffix("__slope")], axis=1
    )
    out.index.name = schema.RUN_ID
    return out


def early_warning_labels(outcomes: pd.DataFrame, n_cycles: int) -> pd.Series:
    """Labels of the runs eligible for early warning at N cycles.

    A run is eligible when it has not failed by cycle N (failure cycle > N, or never), was
    observed beyond N (last cycle > N) and has a class label (see ``horizon`` in
    :func:`run_outcomes`).  Its label is that of the classifiers: 1 when it fails later in the
    run (or by the horizon), else 0.

    Returns
    -------
    pandas.Series
        int labels indexed by ``run_id`` of the eligible runs.
    """
    fc = outcomes["failure_cycle"]
    ok = (
        (fc.isna() | (fc > n_cycles))
        & (outcomes["last_cycle"] > n_cycles)
        & outcomes["label"].notna()
    )
    return outcomes.loc[ok, "label"].astype(int).rename("label")


def make_early_warning_model(seed: int = 0, small: bool = False) -> Any:
    """The early-warning classifier: a shallow XGBoost (handles NaN features natively)."""
    from xgboost import XGBClassifier

    return XGBClassifier(
        n_estimators=40 if small else 200,
        max_depth=3,
        learning_rate=0.1,
        random_state=seed,
        n_jobs=XGB_THREADS,
        eval_metric="logloss",
    )


def early_warning(
    data: pd.DataFrame,
    outcomes: pd.DataFrame,
    ns: Sequence[int] = EARLY_WARNING_N,
    seed: int = 0,
    cv_splits: int = 5,
    cv_repeats: int = 5,
    small: bool = False,
    features: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, dict[int, pd.Series]]:
    """AUC of failure prediction from the first N cycles, for each N.

    For each N: eligible runs and labels from :func:`early_warning_labels`, features from
    :func:`early_warning_features` (cycles <= N only), and repeated stratified k-fold CV of
    :func:`make_early_warning_model`.

    Returns
    -------
    table : pandas.DataFrame
        One row per N: ``n_cycles``, ``n_eligible``, ``n_positive``, ``n_folds``, ``auc_mean``,
        ``auc_sd`` (over folds), ``auc_pooled`` (AUC of the repeat-averaged out-of-fold
        probabilities), ``note`` (why an AUC is missing).
    oof : dict
        N -> out-of-fold probability of failure of each eligible run (mean over repeats).
    """
    from sklearn.base import clone

    proto = make_early_warning_model(seed=seed, small=small)
    rows, oof = [], {}
    for n in ns:
        labels = early_warning_labels(outcomes, n)
        feats = early_warning_features(data, n, features)
        labels = labels[labels.index.isin(feats.index)]
        X = feats.loc[labels.index]
        y = labels.to_numpy()
        row: dict[str, Any] = {
            "n_cycles": int(n),
            "n_eligible": int(len(y)),
            "n_positive": int(y.sum()),
            "n_folds": 0,
            "auc_mean": float("nan"),
            "auc_sd": float("nan"),
            "auc_pooled": float("nan"),
            "note": "",
        }
        splits = _cv_splits(y, cv_splits, cv_repeats, seed)
        if not splits:
            row["note"] = (
                f"too few runs of one class ({int(y.sum())} failing later, "
                f"{int(len(y) - y.sum())} not) for cross-validation"
            )
            rows.append(row)
            continue
        prob_sum = np.zeros(len(y))
        prob_n = np.zeros(len(y))
        aucs = []
        for tr, te in splits:
            model = clone(proto).fit(X.iloc[tr], y[tr])
            p = model.predict_proba(X.iloc[te])[:, 1]
            prob_sum[te] += p
            prob_n[te] += 1
            aucs.append(roc_auc(y[te], p))
        prob = prob_sum / np.maximum(prob_n, 1)
        oof[int(n)] = pd.Series(prob, index=labels.index, name="p_fail")
        row.update(
            n_folds=len(splits),
            auc_mean=float(np.nanmean(aucs)),
            auc_sd=float(np.nanstd(aucs, ddof=1)) if len(aucs) > 1 else float("nan"),
            auc_pooled=roc_auc(y, prob),
        )
        rows.append(row)
    return pd.DataFrame(rows), oof


# ---------------------------------------------------------------------------- driver
def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer | np.bool_):
        return obj.item()
    if isinstance(obj, float | np.floating):
        v = float(obj)
        return v if math.isfinite(v) else None
    return obj


def run_failure_analysis(
    data: pd.DataFrame,
    out: str | Path,
    threshold: float = DEFAULT_THRESHOLD,
    seed: int = 0,
    horizon: int | None = None,
    grouping: str = "run",
    early_n: Sequence[int] = EARLY_WARNING_N,
    test_size: float = 0.4,
    cv_splits: int = 5,
    cv_repeats: int = 5,
    n_jobs: int = 2,
    small: bool = False,
    figures: bool = True,
) -> dict[str, Any]:
    """Run the whole failure analysis on a per-cycle data set and write the outputs to ``out``.

    Parts that cannot be computed (e.g. no run fails, so there is nothing to classify) are
    skipped with a message in ``summary["messages"]``; the others are still written.

    Parameters
    ----------
    data
        Per-cycle data set (``seilab.campaign.load_dataset``).
    out
        Output folder (created).
    threshold
        Failure threshold on the CE in %.
    seed
        Seed of splits, folds and models.
    horizon
        See :func:`run_outcomes`.
    grouping
        Failure against non-failure grouping, see :func:`failure_region_mask`.
    early_n
        Numbers of observed cycles for early warning.
    test_size, cv_splits, cv_repeats
        Held-out fraction and repeated stratified CV of the classifiers and early warning.
    n_jobs
        Threads of the random forest and CatBoost (XGBoost runs single-threaded).
    small
        Small models (tests, quick looks).
    figures
        Write the figures (PNG); tables and the summary are always written.

    Returns
    -------
    dict
        The summary also written to ``out/failure_summary.json``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if figures:
        from seilab.plotting import failure as fplot
        from seilab.plotting.shap import beeswarm
        from seilab.plotting.style import save_figure
    messages: list[str] = []
    files: dict[str, str] = {}

    def note(msg: str) -> None:
        messages.append(msg)

    def written(key: str, path: Path) -> None:
        files[key] = path.name

    outcomes = run_outcomes(data, threshold=threshold, horizon=horizon)
    outcomes.to_csv(out / "failure_runs.csv")
    written("runs", out / "failure_runs.csv")
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
    elif stats["n_failed"] == stats["n_runs"]:
        note(f"every run fails (CE < {threshold:g} %); there is no non-failing class to compare")
    if stats["n_censored_early"]:
        note(
            f"{stats['n_censored_early']} run(s) end before the longest run without failing; "
            "they are censored in the survival analysis"
            + (" and count as non-failing in the classifiers" if horizon is None else "")
        )

    summary: dict[str, Any] = {
        "threshold_pct": threshold,
        "failure_definition": f"first cycle with CE < {threshold:g} %; NaN CE is never a failure; "
        "a later recovery does not undo the failure",
        "label": "fails before the end of the run"
        if horizon is None
        else f"fails by cycle {horizon}",
        "seed": seed,
        **{k: stats[k] for k in ("n_runs", "n_failed", "fraction_failing", "n_censored_early")},
        "failure_cycle": {k: stats[k] for k in ("median", "q1", "q3", "iqr", "mean", "min", "max")},
        "n_cycles_ce_missing": n_ce_missing,
    }
    pd.DataFrame([stats]).to_csv(out / "failure_cycle_stats.csv", index=False)
    written("failure_cycle_stats", out / "failure_cycle_stats.csv")

    # -- CE-interval heatmap
    feats = default_heatmap_features(data)
    if not feats:
        note("no per-cycle event or mobility columns; heatmaps skipped")
    else:
        it = ce_interval_table(data, feats)
        it.normalised.to_csv(out / "ce_interval_normalised.csv")
        it.absolute.to_csv(out / "ce_interval_absolute.csv")
        it.counts.to_csv(out / "ce_interval_counts.csv")
        written("ce_interval_normalised", out / "ce_interval_normalised.csv")
        written("ce_interval_absolute", out / "ce_interval_absolute.csv")
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
        elif figures:
            p = save_figure(fplot.plot_ce_interval_heatmap(it), out / "ce_interval_heatmap.png")
            written("ce_interval_heatmap", p)

    # -- failure vs non-failure
    if feats and 0 < stats["n_failed"]:
        try:
            fv = failure_vs_nonfailure_table(data, outcomes, feats, grouping=grouping)
        except AnalysisError as exc:
            note(f"failure/non-failure comparison skipped: {exc}")
        else:
            fv.to_csv(out / "failure_vs_nonfailure.csv")
            written("failure_vs_nonfailure", out / "failure_vs_nonfailure.csv")
            top = fv["rel_change_pct"].abs().sort_values(ascending=False).head(5).index
            summary["failure_vs_nonfailure"] = {
                "grouping": grouping,
                "largest_relative_changes_pct": {
                    f: float(fv.loc[f, "rel_change_pct"]) for f in top
                },
            }
            if figures and not fv.empty:
                p = save_figure(
                    fplot.plot_failure_vs_nonfailure(fv), out / "failure_vs_nonfailure_heatmap.png"
                )
                written("failure_vs_nonfailure_heatmap", p)

    # -- failure-cycle distribution
    if figures and stats["n_failed"]:
        p = save_figure(
            fplot.plot_failure_cycle_box(outcomes, stats, threshold),
            out / "failure_cycle_boxplot.png",
        )
        written("failure_cycle_boxplot", p)

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
                seed=seed,
                test_size=test_size,
                cv_splits=cv_splits,
                cv_repeats=cv_repeats,
                n_jobs=n_jobs,
                small=small,
            )
        except AnalysisError as exc:
            note(f"classifiers skipped: {exc}")
        else:
            cr.metrics.to_csv(out / "classifier_metrics.csv")
            cr.folds.to_csv(out / "classifier_cv_folds.csv", index=False)
            written("classifier_metrics", out / "classifier_metrics.csv")
            summary["classifiers"] = {
                name: {
                    k: row[k]
                    for k in (*_METRICS, "cv_auc_mean", "cv_auc_sd", "cv_f1_mean", "cv_f1_sd")
                }
                for name, row in cr.metrics.iterrows()
            }
            summary["classifier_split"] = {
                "test_size": test_size,
                "n_train": int(len(cr.X_train)),
                "n_test": int(len(cr.X_test)),
                "n_cv_folds": int(cr.metrics["n_cv_folds"].iloc[0]),
            }
            summary["chosen_classifier"] = cr.chosen
            summary["selection_rule"] = SELECTION_RULE
            X_all = labelled[pairs].astype(float)
            vals, unit = shap_values(cr.chosen, cr.models[cr.chosen], X_all, cr.X_train)
            imp = shap_importance(vals, pairs)
            imp.to_csv(out / "shap_importance.csv", index=False)
            written("shap_importance", out / "shap_importance.csv")
            summary["shap"] = {
                "classifier": cr.chosen,
                "unit": unit,
                "explained_rows": "all labelled runs (model fitted on the training split)",
                "ranking": [
                    {"feature": r.feature, "label": r.label, "mean_abs_shap": r.mean_abs_shap}
                    for r in imp.itertuples()
                ],
            }
            if figures:
                p = save_figure(fplot.plot_roc_curves(cr), out / "roc_curves.png")
                written("roc_curves", p)
                p = save_figure(fplot.plot_confusion_matrices(cr), out / "confusion_matrices.png")
                written("confusion_matrices", p)
                fig = beeswarm(
                    vals,
                    X_all.to_numpy(dtype=float),
                    list(X_all.columns),
                    title=f"SHAP of {cr.chosen}, one dot per run",
                    xlabel=f"SHAP value ({unit}); > 0 pushes towards failure",
                    importance=True,
                )
                p = save_figure(fig, out / "shap_chosen_classifier.png")
                written("shap_chosen_classifier", p)

    # -- survival
    km = kaplan_meier(outcomes["time"].to_numpy(), outcomes["event"].to_numpy())
    km.to_csv(out / "kaplan_meier.csv", index=False)
    written("kaplan_meier", out / "kaplan_meier.csv")
    summary["km_median_cycle"] = km_median(km)
    if summary["km_median_cycle"] is None:
        note("the failure-free fraction never falls to 0.5: the Kaplan-Meier median is undefined")
    if figures:
        p = save_figure(fplot.plot_kaplan_meier(km, outcomes, threshold), out / "kaplan_meier.png")
        written("kaplan_meier_curve", p)
    summary["survival_model"] = None
    if pairs and stats["n_failed"]:
        try:
            sm = fit_survival_model(
                outcomes[pairs],
                outcomes["time"].to_numpy(),
                outcomes["event"].to_numpy(),
                seed=seed,
                test_size=test_size,
                small=small,
            )
        except AnalysisError as exc:
            note(f"survival model skipped: {exc}")
        else:
            sm["predictions"].to_csv(out / "survival_predictions.csv")
            written("survival_predictions", out / "survival_predictions.csv")
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
            ns=early_n,
            seed=seed,
            cv_splits=cv_splits,
            cv_repeats=cv_repeats,
            small=small,
        )
        ew.to_csv(out / "early_warning.csv", index=False)
        written("early_warning", out / "early_warning.csv")
        summary["early_warning"] = ew.to_dict(orient="records")
        for r in ew.itertuples():
            if r.note:
                note(f"early warning at N = {r.n_cycles}: {r.note}")
        if figures and ew["auc_mean"].notna().any():
            p = save_figure(fplot.plot_early_warning(ew), out / "early_warning_auc.png")
            written("early_warning_auc", p)

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
    summary["outputs"] = files
    summary = _jsonable(summary)
    (out / "failure_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
