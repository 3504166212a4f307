"""The two neural-network regressors (PyTorch dense network, scikit-learn MLP) with early
stopping on held-out simulations, scikit-learn compatible."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

# the analysis prints nothing: progress of the training goes to this logger
log = logging.getLogger(__name__)

#: Learning-rate schedules of :class:`DenseNNRegressor`.
LR_SCHEDULES: tuple[str, ...] = ("cosine", "plateau", "constant")


def group_validation_split(
    n: int, groups: np.ndarray | None, fraction: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation row indices for early stopping, by whole groups (simulations).

    Validating on rows of the training simulations rewards memorising them (their cycles share
    the simulation's own noise), so the validation set is a random ``fraction`` of the *groups*.

    Parameters
    ----------
    n
        Number of rows.
    groups
        Group label (run id) of every row; ``None``: every row is its own group.
    fraction
        Fraction of the groups held out (at least one, and at least one left for training).
    rng
        Random generator.

    Returns
    -------
    train, validation : numpy.ndarray
        Row indices (the validation part is empty when ``fraction <= 0``, fewer than 10 rows or
        fewer than 2 groups).
    """
    idx = np.arange(n)
    empty = np.array([], dtype=int)
    if fraction <= 0 or n < 10:
        return idx, empty
    g = idx if groups is None else np.asarray(groups)
    uniq = np.unique(g)
    if len(uniq) < 2:
        return idx, empty
    n_val = min(max(1, int(round(fraction * len(uniq)))), len(uniq) - 1)
    val_groups = rng.choice(uniq, size=n_val, replace=False)
    mask = np.isin(g, val_groups)
    return idx[~mask], idx[mask]


def epoch_budget(
    n_train: int, reference_rows: int | None, epochs: int, patience: int | None
) -> tuple[int, int | None, float]:
    """Epoch limits scaled to the number of training rows.

    The networks' epoch settings were chosen on ``reference_rows`` training rows; one epoch on
    a larger data set holds proportionally more updates, so the maximum number of epochs and
    the patience are scaled by ``reference_rows / n_train`` (never up, at least 3 epochs of
    patience): the budget in rows seen and updates stays the one the evidence supports.

    Returns
    -------
    max_epochs, patience, scale
    """
    scale = 1.0
    if reference_rows and n_train > reference_rows:
        scale = reference_rows / n_train
    max_ep = max(1, math.ceil(int(epochs) * scale))
    pat = None if not patience else max(3, math.ceil(int(patience) * scale))
    return max_ep, pat, scale


def fit_grouped(est: Any, X, y, groups) -> Any:
    """Fit ``est``, passing the run ids to estimators whose early stopping uses them.

    :class:`DenseNNRegressor` and :class:`GroupMLPRegressor` draw their validation set by
    simulation; the tree models have no validation set.
    """
    if isinstance(est, DenseNNRegressor | GroupMLPRegressor):
        return est.fit(X, y, groups=None if groups is None else np.asarray(groups))
    return est.fit(X, y)


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
        ``"cosine"`` (anneal to ``learning_rate / 20`` over ``max_epochs``), ``"plateau"``
        (halve the rate after ``lr_patience`` epochs without validation improvement, down to
        ``learning_rate / 64``) or ``"constant"``.
    lr_patience
        Epochs without improvement before the ``"plateau"`` schedule halves the rate.
    weight_decay
        Adam L2 weight decay.
    batch_size
        Mini-batch size.
    max_epochs
        Upper bound on training epochs.
    patience
        Epochs without validation improvement before stopping (``None``: no early stopping).
    validation_fraction
        Fraction of the training *simulations* (``groups`` passed to ``fit``) held out for early
        stopping; without ``groups``, of the rows (then every row is its own group).
    min_delta
        Minimum relative decrease of the validation loss that counts as an improvement.
    dropout
        Dropout probability after each hidden layer.
    random_state
        Seed of the weight initialisation, the validation split and the batch order.
    n_threads
        Number of CPU threads torch may use during ``fit`` and ``predict``.
    verbose
        Log the losses every 10 epochs (logger ``seilab.analysis.networks``, level INFO).
    reference_rows
        Training rows the epoch settings were chosen for: with more rows, ``max_epochs``,
        ``patience`` and ``lr_patience`` are scaled down in proportion (:func:`epoch_budget`);
        ``None``: used as given.

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
        lr_patience: int = 5,
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
        reference_rows: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.lr_patience = lr_patience
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
        self.reference_rows = reference_rows

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
        if not self.patience:
            return np.arange(n), np.array([], dtype=int)
        return group_validation_split(n, groups, self.validation_fraction, rng)

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
            if self.lr_schedule not in LR_SCHEDULES:
                raise ValueError(
                    f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
                )
            n_ep, patience, ep_scale = epoch_budget(
                len(tr), self.reference_rows, self.max_epochs, self.patience
            )
            plateau = None
            if self.lr_schedule == "plateau" and len(va):
                # halve the rate when the validation loss of whole simulations stalls
                plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                    opt,
                    factor=0.5,
                    patience=max(2, math.ceil(int(self.lr_patience) * ep_scale)),
                    threshold=self.min_delta,
                    min_lr=self.learning_rate / 64.0,
                )
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
            for epoch in range(1, n_ep + 1):
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
                    if plateau is not None:
                        plateau.step(vloss)
                    if vloss < best * (1 - self.min_delta):
                        best, bad, best_epoch = vloss, 0, epoch
                        best_state = copy.deepcopy(net.state_dict())
                    else:
                        bad += 1
                    if patience and bad >= patience:
                        break
                else:
                    best_epoch = epoch
                    best_state = net.state_dict()
                if self.verbose and epoch % 10 == 0:
                    log.info("epoch %d: train %.4f val %.4f", epoch, self.loss_curve_[-1], best)
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


class GroupMLPRegressor(RegressorMixin, BaseEstimator):
    """scikit-learn's ``MLPRegressor`` with early stopping on held-out *simulations*.

    ``MLPRegressor(early_stopping=True)`` validates on random rows, i.e. on cycles of its own
    training simulations, so it never stops and memorises runs.  This wrapper standardises
    inputs and target, holds out ``validation_fraction`` of the groups passed to ``fit``
    (:func:`group_validation_split`), trains epoch by epoch with ``partial_fit`` and keeps the
    weights of the epoch with the lowest validation loss; it stops after ``patience`` epochs
    without improvement.  No ``ConvergenceWarning`` is raised: reaching ``max_iter`` is a
    budget, and the best epoch is recorded in ``best_epoch_``.

    Parameters
    ----------
    hidden_layer_sizes
        Widths of the hidden layers.
    learning_rate_init
        Adam learning rate.
    alpha
        L2 penalty.
    batch_size
        Mini-batch size.
    max_iter
        Upper bound on epochs.
    patience
        Epochs without validation improvement before stopping (``None``: train ``max_iter``
        epochs and keep the last weights).
    validation_fraction
        Fraction of the groups (simulations) held out for early stopping.
    min_delta
        Minimum relative decrease of the validation loss that counts as an improvement.
    random_state
        Seed of the weights, the validation split and the batch order.
    reference_rows
        Training rows the epoch settings were chosen for (see :func:`epoch_budget`).

    Attributes
    ----------
    mlp_ : sklearn.neural_network.MLPRegressor
        The trained network (on standardised data).
    loss_curve_, validation_curve_ : list of float
        Training and validation loss (standardised MSE) per epoch.
    n_epochs_, best_epoch_ : int
        Epochs run and the (1-based) epoch whose weights were kept.
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (128, 64),
        *,
        learning_rate_init: float = 1e-3,
        alpha: float = 1e-4,
        batch_size: int = 256,
        max_iter: int = 200,
        patience: int | None = 20,
        validation_fraction: float = 0.2,
        min_delta: float = 1e-4,
        random_state: int | None = 0,
        reference_rows: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.reference_rows = reference_rows
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.min_delta = min_delta
        self.random_state = random_state

    def fit(self, X, y, groups=None) -> GroupMLPRegressor:
        """Train with early stopping on held-out groups.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
        groups : array-like of shape (n_samples,), optional
            Run id of every row: the validation set is drawn by simulation (without it, by row).

        Returns
        -------
        GroupMLPRegressor
        """
        from sklearn.neural_network import MLPRegressor

        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True, reset=True)
        y = np.asarray(y, dtype=np.float64).ravel()
        rng = np.random.default_rng(self.random_state)
        self.x_mean_ = X.mean(axis=0)
        sc = X.std(axis=0)
        self.x_scale_ = np.where(sc > 0, sc, 1.0)
        self.y_mean_ = float(y.mean())
        ys = float(y.std())
        self.y_scale_ = ys if ys > 0 else 1.0
        Xs = (X - self.x_mean_) / self.x_scale_
        yz = (y - self.y_mean_) / self.y_scale_
        tr, va = (
            group_validation_split(len(y), groups, self.validation_fraction, rng)
            if self.patience
            else (np.arange(len(y)), np.array([], dtype=int))
        )
        mlp = MLPRegressor(
            hidden_layer_sizes=tuple(int(h) for h in self.hidden_layer_sizes),
            learning_rate_init=self.learning_rate_init,
            alpha=self.alpha,
            batch_size=min(int(self.batch_size), max(1, len(tr))),
            shuffle=True,
            random_state=self.random_state,
        )
        best, best_epoch, bad, epoch = math.inf, 0, 0, 0
        best_w: tuple[list, list] | None = None
        self.loss_curve_: list[float] = []
        self.validation_curve_: list[float] = []
        max_ep, patience, _ = epoch_budget(
            len(tr), self.reference_rows, self.max_iter, self.patience
        )
        for epoch in range(1, max_ep + 1):
            mlp.partial_fit(Xs[tr], yz[tr])
            self.loss_curve_.append(float(mlp.loss_))
            if not len(va):
                best_epoch = epoch
                continue
            vloss = float(np.mean((mlp.predict(Xs[va]) - yz[va]) ** 2))
            self.validation_curve_.append(vloss)
            if vloss < best * (1 - self.min_delta):
                best, bad, best_epoch = vloss, 0, epoch
                best_w = (copy.deepcopy(mlp.coefs_), copy.deepcopy(mlp.intercepts_))
            else:
                bad += 1
                if bad >= int(patience or 0):
                    break
        if best_w is not None:
            mlp.coefs_, mlp.intercepts_ = best_w
        self.mlp_ = mlp
        self.n_epochs_ = epoch
        self.best_epoch_ = best_epoch
        self.best_validation_loss_ = best if len(va) else math.nan
        return self

    def predict(self, X) -> np.ndarray:
        """Predict the target (array of shape ``(n_samples,)``)."""
        check_is_fitted(self, "mlp_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        z = self.mlp_.predict((X - self.x_mean_) / self.x_scale_)
        return np.asarray(z, dtype=np.float64) * self.y_scale_ + self.y_mean_
