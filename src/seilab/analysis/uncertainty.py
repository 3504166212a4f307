"""Prediction intervals for CE: split-conformal regression on a calibration split by simulation.

A model is fitted on the training simulations; its absolute residuals on *held-out calibration
simulations* give the half-width ``q`` of the interval ``[y_hat - q, y_hat + q]``.

The exchangeable units are simulations, not cycles: the cycles of one simulation share its
noise, so the row-level rule (the ``ceil((n + 1)(1 - alpha))``-th of n *rows*,
:func:`conformal_quantile`) counts a handful of simulations as thousands of independent draws
and under-covers.  :func:`group_conformal_quantile` pools the residual distribution of each
calibration simulation with equal weight and applies the finite-sample correction with the
number of *simulations* (Dunn, Wasserman & Ramdas 2022, "pooled CDFs").  Coverage is then
*measured* on the test simulations, with a bootstrap-over-simulations confidence interval
(:func:`coverage_ci`), and the exchangeability of calibration and test simulations is checked
with a permutation test on their per-simulation residuals (:func:`exchangeability_pvalue`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def conformal_quantile(residuals, alpha: float) -> float:
    """Finite-sample split-conformal quantile of absolute residuals.

    Parameters
    ----------
    residuals : array-like
        Absolute residuals ``|y - y_hat|`` on the calibration set.
    alpha
        Miscoverage level (0.1 gives 90 % intervals).

    Returns
    -------
    float
        The ``ceil((n + 1)(1 - alpha))``-th smallest residual; ``inf`` when the calibration set
        is too small for the requested level.
    """
    r = np.sort(np.abs(np.asarray(residuals, dtype=np.float64)))
    n = len(r)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    k = math.ceil((n + 1) * (1 - alpha))
    if n == 0 or k > n:
        return math.inf
    return float(r[k - 1])


def group_conformal_quantile(residuals, groups, alpha: float) -> float:
    """Split-conformal half-width with the simulation as the exchangeable unit.

    Each of the n calibration simulations contributes the empirical CDF ``F_j`` of its absolute
    residuals with weight ``1 / (n + 1)`` (the new simulation takes the remaining weight, at
    infinity); the half-width is the smallest residual ``t`` with
    ``sum_j F_j(t) / (n + 1) >= 1 - alpha``.

    Parameters
    ----------
    residuals : array-like
        Residuals ``y - y_hat`` on the calibration rows.
    groups : array-like
        Simulation (run id) of every row.
    alpha
        Miscoverage level.

    Returns
    -------
    float
        The half-width; ``inf`` when ``n / (n + 1) < 1 - alpha`` (too few simulations).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    r = np.abs(np.asarray(residuals, dtype=np.float64))
    g = np.asarray(groups)
    if len(r) != len(g):
        raise ValueError(f"{len(r)} residuals but {len(g)} group labels")
    if len(r) == 0:
        return math.inf
    _, codes, counts = np.unique(g, return_inverse=True, return_counts=True)
    n = len(counts)
    w = 1.0 / (counts[codes] * (n + 1.0))  # each simulation sums to 1 / (n + 1)
    order = np.argsort(r, kind="stable")
    cum = np.cumsum(w[order])
    k = np.searchsorted(cum, (1 - alpha) - 1e-12)
    if k >= len(r):
        return math.inf
    return float(r[order][k])


def coverage_ci(
    y, lower, upper, groups, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Measured coverage with a bootstrap-over-simulations confidence interval.

    Cycles of one simulation are covered or missed together, so the sampling error of a
    coverage is that of the number of *simulations*: the simulations are resampled with
    replacement and the row coverage recomputed.

    Returns
    -------
    dict
        ``coverage`` (fraction of rows inside), ``coverage_by_simulation`` (mean of the
        per-simulation coverages), ``ci_low``, ``ci_high`` (percentile interval at ``level``),
        ``se`` (bootstrap standard error) and ``n_simulations``.
    """
    y = np.asarray(y, dtype=np.float64)
    inside = ((y >= np.asarray(lower)) & (y <= np.asarray(upper))).astype(np.float64)
    _, codes, counts = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    hits = np.bincount(codes, weights=inside)
    n = len(counts)
    out = {
        "coverage": float(inside.mean()) if len(inside) else math.nan,
        "coverage_by_simulation": float(np.mean(hits / counts)) if n else math.nan,
        "n_simulations": n,
    }
    if n < 2:
        return {**out, "ci_low": math.nan, "ci_high": math.nan, "se": math.nan}
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, n, size=(n_boot, n))
    boot = hits[pick].sum(axis=1) / counts[pick].sum(axis=1)
    a = (1 - level) / 2
    lo, hi = np.quantile(boot, [a, 1 - a])
    return {**out, "ci_low": float(lo), "ci_high": float(hi), "se": float(boot.std(ddof=1))}


def exchangeability_pvalue(
    calib_residuals,
    calib_groups,
    test_residuals,
    test_groups,
    *,
    n_perm: int = 2000,
    seed: int = 0,
) -> float:
    """Permutation test that calibration and test simulations are exchangeable.

    The statistic is the difference of the mean per-simulation mean |residual| of the two sets;
    simulation labels are permuted between the sets.  A small p-value says the calibration
    simulations do not represent the test simulations, and the nominal coverage is not
    guaranteed.

    Returns
    -------
    float
        Two-sided permutation p-value (NaN with fewer than 2 simulations in a set).
    """

    def per_sim(res, grp) -> np.ndarray:
        r = np.abs(np.asarray(res, dtype=np.float64))
        _, codes = np.unique(np.asarray(grp), return_inverse=True)
        return np.bincount(codes, weights=r) / np.bincount(codes)

    a, b = per_sim(calib_residuals, calib_groups), per_sim(test_residuals, test_groups)
    if len(a) < 2 or len(b) < 2:
        return math.nan
    both = np.concatenate([a, b])
    obs = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(n_perm):
        p = rng.permutation(both)
        hits += abs(p[: len(a)].mean() - p[len(a) :].mean()) >= obs - 1e-12
    return float((hits + 1) / (n_perm + 1))


def interval_coverage(y, lower, upper) -> float:
    """Fraction of ``y`` inside ``[lower, upper]``."""
    y = np.asarray(y, dtype=np.float64)
    return float(np.mean((y >= np.asarray(lower)) & (y <= np.asarray(upper))))


@dataclass
class ConformalRegressor:
    """Split-conformal intervals around an already fitted regressor.

    Parameters
    ----------
    estimator
        A fitted regressor with ``predict``.
    alpha
        Miscoverage level.

    Attributes
    ----------
    quantile_ : float
        Interval half-width (percentage points of CE when the target is ``ce_pct``).
    n_calib_ : int
        Calibration rows used.
    """

    estimator: object
    alpha: float = 0.1
    quantile_: float = math.nan
    n_calib_: int = 0

    def calibrate(self, X, y, groups=None) -> ConformalRegressor:
        """Compute the interval half-width from calibration data (held-out simulations).

        With ``groups`` (run id per row) the simulation is the exchangeable unit
        (:func:`group_conformal_quantile`); without, every row is (:func:`conformal_quantile`).
        """
        pred = np.asarray(self.estimator.predict(X), dtype=np.float64)
        res = np.asarray(y, dtype=np.float64) - pred
        self.quantile_ = (
            conformal_quantile(res, self.alpha)
            if groups is None
            else group_conformal_quantile(res, groups, self.alpha)
        )
        self.n_calib_ = len(pred)
        return self

    def predict_interval(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point prediction with its lower and upper interval bounds."""
        pred = np.asarray(self.estimator.predict(X), dtype=np.float64)
        return pred, pred - self.quantile_, pred + self.quantile_

    def coverage(self, X, y) -> float:
        """Measured coverage of the intervals on ``(X, y)``."""
        _, lo, hi = self.predict_interval(X)
        return interval_coverage(y, lo, hi)
