"""Prediction intervals for CE: split-conformal regression on a calibration split by simulation.

A model is fitted on the training simulations; its absolute residuals on *held-out calibration
simulations* give the half-width ``q`` of the interval ``[y_hat - q, y_hat + q]``:
``q`` is the ``ceil((n + 1)(1 - alpha)) / n`` empirical quantile of the n calibration residuals.
If calibration and test simulations are exchangeable (drawn alike from the same design), the
interval covers a new simulation's CE with probability at least ``1 - alpha`` (marginally, over
cycles and simulations).  Coverage is then *measured* on the test simulations.
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

    def calibrate(self, X, y) -> ConformalRegressor:
        """Compute the interval half-width from calibration data (held-out simulations)."""
        pred = np.asarray(self.estimator.predict(X), dtype=np.float64)
        self.quantile_ = conformal_quantile(np.asarray(y, dtype=np.float64) - pred, self.alpha)
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
