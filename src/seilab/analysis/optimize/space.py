"""The search space (pair names, the energy grid) and the Optuna study: settings, objective, trials, history."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from seilab import schema
from seilab.campaign.design import GRID_LEVELS, GRID_STEP_EV
from seilab.errors import AnalysisError

if TYPE_CHECKING:  # pragma: no cover
    from seilab.analysis.optimize.surrogate import CESurrogate


#: Grid of the optimised energies: integer tenths of an eV, 0..15 (0.0..1.5 eV).
GRID_LOW, GRID_HIGH = 0, GRID_LEVELS - 1
#: Default study name inside the Optuna storage (the ``bo`` stage's ``optuna.db``).
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


# ---------------------------------------------------------------------- the recipe
#: Surrogate sizes.
SIZES = ("full", "small")


@dataclass(frozen=True)
class BOSettings:
    """The whole recipe of the optimisation: pairs, surrogate, Optuna study and verification.

    One object, built once by ``seilab optimize`` or the ``bo`` stage of ``seilab run`` and
    passed as is to :func:`seilab.stages.bo_run.run_optimization`; :meth:`settings_hash` is what
    ``seilab run`` compares to resume.  Every Optuna setting is explicit (Optuna 5 changed
    several defaults).  Invalid values raise :class:`~seilab.errors.AnalysisError` when the
    object is built, before any work.

    Attributes
    ----------
    params
        Pairs to optimise (canonical names of :data:`seilab.schema.PAIRS`; a string
        ``"SFO-Li,F-Li"`` or any case is accepted and canonicalised).  ``None``: the ``top_k``
        pairs of a SHAP ranking.
    top_k
        Number of pairs taken from the ranking when ``params`` is ``None``.
    surrogate
        Regressor of the surrogate (``dense_nn``, ``xgboost``, ``extra_trees``, ``mlp``).
    size
        ``"full"`` or ``"small"`` surrogate.
    alpha
        Miscoverage of the surrogate's mean-CE interval.
    n_jobs
        Threads (not part of :meth:`identity`: they do not change what is computed).
    trials
        Total number of surrogate trials in the study (re-running adds only the missing ones).
    seed
        Seed of the surrogate and of the sampler (a resumed run seeds the sampler with
        ``seed + completed trials`` so that it does not replay the first random proposals).
    n_startup_trials
        Random trials before TPE starts modelling.
    n_ei_candidates
        Candidates scored per TPE step.
    multivariate
        Multivariate TPE (joint density over the parameters).
    constant_liar
        Constant-liar heuristic (only useful for parallel workers; off: trials are sequential).
    study_name
        Study name inside the Optuna storage.
    support_penalty
        Weight of the penalty for proposals away from the data: the objective loses this many
        interval half-widths per reference distance (the data's own nearest-neighbour spacing,
        in the subspace of the optimised pairs) beyond that distance; 0 disables it.
    verify
        Best proposals simulated per verification round (0: no verification).
    replicates
        Replicate seeds per verified parameter set.
    rounds
        Verification rounds; after each round but the last the simulated runs join the data,
        the surrogate is refitted and a new study ``<study_name>-round<k>`` is seeded with the
        verified results (ask/tell) and searched again.
    """

    params: tuple[str, ...] | None = None
    top_k: int = 5
    surrogate: str = "xgboost"
    size: str = "full"
    alpha: float = 0.1
    n_jobs: int = 2
    trials: int = 150
    seed: int = 0
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = True
    constant_liar: bool = False
    study_name: str = STUDY_NAME
    support_penalty: float = 1.0
    verify: int = 0
    replicates: int = 3
    rounds: int = 1

    def __post_init__(self) -> None:
        if self.params is not None:
            # canonical names, so that equal recipes hash equally whatever the spelling
            object.__setattr__(self, "params", tuple(resolve_pairs(self.params)))
        elif not 1 <= self.top_k <= len(schema.PAIRS):
            raise AnalysisError(
                f"--top-k must be between 1 and {len(schema.PAIRS)}, got {self.top_k}"
            )
        if self.surrogate not in schema.REGRESSOR_TITLES:
            raise AnalysisError(
                f"unknown surrogate {self.surrogate!r}; allowed: {', '.join(schema.REGRESSOR_TITLES)}"
            )
        if self.size not in SIZES:
            raise AnalysisError(f"--size must be 'full' or 'small', got {self.size!r}")
        if not 0 < self.alpha < 1:
            raise AnalysisError(f"alpha must be between 0 and 1, got {self.alpha}")
        if self.trials < 1:
            raise AnalysisError(f"--trials must be at least 1, got {self.trials}")
        if self.n_startup_trials < 0:
            raise AnalysisError(f"--startup must be >= 0, got {self.n_startup_trials}")
        if self.verify < 0 or self.replicates < 1 or self.rounds < 1:
            raise AnalysisError("--verify must be >= 0, --replicates >= 1 and --rounds >= 1")
        if not self.study_name:
            raise AnalysisError("--study-name must not be empty")

    def to_dict(self) -> dict[str, Any]:
        """The recipe as plain data (round-trips through ``BOSettings(**d)``)."""
        d = asdict(self)
        d["params"] = None if self.params is None else list(self.params)
        return d

    def identity(self) -> dict[str, Any]:
        """What decides the results: :meth:`to_dict` without ``n_jobs``."""
        d = self.to_dict()
        d.pop("n_jobs")
        return d

    def settings_hash(self) -> str:
        """Stable hash of :meth:`identity` (16 hex digits; :func:`seilab.io.stable_hash`)."""
        from seilab.io import stable_hash

        return stable_hash(self.identity(), 16)

    def sampler_settings(self) -> dict[str, Any]:
        """The TPE sampler's settings (recorded in the study and the summary)."""
        return {
            "seed": self.seed,
            "n_startup_trials": self.n_startup_trials,
            "n_ei_candidates": self.n_ei_candidates,
            "multivariate": self.multivariate,
            "constant_liar": self.constant_liar,
        }


# ---------------------------------------------------------------------- study
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


def _n_complete(study) -> int:
    import optuna

    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def open_study(
    storage: Any, settings: BOSettings, *, attrs: Mapping[str, Any], name: str | None = None
):
    """Create or reopen the study; refuse to resume one made with other parameters or data.

    Parameters
    ----------
    storage
        An Optuna storage or its URL (the ``bo`` stage gives the SQLite URL of its
        ``optuna.db``: :func:`seilab.stages.bo.study_storage`).
    settings
        The recipe (its sampler settings and study name).
    attrs
        Study user attributes that must match on resume (``params``, ``fingerprint``, ...).
    name
        Study name (default ``settings.study_name``).

    Raises
    ------
    AnalysisError
        The study exists and was run with other ``params``, data, surrogate or objective.
    """
    import optuna

    name = name or settings.study_name
    where = storage if isinstance(storage, str) else "the storage"
    if isinstance(storage, str):
        storage = optuna.storages.RDBStorage(storage)
    existing = {s.study_name for s in optuna.get_all_study_summaries(storage)}
    if name in existing:
        study = optuna.load_study(study_name=name, storage=storage)
        for k in ("params", "fingerprint", "surrogate_model", "objective"):
            if k in attrs and k in study.user_attrs and study.user_attrs[k] != attrs[k]:
                raise AnalysisError(
                    f"{where}: study {name!r} was run with {k} = {study.user_attrs[k]!r}, not {attrs[k]!r}; "
                    "use another --out or --study-name"
                )
    else:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
        for k, v in attrs.items():
            study.set_user_attr(k, v)
    study.sampler = make_sampler(settings, seed=settings.seed + _n_complete(study))
    return study


def make_objective(
    surrogate: CESurrogate, params: Sequence[str], support_penalty: float = 1.0
) -> Callable[[Any], float]:
    """Objective of a trial: mean predicted CE with the trial's energies (others at DFT),
    per-cycle predictions clipped to the CE seen in training, minus the support penalty
    (:meth:`CESurrogate.support_penalty`, ``support_penalty`` half-widths per reference
    distance beyond the data)."""

    def objective(trial) -> float:
        e = {p: trial.suggest_int(p, GRID_LOW, GRID_HIGH) * GRID_STEP_EV for p in params}
        e = {p: round(v, 1) for p, v in e.items()}
        trial.set_user_attr("energies_ev", e)
        trial.set_user_attr("source", "surrogate")
        pred = float(surrogate.predict_mean([e])[0])
        pen, dist = surrogate.support_penalty([e], params, support_penalty)
        trial.set_user_attr("predicted_ce_pct", pred)
        trial.set_user_attr("support_distance_ev", float(dist[0]))
        trial.set_user_attr("support_penalty_pct", float(pen[0]))
        return pred - float(pen[0])

    return objective


def _n_simulator(study) -> int:
    return sum(
        1 for t in study.get_trials(deepcopy=False) if t.user_attrs.get("source") == "simulator"
    )


def missing_trials(study, n_total: int) -> int:
    """How many trials :func:`run_trials` adds to reach ``n_total`` completed trials."""
    return max(0, n_total - _n_complete(study))


def run_trials(
    study,
    objective: Callable[[Any], float],
    n_total: int,
    *,
    callbacks: Sequence[Callable[[Any, Any], None]] = (),
) -> int:
    """Run trials until the study holds ``n_total`` completed trials; returns how many were added.

    ``callbacks`` are Optuna's ``(study, trial)`` callbacks (the stage's progress bar).
    """
    missing = missing_trials(study, n_total)
    if missing:
        study.optimize(objective, n_trials=missing, callbacks=list(callbacks) or None)
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
