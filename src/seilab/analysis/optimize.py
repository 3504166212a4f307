"""``seilab optimize``: Bayesian optimisation of pair energies on a CE surrogate, and its verification.

The objective is a function of the design variables only.  A *surrogate* regressor is trained
on ``[19 pair energies, cycle] -> ce_pct`` (per-cycle rows of the campaign, split by
simulation); the objective of a candidate is its mean predicted CE over cycles ``1..C`` (C = the
longest run in the data, 100 for the paper's campaign):

    objective(E) = 1/C sum_{c=1..C} f(E, c)

Optimised pairs take values on the paper's grid 0.0, 0.1, ..., 1.5 eV (Optuna integer tenths
0..15, so the keys are exact); every other pair stays at its DFT value
(:data:`seilab.analysis.defaults.DFT_PAIR_ENERGIES`).  The search is Optuna's TPE with explicit
settings, stored in an SQLite database that Optuna's own tools open; re-running resumes.

``--verify N`` runs the real simulator (through a ``run_specs`` callable: the campaign runner) at
the N best distinct proposals and the DFT defaults, R replicates each; ``--rounds K`` feeds the
verified results back (ask/tell) and proposes again.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.analysis.defaults import DFT_PAIR_ENERGIES
from seilab.campaign.design import GRID_LEVELS, GRID_STEP_EV
from seilab.errors import AnalysisError

#: Grid of the optimised energies: integer tenths of an eV, 0..15 (0.0..1.5 eV).
GRID_LOW, GRID_HIGH = 0, GRID_LEVELS - 1
#: Default study name inside ``OUT/optuna.db``.
STUDY_NAME = "seilab-ce-bo"
#: Convergence: first trial whose best-so-far is within this many percentage points of the final best.
CONVERGENCE_TOL_PCT = 0.1

RunSpecs = Callable[[list[dict[str, float]], int, Path], pd.DataFrame]


# ---------------------------------------------------------------------- parameter names
def resolve_pairs(names: str | Sequence[str]) -> list[str]:
    """Validate pair names (as in :data:`seilab.schema.PAIRS`, case-insensitive).

    Parameters
    ----------
    names
        ``"SFO-Li,F-Li"`` or a sequence of names.

    Returns
    -------
    list of str
        Canonical pair names, in the order given, without duplicates.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    canon = {p.lower(): p for p in schema.PAIRS}
    canon.update({schema.pair_column(p): p for p in schema.PAIRS})
    out: list[str] = []
    bad: list[str] = []
    for n in names:
        p = canon.get(n.strip().lower())
        if p is None:
            bad.append(n)
        elif p not in out:
            out.append(p)
    if bad:
        raise AnalysisError(
            f"unknown pair name(s) {', '.join(bad)}; allowed: {', '.join(schema.PAIRS)}"
        )
    if not out:
        raise AnalysisError(f"no pair to optimise; allowed: {', '.join(schema.PAIRS)}")
    return out


def full_energies(partial: Mapping[str, float]) -> dict[str, float]:
    """All 19 pair energies: the given ones, the DFT value for the others."""
    return {p: float(partial.get(p, DFT_PAIR_ENERGIES[p])) for p in schema.PAIRS}


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


# ---------------------------------------------------------------------- study
@dataclass
class BOSettings:
    """Optuna settings of the search (all explicit; Optuna 5 changed several defaults).

    Attributes
    ----------
    trials
        Total number of surrogate trials in the study (re-running adds only the missing ones).
    seed
        Sampler seed (a resumed run seeds with ``seed + completed trials`` so that it does not
        replay the first random proposals).
    n_startup_trials
        Random trials before TPE starts modelling.
    n_ei_candidates
        Candidates scored per TPE step.
    multivariate
        Multivariate TPE (joint density over the parameters).
    constant_liar
        Constant-liar heuristic (only useful for parallel workers; off: trials are sequential).
    study_name
        Study name inside the SQLite database.
    """

    trials: int = 150
    seed: int = 0
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = True
    constant_liar: bool = False
    study_name: str = STUDY_NAME


def make_sampler(settings: BOSettings, *, seed: int | None = None):
    """The TPE sampler with every setting explicit."""
    import optuna

    return optuna.samplers.TPESampler(
        seed=settings.seed if seed is None else seed,
        n_startup_trials=settings.n_startup_trials,
        n_ei_candidates=settings.n_ei_candidates,
        multivariate=settings.multivariate,
        group=False,
        constant_liar=settings.constant_liar,
    )


def storage_url(out: str | Path) -> str:
    """SQLite URL of ``OUT/optuna.db``."""
    return f"sqlite:///{(Path(out) / 'optuna.db').resolve()}"


def _n_complete(study) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def open_study(
    out: str | Path, settings: BOSettings, *, attrs: Mapping[str, Any], name: str | None = None
):
    """Create or reopen the study; refuse to resume one made with other parameters or data.

    Parameters
    ----------
    out
        Output folder holding ``optuna.db``.
    settings
        BO settings.
    attrs
        Study user attributes that must match on resume (``params``, ``fingerprint``, ...).
    name
        Study name (default ``settings.study_name``).
    """
    import optuna

    name = name or settings.study_name
    url = storage_url(out)
    Path(out).mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = optuna.storages.RDBStorage(url)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage)
        for k in ("params", "fingerprint", "surrogate_model", "objective"):
            if k in attrs and k in study.user_attrs and study.user_attrs[k] != attrs[k]:
                raise AnalysisError(
                    f"{url}: study {name!r} was run with {k} = {study.user_attrs[k]!r}, not {attrs[k]!r}; "
                    "use another --out or --study-name"
                )
    else:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        for k, v in attrs.items():
            study.set_user_attr(k, v)
    study.sampler = make_sampler(settings, seed=settings.seed + _n_complete(study))
    return study


def make_objective(surrogate: CESurrogate, params: Sequence[str]) -> Callable[[Any], float]:
    """Objective of a trial: mean predicted CE with the trial's energies (others at DFT)."""

    def objective(trial) -> float:
        e = {p: trial.suggest_int(p, GRID_LOW, GRID_HIGH) * GRID_STEP_EV for p in params}
        e = {p: round(v, 1) for p, v in e.items()}
        trial.set_user_attr("energies_ev", e)
        trial.set_user_attr("source", "surrogate")
        return float(surrogate.predict_mean([e])[0])

    return objective


def _n_simulator(study) -> int:
    return sum(
        1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("source") == "simulator"
    )


def run_trials(
    study, objective: Callable[[Any], float], n_total: int, *, progress: bool = True
) -> int:
    """Run trials until the study holds ``n_total`` completed trials; returns how many were added."""
    missing = max(0, n_total - _n_complete(study))
    if missing == 0:
        return 0
    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task("BO trials", total=missing)
            study.optimize(objective, n_trials=missing, callbacks=[lambda s, t: bar.advance(task)])
    else:
        study.optimize(objective, n_trials=missing)
    return missing


def trial_energies(trial, params: Sequence[str]) -> dict[str, float]:
    """Energies (eV) of the optimised pairs of a trial (integer tenths -> eV)."""
    return {p: round(trial.params[p] * GRID_STEP_EV, 1) for p in params}


def history_table(study, params: Sequence[str]) -> pd.DataFrame:
    """One row per completed trial: number, value, best-so-far and energies (eV)."""
    import optuna

    rows = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        rows.append(
            {
                "trial": t.number,
                "value": t.value,
                "source": t.user_attrs.get("source", "surrogate"),
                **{f"{p} (eV)": t.params[p] * GRID_STEP_EV for p in params},
            }
        )
    h = pd.DataFrame(rows).sort_values("trial").reset_index(drop=True)
    h["best_so_far"] = h["value"].cummax()
    return h


def convergence_trial(history: pd.DataFrame, tol: float = CONVERGENCE_TOL_PCT) -> int:
    """First trial whose best-so-far is within ``tol`` percentage points of the final best."""
    final = history["best_so_far"].iloc[-1]
    hit = history.index[history["best_so_far"] >= final - tol]
    return int(history.loc[hit[0], "trial"])


def best_proposals(
    study, params: Sequence[str], n: int, *, exclude: Sequence[Mapping[str, float]] = ()
) -> list[dict]:
    """The ``n`` best distinct surrogate proposals (energies of ``params``), best first."""
    import optuna

    seen = {tuple(round(e[p], 1) for p in params) for e in exclude}
    out = []
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    for t in sorted(trials, key=lambda t: -t.value):
        if t.user_attrs.get("source", "surrogate") != "surrogate":
            continue
        e = trial_energies(t, params)
        key = tuple(e[p] for p in params)
        if key in seen:
            continue
        seen.add(key)
        out.append({"trial": t.number, "value": t.value, "energies": e})
        if len(out) == n:
            break
    return out


# ---------------------------------------------------------------------- verification
def campaign_simulator_options(folder: str | Path | None) -> dict[str, Any]:
    """Simulator options of the campaign that produced a data set (its ``campaign.toml``).

    Verification must simulate what the surrogate learnt from: the same model, box, number of
    cycles and campaign-wide overrides (``--set``) as the campaign, or the simulated CE is not
    comparable with the predicted one.

    Parameters
    ----------
    folder
        Campaign folder; ``None`` or a folder without ``campaign.toml`` gives ``{}``.

    Returns
    -------
    dict
        Keyword options of ``seilab.campaign.run_param_sets``: ``base_model``, ``cycles``,
        ``box``, ``overrides`` and ``workers`` (those the file records).

    Raises
    ------
    AnalysisError
        When ``campaign.toml`` exists but is not valid TOML.
    """
    import tomllib

    if folder is None:
        return {}
    path = Path(folder) / schema.CAMPAIGN_CONFIG
    if not path.is_file():
        return {}
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: not valid TOML ({exc})") from None
    sim, exe = doc.get("simulator", {}), doc.get("execution", {})
    opts: dict[str, Any] = {}
    if sim.get("model") is not None:
        opts["base_model"] = str(sim["model"])
    if sim.get("cycles") is not None:
        opts["cycles"] = int(sim["cycles"])
    if sim.get("box") is not None:
        opts["box"] = [int(v) for v in sim["box"]]
    if sim.get("set"):
        opts["overrides"] = dict(sim["set"])
    if exe.get("backend", "process") == "process" and exe.get("workers") is not None:
        opts["workers"] = int(exe["workers"])
    return opts


def campaign_runner(**options: Any) -> RunSpecs:
    """The campaign machinery's runner ``seilab.campaign.run_param_sets`` as a ``run_specs``.

    Parameters
    ----------
    **options
        Keyword options of ``run_param_sets`` (``base_model``, ``cycles``, ``box``,
        ``overrides``, ``workers``, ``seed``, ...); ``None`` values are left out.

    Returns
    -------
    callable
        ``run_specs(param_sets, replicates, out_dir) -> DataFrame`` (one row per run).
    """
    from seilab.campaign import run_param_sets

    kwargs = {k: v for k, v in options.items() if v is not None}

    def run_specs(specs: list[dict[str, float]], replicates: int, out_dir: Path) -> pd.DataFrame:
        return run_param_sets(specs, replicates, out_dir, **kwargs)

    run_specs.options = kwargs  # type: ignore[attr-defined]  # part of the batch key
    return run_specs


def _simulated_column(df: pd.DataFrame) -> str:
    for c in ("ce_mean_pct", "ce_pct"):
        if c in df.columns:
            return c
    raise AnalysisError(
        f"run_specs returned columns {list(df.columns)}; expected 'spec' and 'ce_mean_pct'"
    )


def verify_campaign_dir(
    run_specs: RunSpecs, specs: list[dict[str, float]], replicates: int, out_dir: Path
) -> Path:
    """Campaign folder of one verification batch: ``out_dir/campaign-<key>``.

    The key hashes the parameter sets, the replicates and the runner's simulator options, so a
    resumed study whose best proposals changed (or a different ``--sim-cycles``) gets a new
    folder instead of a campaign folder that refuses different parameter sets.
    """
    ident = {
        "specs": specs,
        "replicates": int(replicates),
        "simulator": getattr(run_specs, "options", None),
    }
    from seilab.io import stable_hash

    return out_dir / f"campaign-{stable_hash(ident, 12)}"


def simulate(
    run_specs: RunSpecs, specs: list[dict[str, float]], replicates: int, out_dir: Path
) -> pd.DataFrame:
    """Run (or reuse) the simulator on parameter sets; per-spec replicate statistics.

    ``run_specs`` writes its campaign folder to :func:`verify_campaign_dir`; the per-run table it
    returns is kept beside it as ``results.parquet``, so a re-run with the same specs reuses it.

    Returns
    -------
    pandas.DataFrame
        One row per spec: ``spec``, ``simulated_ce_pct`` (replicate mean), ``simulated_std``,
        ``simulated_sem``, ``simulated_min``, ``simulated_max``, ``replicates`` (runs with a
        CE), ``runs_failed`` (runs without one: failed or no charge).
    """
    camp = verify_campaign_dir(run_specs, specs, replicates, out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache = camp.with_name(camp.name + "-results.parquet")
    if cache.is_file():
        raw = pd.read_parquet(cache)
    else:
        raw = run_specs(specs, replicates, camp)
        if not isinstance(raw, pd.DataFrame) or "spec" not in raw.columns:
            raise AnalysisError(
                "run_specs must return a DataFrame with a 'spec' column (index into the specs)"
            )
        raw.to_parquet(cache, index=False)
        (out_dir / f"{camp.name}-specs.json").write_text(
            json.dumps({"specs": specs, "replicates": replicates}, indent=1)
        )
    col = _simulated_column(raw)
    g = raw.groupby("spec")[col]
    stats = pd.DataFrame(
        {
            "simulated_ce_pct": g.mean(),
            "simulated_std": g.std(ddof=1),
            "simulated_min": g.min(),
            "simulated_max": g.max(),
            "replicates": g.count(),
            "runs_failed": g.size() - g.count(),
        }
    )
    stats["simulated_sem"] = stats["simulated_std"] / np.sqrt(stats["replicates"])
    return stats.reset_index()


def _tell_verified(study, params: Sequence[str], rows: pd.DataFrame, round_: int) -> None:
    """Feed simulator results into a study with ask/tell (proposals are on the grid)."""
    import optuna

    dist = {p: optuna.distributions.IntDistribution(GRID_LOW, GRID_HIGH) for p in params}
    told = {
        (t.user_attrs.get("round"), tuple(t.params[p] for p in params))
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("source") == "simulator"
    }
    for _, r in rows.iterrows():
        ints = {p: int(round(r[f"{p} (eV)"] / GRID_STEP_EV)) for p in params}
        if (int(r["round"]), tuple(ints[p] for p in params)) in told:
            continue  # resumed: already recorded
        study.enqueue_trial(ints, skip_if_exists=False)
        t = study.ask(fixed_distributions=dist)
        t.set_user_attr("source", "simulator")
        t.set_user_attr("round", int(round_))
        t.set_user_attr("replicates", int(r["replicates"]))
        t.set_user_attr(
            "simulated_std", float(r["simulated_std"]) if np.isfinite(r["simulated_std"]) else None
        )
        t.set_user_attr("predicted_ce_pct", float(r["predicted_ce_pct"]))
        value = float(r["simulated_ce_pct"])
        if np.isfinite(value):
            study.tell(t, value)
        else:  # every replicate failed: record the attempt, without a value
            study.tell(t, state=optuna.trial.TrialState.FAIL)


# ---------------------------------------------------------------------- the command
@dataclass
class OptimizeResult:
    """What :func:`run_optimization` produced."""

    out: Path
    study_name: str
    storage: str
    params: list[str]
    history: pd.DataFrame
    best: pd.DataFrame
    converged_trial: int
    surrogate: CESurrogate
    verification: pd.DataFrame | None = None
    timings: dict[str, float] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)


def run_optimization(
    folder: str | Path | None,
    out: str | Path,
    *,
    params: str | Sequence[str] | None = None,
    top_k: int = 5,
    ranking: str | Path | None = None,
    settings: BOSettings | None = None,
    surrogate_model: str = "xgboost",
    size: str = "full",
    n_jobs: int = 2,
    alpha: float = 0.1,
    verify: int = 0,
    replicates: int = 3,
    rounds: int = 1,
    run_specs: RunSpecs | None = None,
    simulator_options: Mapping[str, Any] | None = None,
    data: pd.DataFrame | None = None,
    progress: bool = True,
) -> OptimizeResult:
    """Bayesian optimisation of pair energies on the CE surrogate, with optional verification.

    Parameters
    ----------
    folder
        Campaign folder (ignored when ``data`` is given).
    out
        Output folder (``optuna.db`` and the tables and figures).
    params
        Pairs to optimise (``"SFO-Li,F-Li"``); default: the ``top_k`` pairs of the SHAP ranking.
    top_k
        Number of pairs taken from the ranking when ``params`` is not given.
    ranking
        A ``shap_ranking.csv`` from ``seilab analyze ce``; default: SHAP of the surrogate itself.
    settings
        Optuna settings (:class:`BOSettings`).
    surrogate_model
        Regressor of the surrogate (``dense_nn``, ``xgboost``, ``extra_trees``, ``mlp``).
    size
        ``"full"`` or ``"small"`` surrogate.
    n_jobs
        Threads.
    alpha
        Miscoverage of the surrogate's mean-CE interval.
    verify
        Number of best proposals simulated per round (0: no verification).
    replicates
        Replicate seeds per verified parameter set.
    rounds
        Verification rounds; after each round but the last, the simulated runs are added to the
        surrogate's data, the surrogate is refitted, a new study (``<name>-round<k>``) is seeded
        with the verified results (ask/tell) and searched again.
    run_specs
        Simulator callable ``(param_sets, replicates, out_dir) -> DataFrame[spec, seed,
        ce_mean_pct]``; default: :func:`campaign_runner` with ``simulator_options``.
    simulator_options
        Options of ``seilab.campaign.run_param_sets`` (``base_model``, ``cycles``, ``box``,
        ``overrides``, ``workers``, ``seed``) for the default runner; ``None`` values are left
        out.  They replace the campaign's own settings, which the default runner otherwise
        reads from ``folder/campaign.toml`` (:func:`campaign_simulator_options`), so that the
        verification simulates the model, box, cycles and ``--set`` overrides the surrogate was
        trained on.
    data
        Per-cycle data in memory instead of ``folder``.
    progress
        Show progress on stderr.
    """
    import optuna

    from seilab.analysis.ce import StepTimer
    from seilab.analysis.dataset import load_campaign
    from seilab.analysis.regressors import resolve_models
    from seilab.io import versions

    bo = settings or BOSettings()
    if bo.trials < 1:
        raise AnalysisError(f"--trials must be at least 1, got {bo.trials}")
    if verify < 0 or replicates < 1 or rounds < 1:
        raise AnalysisError("--verify must be >= 0, --replicates >= 1 and --rounds >= 1")
    resolve_models([surrogate_model])
    chosen = resolve_pairs(params) if params is not None else None  # validate names before any work
    sim_options: dict[str, Any] = {}
    if verify and run_specs is None:
        # the campaign's own simulator settings, then what the caller gives explicitly
        sim_options = campaign_simulator_options(folder if data is None else None)
        sim_options.update({k: v for k, v in (simulator_options or {}).items() if v is not None})
        run_specs = campaign_runner(**sim_options)
    out = Path(out)
    timer = StepTimer(show=progress)
    source = "in-memory data" if data is not None else str(folder)
    with timer.step("dataset"):
        if data is None:
            if folder is None:
                raise AnalysisError("no campaign folder given")
            data = load_campaign(folder)
    out.mkdir(parents=True, exist_ok=True)  # only once the data are known to be usable
    with timer.step(f"surrogate ({surrogate_model})"):
        surrogate = cached_surrogate(
            out / "surrogate.pkl",
            data,
            model=surrogate_model,
            seed=bo.seed,
            size=size,
            n_jobs=n_jobs,
            alpha=alpha,
        )
    rank_source = "given with --params"
    rank_table = None
    if chosen is None:
        if top_k < 1 or top_k > len(schema.PAIRS):
            raise AnalysisError(f"--top-k must be between 1 and {len(schema.PAIRS)}, got {top_k}")
        from seilab.analysis.explain import top_pairs

        with timer.step("pair ranking"):
            if ranking is not None:
                rp = Path(ranking)
                if not rp.is_file():
                    raise AnalysisError(f"{rp}: ranking table not found")
                rank_table = pd.read_csv(rp)
                need = {"model", "feature", "mean_abs_shap"}
                if not need <= set(rank_table.columns):
                    raise AnalysisError(
                        f"{rp}: missing column(s) {sorted(need - set(rank_table.columns))}"
                    )
                rank_source = f"mean |SHAP| ranking in {rp}"
            else:
                rank_table = pair_ranking(surrogate, data, seed=bo.seed)
                rank_source = f"mean |SHAP| of the pair energies in the {surrogate_model} surrogate"
            chosen = top_pairs(rank_table, top_k)
            rank_table.to_csv(out / "pair_ranking.csv", index=False)
    assert chosen is not None
    attrs = {
        "params": list(chosen),
        "fingerprint": surrogate.fingerprint,
        "surrogate_model": surrogate_model,
        "objective": f"mean predicted ce_pct over cycles 1..{len(surrogate.cycles)}",
        "grid": "integer tenths of eV, 0..15 (0.0..1.5 eV)",
        "optuna_version": optuna.__version__,
        "sampler": {
            "name": "TPESampler",
            **{k: v for k, v in asdict(bo).items() if k not in ("trials", "study_name")},
        },
        "dft_energies_ev": dict(DFT_PAIR_ENERGIES),
    }
    with timer.step(f"BO ({bo.trials} trials)"):
        study = open_study(out, bo, attrs=attrs)
        added = run_trials(study, make_objective(surrogate, chosen), bo.trials, progress=progress)

    files = _write_bo_outputs(out, study, chosen, surrogate, timer)
    hist = files["history"]
    conv = files["converged_trial"]
    best_table = files["best"]

    verification = None
    if verify:
        assert run_specs is not None
        with timer.step(f"verification ({rounds} round(s))"):
            verification = verify_loop(
                out,
                study,
                chosen,
                surrogate,
                data,
                run_specs,
                n=verify,
                replicates=replicates,
                rounds=rounds,
                settings=bo,
                attrs=attrs,
                size=size,
                n_jobs=n_jobs,
                alpha=alpha,
                progress=progress,
            )

    best_e = {**dict(DFT_PAIR_ENERGIES), **trial_energies(study.best_trial, chosen)}
    dft_pred = float(surrogate.predict_mean([dict(DFT_PAIR_ENERGIES)])[0])
    summary = {
        "command": "seilab optimize",
        "source": source,
        "storage": storage_url(out),
        "study_name": bo.study_name,
        "optuna_version": optuna.__version__,
        "sampler": attrs["sampler"],
        "trials": _n_complete(study),
        "trials_added_this_run": added,
        "params": chosen,
        "params_chosen_by": rank_source,
        "objective": attrs["objective"] + " with the other pairs at their DFT values",
        "surrogate": {
            "model": surrogate_model,
            "size": size,
            "simulations": surrogate.n_runs,
            "interval_halfwidth_pct": surrogate.quantile,
            "interval_level": 1 - alpha,
            "test_coverage_runmean": surrogate.test_coverage,
            **surrogate.metrics,
        },
        "best_value_pct": study.best_value,
        "best_trial": study.best_trial.number,
        "best_energies_ev": {p: best_e[p] for p in chosen},
        "dft_predicted_pct": dft_pred,
        "converged_trial": conv,
        "convergence_rule": f"first trial whose best-so-far is within {CONVERGENCE_TOL_PCT} percentage points of the final best",
        "timings_s": timer.timings,
        "versions": versions(),
    }
    if verification is not None:
        summary["verification"] = verification_verdict(verification)
        if sim_options:
            summary["verification"]["simulator_options"] = sim_options
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return OptimizeResult(
        out=out,
        study_name=bo.study_name,
        storage=storage_url(out),
        params=list(chosen),
        history=hist,
        best=best_table,
        converged_trial=conv,
        surrogate=surrogate,
        verification=verification,
        timings=timer.timings,
        summary=summary,
    )


def _write_bo_outputs(
    out: Path, study, params: Sequence[str], surrogate: CESurrogate, timer
) -> dict[str, Any]:
    """History, best-vs-DFT table, 2D curves and the SFO-Li x F-Li surface."""
    from seilab.plotting import ce as plots
    from seilab.plotting.style import save_figure

    hist = history_table(study, params)
    conv = convergence_trial(hist)
    hist.to_csv(out / "history.csv", index=False)
    best_e = full_energies(trial_energies(study.best_trial, params))
    dft = dict(DFT_PAIR_ENERGIES)
    best_table = pd.DataFrame(
        {
            "pair": list(schema.PAIRS),
            "optimised": [p in params for p in schema.PAIRS],
            "best_ev": [best_e[p] for p in schema.PAIRS],
            "dft_ev": [dft[p] for p in schema.PAIRS],
        }
    )
    best_table["delta_ev"] = best_table["best_ev"] - best_table["dft_ev"]
    pred = surrogate.predict_mean([best_e, dft])
    lo, hi = surrogate.interval(pred)
    best_table.attrs["predicted"] = pred
    best_table.to_csv(out / "best_energies.csv", index=False)
    pd.DataFrame(
        {
            "setting": ["BO optimum", "DFT defaults"],
            "predicted_ce_pct": pred,
            "lower": lo,
            "upper": hi,
        }
    ).to_csv(out / "best_vs_dft_prediction.csv", index=False)
    with timer.step("BO plots"):
        save_figure(plots.optimisation_history(hist, converged_trial=conv), out / "history.png")
        grid = np.round(np.arange(GRID_LOW, GRID_HIGH + 1) * GRID_STEP_EV, 1)
        curves: dict[str, pd.DataFrame] = {}
        for p in params:
            sets = [{**best_e, p: float(v)} for v in grid]
            m = surrogate.predict_mean(sets)
            cl, ch = surrogate.interval(m)
            curves[p] = pd.DataFrame(
                {"pair": p, "energy_ev": grid, "ce_pct": m, "lower": cl, "upper": ch}
            )
        pd.concat(curves.values(), ignore_index=True).to_csv(out / "pair_curves.csv", index=False)
        save_figure(
            plots.pair_curves(curves, dft, {p: best_e[p] for p in params}), out / "pair_curves.png"
        )
        a, b = "SFO-Li", "F-Li"
        sets = [{**best_e, a: float(x), b: float(yv)} for yv in grid for x in grid]
        z = surrogate.predict_mean(sets).reshape(len(grid), len(grid))
        pd.DataFrame(
            {
                f"{a} (eV)": np.tile(grid, len(grid)),
                f"{b} (eV)": np.repeat(grid, len(grid)),
                "ce_pct": z.ravel(),
            }
        ).to_csv(out / "surface_sfo-li_f-li.csv", index=False)
        fig = plots.surface_3d(
            grid,
            grid,
            z,
            names=(a, b),
            dft=(dft[a], dft[b]),
            best=(best_e[a], best_e[b]),
        )
        save_figure(fig, out / "surface_sfo-li_f-li.png")
    return {"history": hist, "converged_trial": conv, "best": best_table}


def verify_loop(
    out: Path,
    study,
    params: Sequence[str],
    surrogate: CESurrogate,
    data: pd.DataFrame,
    run_specs: RunSpecs,
    *,
    n: int,
    replicates: int,
    rounds: int,
    settings: BOSettings,
    attrs: Mapping[str, Any],
    size: str = "full",
    n_jobs: int = 2,
    alpha: float = 0.1,
    progress: bool = False,
) -> pd.DataFrame:
    """Simulate the best proposals (and the DFT defaults), feed the results back, repeat.

    Round ``r`` simulates the ``n`` best distinct, not yet simulated proposals of the current
    study (round 0: the main study; the DFT defaults are simulated in round 0 too).  Results are
    told to the study ``<name>-verified`` (the record of simulator evaluations).  Between rounds,
    runs written by ``run_specs`` as a campaign folder are added to the data, the surrogate is
    refitted, and a new study ``<name>-round<r>`` is seeded with every verified result (ask/tell)
    before its ``settings.trials`` surrogate trials propose the next batch.

    Returns
    -------
    pandas.DataFrame
        The verification report (also written as ``verification.csv`` and ``.png``).
    """
    from seilab.campaign import load_dataset
    from seilab.plotting import ce as plots
    from seilab.plotting.style import save_figure

    verified_study = open_study(
        out,
        settings,
        attrs={**attrs, "purpose": "simulator results"},
        name=f"{settings.study_name}-verified",
    )
    reports: list[pd.DataFrame] = []
    cur_study, cur_sur, cur_data = study, surrogate, data
    done: list[dict[str, float]] = []
    for r in range(rounds):
        props = best_proposals(cur_study, params, n, exclude=done)
        if not props and r > 0:
            break
        specs = [full_energies(p["energies"]) for p in props]
        labels = [f"round {r} proposal {i + 1}" for i in range(len(props))]
        if r == 0:
            specs.append(dict(DFT_PAIR_ENERGIES))
            labels.append("DFT defaults")
        rdir = out / "verify" / f"round{r}"
        sim = simulate(run_specs, specs, replicates, rdir)
        pred = cur_sur.predict_mean(specs)
        lo, hi = cur_sur.interval(pred)
        rep = pd.DataFrame(
            {
                "round": r,
                "label": labels,
                **{f"{p} (eV)": [s[p] for s in specs] for p in params},
                "predicted_ce_pct": pred,
                "predicted_lower": lo,
                "predicted_upper": hi,
            }
        )
        rep["spec"] = np.arange(len(specs))
        rep = rep.merge(sim, on="spec", how="left")
        rep["within_interval"] = (rep["simulated_ce_pct"] >= rep["predicted_lower"]) & (
            rep["simulated_ce_pct"] <= rep["predicted_upper"]
        )
        reports.append(rep)
        on_grid = rep[rep["label"] != "DFT defaults"]
        _tell_verified(verified_study, params, on_grid, r)
        done += [p["energies"] for p in props]
        if r + 1 < rounds:
            try:
                extra = load_dataset(verify_campaign_dir(run_specs, specs, replicates, rdir))
                extra = extra.assign(
                    **{schema.RUN_ID: f"verify{r}-" + extra[schema.RUN_ID].astype(str)}
                )
                cur_data = pd.concat([cur_data, extra], ignore_index=True, sort=False)
            except (AnalysisError, OSError, ValueError, KeyError):
                pass  # the runner wrote no campaign folder: refit on the data we have
            cur_sur = fit_surrogate(
                cur_data,
                model=cur_sur.model,
                seed=settings.seed + r + 1,
                size=size,
                n_jobs=n_jobs,
                alpha=alpha,
            )
            cur_study = open_study(
                out,
                settings,
                attrs={**attrs, "fingerprint": cur_sur.fingerprint, "round": r + 1},
                name=f"{settings.study_name}-round{r + 1}",
            )
            allv = pd.concat(reports, ignore_index=True)
            _tell_verified(cur_study, params, allv[allv["label"] != "DFT defaults"], r)
            n_sim = _n_simulator(cur_study)
            run_trials(
                cur_study,
                make_objective(cur_sur, params),
                settings.trials + n_sim,
                progress=progress,
            )
    report = pd.concat(reports, ignore_index=True).drop(columns=["spec"])
    dft_sim = report.loc[report["label"] == "DFT defaults", "simulated_ce_pct"]
    if len(dft_sim):
        report["delta_vs_dft_pct"] = report["simulated_ce_pct"] - float(dft_sim.iloc[0])
    report.to_csv(out / "verification.csv", index=False)
    save_figure(plots.verification(report), out / "verification.png")
    return report


def verification_verdict(report: pd.DataFrame) -> dict[str, Any]:
    """Does the surrogate's optimum hold in the simulator?

    The best simulated proposal must beat the simulated DFT defaults by more than two combined
    standard errors of the replicate means; the interval coverage of the predictions is
    reported alongside.
    """
    props = report[report["label"] != "DFT defaults"]
    dft = report[report["label"] == "DFT defaults"]
    out: dict[str, Any] = {
        "proposals_simulated": len(props),
        "predictions_within_interval": float(report["within_interval"].mean())
        if len(report)
        else math.nan,
    }
    if len(props) == 0 or len(dft) == 0:
        out["holds"] = None
        return out
    ok = props[np.isfinite(props["simulated_ce_pct"])]
    d = dft.iloc[0]
    if len(ok) == 0 or not np.isfinite(d["simulated_ce_pct"]):
        out["holds"] = None
        out["note"] = "no simulated CE for the proposals or for the DFT defaults (runs failed)"
        return out
    best = ok.sort_values("simulated_ce_pct", ascending=False).iloc[0]
    diff = float(best["simulated_ce_pct"] - d["simulated_ce_pct"])
    rule = "best simulated proposal exceeds the simulated DFT defaults by more than 2 combined SEMs"
    out.update(
        {
            "best_proposal": str(best["label"]),
            "best_simulated_pct": float(best["simulated_ce_pct"]),
            "dft_simulated_pct": float(d["simulated_ce_pct"]),
            "difference_pct": diff,
            "rule": rule,
        }
    )
    sems = (float(best["simulated_sem"]), float(d["simulated_sem"]))
    if not all(np.isfinite(sems)):
        # one replicate has no spread: a single run cannot tell an optimum from noise
        out["combined_sem_pct"] = None
        out["holds"] = None
        out["note"] = "no verdict: it needs at least 2 replicates with a CE per set (--replicates)"
        return out
    se = math.hypot(*sems)
    out["combined_sem_pct"] = se
    out["holds"] = bool(diff > 2 * se)
    return out


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call ``fn`` and return its result with the wall time in seconds."""
    t0 = time.perf_counter()
    res = fn(*args, **kwargs)
    return res, time.perf_counter() - t0
