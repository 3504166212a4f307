"""Fidelity study: which settings of the open knobs make the simulated data set look like the paper's.

The paper's 380-run data set (seed paper, model spec ``ai-kmc-model.md`` section 9) is compared
with data sets simulated under candidate settings of the knobs that the public sources leave
open (model spec section 10) -- and only those:

* plating k0 (``reactions.plating.k0`` and ``reactions.plating_sei.k0``, the two Li plating
  rows, moved together): 1e-4 (legacy validation input) or the group's plating-sweep range
  0.6e-3 .. 1.5e-3 (reference 1e-3);
* the event budget ``protocol.event_budget``: 30, 50 or 800 (the values seen in the sources);
* the box height: 30 or 40 cubes (10 x 10 x nz);
* the CE pairing ``protocol.ce_pairing``;
* the F5D reaction ``reactions.f5d.enabled``;
* the (0, 1) eV pair window ``pair_settings.window``.

Every candidate is a set of overrides of the ``paper-legacy`` model, so the study does not
depend on what the default ``paper`` model currently is.  Nothing else moves: the engine rules
are the model file's, CE and failure are only measured.

Usage::

    python benchmarks/fidelity.py screen                      # all candidates, screening subset
    python benchmarks/fidelity.py screen --candidates legacy,kp15-b30-z30
    python benchmarks/fidelity.py full --candidates legacy,kp15-b30-z30   # 380-run paper design
    python benchmarks/fidelity.py run --subset mini --box 4 4 16 --cycles 10   # any subset
    python benchmarks/fidelity.py table --subset screen       # comparison table + figures
    python benchmarks/fidelity.py table --subset full
    python benchmarks/fidelity.py mechanism --candidate kp15-b30-z30      # profiles, snapshots

Subsets of the paper design (the same parameter sets as ``--design paper``):

``full``
    The paper design itself, 19 x 16 one-at-a-time (OAT) runs + 76 random runs = 380
    (``CampaignConfig(design="paper")``; run ids ``oat-*``, ``random-*``).
``screen``
    A stratified subset of 30 runs: the OAT runs of the seven Li-X pairs (Li-Li, F-Li, SFO-Li,
    O-Li, F5D-Li, S-Li, N-Li: the pairs of the paper's direction finding) at the four levels
    0.0, 0.5, 1.0 and 1.5 eV (28 runs) plus the first 2 of the paper design's 76 random sets
    (the random sets do not depend on how many are drawn).  Run through ``design="sets"``.
    Random sets are few because, on a loaded 2-core machine, some of them take 10-20 min per
    run (discharge halves with many strongly bound Li go through up to ``max_rejections``
    rejected draws before they stall).
    Compared with the full design it over-weights the Li-X OAT runs and the random runs
    (the 12 X-X and X-SOL pairs, 192 of the 304 OAT runs, behave almost like the DFT setting).
``mini``
    6 runs for the CI test: OAT of Li-Li and SFO-Li at 0.0 and 1.5 eV plus 2 random sets.

Campaign folders go to ``--root`` (default ``/work/fidelity-runs``), one per
(subset, candidate, box, cycles); each is a normal resumable campaign (process backend,
``--workers`` processes, default 2): run the same command again to resume.

Statistics (one row per candidate in ``fidelity_<subset>.csv`` / ``.md``; see
:func:`candidate_stats`): per-cycle CE distribution (median, share within 95-105 %, share above
105 %, 1st percentile and minimum, share in every 10 % interval, populated intervals, mode of
the 10 %-binned histogram), runs failing before the end (CE < 70 %, the failure-cycle
definition of :func:`seilab.analysis.failure.run_outcomes`), median / quartiles / IQR of the
failure cycle and the share of failing runs in cycles 75-83, the Spearman rank correlation of
per-run mean CE with the energy of each Li-X pair in the OAT runs, the level of SFO-Li with the
highest mean CE, mechanism indicators (charge halves that hit the budget, electrolyte left and
slab height at failure) and the criteria met.  A statistic that is undefined (e.g. no failing
run, hence no median failure cycle) is written as an explicit ``undefined (...)`` text, never as
an empty cell or NaN.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = Path("/work/fidelity-runs")
DEFAULT_FIG_DIR = REPO / "docs" / "figures"
DEFAULT_TABLE_DIR = REPO / "docs" / "fidelity"
BASE_MODEL = "paper-legacy"

#: Li-X pairs of the paper's direction finding ("raising most Li-X pair energies lowers CE").
LI_X_PAIRS: tuple[str, ...] = ("Li-Li", "F-Li", "SFO-Li", "O-Li", "F5D-Li", "S-Li", "N-Li")
#: The paper's statistics (seed paper; model spec section 9.3).
PAPER_MEDIAN_FAILURE = 78.0
PAPER_FAILURE_WINDOW = (75.0, 83.0)
FAILURE_THRESHOLD = 70.0
NEAR_100 = (95.0, 105.0)
SCREEN_LEVELS = (0, 5, 10, 15)
SCREEN_RANDOM = 2
UNDEFINED = "undefined"


# ------------------------------------------------------------------------------ candidates
@dataclass(frozen=True)
class Candidate:
    """One setting of the open knobs.

    Attributes
    ----------
    name
        Short id (also the campaign folder name).
    description
        What it changes relative to ``paper-legacy``.
    set
        Model overrides (``--set``) relative to ``paper-legacy``.
    nz
        Box height in cubes (the box is 10 x 10 x nz).
    """

    name: str
    description: str
    set: Mapping[str, Any] = field(default_factory=dict)
    nz: int = 40


def _kp(k0: float) -> dict[str, float]:
    return {"reactions.plating.k0": k0, "reactions.plating_sei.k0": k0}


CANDIDATES: dict[str, Candidate] = {
    c.name: c
    for c in [
        Candidate("legacy", "paper-legacy as is: k0 1e-4, budget 50, 10x10x40", {}, 40),
        Candidate("legacy-z30", "legacy values in the port's 10x10x30 box", {}, 30),
        Candidate("kp10-b50-z30", "plating k0 1e-3, budget 50, 10x10x30", _kp(1e-3), 30),
        Candidate(
            "kp10-b30-z30",
            "plating k0 1e-3, budget 30, 10x10x30",
            {**_kp(1e-3), "protocol.event_budget": 30},
            30,
        ),
        Candidate(
            "kp15-b30-z30",
            "plating k0 1.5e-3, budget 30, 10x10x30",
            {**_kp(1.5e-3), "protocol.event_budget": 30},
            30,
        ),
        Candidate(
            "kp15-b30-z40",
            "plating k0 1.5e-3, budget 30, 10x10x40",
            {**_kp(1.5e-3), "protocol.event_budget": 30},
            40,
        ),
        Candidate(
            "kp15-b30-z30-window",
            "kp15-b30-z30 with the (0, 1) eV pair window",
            {**_kp(1.5e-3), "protocol.event_budget": 30, "pair_settings.window": True},
            30,
        ),
        Candidate(
            "kp15-b30-z30-nof5d",
            "kp15-b30-z30 with the F5D reaction off",
            {**_kp(1.5e-3), "protocol.event_budget": 30, "reactions.f5d.enabled": False},
            30,
        ),
        Candidate(
            "kp15-b30-z30-dtc",
            "kp15-b30-z30 with CE pairing discharge_then_charge",
            {
                **_kp(1.5e-3),
                "protocol.event_budget": 30,
                "protocol.ce_pairing": "discharge_then_charge",
            },
            30,
        ),
        Candidate(
            "kp15-b800-z30",
            "plating k0 1.5e-3, budget 800 (full-cell value), 10x10x30",
            {**_kp(1.5e-3), "protocol.event_budget": 800},
            30,
        ),
        Candidate(
            "kp15-b30-z60",
            "kp15-b30-z30 in a 10x10x60 box (artefact check: the box cannot fill in 100 cycles)",
            {**_kp(1.5e-3), "protocol.event_budget": 30},
            60,
        ),
    ]
}


# ------------------------------------------------------------------------------ subsets
def pair_names() -> list[str]:
    """The model's pair names, in the order the campaign designs use."""
    from seilab.model import load_model

    return list(load_model(BASE_MODEL).pair_energies())


def subset_sets(subset: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Parameter sets of a subset of the paper design and their meaning.

    Parameters
    ----------
    subset
        ``screen`` or ``mini`` (``full`` is the paper design itself, run directly).

    Returns
    -------
    sets, meta
        ``sets[i]`` are the pair energies of run ``i``; ``meta[i]`` has ``kind`` (``oat`` or
        ``random``), ``pair`` and ``level`` (OAT only) and ``paper_index`` (the index of the
        same set in the paper design).
    """
    from seilab.campaign.design import PAPER_RANDOM_RUNS, level_value, random_sets

    pairs = pair_names()
    if subset == "screen":
        oat_pairs, levels, n_random = list(LI_X_PAIRS), SCREEN_LEVELS, SCREEN_RANDOM
    elif subset == "mini":
        oat_pairs, levels, n_random = ["Li-Li", "SFO-Li"], (0, 15), 2
    else:
        raise ValueError(f"unknown subset {subset!r} (screen, mini; full is the paper design)")
    sets: list[dict[str, Any]] = []
    meta: list[dict[str, Any]] = []
    for p in oat_pairs:
        for lev in levels:
            sets.append({p: level_value(lev)})
            meta.append(
                dict(
                    kind="oat",
                    pair=p,
                    level=level_value(lev),
                    paper_index=pairs.index(p) * 16 + lev,
                )
            )
    for i, s in enumerate(random_sets(PAPER_RANDOM_RUNS, pairs, 0)[:n_random]):
        sets.append(s)
        meta.append(dict(kind="random", pair=None, level=None, paper_index=i))
    return sets, meta


def run_meta(data: pd.DataFrame, subset: str) -> pd.DataFrame:
    """One row per run: ``kind`` (oat/random), ``pair``, ``level`` (OAT runs).

    Parameters
    ----------
    data
        ``load_dataset`` output of a campaign of the given subset.
    subset
        ``full``, ``screen`` or ``mini``.
    """
    runs = data.groupby("run_id", sort=True)[["design_set", "design_index"]].first()
    if subset == "full":
        from seilab.campaign.design import level_value

        pairs = pair_names()
        kinds, prs, levs = [], [], []
        for ds, idx in zip(runs["design_set"], runs["design_index"], strict=True):
            kinds.append(ds)
            if ds == "oat":
                prs.append(pairs[int(idx) // 16])
                levs.append(level_value(int(idx) % 16))
            else:
                prs.append(None)
                levs.append(np.nan)
        return pd.DataFrame({"kind": kinds, "pair": prs, "level": levs}, index=runs.index)
    _, meta = subset_sets(subset)
    m = [meta[int(i)] for i in runs["design_index"]]
    return pd.DataFrame(
        {
            "kind": [x["kind"] for x in m],
            "pair": [x["pair"] for x in m],
            "level": [np.nan if x["level"] is None else x["level"] for x in m],
        },
        index=runs.index,
    )


# ------------------------------------------------------------------------------ running
def campaign_dir(root: Path, subset: str, cand: Candidate, box: Sequence[int], cycles: int) -> Path:
    """Folder of one candidate's campaign."""
    tag = f"{subset}_{cand.name}_box{'x'.join(str(int(v)) for v in box)}_c{cycles}"
    return Path(root) / tag


def candidate_box(cand: Candidate, box: Sequence[int] | None) -> tuple[int, int, int]:
    """The candidate's box, or an explicit override (tests use small boxes)."""
    return tuple(int(v) for v in box) if box is not None else (10, 10, int(cand.nz))


def run_candidate(
    cand: Candidate,
    subset: str,
    *,
    root: Path = DEFAULT_ROOT,
    cycles: int = 100,
    box: Sequence[int] | None = None,
    workers: int = 2,
    progress: bool = False,
) -> tuple[Path, float]:
    """Run (or resume) one candidate on one subset through the campaign machinery.

    Returns
    -------
    folder, wall_s
        The campaign folder and the wall time of this call.
    """
    from seilab.campaign import CampaignConfig, run_campaign

    b = candidate_box(cand, box)
    out = campaign_dir(root, subset, cand, b, cycles)
    common = dict(
        model=BASE_MODEL,
        cycles=int(cycles),
        box=b,
        set=dict(cand.set),
        backend="process",
        workers=int(workers),
    )
    if subset == "full":
        cfg = CampaignConfig(design="paper", **common)
    else:
        sets, _ = subset_sets(subset)
        cfg = CampaignConfig(design="sets", param_sets=sets, **common)
    t0 = time.perf_counter()
    res = run_campaign(cfg, out, progress=progress)
    wall = time.perf_counter() - t0
    if res.n_failed:
        raise RuntimeError(f"{cand.name}: {res.n_failed} runs failed: {res.failures[:3]}")
    timing = out / "fidelity_wall.json"
    log = json.loads(timing.read_text()) if timing.exists() else []
    log.append({"wall_s": wall, "counts": {k: int(v) for k, v in dict(res.counts).items()}})
    timing.write_text(json.dumps(log, indent=1))
    return out, wall


# ------------------------------------------------------------------------------ statistics
def _undef(reason: str) -> str:
    return f"{UNDEFINED} ({reason})"


def _num(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def interval_labels() -> list[str]:
    """Labels of the CE classes: below 10 %, the nine paper intervals, above 100 %."""
    from seilab.analysis.failure import ce_interval_labels

    return ["<10", *ce_interval_labels(), ">100"]


def candidate_stats(
    data: pd.DataFrame,
    meta: pd.DataFrame,
    *,
    box_height_a: float,
    wall_s: float | None = None,
) -> dict[str, Any]:
    """Every statistic of the comparison table for one simulated data set.

    Parameters
    ----------
    data
        Per-cycle data set (``load_dataset``): ``run_id``, ``cycle``, ``ce_pct``, state and event
        columns of ``docs/schema.md``.
    meta
        :func:`run_meta` of the runs (``kind``, ``pair``, ``level``).
    box_height_a
        Box height nz x a in Angstrom (for the slab-height indicator).
    wall_s
        Wall time of the campaign, if known.

    Returns
    -------
    dict
        Statistic name -> float, int, or an explicit ``"undefined (reason)"`` text.
    """
    from scipy.stats import spearmanr

    from seilab.analysis.failure import (
        ABOVE_RANGE,
        BELOW_RANGE,
        assign_ce_interval,
        failure_cycle_stats,
        run_outcomes,
    )

    ce_all = data["ce_pct"].to_numpy(dtype=float)
    ce = ce_all[~np.isnan(ce_all)]
    out: dict[str, Any] = {
        "runs": int(data["run_id"].nunique()),
        "cycles_total": int(len(data)),
        "cycles_ce_undefined": int(np.isnan(ce_all).sum()),
    }
    if ce.size:
        lo, hi = NEAR_100
        out["ce_median_pct"] = float(np.median(ce))
        out["share_ce_95_105"] = float(np.mean((ce >= lo) & (ce <= hi)))
        out["share_ce_above_105"] = float(np.mean(ce > hi))
        out["share_ce_below_70"] = float(np.mean(ce < FAILURE_THRESHOLD))
        out["ce_p01_pct"] = float(np.quantile(ce, 0.01))
        out["ce_min_pct"] = float(ce.min())
        hist_edges = np.arange(0.0, max(110.0, math.ceil(ce.max() / 10) * 10 + 10), 10.0)
        counts, _ = np.histogram(ce, bins=hist_edges)
        k = int(np.argmax(counts))
        out["ce_mode_bin"] = f"[{hist_edges[k]:g}, {hist_edges[k + 1]:g})"
        codes = assign_ce_interval(ce)
        labels = interval_labels()
        shares = [float(np.mean(codes == BELOW_RANGE))]
        shares += [float(np.mean(codes == j)) for j in range(9)]
        shares += [float(np.mean(codes == ABOVE_RANGE))]
        for lab, s in zip(labels, shares, strict=True):
            out[f"share_ce_{lab}"] = s
        out["ce_intervals_populated_of_9"] = int(sum(s > 0 for s in shares[1:10]))
    else:
        for key in (
            "ce_median_pct",
            "share_ce_95_105",
            "share_ce_above_105",
            "share_ce_below_70",
            "ce_p01_pct",
            "ce_min_pct",
            "ce_mode_bin",
        ):
            out[key] = _undef("no cycle with a defined CE")
        for lab in interval_labels():
            out[f"share_ce_{lab}"] = _undef("no cycle with a defined CE")
        out["ce_intervals_populated_of_9"] = 0

    # failure: the definition of seilab.analysis.failure (first cycle with CE < 70 %)
    outcomes = run_outcomes(data, threshold=FAILURE_THRESHOLD)
    fs = failure_cycle_stats(outcomes)
    out["runs_failing"] = int(fs["n_failed"])
    out["fraction_failing"] = float(fs["fraction_failing"])
    out["runs_ended_early_without_failing"] = int(fs["n_censored_early"])
    no_fail = _undef("no failing run")
    for key, src in (
        ("failure_cycle_median", "median"),
        ("failure_cycle_q1", "q1"),
        ("failure_cycle_q3", "q3"),
        ("failure_cycle_iqr", "iqr"),
        ("failure_cycle_min", "min"),
    ):
        v = _num(fs.get(src))
        out[key] = v if v is not None else no_fail
    fc = outcomes["failure_cycle"].dropna().to_numpy(dtype=float)
    if fc.size:
        a, b = PAPER_FAILURE_WINDOW
        out["share_failing_in_75_83"] = float(np.mean((fc >= a) & (fc <= b)))
        out["share_failing_by_cycle_5"] = float(np.mean(fc <= 5))
    else:
        out["share_failing_in_75_83"] = no_fail
        out["share_failing_by_cycle_5"] = no_fail

    # mechanism indicators
    out["share_charge_halves_at_budget"] = float(np.mean(data["end_ch"] == "budget"))
    out["share_discharge_halves_at_budget"] = float(np.mean(data["end_dis"] == "budget"))
    first = data.sort_values(["run_id", "cycle"]).groupby("run_id").first()
    eth0 = first["n_sp_eth"].astype(float)
    last = data.sort_values(["run_id", "cycle"]).groupby("run_id").last()
    out["median_final_slab_over_box"] = float(np.median(last["slab_height_a"] / box_height_a))
    out["median_final_electrolyte_left"] = float(
        np.median(last["n_sp_eth"].astype(float) / eth0.reindex(last.index))
    )
    failing = outcomes.index[outcomes["event"]]
    if len(failing):
        key = pd.MultiIndex.from_arrays(
            [failing, outcomes.loc[failing, "failure_cycle"].astype(int)]
        )
        at = data.set_index(["run_id", "cycle"]).loc[key]
        frac_eth = at["n_sp_eth"].to_numpy(float) / eth0.loc[failing].to_numpy(float)
        out["median_electrolyte_left_at_failure"] = float(np.median(frac_eth))
        out["median_slab_over_box_at_failure"] = float(
            np.median(at["slab_height_a"].to_numpy(float) / box_height_a)
        )
        out["share_failures_discharge_timed_out"] = float(
            np.mean(at["end_dis"].isin(["time", "no_events", "stalled"]))
        )
        tail = data[data["run_id"].isin(failing)].sort_values("cycle").groupby("run_id").tail(5)
        rec = tail.groupby("run_id")["ce_pct"].median() >= FAILURE_THRESHOLD
        out["share_failures_recovered_last5"] = float(rec.mean())
    else:
        out["median_electrolyte_left_at_failure"] = no_fail
        out["median_slab_over_box_at_failure"] = no_fail
        out["share_failures_discharge_timed_out"] = no_fail
        out["share_failures_recovered_last5"] = no_fail

    # direction of the CE response in the OAT runs
    mean_ce = data.groupby("run_id")["ce_pct"].mean()
    oat = meta[meta["kind"] == "oat"].join(mean_ce.rename("mean_ce"))
    n_neg = n_def = 0
    for p in LI_X_PAIRS:
        d = oat[oat["pair"] == p].dropna(subset=["mean_ce"]).sort_values("level")
        key = f"spearman_{p}"
        if len(d) < 2:
            out[key] = _undef("fewer than 2 OAT levels")
            continue
        if d["mean_ce"].nunique() < 2:
            out[key] = _undef("mean CE constant over levels")
            continue
        rho = float(spearmanr(d["level"], d["mean_ce"]).statistic)
        out[key] = rho
        if p != "SFO-Li":
            n_def += 1
            n_neg += rho < 0
        if p == "SFO-Li":
            best = float(d.loc[d["mean_ce"].idxmax(), "level"])
            out["sfo_li_best_level_ev"] = best
            out["sfo_li_best_is_intermediate"] = bool(d["level"].min() < best < d["level"].max())
    out.setdefault("sfo_li_best_level_ev", _undef("no SFO-Li OAT runs with varying CE"))
    out.setdefault("sfo_li_best_is_intermediate", _undef("no SFO-Li OAT runs with varying CE"))
    out["li_x_pairs_negative_of_6"] = (
        f"{int(n_neg)}/{int(n_def)}" if n_def else _undef("no Li-X OAT runs")
    )
    out["criteria_met"] = criteria(out)
    out["wall_s"] = float(wall_s) if wall_s is not None else _undef("not recorded")
    if "wall_s" in data.columns:
        out["run_wall_sum_s"] = float(data.groupby("run_id")["wall_s"].first().sum())
    else:
        out["run_wall_sum_s"] = _undef("not recorded")
    return out


def criteria(s: Mapping[str, Any]) -> str:
    """How many of the paper's qualitative targets a candidate meets (``"k/7: list"``).

    Targets: (1) the CE histogram peaks in [90, 110) % ("accumulation near 100 %"), (2) all nine
    10 % intervals from [10, 20) to [90, 100] are populated, (3) at least 30 % of runs fail
    ("a large share"; the paper gives no number), (4) median failure cycle within 78 +- 5,
    (5) quartiles within 5 cycles of 75 and 83, (6) at least 4 of the 6 Li-X pairs other than
    SFO-Li have a negative Spearman sign, (7) SFO-Li is best at an intermediate level.
    """
    met: list[str] = []
    mode = s.get("ce_mode_bin")
    if isinstance(mode, str) and mode in ("[90, 100)", "[100, 110)"):
        met.append("mode~100")
    if s.get("ce_intervals_populated_of_9") == 9:
        met.append("9 intervals")
    fr = s.get("fraction_failing")
    if isinstance(fr, float) and fr >= 0.3:
        met.append("fail>=30%")
    med = s.get("failure_cycle_median")
    if isinstance(med, float) and abs(med - PAPER_MEDIAN_FAILURE) <= 5:
        met.append("median~78")
    q1, q3 = s.get("failure_cycle_q1"), s.get("failure_cycle_q3")
    if isinstance(q1, float) and isinstance(q3, float):
        if abs(q1 - PAPER_FAILURE_WINDOW[0]) <= 5 and abs(q3 - PAPER_FAILURE_WINDOW[1]) <= 5:
            met.append("IQR~75-83")
    neg = s.get("li_x_pairs_negative_of_6")
    if isinstance(neg, str) and not neg.startswith(UNDEFINED) and int(neg.split("/")[0]) >= 4:
        met.append("Li-X negative")
    if s.get("sfo_li_best_is_intermediate") is True:
        met.append("SFO-Li intermediate")
    return f"{len(met)}/7: " + (", ".join(met) if met else "none")


PAPER_ROW: dict[str, Any] = {
    "runs": 380,
    "cycles_total": "up to 38000 (not given)",
    "ce_median_pct": "not given (parity plots accumulate near 100 %)",
    "share_ce_95_105": "not given (accumulation near 100 %)",
    "ce_min_pct": "10-20 % interval populated",
    "ce_mode_bin": "near 100 %",
    "ce_intervals_populated_of_9": 9,
    "fraction_failing": "a large share (not given)",
    "failure_cycle_median": PAPER_MEDIAN_FAILURE,
    "failure_cycle_q1": "about 75 (about 50 % of runs fail in 75-83)",
    "failure_cycle_q3": "about 83",
    "share_failing_in_75_83": "about 0.5",
    "li_x_pairs_negative_of_6": "most (BO: lower is better except SFO-Li)",
    "sfo_li_best_is_intermediate": True,
}


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        if math.isnan(float(v)):
            raise ValueError("NaN reached the table: undefined statistics must be explicit")
        return f"{float(v):.3g}" if abs(float(v)) < 1000 else f"{float(v):.0f}"
    return str(v)


def comparison_table(
    stats: Mapping[str, Mapping[str, Any]], with_paper: bool = True
) -> pd.DataFrame:
    """Rows: ``paper`` (targets) and the candidates; columns: every statistic, as text.

    Parameters
    ----------
    stats
        ``{candidate: candidate_stats(...)}``.
    with_paper
        Add the paper's row first ("not given" where the paper states nothing).

    Raises
    ------
    ValueError
        A statistic is NaN (undefined values must be explicit ``undefined (...)`` texts).
    """
    cols: list[str] = []
    for s in stats.values():
        for k in s:
            if k not in cols:
                cols.append(k)
    rows = {}
    if with_paper:
        rows["paper"] = {c: _fmt(PAPER_ROW.get(c, "not given")) for c in cols}
    for name, s in stats.items():
        rows[name] = {c: _fmt(s[c]) if c in s else _undef("not computed") for c in cols}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "candidate"
    return table


def write_tables(
    table: pd.DataFrame, out_dir: Path, stem: str, descriptions: Mapping[str, str]
) -> list[Path]:
    """Write ``<stem>.csv`` (rows = candidates) and ``<stem>.md`` (rows = statistics)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / f"{stem}.csv"
    table.to_csv(csv)
    md = out_dir / f"{stem}.md"
    t = table.T
    lines = ["| statistic | " + " | ".join(t.columns) + " |", "|---" * (len(t.columns) + 1) + "|"]
    for stat, row in t.iterrows():
        lines.append(f"| {stat} | " + " | ".join(str(v) for v in row) + " |")
    lines.append("")
    lines.append("Candidates:")
    lines.append("")
    for name, desc in descriptions.items():
        lines.append(f"* `{name}`: {desc}")
    md.write_text("\n".join(lines) + "\n")
    return [csv, md]


# ------------------------------------------------------------------------------ figures
def fig_ce_distributions(datasets: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Histograms of per-cycle CE (clipped at 300 %) for each candidate."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(datasets)
    ncol = min(3, n)
    nrow = math.ceil(n / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4 * ncol, 2.6 * nrow), squeeze=False)
    bins = np.arange(0, 310, 10)
    for ax, (name, d) in zip(axes.flat, datasets.items(), strict=False):
        ce = d["ce_pct"].dropna().clip(upper=300)
        ax.hist(ce, bins=bins, color="tab:blue", density=True)
        ax.axvspan(*NEAR_100, color="tab:green", alpha=0.2)
        ax.axvline(FAILURE_THRESHOLD, color="tab:red", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("per-cycle CE (%), clipped at 300")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def fig_failure_cycles(datasets: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Failure-cycle histograms (failure definition of ``seilab.analysis.failure``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from seilab.analysis.failure import run_outcomes

    fig, ax = plt.subplots(figsize=(7, 3.2))
    bins = np.arange(0.5, 101.5, 2)
    for name, d in datasets.items():
        fc = run_outcomes(d)["failure_cycle"].dropna()
        if len(fc):
            ax.hist(fc, bins=bins, histtype="step", lw=1.3, label=f"{name} ({len(fc)})")
    ax.axvspan(*PAPER_FAILURE_WINDOW, color="grey", alpha=0.25, label="paper 75-83, median 78")
    ax.set_xlabel("failure cycle (first CE < 70 %)")
    ax.set_ylabel("runs")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def fig_oat(
    datasets: Mapping[str, pd.DataFrame], metas: Mapping[str, pd.DataFrame], path: Path
) -> Path:
    """Mean CE of the OAT runs against the energy of each Li-X pair."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(LI_X_PAIRS), figsize=(2.3 * len(LI_X_PAIRS), 2.6), sharey=True)
    for name, d in datasets.items():
        m = metas[name]
        mean_ce = d.groupby("run_id")["ce_pct"].mean()
        oat = m[m["kind"] == "oat"].join(mean_ce.rename("mean_ce"))
        for ax, p in zip(axes, LI_X_PAIRS, strict=True):
            q = oat[oat["pair"] == p].sort_values("level")
            ax.plot(q["level"], q["mean_ce"], marker="o", ms=3, label=name)
            ax.set_title(p, fontsize=9)
            ax.set_xlabel("E (eV)")
    axes[0].set_ylabel("mean CE of the run (%)")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------ mechanism
PROFILE_COLUMNS = (
    ("ce_pct", "CE (%)"),
    ("n_li_metal_surface", "exposed Li0 (sites)"),
    ("n_li_sei", "SEI-bound Li (sites)"),
    ("n_sp_eth", "electrolyte sites"),
    ("slab_height_a", "slab height / box height"),
    ("n_events_dis", "discharge events"),
)


def fig_profiles(runs: Mapping[str, pd.DataFrame], box_height_a: float, path: Path) -> Path:
    """Per-cycle profiles of a failing and a surviving run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(11, 5.2), sharex=True)
    for label, d in runs.items():
        for ax, (col, title) in zip(axes.flat, PROFILE_COLUMNS, strict=True):
            y = d[col].astype(float)
            if col == "slab_height_a":
                y = y / box_height_a
            ax.plot(d["cycle"], y, lw=1.1, label=label)
            ax.set_title(title, fontsize=9)
    axes[0, 0].axhline(FAILURE_THRESHOLD, color="tab:red", lw=0.8, ls="--")
    axes[0, 0].set_ylim(0, 300)
    axes[0, 0].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("cycle")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def read_xyz(path: Path) -> tuple[pd.DataFrame, float]:
    """Read one extended XYZ frame of ``seilab simulate --snapshots``: sites and box height."""
    lines = Path(path).read_text().splitlines()
    header = lines[1]
    lat = header.split('Lattice="')[1].split('"')[0].split()
    lz = float(lat[8])
    rows = [ln.split() for ln in lines[2:] if ln.strip()]
    df = pd.DataFrame(
        {
            "x": [float(r[1]) for r in rows],
            "z": [float(r[3]) for r in rows],
            "label": [r[4] for r in rows],
            "charge": [int(r[6]) for r in rows],
        }
    )
    return df, lz


SNAP_STYLE = {
    "Li0": ("#b0b0b0", 4),
    "Li+": ("#6a3d9a", 4),
    "F": ("#33a02c", 8),
    "O": ("#e31a1c", 8),
    "S": ("#ff7f00", 8),
    "N": ("#1f78b4", 8),
    "SFO": ("#fb9a99", 8),
    "F5D": ("#000000", 8),
}


def fig_snapshots(frames: Mapping[str, Path], path: Path) -> Path:
    """x-z projections of snapshot frames (electrolyte, not written, is the white space)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(frames), figsize=(1.9 * len(frames), 5.2), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (title, f) in zip(axes, frames.items(), strict=True):
        df, lz = read_xyz(f)
        kind = np.where(df["label"] == "Li", np.where(df["charge"] == 0, "Li0", "Li+"), df["label"])
        for k, (color, size) in SNAP_STYLE.items():
            sel = kind == k
            if sel.any():
                ax.scatter(df["x"][sel], df["z"][sel], s=size * 0.3, c=color, label=k, lw=0)
        ax.set_ylim(0, lz)
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("x (A)")
        ax.set_aspect("equal")
    axes[0].set_ylabel("z (A)")
    axes[-1].legend(fontsize=6, markerscale=3, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def mechanism(
    cand: Candidate,
    data: pd.DataFrame,
    meta: pd.DataFrame,
    fig_dir: Path,
    work_dir: Path,
    box_height_a: float,
) -> dict[str, Any]:
    """Profiles and snapshots of a failing and a surviving run of one candidate.

    The failing run is the failing OAT run whose failure cycle is closest to the median; the
    surviving run is a non-failing OAT run of the same pair if one exists, else any.  The
    failing run is simulated again (same seed, same parameters) with snapshots at cycles 1,
    the middle, the failure cycle and the last cycle.

    Returns
    -------
    dict
        The two runs and their state at the failure cycle (written to ``mechanism.json``).
    """
    from seilab.analysis.failure import run_outcomes
    from seilab.campaign import read_manifest
    from seilab.kmc.engine import simulate

    fig_dir.mkdir(parents=True, exist_ok=True)
    oc = run_outcomes(data)
    oat_ids = meta.index[meta["kind"] == "oat"]
    fail = oc.loc[oc.index.isin(oat_ids) & oc["event"]]
    ok = oc.loc[oc.index.isin(oat_ids) & ~oc["event"]]
    if fail.empty or ok.empty:
        raise RuntimeError(f"{cand.name}: need a failing and a surviving OAT run")
    med = fail["failure_cycle"].median()
    f_id = (fail["failure_cycle"] - med).abs().idxmin()
    same = ok.index[meta.loc[ok.index, "pair"] == meta.loc[f_id, "pair"]]
    s_id = same[0] if len(same) else ok.index[0]
    fc = int(oc.loc[f_id, "failure_cycle"])
    runs = {
        f"failing {f_id} ({meta.loc[f_id, 'pair']}={meta.loc[f_id, 'level']:g}, fails at {fc})": (
            data[data["run_id"] == f_id].sort_values("cycle")
        ),
        f"surviving {s_id} ({meta.loc[s_id, 'pair']}={meta.loc[s_id, 'level']:g})": (
            data[data["run_id"] == s_id].sort_values("cycle")
        ),
    }
    fig_profiles(runs, box_height_a, fig_dir / "fidelity_profiles.png")
    man = read_manifest(data.attrs.get("folder")) if data.attrs.get("folder") else None
    seed = int(data.loc[data["run_id"] == f_id, "seed"].iloc[0])
    pair, level = meta.loc[f_id, "pair"], float(meta.loc[f_id, "level"])
    last = int(data.loc[data["run_id"] == f_id, "cycle"].max())
    snaps = sorted({1, max(1, fc // 2), fc, last})
    snap_dir = work_dir / f"snapshots_{cand.name}_{f_id}"
    over = {**cand.set, f"pair.{pair}": level}
    simulate(
        BASE_MODEL,
        cycles=last,
        seed=seed,
        box=(10, 10, cand.nz),
        overrides=over,
        snapshots=snaps,
        snapshot_dir=snap_dir,
    )
    frames = {f"cycle {c}": snap_dir / f"cycle_{c:04d}.xyz" for c in snaps}
    fig_snapshots(frames, fig_dir / "fidelity_snapshots.png")
    fr = data[(data["run_id"] == f_id)].set_index("cycle")
    cols = [
        "ce_pct",
        "n_li_metal",
        "n_li_metal_surface",
        "n_li_sei",
        "n_sp_eth",
        "n_sp_fsi",
        "slab_height_a",
        "sei_thickness_a",
        "n_events_ch",
        "n_events_dis",
        "end_ch",
        "end_dis",
        "t_ch_s",
        "t_dis_s",
    ]
    rows = {
        int(c): {k: (v.item() if hasattr(v, "item") else v) for k, v in fr.loc[c, cols].items()}
        for c in snaps
        if c in fr.index
    }
    info = {
        "candidate": cand.name,
        "failing_run": f_id,
        "surviving_run": s_id,
        "failure_cycle": fc,
        "seed": seed,
        "box_height_a": box_height_a,
        "state": rows,
        "manifest_rows": int(len(man)) if man is not None else None,
    }
    (work_dir / f"mechanism_{cand.name}.json").write_text(json.dumps(info, indent=1, default=str))
    return info


# ------------------------------------------------------------------------------ driver
def load(folder: Path) -> pd.DataFrame:
    """``load_dataset`` of a campaign folder, with the folder recorded in ``attrs``."""
    from seilab.campaign import load_dataset

    d = load_dataset(folder)
    d.attrs["folder"] = str(folder)
    return d


def box_height(nz: int) -> float:
    """Box height in Angstrom (nz x a of the model)."""
    from seilab.model import load_model

    return float(nz) * float(load_model(BASE_MODEL).spec.lattice.a_angstrom)


def study(
    names: Sequence[str],
    subset: str,
    *,
    root: Path = DEFAULT_ROOT,
    cycles: int = 100,
    box: Sequence[int] | None = None,
    workers: int = 2,
    run: bool = True,
    table_dir: Path = DEFAULT_TABLE_DIR,
    fig_dir: Path | None = DEFAULT_FIG_DIR,
    stem: str | None = None,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Run (or resume) the candidates on a subset and write the comparison table and figures.

    Parameters
    ----------
    names
        Candidate names (keys of :data:`CANDIDATES`).
    subset
        ``full``, ``screen`` or ``mini``.
    root
        Folder of the campaign folders.
    cycles, box, workers
        Simulator and execution options (``box`` overrides every candidate's box: tests only).
    run
        Run missing runs first (False: only tabulate finished campaigns).
    table_dir, fig_dir
        Where the tables and the figures go (``fig_dir=None``: no figures).
    stem
        Table file stem (default ``fidelity_<subset>``).

    Returns
    -------
    table, stats
        The comparison table (text cells) and the raw statistics per candidate.
    """
    datasets: dict[str, pd.DataFrame] = {}
    metas: dict[str, pd.DataFrame] = {}
    stats: dict[str, dict[str, Any]] = {}
    for name in names:
        cand = CANDIDATES[name]
        b = candidate_box(cand, box)
        folder = campaign_dir(root, subset, cand, b, cycles)
        wall = None
        if run:
            print(f"[fidelity] {subset} {name} -> {folder}", flush=True)
            folder, wall = run_candidate(
                cand, subset, root=root, cycles=cycles, box=box, workers=workers, progress=progress
            )
            print(f"[fidelity]   done in {wall:.0f} s", flush=True)
        timing = folder / "fidelity_wall.json"
        if timing.exists():
            log = json.loads(timing.read_text())
            # the wall time of the session(s) that did the work (resumes of finished campaigns
            # take ~1 s and are not counted)
            wall = float(sum(e["wall_s"] for e in log if e["wall_s"] > 5)) or None
        d = load(folder)
        m = run_meta(d, subset)
        datasets[name], metas[name] = d, m
        stats[name] = candidate_stats(d, m, box_height_a=box_height(b[2]), wall_s=wall)
    table = comparison_table(stats)
    descriptions = {n: CANDIDATES[n].description for n in names}
    write_tables(table, Path(table_dir), stem or f"fidelity_{subset}", descriptions)
    if fig_dir is not None:
        fig_dir = Path(fig_dir)
        fig_dir.mkdir(parents=True, exist_ok=True)
        fig_ce_distributions(datasets, fig_dir / f"fidelity_{subset}_ce.png")
        fig_failure_cycles(datasets, fig_dir / f"fidelity_{subset}_failure.png")
        fig_oat(datasets, metas, fig_dir / f"fidelity_{subset}_oat.png")
    return table, stats


def main(argv: Sequence[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["screen", "full", "run", "table", "mechanism", "list"])
    ap.add_argument("--candidates", default=None, help="comma-separated names (default: all)")
    ap.add_argument("--candidate", default=None, help="mechanism: the candidate")
    ap.add_argument(
        "--subset",
        default="screen",
        choices=["screen", "full", "mini"],
        help="run, table, mechanism",
    )
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    ap.add_argument("--cycles", type=int, default=100)
    ap.add_argument("--box", type=int, nargs=3, default=None, help="override every box (tests)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--table-dir", type=Path, default=DEFAULT_TABLE_DIR)
    ap.add_argument("--fig-dir", type=Path, default=DEFAULT_FIG_DIR)
    ap.add_argument("--progress", action="store_true")
    a = ap.parse_args(argv)
    if a.action == "list":
        for c in CANDIDATES.values():
            print(f"{c.name:22s} nz={c.nz:<3d} {json.dumps(dict(c.set))}  {c.description}")
        return 0
    names = a.candidates.split(",") if a.candidates else list(CANDIDATES)
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        print(f"unknown candidate(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if a.action == "mechanism":
        cand = CANDIDATES[a.candidate or names[0]]
        b = candidate_box(cand, a.box)
        folder = campaign_dir(a.root, a.subset, cand, b, a.cycles)
        d = load(folder)
        info = mechanism(cand, d, run_meta(d, a.subset), a.fig_dir, a.root, box_height(b[2]))
        print(json.dumps(info, indent=1, default=str))
        return 0
    subset = {"screen": "screen", "full": "full"}.get(a.action, a.subset)
    table, _ = study(
        names,
        subset,
        root=a.root,
        cycles=a.cycles,
        box=a.box,
        workers=a.workers,
        run=a.action != "table",
        table_dir=a.table_dir,
        fig_dir=a.fig_dir,
        progress=a.progress,
    )
    print(table.T.to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
