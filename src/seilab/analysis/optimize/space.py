"""The search space (pair names, the energy grid) and the Optuna study: settings, objective, trials, history."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from seilab import schema
from seilab.analysis.defaults import DFT_PAIR_ENERGIES
from seilab.campaign.design import GRID_LEVELS, GRID_STEP_EV
from seilab.errors import AnalysisError

if TYPE_CHECKING:  # pragma: no cover
    from seilab.analysis.optimize.surrogate import CESurrogate


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
    support_penalty
        Weight of the penalty for proposals away from the data: the objective loses this many
        interval half-widths per reference distance (the data's own nearest-neighbour spacing,
        in the subspace of the optimised pairs) beyond that distance; 0 disables it.
    """

    trials: int = 150
    seed: int = 0
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = True
    constant_liar: bool = False
    study_name: str = STUDY_NAME
    support_penalty: float = 1.0


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
