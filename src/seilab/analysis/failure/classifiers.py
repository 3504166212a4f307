"""Classifiers of failure from the pair energies, their selection rule and SHAP values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.errors import AnalysisError

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
