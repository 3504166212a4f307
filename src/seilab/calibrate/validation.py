"""Validation against the paper: the data-set statistics of a campaign next to the paper's.

Calibration (:mod:`seilab.calibrate.search`) fits a model's open knobs to the ORIGINAL engine's
reference run; the paper's own 380-run statistics are kept apart as a validation that nothing is
tuned to.  :func:`validation_rows` computes them for any campaign data set (the ``full`` subset
of :mod:`seilab.calibrate.fidelity` when the campaign is the paper design, otherwise whatever
one-at-a-time runs the design has) and returns ``[statistic, paper, this run]`` rows with every
cell filled: a statistic that cannot be computed says why in words.

The ML headline figures (regressor errors, classifier AUCs, BO convergence) come from the
stages' outputs.  The ``dataset`` stage writes these rows of its campaign (``validation.csv``) and
the report's headline table (:mod:`seilab.report.headline`) appends them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from seilab.calibrate import fidelity as F

#: CE window of the validation (the paper's parity plots accumulate in 90-105 %).
VALIDATION_WINDOW = (90.0, 105.0)

#: The paper's value (or what it says) for each validation statistic (seed paper, model spec 9.3).
PAPER_VALIDATION: dict[str, str] = {
    "share_ce_90_105": "most cycles (parity plots accumulate near 100 %)",
    "share_ce_above_105": "none visible (CE <= 100 % in the parity plots)",
    "ce_intervals_populated_of_9": "9 (10-20 % ... 90-100 %)",
    "fraction_failing": 'a large share ("almost 50 %" fail in cycles 75-83)',
    "runs_cut_by_step_budget": "- (no compute limit reported)",
    "fraction_failing_known": 'a large share ("almost 50 %" fail in cycles 75-83)',
    "failure_cycle_median": "78",
    "failure_cycle_q1_q3": "about 75-83",
    "share_failing_in_75_83": "about 0.5",
    "li_x_pairs_negative_of_6": "most (raising Li-X energies lowers CE)",
    "sfo_li_best_level_ev": "intermediate (BO optimum of SFO-Li inside the range)",
}

_LABELS: dict[str, str] = {
    "share_ce_90_105": "share of cycles with CE in [90, 105] %",
    "share_ce_above_105": "share of cycles with CE above 105 %",
    "ce_intervals_populated_of_9": "CE intervals populated (of 9)",
    "fraction_failing": "fraction of runs failing (CE < 70 %)",
    "runs_cut_by_step_budget": "runs ended by the step budget before failing (outcome unknown)",
    "fraction_failing_known": "fraction failing among runs with a known outcome",
    "failure_cycle_median": "median failure cycle (failing runs)",
    "failure_cycle_q1_q3": "failure cycle, q1-q3 (failing runs)",
    "share_failing_in_75_83": "share of failing runs failing in cycles 75-83",
    "li_x_pairs_negative_of_6": "Li-X pairs whose raise lowers CE (OAT, Spearman < 0)",
    "sfo_li_best_level_ev": "SFO-Li level with the best mean CE (OAT), eV",
}


def run_meta_generic(data: pd.DataFrame, model_pairs: dict[str, float]) -> pd.DataFrame:
    """``kind``/``pair``/``level`` per run for any design, from the pair-energy columns.

    An OAT run's pair is the one pair whose energy differs from the model's value; an OAT run at
    the model's own value belongs to no pair (it cannot be told apart) and is left out.
    """
    from seilab.schema import pair_column

    first = data.groupby("run_id", sort=True).first()
    kinds, prs, levs = [], [], []
    for _, row in first.iterrows():
        kind = str(row.get("design_set", "unknown"))
        pair, level = None, np.nan
        if kind == "oat":
            diff = [
                p
                for p, v in model_pairs.items()
                if pair_column(p) in first.columns and abs(float(row[pair_column(p)]) - v) > 1e-9
            ]
            if len(diff) == 1:
                pair, level = diff[0], float(row[pair_column(diff[0])])
        kinds.append(kind)
        prs.append(pair)
        levs.append(level)
    return pd.DataFrame({"kind": kinds, "pair": prs, "level": levs}, index=first.index)


def validation_stats(
    data: pd.DataFrame, *, model_pairs: dict[str, float], box_height_a: float, design: str
) -> dict[str, Any]:
    """The fidelity statistics of a campaign plus the validation window shares.

    Parameters
    ----------
    data
        Per-cycle data set (``load_dataset``).
    model_pairs
        The model's pair energies (``Model.pair_energies()``): what an OAT run varies from.
    box_height_a
        Box height in Angstrom.
    design
        The campaign's design name (``paper`` uses the paper design's own OAT layout).
    """
    meta = F.run_meta(data, "full") if design == "paper" else run_meta_generic(data, model_pairs)
    s = F.candidate_stats(data, meta, box_height_a=box_height_a)
    ce = data["ce_pct"].to_numpy(dtype=float)
    ce = ce[~np.isnan(ce)]
    lo, hi = VALIDATION_WINDOW
    if ce.size:
        s["share_ce_90_105"] = float(np.mean((ce >= lo) & (ce <= hi)))
    else:
        s["share_ce_90_105"] = F._undef("no cycle with a defined CE")
    q1, q3 = s.get("failure_cycle_q1"), s.get("failure_cycle_q3")
    if isinstance(q1, int | float) and isinstance(q3, int | float):
        s["failure_cycle_q1_q3"] = f"{q1:g}-{q3:g}"
    else:
        s["failure_cycle_q1_q3"] = str(q1)
    return s


#: Rows the failure analysis reports too (the report shows them once, from the failure stage).
FAILURE_KEYS: tuple[str, ...] = ("fraction_failing", "failure_cycle_median", "failure_cycle_q1_q3")


def validation_rows(stats: dict[str, Any], *, keys: bool = False) -> list[list[str]]:
    """``[statistic, paper, this run]`` rows of :data:`PAPER_VALIDATION`, every cell filled.

    With ``keys``, each row starts with the statistic's key (``[key, statistic, paper, this
    run]``).
    """
    rows = []
    for key, paper in PAPER_VALIDATION.items():
        v = stats.get(key, F._undef("not computed"))
        row = [_LABELS[key], paper, F._fmt(v)]
        rows.append([key, *row] if keys else row)
    return rows


def validate_campaign(
    folder, data: pd.DataFrame | None = None, *, keys: bool = False
) -> tuple[list[list[str]], dict[str, Any]]:
    """Validation rows of a campaign folder (its own model, box and design).

    Parameters
    ----------
    folder
        Campaign folder.
    data
        Its per-cycle data set, where the caller has loaded it already.
    keys
        Start each row with the statistic's key (:func:`validation_rows`).

    Returns
    -------
    rows, stats
        :func:`validation_rows` and the raw statistics.
    """
    import tomllib
    from pathlib import Path

    from seilab.campaign import load_dataset
    from seilab.model import load_model
    from seilab.schema import CAMPAIGN_CONFIG

    folder = Path(folder)
    cfg = tomllib.loads((folder / CAMPAIGN_CONFIG).read_text())
    sim = cfg.get("simulator", {})
    model = load_model(sim.get("model", "paper"), sim.get("set") or None)
    box = tuple(sim.get("box") or model.spec.lattice.box)
    if data is None:
        data = load_dataset(folder)
    stats = validation_stats(
        data,
        model_pairs=dict(model.pair_energies()),
        box_height_a=float(box[2]) * float(model.spec.lattice.a_angstrom),
        design=str(cfg.get("campaign", {}).get("design", "")),
    )
    return validation_rows(stats, keys=keys), stats
