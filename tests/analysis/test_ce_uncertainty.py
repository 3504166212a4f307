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


def test_group_conformal_quantile_by_hand():
    from seilab.analysis.uncertainty import group_conformal_quantile

    # 4 simulations, each of weight 1/5; sim a has 2 rows (1/10 each)
    r = [0.1, 0.5, 0.2, 0.3, 0.4]
    g = ["a", "a", "b", "c", "d"]
    # sorted |r|: .1(a) .2(b) .3(c) .4(d) .5(a); cumulative weights .1 .3 .5 .7 .8
    assert group_conformal_quantile(r, g, 0.5) == pytest.approx(0.3)
    assert group_conformal_quantile(r, g, 0.2) == pytest.approx(0.5)
    # n / (n + 1) = 0.8 < 0.9: too few simulations for a 90 % interval
    assert math.isinf(group_conformal_quantile(r, g, 0.1))
    # one row per simulation: the same as the row rule
    rr = np.random.default_rng(0).normal(size=40)
    assert group_conformal_quantile(rr, np.arange(40), 0.1) == conformal_quantile(rr, 0.1)


def test_coverage_ci_and_exchangeability():
    from seilab.analysis.uncertainty import coverage_ci, exchangeability_pvalue

    y = np.array([0.0, 0.0, 5.0, 5.0, 0.0, 0.0])
    g = np.array([1, 1, 2, 2, 3, 3])
    c = coverage_ci(y, y - 1, y + 1, g)
    assert c["coverage"] == 1.0 and c["ci_low"] == 1.0 and c["n_simulations"] == 3
    c = coverage_ci(y, np.full(6, -1.0), np.full(6, 1.0), g, n_boot=4000)
    assert c["coverage"] == pytest.approx(4 / 6) and c["coverage_by_simulation"] == pytest.approx(
        2 / 3
    )
    assert c["ci_low"] < 0.5 < 0.9 < c["ci_high"] + 1e-12  # three simulations: a wide interval
    rng = np.random.default_rng(1)
    same = exchangeability_pvalue(
        rng.normal(size=200),
        np.repeat(np.arange(20), 10),
        rng.normal(size=200),
        np.repeat(np.arange(20), 10),
    )
    shifted = exchangeability_pvalue(
        rng.normal(size=200),
        np.repeat(np.arange(20), 10),
        4 * rng.normal(size=200),
        np.repeat(np.arange(20), 10),
    )
    assert same > 0.05 and shifted < 0.01
