"""``seilab optimize``: Bayesian optimisation of pair energies on a CE surrogate, and its verification.

The objective is a function of the design variables only.  A *surrogate* regressor is trained
on ``[19 pair energies, cycle] -> ce_pct`` (per-cycle rows of the campaign, split by
simulation); the objective of a candidate is its mean predicted CE over cycles ``1..C`` (C = the
longest run in the data, 100 for the paper's campaign):

    objective(E) = 1/C sum_{c=1..C} f(E, c)

Optimised pairs take values on the paper's grid 0.0, 0.1, ..., 1.5 eV (Optuna integer tenths
0..15, so the keys are exact); every other pair stays at its DFT value
(:data:`seilab.analysis.defaults.DFT_PAIR_ENERGIES`).  The search is Optuna's TPE with explicit
settings (:class:`BOSettings`, the whole recipe), in an Optuna storage the caller gives (the
``bo`` stage: an SQLite database that Optuna's own tools open); re-running resumes.

``--verify N`` runs the real simulator (through a ``run_specs`` callable: the campaign runner) at
the N best distinct proposals and the DFT defaults, R replicates each; ``--rounds K`` feeds the
verified results back (ask/tell) and proposes again.
"""

from __future__ import annotations

from seilab.analysis.defaults import full_energies
from seilab.analysis.optimize.space import (
    CONVERGENCE_TOL_PCT,
    GRID_HIGH,
    GRID_LOW,
    GRID_STEP_EV,
    SIZES,
    STUDY_NAME,
    BOSettings,
    RunSpecs,
    _n_complete,
    _n_simulator,
    best_proposals,
    convergence_trial,
    history_table,
    make_objective,
    make_sampler,
    missing_trials,
    open_study,
    resolve_pairs,
    run_trials,
    trial_energies,
)
from seilab.analysis.optimize.surrogate import (
    SURROGATE_FEATURES,
    CESurrogate,
    _run_means,
    fit_surrogate,
    pair_ranking,
    surrogate_cache_key,
    surrogate_data_fingerprint,
    wilson_interval,
)
from seilab.analysis.optimize.verify import _tell_verified, best_vs_dft, timed, verification_verdict

__all__ = [
    "BOSettings",
    "CESurrogate",
    "CONVERGENCE_TOL_PCT",
    "GRID_HIGH",
    "GRID_LOW",
    "GRID_STEP_EV",
    "RunSpecs",
    "SIZES",
    "STUDY_NAME",
    "SURROGATE_FEATURES",
    "_n_complete",
    "_n_simulator",
    "_run_means",
    "_tell_verified",
    "best_proposals",
    "best_vs_dft",
    "convergence_trial",
    "fit_surrogate",
    "full_energies",
    "history_table",
    "make_objective",
    "make_sampler",
    "missing_trials",
    "open_study",
    "pair_ranking",
    "resolve_pairs",
    "run_trials",
    "surrogate_cache_key",
    "surrogate_data_fingerprint",
    "timed",
    "trial_energies",
    "verification_verdict",
    "wilson_interval",
]
