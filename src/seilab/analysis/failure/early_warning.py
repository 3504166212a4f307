"""Early warning: failure predicted from the first N cycles only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.failure.classifiers import XGB_THREADS, _cv_splits, roc_auc
from seilab.analysis.failure.outcomes import _require, default_heatmap_features

#: Default numbers of observed cycles for the early-warning models.
EARLY_WARNING_N: tuple[int, ...] = (10, 20, 30, 50)


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
