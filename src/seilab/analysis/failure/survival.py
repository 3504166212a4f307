"""Survival analysis: Kaplan-Meier estimate, concordance index, AFT model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from seilab.analysis.failure.classifiers import XGB_THREADS
from seilab.errors import AnalysisError


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
