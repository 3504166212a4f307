"""The CE surrogate of the optimisation: fitted on [pair energies, cycle] -> CE, cached, ranked."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.optimize.space import full_energies
from seilab.errors import AnalysisError

# ---------------------------------------------------------------------- surrogate
SURROGATE_FEATURES: tuple[str, ...] = (*schema.PAIR_COLUMNS, schema.CYCLE)


@dataclass
class CESurrogate:
    """Mean-CE surrogate ``E -> 1/C sum_c f(E, c)`` built on a per-cycle regressor.

    Attributes
    ----------
    estimator
        Regressor fitted on ``[pair energies..., cycle] -> ce_pct``.
    model
        Regressor name (``dense_nn``, ``xgboost``, ...).
    cycles
        Cycles averaged by the objective (1..C).
    quantile
        Split-conformal half-width (percentage points) of the *mean-CE* prediction of a
        simulation, from held-out calibration simulations (``inf`` if too few).
    alpha
        Miscoverage level of ``quantile``.
    calib_coverage
        Not used for the quantile: coverage measured on the test simulations.
    fingerprint
        Hash of the data the surrogate was trained on.
    """

    estimator: Any
    model: str
    cycles: np.ndarray
    quantile: float = math.inf
    alpha: float = 0.1
    test_coverage: float = math.nan
    test_rmse_mean: float = math.nan
    fingerprint: str = ""
    n_runs: int = 0
    metrics: dict[str, float] = field(default_factory=dict)

    def predict_mean(self, energies: pd.DataFrame | Sequence[Mapping[str, float]]) -> np.ndarray:
        """Mean predicted CE (%) over ``cycles`` for each set of pair energies.

        Parameters
        ----------
        energies
            DataFrame with the 19 ``e_pair_*_ev`` columns, or a sequence of ``{pair: eV}``
            dicts (missing pairs at their DFT value).
        """
        if not isinstance(energies, pd.DataFrame):
            energies = pd.DataFrame(
                [{schema.pair_column(p): v for p, v in full_energies(e).items()} for e in energies]
            )
        E = energies[list(schema.PAIR_COLUMNS)].to_numpy(np.float64)
        k, c = len(E), len(self.cycles)
        rows = np.empty((k * c, E.shape[1] + 1))
        rows[:, :-1] = np.repeat(E, c, axis=0)
        rows[:, -1] = np.tile(self.cycles, k)
        pred = np.asarray(
            self.estimator.predict(pd.DataFrame(rows, columns=list(SURROGATE_FEATURES))),
            dtype=np.float64,
        )
        return pred.reshape(k, c).mean(axis=1)

    def interval(self, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Conformal interval around mean-CE predictions."""
        return mean - self.quantile, mean + self.quantile


def _run_means(data: pd.DataFrame) -> pd.DataFrame:
    """Per simulation: pair energies and the mean CE over its cycles (NaN CE rows dropped)."""
    d = data.dropna(subset=[schema.TARGET])
    agg = d.groupby(schema.RUN_ID, sort=True).agg(
        {**{c: "first" for c in schema.PAIR_COLUMNS}, schema.TARGET: "mean", schema.CYCLE: "max"}
    )
    return agg


def fit_surrogate(
    data: pd.DataFrame,
    *,
    model: str = "dense_nn",
    seed: int = 0,
    size: str = "full",
    n_jobs: int = 2,
    alpha: float = 0.1,
    test_size: float = 0.15,
    calib_size: float = 0.15,
    cycles: int | None = None,
) -> CESurrogate:
    """Train the mean-CE surrogate on a per-cycle data set.

    Parameters
    ----------
    data
        Per-cycle data set (``run_id``, ``cycle``, ``ce_pct``, the 19 ``e_pair_*_ev`` columns).
    model
        Regressor (see :func:`seilab.analysis.regressors.make_regressor`).
    seed
        Seed of the split and the regressor.
    size
        ``"full"`` or ``"small"`` regressor.
    n_jobs
        Threads.
    alpha
        Miscoverage of the mean-CE interval.
    test_size, calib_size
        Fractions of simulations held out for testing and for conformal calibration.
    cycles
        Cycles averaged by the objective (default: the longest run in the data).

    Returns
    -------
    CESurrogate
        The surrogate, fitted on the training simulations; the interval half-width comes from
        the calibration simulations and the scores from the test simulations (never refitted,
        so the conformal guarantee applies to the returned model).
    """
    from seilab.analysis.dataset import train_calib_test_split
    from seilab.analysis.regressors import make_regressor, regression_metrics
    from seilab.analysis.uncertainty import conformal_quantile

    missing = [
        c
        for c in (schema.RUN_ID, schema.CYCLE, schema.TARGET, *schema.PAIR_COLUMNS)
        if c not in data.columns
    ]
    if missing:
        raise AnalysisError(f"missing column(s) {', '.join(missing)} (see docs/schema.md)")
    d = data.dropna(subset=[schema.TARGET, *SURROGATE_FEATURES]).reset_index(drop=True)
    if d[schema.RUN_ID].nunique() < 4:
        raise AnalysisError(
            f"{d[schema.RUN_ID].nunique()} simulation(s) with CE data; the surrogate needs at least 4"
        )
    X = d[list(SURROGATE_FEATURES)].astype(np.float64)
    y = d[schema.TARGET].astype(np.float64)
    g = d[schema.RUN_ID].astype(str)
    n_cycles = int(cycles or d[schema.CYCLE].max())
    cyc = np.arange(1, n_cycles + 1, dtype=np.float64)
    split = train_calib_test_split(g, test_size=test_size, calib_size=calib_size, seed=seed)

    def _fit(idx: np.ndarray) -> Any:
        est = make_regressor(model, seed=seed, size=size, n_jobs=n_jobs)
        if model == "dense_nn":
            return est.fit(X.iloc[idx], y.iloc[idx], groups=g.iloc[idx].to_numpy())
        return est.fit(X.iloc[idx], y.iloc[idx])

    est = _fit(split.train)
    runs = _run_means(d)

    def _mean_residuals(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.unique(g.iloc[idx])
        sub = runs.loc[ids]
        # the run's own cycles (a run may end early): average the prediction over them
        pred = np.array(
            [
                CESurrogate(
                    estimator=est, model=model, cycles=np.arange(1, int(r[schema.CYCLE]) + 1.0)
                ).predict_mean(sub.loc[[rid], list(schema.PAIR_COLUMNS)])[0]
                for rid, r in sub.iterrows()
            ]
        )
        return sub[schema.TARGET].to_numpy(), pred

    q = math.inf
    if len(split.calib):
        yc, pc = _mean_residuals(split.calib)
        q = conformal_quantile(yc - pc, alpha)
    yt, pt = _mean_residuals(split.test)
    cover = float(np.mean(np.abs(yt - pt) <= q)) if np.isfinite(q) else math.nan
    row_metrics = regression_metrics(y.iloc[split.test], est.predict(X.iloc[split.test]))
    run_metrics = regression_metrics(yt, pt)
    return CESurrogate(
        estimator=est,
        model=model,
        cycles=cyc,
        quantile=q,
        alpha=alpha,
        test_coverage=cover,
        test_rmse_mean=run_metrics["rmse"],
        fingerprint=surrogate_data_fingerprint(d),
        n_runs=int(g.nunique()),
        metrics={
            **{f"test_row_{k}": v for k, v in row_metrics.items()},
            **{f"test_runmean_{k}": v for k, v in run_metrics.items()},
        },
    )


def cached_surrogate(path: Path, data: pd.DataFrame, **kwargs: Any) -> CESurrogate:
    """:func:`fit_surrogate`, reusing ``path`` when it holds one fitted on the same data and settings.

    A resumed study must keep the objective it started with; the cache guarantees that (and
    saves the fit).  The cache key is the data fingerprint plus every setting.
    """
    import pickle

    missing = [
        c for c in (schema.RUN_ID, schema.TARGET, *SURROGATE_FEATURES) if c not in data.columns
    ]
    if missing:
        raise AnalysisError(f"missing column(s) {', '.join(missing)} (see docs/schema.md)")
    key = {"fingerprint": surrogate_data_fingerprint(data), **dict(sorted(kwargs.items()))}
    if path.is_file():
        try:
            with path.open("rb") as fh:
                saved = pickle.load(fh)
            if saved.get("key") == key:
                return saved["surrogate"]
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass
    sur = fit_surrogate(data, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pickle.dump({"key": key, "surrogate": sur}, fh)
    return sur


def surrogate_data_fingerprint(data: pd.DataFrame) -> str:
    """Hash of the rows the surrogate is trained on (pair energies, cycle, CE, run id)."""
    from seilab.analysis.dataset import CEDataset

    d = data.dropna(subset=[schema.TARGET, *SURROGATE_FEATURES]).reset_index(drop=True)
    return CEDataset(
        X=d[list(SURROGATE_FEATURES)].astype(np.float64),
        y=d[schema.TARGET].astype(np.float64),
        groups=d[schema.RUN_ID].astype(str),
        feature_groups={},
    ).fingerprint()


def pair_ranking(
    surrogate: CESurrogate, data: pd.DataFrame, *, seed: int = 0, n: int = 150
) -> pd.DataFrame:
    """Mean |SHAP| of the pair energies in the surrogate (permutation explainer).

    Parameters
    ----------
    surrogate
        Fitted surrogate.
    data
        Per-cycle data (rows are sampled across simulations as explained points and background).
    seed
        Seed of the sampling and permutations.
    n
        Rows explained (the background has ``n // 2`` rows).

    Returns
    -------
    pandas.DataFrame
        The ranking of :func:`seilab.analysis.explain.shap_ranking` (model = surrogate name).
    """
    from seilab.analysis.explain import explain_model, sample_rows, shap_ranking

    d = data.dropna(subset=[schema.TARGET, *SURROGATE_FEATURES]).reset_index(drop=True)
    X = d[list(SURROGATE_FEATURES)].astype(np.float64)
    rows = sample_rows(X, n, seed=seed, groups=d[schema.RUN_ID])
    bg = sample_rows(X, max(10, n // 2), seed=seed + 1, groups=d[schema.RUN_ID])
    expl = explain_model(surrogate.estimator, bg, rows, seed=seed)
    return shap_ranking(
        {surrogate.model: expl}, {"pairs": schema.PAIR_COLUMNS, "cycle": (schema.CYCLE,)}
    )
