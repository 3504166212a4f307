"""The CE surrogate of the optimisation: fitted on [pair energies, cycle] -> CE, cached, ranked."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.defaults import full_energies
from seilab.campaign.design import GRID_STEP_EV
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
    ce_range
        ``(min, max)`` of the per-cycle CE the estimator was trained on: per-cycle predictions
        are clipped to it (a tree ensemble adds corrections learnt in different regions and
        can predict CE above anything simulated, e.g. above 100 %).
    support
        Pair energies (eV, the 19 columns) of the training simulations: where the data are.
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
    ce_range: tuple[float, float] | None = None
    support: np.ndarray | None = None

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
        if self.ce_range is not None:
            pred = np.clip(pred, *self.ce_range)
        return pred.reshape(k, c).mean(axis=1)

    def support_distance(
        self, energies: Sequence[Mapping[str, float]], pairs: Sequence[str]
    ) -> tuple[np.ndarray, float]:
        """Distance (eV) from each candidate to the nearest training simulation, in the
        subspace of ``pairs``, and the reference distance of the data to themselves.

        Returns
        -------
        distances : numpy.ndarray
            One per candidate (NaN without recorded support).
        reference : float
            95th percentile of the nearest-neighbour distances among the training simulations
            in the same subspace (at least half a grid step): a candidate within it is as close
            to the data as the data are to each other.
        """
        if self.support is None or len(self.support) < 2:
            return np.full(len(energies), np.nan), math.nan
        idx = [schema.PAIRS.index(p) for p in pairs]
        S = np.unique(self.support[:, idx], axis=0)
        C = np.array([[full_energies(e)[p] for p in pairs] for e in energies], dtype=np.float64)
        d = np.sqrt(((C[:, None, :] - S[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
        if len(S) < 2:
            return d, GRID_STEP_EV / 2
        dd = np.sqrt(((S[:, None, :] - S[None, :, :]) ** 2).sum(axis=2))
        np.fill_diagonal(dd, np.inf)
        ref = max(float(np.quantile(dd.min(axis=1), 0.95)), GRID_STEP_EV / 2)
        return d, ref

    def support_penalty(
        self, energies: Sequence[Mapping[str, float]], pairs: Sequence[str], weight: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """Penalty (percentage points) for candidates away from the data, and their distance.

        ``weight`` half-widths of the objective's interval (or a tenth of the CE range when the
        interval is infinite) per reference distance beyond the reference distance.
        """
        d, ref = self.support_distance(energies, pairs)
        if weight <= 0 or not np.isfinite(ref):
            return np.zeros(len(d)), d
        scale = self.quantile
        if not np.isfinite(scale):
            lo, hi = self.ce_range or (0.0, 100.0)
            scale = (hi - lo) / 10
        return weight * scale * np.maximum(0.0, d - ref) / ref, d

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
    from seilab.analysis.regressors import fit_grouped, make_regressor, regression_metrics
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

    est = make_regressor(model, seed=seed, size=size, n_jobs=n_jobs)
    fit_grouped(est, X.iloc[split.train], y.iloc[split.train], g.iloc[split.train])
    runs = _run_means(d)
    runs.index = runs.index.astype(str)
    ce_lo, ce_hi = float(y.iloc[split.train].min()), float(y.iloc[split.train].max())

    def _mean_residuals(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.unique(g.iloc[idx])
        sub = runs.loc[ids]
        # the run's own cycles (a run may end early): average the prediction over them
        pred = np.array(
            [
                CESurrogate(
                    estimator=est,
                    model=model,
                    cycles=np.arange(1, int(r[schema.CYCLE]) + 1.0),
                    ce_range=(ce_lo, ce_hi),
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
    row_pred = np.clip(est.predict(X.iloc[split.test]), ce_lo, ce_hi)
    row_metrics = regression_metrics(y.iloc[split.test], row_pred)
    run_metrics = regression_metrics(yt, pt)
    cov_lo, cov_hi = wilson_interval(int(np.sum(np.abs(yt - pt) <= q)), len(yt))
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
        ce_range=(float(y.iloc[split.train].min()), float(y.iloc[split.train].max())),
        support=runs.loc[np.unique(g.iloc[split.train]), list(schema.PAIR_COLUMNS)].to_numpy(
            np.float64
        ),
        metrics={
            **{f"test_row_{k}": v for k, v in row_metrics.items()},
            **{f"test_runmean_{k}": v for k, v in run_metrics.items()},
            "test_coverage_runmean_ci95_low": cov_lo,
            "test_coverage_runmean_ci95_high": cov_hi,
            "test_simulations": len(yt),
        },
    )


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (95 % for ``z = 1.96``)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def surrogate_cache_key(data: pd.DataFrame, **kwargs: Any) -> dict[str, Any]:
    """What a fitted surrogate depends on: the data fingerprint plus every :func:`fit_surrogate`
    setting (the ``bo`` stage keeps a fitted surrogate under this key).

    Raises
    ------
    AnalysisError
        The data lack the run id, the target or a surrogate feature.
    """
    missing = [
        c for c in (schema.RUN_ID, schema.TARGET, *SURROGATE_FEATURES) if c not in data.columns
    ]
    if missing:
        raise AnalysisError(f"missing column(s) {', '.join(missing)} (see docs/schema.md)")
    return {"fingerprint": surrogate_data_fingerprint(data), **dict(sorted(kwargs.items()))}


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
    surrogate: CESurrogate,
    data: pd.DataFrame,
    *,
    seed: int = 0,
    n: int = 150,
    repeats: int = 5,
    size: str = "full",
    n_jobs: int = 2,
) -> pd.DataFrame:
    """Stable mean |SHAP| ranking of the pair energies for the surrogate's model.

    The surrogate's regressor type is refitted ``repeats`` times on 80 % of the simulations
    with a shadow (permuted) copy of every input, and explained on the other simulations
    (:func:`seilab.analysis.explain.stable_ranking`): a pair is ``selected`` when it beats every
    shadow in at least 80 % of the refits.

    Parameters
    ----------
    surrogate
        Fitted surrogate (its ``model`` is the regressor that is refitted).
    data
        Per-cycle data.
    seed
        Seed of the subsamples, permutations and models.
    n
        Rows explained per refit (the background has ``n // 2`` rows).
    repeats
        Refits.
    size, n_jobs
        Model size and threads.

    Returns
    -------
    pandas.DataFrame
        The table of :func:`seilab.analysis.explain.stable_ranking` (model = surrogate name).
    """
    from seilab.analysis.explain import stable_ranking

    d = data.dropna(subset=[schema.TARGET, *SURROGATE_FEATURES]).reset_index(drop=True)
    X = d[list(SURROGATE_FEATURES)].astype(np.float64)
    return stable_ranking(
        X,
        d[schema.TARGET].astype(np.float64),
        d[schema.RUN_ID].astype(str),
        models=(surrogate.model,),
        repeats=repeats,
        seed=seed,
        size=size,
        n_jobs=n_jobs,
        n_explain=n,
        n_background=max(10, n // 2),
        feature_groups={"pairs": schema.PAIR_COLUMNS, "cycle": (schema.CYCLE,)},
    )
