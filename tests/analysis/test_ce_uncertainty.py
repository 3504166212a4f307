"""Split-conformal intervals: the quantile rule and measured coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

from seilab.analysis.uncertainty import ConformalRegressor, conformal_quantile, interval_coverage


def test_conformal_quantile_by_hand():
    r = [0.5, -0.1, 0.3, 0.9, -0.7, 0.2, 0.4, -0.6, 0.8]  # |r| sorted: .1 .2 .3 .4 .5 .6 .7 .8 .9
    # n = 9, alpha = 0.2: k = ceil(10 * 0.8) = 8 -> 0.8
    assert conformal_quantile(r, 0.2) == pytest.approx(0.8)
    # alpha = 0.5: k = ceil(10 * 0.5) = 5 -> 0.5
    assert conformal_quantile(r, 0.5) == pytest.approx(0.5)
    # alpha = 0.05: k = ceil(9.5) = 10 > n -> infinite interval
    assert math.isinf(conformal_quantile(r, 0.05))
    with pytest.raises(ValueError):
        conformal_quantile(r, 1.5)


def test_interval_coverage_by_hand():
    assert interval_coverage([1, 2, 3, 4], [0, 2.5, 2, 5], [2, 3, 3, 6]) == pytest.approx(0.5)


def test_split_conformal_covers_new_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.standard_t(4, size=6000)
    model = LinearRegression().fit(X[:2000], y[:2000])
    cr = ConformalRegressor(model, alpha=0.1).calibrate(X[2000:3000], y[2000:3000])
    cov = cr.coverage(X[3000:], y[3000:])
    assert 0.87 <= cov <= 0.93
    pred, lo, hi = cr.predict_interval(X[:5])
    assert np.allclose(hi - lo, 2 * cr.quantile_) and np.all(lo < pred)
