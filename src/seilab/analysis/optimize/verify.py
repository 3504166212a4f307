"""Verification results: told to the study, compared with the prediction, the verdict."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from seilab.analysis.defaults import DFT_PAIR_ENERGIES
from seilab.analysis.optimize.space import GRID_HIGH, GRID_LOW, GRID_STEP_EV

if TYPE_CHECKING:  # pragma: no cover
    from seilab.analysis.optimize.surrogate import CESurrogate


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


def best_vs_dft(
    surrogate: CESurrogate, best: Mapping[str, float], params: Sequence[str]
) -> pd.DataFrame:
    """Predicted mean CE at the optimum and at the DFT energies, with what supports it.

    Returns
    -------
    pandas.DataFrame
        Rows ``BO optimum`` and ``DFT defaults``: ``predicted_ce_pct`` (per-cycle predictions
        clipped to the training CE range ``ce_min_pct``..``ce_max_pct``), ``lower``, ``upper``
        (conformal interval of a simulation's mean CE), ``support_distance_ev`` (to the nearest
        training simulation in the subspace of the optimised pairs), ``support_reference_ev``,
        ``supported`` (distance within the reference) and ``predicted_gain_pct`` (optimum minus
        DFT, on the optimum's row).
    """
    sets = [dict(best), dict(DFT_PAIR_ENERGIES)]
    pred = surrogate.predict_mean(sets)
    lo, hi = surrogate.interval(pred)
    dist, ref = surrogate.support_distance(sets, params)
    ce_lo, ce_hi = surrogate.ce_range or (math.nan, math.nan)
    return pd.DataFrame(
        {
            "setting": ["BO optimum", "DFT defaults"],
            "predicted_ce_pct": pred,
            "lower": lo,
            "upper": hi,
            "ce_min_pct": ce_lo,
            "ce_max_pct": ce_hi,
            "support_distance_ev": dist,
            "support_reference_ev": ref,
            "supported": dist <= ref + 1e-9,
            "predicted_gain_pct": [pred[0] - pred[1], math.nan],
        }
    )
