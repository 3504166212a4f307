"""The four regressors: training, metrics, and scikit-learn compatibility of DenseNNRegressor."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GroupKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from seilab.analysis.dataset import build_ce_dataset, load_campaign
from seilab.analysis.regressors import (
    MODEL_NAMES,
    DenseNNRegressor,
    make_regressor,
    regression_metrics,
)


def test_metrics_by_hand():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.5, 2.0, 2.0, 5.0])
    # errors 0.5, 0, -1, 1: MSE = 2.25 / 4, MAE = 2.5 / 4, SS_tot = 5
    assert m["mse"] == pytest.approx(0.5625)
    assert m["rmse"] == pytest.approx(0.75)
    assert m["mae"] == pytest.approx(0.625)
    assert m["r2"] == pytest.approx(1 - 2.25 / 5)
    assert np.isnan(regression_metrics([2.0, 2.0], [1.0, 3.0])["r2"])
    with pytest.raises(ValueError):
        regression_metrics([1.0, 2.0], [1.0])


@pytest.fixture(scope="module")
def small_data(synthetic_campaign):
    return build_ce_dataset(load_campaign(synthetic_campaign))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_trains_and_predicts(small_data, name):
    ds = small_data
    est = make_regressor(name, seed=0, size="small", n_jobs=1)
    fitted = est.fit(ds.X, ds.y)
    assert fitted is est
    pred = est.predict(ds.X)
    assert pred.shape == (len(ds.y),) and np.isfinite(pred).all()
    # better than predicting the mean on the training data
    assert regression_metrics(ds.y, pred)["r2"] > 0.3


def test_dense_nn_is_a_sklearn_estimator(small_data):
    ds = small_data
    est = DenseNNRegressor((32, 16), max_epochs=15, patience=5, random_state=3, n_threads=1)
    params = est.get_params()
    assert params["hidden_layer_sizes"] == (32, 16) and params["random_state"] == 3
    c = clone(est).set_params(learning_rate=2e-3)
    assert c.learning_rate == 2e-3 and not hasattr(c, "model_")
    est.fit(ds.X, ds.y, groups=ds.groups)
    for attr in (
        "model_",
        "x_mean_",
        "x_scale_",
        "y_mean_",
        "y_scale_",
        "n_features_in_",
        "n_epochs_",
    ):
        assert hasattr(est, attr)
    assert list(est.feature_names_in_) == ds.features
    # seeded: a second fit gives the same predictions
    p1 = est.predict(ds.X.iloc[:20])
    p2 = clone(est).fit(ds.X, ds.y, groups=ds.groups).predict(ds.X.iloc[:20])
    np.testing.assert_allclose(p1, p2, rtol=1e-6)
    # early stopping ran on a validation fraction
    assert len(est.validation_curve_) == est.n_epochs_ >= est.best_epoch_ >= 1


def test_dense_nn_in_pipeline_with_group_kfold(small_data):
    ds = small_data
    pipe = make_pipeline(
        StandardScaler(),
        DenseNNRegressor((32, 16), max_epochs=20, patience=5, random_state=0, n_threads=1),
    )
    scores = cross_val_score(
        pipe,
        ds.X,
        ds.y,
        groups=ds.groups,
        cv=GroupKFold(n_splits=3),
        scoring="neg_root_mean_squared_error",
        params={"densennregressor__groups": ds.groups.to_numpy()},
    )
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert (-scores < 10).all()  # CE RMSE in percentage points


def test_dense_nn_rejects_bad_input():
    est = DenseNNRegressor((8,), max_epochs=2, n_threads=1)
    with pytest.raises(ValueError):
        est.fit(np.zeros((5, 2)), np.zeros(4))
    X = np.random.default_rng(0).normal(size=(30, 3))
    est.fit(X, X[:, 0])
    with pytest.raises(ValueError):
        est.predict(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="activation"):
        DenseNNRegressor((8,), activation="swish", max_epochs=1).fit(X, X[:, 0])
