"""The four CE regressors of the paper, as scikit-learn-compatible estimators, and their metrics.

* ``dense_nn``: :class:`DenseNNRegressor`, a PyTorch dense network 512-256-128-1 (ReLU), trained
  with Adam on standardised inputs and target, early stopping on a validation fraction;
* ``mlp``: scikit-learn's :class:`~sklearn.neural_network.MLPRegressor` (standardised inputs and
  target);
* ``xgboost``: :class:`xgboost.XGBRegressor` (histogram trees);
* ``extra_trees``: :class:`~sklearn.ensemble.ExtraTreesRegressor`.

Heavy libraries (torch, xgboost) are imported inside functions so that importing this module
is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from seilab import schema
from seilab.analysis.networks import (  # noqa: F401 - re-exported
    LR_SCHEDULES,
    DenseNNRegressor,
    GroupMLPRegressor,
    epoch_budget,
    fit_grouped,
    group_validation_split,
)

#: Model names in the order of the paper's parity figure, with display titles.
MODEL_TITLES: dict[str, str] = schema.REGRESSOR_TITLES
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_TITLES)


# ---------------------------------------------------------------------- factory
# Training settings of the two networks, chosen on the three-driver known-answer campaign
# (tests/analysis/known_answer.py: 3 pairs drive CE, 16 are inert, per-simulation and per-cycle
# noise) with benchmarks/nn_training_evidence.py; the measured figures are in docs/analysis.md
# ("Training the networks").  Early stopping validates on whole held-out simulations.  Without
# weight decay both networks memorise the training simulations through the inert inputs within
# a few epochs (validation loss at its minimum by epoch 4-5, test RMSE 3-4x the noise floor);
# with it they keep improving for ~100 epochs, and a patience of 30 epochs (8 for halving the
# learning rate) finds the later minimum that a patience of 8 misses.
#: Training rows of that evidence (300 simulations x 6 cycles after the validation split, in
#: round numbers): on larger data sets the epoch limits shrink in proportion (epoch_budget).
REFERENCE_ROWS = 2000
#: Fraction of the training simulations held out for early stopping (both networks).
VALIDATION_FRACTION = 0.2
DENSE_LEARNING_RATE, DENSE_LEARNING_RATE_SMALL = 1e-3, 3e-3
DENSE_WEIGHT_DECAY, DENSE_WEIGHT_DECAY_SMALL = 3e-2, 1e-2  # Adam L2
DENSE_BATCH, DENSE_BATCH_SMALL = 256, 64
DENSE_PATIENCE = 30
DENSE_LR_PATIENCE = 8  # ReduceLROnPlateau: halve after 8 epochs without improvement
DENSE_MAX_EPOCHS, DENSE_MAX_EPOCHS_SMALL = 300, 300
MLP_LEARNING_RATE = 3e-3
MLP_ALPHA = 1.0  # scikit-learn's L2 penalty (per mini-batch sample)
MLP_BATCH = 64
MLP_PATIENCE = 30
MLP_MAX_EPOCHS, MLP_MAX_EPOCHS_SMALL = 300, 300

#: Model sizes: ``full`` for analyses (paper architecture), ``small`` for tests and smoke runs.
SIZES = ("full", "small")


def make_regressor(name: str, *, seed: int = 0, size: str = "full", n_jobs: int = 2) -> Any:
    """Build one of the four regressors (unfitted).

    Parameters
    ----------
    name
        ``dense_nn``, ``mlp``, ``xgboost`` or ``extra_trees``.
    seed
        Random seed.
    size
        ``"full"`` (paper architecture, analysis settings) or ``"small"`` (fast, for tests).
    n_jobs
        Threads for XGBoost / Extra Trees / torch (keep small on shared machines).

    Returns
    -------
    estimator
        A scikit-learn-compatible regressor.
    """

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    small = size == "small"
    if name == "dense_nn":
        return DenseNNRegressor(
            hidden_layer_sizes=(64, 32, 16) if small else (512, 256, 128),
            learning_rate=DENSE_LEARNING_RATE_SMALL if small else DENSE_LEARNING_RATE,
            lr_schedule="plateau",
            lr_patience=DENSE_LR_PATIENCE,
            weight_decay=DENSE_WEIGHT_DECAY_SMALL if small else DENSE_WEIGHT_DECAY,
            batch_size=DENSE_BATCH_SMALL if small else DENSE_BATCH,
            max_epochs=DENSE_MAX_EPOCHS_SMALL if small else DENSE_MAX_EPOCHS,
            patience=DENSE_PATIENCE,
            validation_fraction=VALIDATION_FRACTION,
            random_state=seed,
            n_threads=min(2, n_jobs),
            reference_rows=REFERENCE_ROWS,
        )
    if name == "mlp":
        return GroupMLPRegressor(
            hidden_layer_sizes=(32, 16) if small else (128, 64),
            learning_rate_init=MLP_LEARNING_RATE,
            alpha=MLP_ALPHA,
            batch_size=MLP_BATCH,
            max_iter=MLP_MAX_EPOCHS_SMALL if small else MLP_MAX_EPOCHS,
            patience=MLP_PATIENCE,
            validation_fraction=VALIDATION_FRACTION,
            random_state=seed,
            reference_rows=REFERENCE_ROWS,
        )
    if name == "xgboost":
        from xgboost import XGBRegressor

        return XGBRegressor(
            n_estimators=80 if small else 300,
            max_depth=4 if small else 6,
            learning_rate=0.1 if small else 0.08,
            subsample=0.8,
            colsample_bytree=0.8,
            tree_method="hist",
            n_jobs=n_jobs,
            random_state=seed,
        )
    if name == "extra_trees":
        from sklearn.ensemble import ExtraTreesRegressor

        return ExtraTreesRegressor(
            n_estimators=40 if small else 100,
            max_features=0.5,
            min_samples_leaf=2,
            n_jobs=n_jobs,
            random_state=seed,
        )
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")


def resolve_models(models: str | Sequence[str] | None) -> tuple[str, ...]:
    """Parse a model selection (``"dense_nn,xgboost"`` or a sequence) and validate it."""
    from seilab.errors import AnalysisError

    if models is None:
        return MODEL_NAMES
    if isinstance(models, str):
        models = [m.strip() for m in models.split(",") if m.strip()]
    out = tuple(models)
    bad = [m for m in out if m not in MODEL_TITLES]
    if bad or not out:
        raise AnalysisError(
            f"unknown model(s) {bad or '(none given)'}; allowed: {', '.join(MODEL_NAMES)}"
        )
    return out


# ---------------------------------------------------------------------- metrics
def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """RMSE, MSE, MAE and R2 of a prediction.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)

    Returns
    -------
    dict
        ``{"rmse", "mse", "mae", "r2"}``; R2 = 1 - SS_res / SS_tot (NaN when SS_tot = 0).
    """
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    if yt.shape != yp.shape or yt.ndim != 1 or len(yt) == 0:
        raise ValueError(
            f"y_true and y_pred must be equal-length 1-D arrays, got {yt.shape}, {yp.shape}"
        )
    err = yp - yt
    mse = float(np.mean(err**2))
    ss_tot = float(np.sum((yt - yt.mean()) ** 2))
    r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else math.nan
    return {"rmse": math.sqrt(mse), "mse": mse, "mae": float(np.mean(np.abs(err))), "r2": r2}
