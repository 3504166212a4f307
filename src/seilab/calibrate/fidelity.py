"""Data-set statistics of the fidelity study (moved here from ``benchmarks/fidelity.py``).

These are the statistics that compare a simulated campaign with the paper's 380-run data set
(seed paper; model spec section 9): the per-cycle CE distribution, the failure fraction and the
failure-cycle quartiles (failure = first cycle with CE < 70 %, as in
:func:`seilab.analysis.failure.run_outcomes`), the Spearman signs of the CE response to the
Li-X pair energies in one-at-a-time (OAT) runs, and mechanism indicators.  They are the building
block of ``seilab calibrate`` (the statistics registry wraps :func:`candidate_stats`) and of
the fidelity benchmark, which runs candidate settings on subsets of the paper design.

Subsets of the paper design (:func:`subset_sets`):

``full``
    The paper design itself (``CampaignConfig(design="paper")``), 304 OAT + 76 random runs.
``screen``
    30 runs: the OAT runs of the seven Li-X pairs at 0.0, 0.5, 1.0 and 1.5 eV plus the first 2
    random sets of the paper design.
``mini``
    6 runs: OAT of Li-Li and SFO-Li at 0.0 and 1.5 eV plus 2 random sets.

A statistic that is undefined (no failing run, hence no median failure cycle) is an explicit
``"undefined (reason)"`` text, never NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: Model whose pair names define the subsets (every bundled model has the same 19 pairs).
SUBSET_MODEL = "paper-legacy"
#: Subsets known to :func:`subset_sets` and :func:`run_meta`.
SUBSETS: tuple[str, ...] = ("full", "screen", "mini")

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


def pair_names(model: str = SUBSET_MODEL) -> list[str]:
    """The model's pair names, in the order the campaign designs use."""
    from seilab.model import load_model

    return list(load_model(model).pair_energies())


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
    out["runs_cut_by_step_budget"] = int(fs["n_cut_by_budget"])
    known = fs["fraction_failing_known"]
    out["fraction_failing_known"] = float(known) if known is not None else _undef("no run")
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
