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

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

from seilab import schema

#: Model names in the order of the paper's parity figure, with display titles.
MODEL_TITLES: dict[str, str] = schema.REGRESSOR_TITLES
MODEL_NAMES: tuple[str, ...] = tuple(MODEL_TITLES)


class DenseNNRegressor(RegressorMixin, BaseEstimator):
    """Dense feed-forward neural network regressor (PyTorch, CPU).

    Inputs and target are standardised inside the estimator; training uses Adam on the mean
    squared error with mini-batches and stops early when the loss on a held-out validation
    fraction has not improved for ``patience`` epochs (the best weights are kept).

    Parameters
    ----------
    hidden_layer_sizes
        Widths of the hidden layers (the output layer has one unit): the paper's 512-256-128.
    activation
        ``"relu"``, ``"gelu"`` or ``"tanh"``.
    learning_rate
        Adam learning rate (initial value).
    lr_schedule
        ``"cosine"`` (anneal to ``learning_rate / 20`` over ``max_epochs``) or ``"constant"``.
    weight_decay
        Adam L2 weight decay.
    batch_size
        Mini-batch size.
    max_epochs
        Upper bound on training epochs.
    patience
        Epochs without validation improvement before stopping (``None``: no early stopping).
    validation_fraction
        Fraction of the training rows (or of the groups, when ``groups`` is passed to ``fit``)
        held out for early stopping.
    min_delta
        Minimum relative decrease of the validation loss that counts as an improvement.
    dropout
        Dropout probability after each hidden layer.
    random_state
        Seed of the weight initialisation, the validation split and the batch order.
    n_threads
        Number of CPU threads torch may use during ``fit`` and ``predict``.
    verbose
        Print the losses every 10 epochs.

    Attributes
    ----------
    model_ : torch.nn.Module
        The trained network.
    n_features_in_ : int
        Number of input features.
    x_mean_, x_scale_ : numpy.ndarray
        Input standardisation.
    y_mean_, y_scale_ : float
        Target standardisation.
    loss_curve_, validation_curve_ : list of float
        Training and validation loss (standardised MSE) per epoch.
    n_epochs_ : int
        Epochs run.
    best_epoch_ : int
        Epoch (1-based) whose weights were kept.
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (512, 256, 128),
        *,
        activation: str = "relu",
        learning_rate: float = 1e-3,
        lr_schedule: str = "cosine",
        weight_decay: float = 0.0,
        batch_size: int = 256,
        max_epochs: int = 200,
        patience: int | None = 15,
        validation_fraction: float = 0.1,
        min_delta: float = 1e-4,
        dropout: float = 0.0,
        random_state: int | None = 0,
        n_threads: int = 2,
        verbose: bool = False,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.min_delta = min_delta
        self.dropout = dropout
        self.random_state = random_state
        self.n_threads = n_threads
        self.verbose = verbose

    # ------------------------------------------------------------------ helpers
    def _build(self, n_in: int):
        import torch
        from torch import nn

        acts = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
        if self.activation not in acts:
            raise ValueError(f"activation must be one of {sorted(acts)}, got {self.activation!r}")
        layers: list[Any] = []
        width = n_in
        # The weights are drawn from a private copy of the global RNG, seeded: reproducible.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0 if self.random_state is None else int(self.random_state))
            for h in self.hidden_layer_sizes:
                layers += [nn.Linear(width, int(h)), acts[self.activation]()]
                if self.dropout > 0:
                    layers.append(nn.Dropout(self.dropout))
                width = int(h)
            layers.append(nn.Linear(width, 1))
        return nn.Sequential(*layers).to(torch.float32)

    def _validation_split(
        self, n: int, groups: np.ndarray | None, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        idx = np.arange(n)
        if not self.patience or self.validation_fraction <= 0 or n < 10:
            return idx, np.array([], dtype=int)
        if groups is not None:
            uniq = np.unique(groups)
            if len(uniq) >= 2:
                n_val = max(1, int(round(self.validation_fraction * len(uniq))))
                n_val = min(n_val, len(uniq) - 1)
                val_groups = rng.choice(uniq, size=n_val, replace=False)
                mask = np.isin(groups, val_groups)
                return idx[~mask], idx[mask]
        perm = rng.permutation(n)
        n_val = max(1, int(round(self.validation_fraction * n)))
        return np.sort(perm[n_val:]), np.sort(perm[:n_val])

    # ------------------------------------------------------------------ API
    def fit(self, X, y, groups=None) -> DenseNNRegressor:
        """Train the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Features.
        y : array-like of shape (n_samples,)
            Target.
        groups : array-like of shape (n_samples,), optional
            Group labels (e.g. run ids): when given, the validation fraction is drawn by group.

        Returns
        -------
        DenseNNRegressor
            The fitted estimator (``self``).
        """
        import torch

        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, reset=True)
        y = np.asarray(y, dtype=np.float64).ravel()
        n = X.shape[0]
        rng = np.random.default_rng(self.random_state)
        self.x_mean_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.x_scale_ = np.where(scale > 0, scale, 1.0)
        self.y_mean_ = float(y.mean())
        ys = float(y.std())
        self.y_scale_ = ys if ys > 0 else 1.0
        Xs = ((X - self.x_mean_) / self.x_scale_).astype(np.float32)
        ys_arr = ((y - self.y_mean_) / self.y_scale_).astype(np.float32)
        g = None if groups is None else np.asarray(groups)
        tr, va = self._validation_split(n, g, rng)

        prev_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(self.n_threads)))
        try:
            net = self._build(X.shape[1])
            opt = torch.optim.Adam(
                net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
            )
            if self.lr_schedule not in ("cosine", "constant"):
                raise ValueError(
                    f"lr_schedule must be 'cosine' or 'constant', got {self.lr_schedule!r}"
                )
            n_ep = max(1, int(self.max_epochs))
            lr_min = self.learning_rate / 20.0
            Xt = torch.from_numpy(Xs)
            yt = torch.from_numpy(ys_arr)
            Xv, yv = Xt[va], yt[va]
            best = math.inf
            best_state = copy.deepcopy(net.state_dict())
            best_epoch = 0
            bad = 0
            self.loss_curve_: list[float] = []
            self.validation_curve_: list[float] = []
            bs = max(1, int(self.batch_size))
            gen = torch.Generator().manual_seed(
                0 if self.random_state is None else int(self.random_state)
            )
            tr_t = torch.from_numpy(tr)
            epoch = 0
            for epoch in range(1, int(self.max_epochs) + 1):
                if self.lr_schedule == "cosine":
                    frac = (epoch - 1) / max(1, n_ep - 1)
                    lr = lr_min + 0.5 * (self.learning_rate - lr_min) * (
                        1 + math.cos(math.pi * frac)
                    )
                    for pg in opt.param_groups:
                        pg["lr"] = lr
                net.train()
                order = tr_t[torch.randperm(len(tr_t), generator=gen)]
                total = 0.0
                for start in range(0, len(order), bs):
                    b = order[start : start + bs]
                    opt.zero_grad()
                    loss = ((net(Xt[b]).squeeze(-1) - yt[b]) ** 2).mean()
                    loss.backward()
                    opt.step()
                    total += loss.item() * len(b)
                self.loss_curve_.append(total / max(1, len(order)))
                if len(va):
                    net.eval()
                    with torch.no_grad():
                        vloss = float(((net(Xv).squeeze(-1) - yv) ** 2).mean())
                    self.validation_curve_.append(vloss)
                    if vloss < best * (1 - self.min_delta):
                        best, bad, best_epoch = vloss, 0, epoch
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        bad += 1
                    if self.patience and bad >= self.patience:
                        break
                else:
                    best_epoch = epoch
                    best_state = net.state_dict()
                if self.verbose and epoch % 10 == 0:
                    print(f"epoch {epoch}: train {self.loss_curve_[-1]:.4f} val {best:.4f}")
            net.load_state_dict(best_state)
            net.eval()
        finally:
            torch.set_num_threads(prev_threads)
        self.model_ = net
        self.n_epochs_ = epoch
        self.best_epoch_ = best_epoch
        self.best_validation_loss_ = best if len(va) else math.nan
        return self

    def predict(self, X) -> np.ndarray:
        """Predict the target.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
        """
        import torch

        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Xs = ((X - self.x_mean_) / self.x_scale_).astype(np.float32)
        prev_threads = torch.get_num_threads()
        torch.set_num_threads(max(1, int(self.n_threads)))
        try:
            out = np.empty(len(Xs), dtype=np.float64)
            with torch.no_grad():
                step = 65536
                for s in range(0, len(Xs), step):
                    out[s : s + step] = (
                        self.model_(torch.from_numpy(Xs[s : s + step])).squeeze(-1).numpy()
                    )
        finally:
            torch.set_num_threads(prev_threads)
        return out * self.y_scale_ + self.y_mean_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


# ---------------------------------------------------------------------- factory
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
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    small = size == "small"
    if name == "dense_nn":
        return DenseNNRegressor(
            hidden_layer_sizes=(64, 32, 16) if small else (512, 256, 128),
            learning_rate=3e-3 if small else 2e-3,
            batch_size=64 if small else 1024,
            max_epochs=60 if small else 40,
            patience=10 if small else 8,
            validation_fraction=0.1,
            random_state=seed,
            n_threads=min(2, n_jobs),
        )
    if name == "mlp":
        from sklearn.neural_network import MLPRegressor

        mlp = MLPRegressor(
            hidden_layer_sizes=(32, 16) if small else (128, 64),
            learning_rate_init=3e-3 if small else 1e-3,
            batch_size=64 if small else 512,
            max_iter=80 if small else 60,
            early_stopping=True,
            validation_fraction=0.1,
            n_iter_no_change=8,
            random_state=seed,
        )
        return TransformedTargetRegressor(
            regressor=make_pipeline(StandardScaler(), mlp), transformer=StandardScaler()
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
