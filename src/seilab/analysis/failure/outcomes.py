"""Per-run failure outcomes, CE-interval tables and the failure-cycle distribution."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema
from seilab.errors import AnalysisError

#: The paper's failure threshold: CE below 70 % (in %).
DEFAULT_THRESHOLD: float = 70.0
#: Edges of the CE intervals (in %): [10, 20), [20, 30), ..., [80, 90), [90, 100].
CE_EDGES: tuple[float, ...] = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0)
#: Interval codes of CE values outside the intervals (see :func:`assign_ce_interval`).
BELOW_RANGE: int = -1
ABOVE_RANGE: int = -2
MISSING_CE: int = -3


# ---------------------------------------------------------------------------- outcomes
def failure_cycle(
    ce: Sequence[float] | np.ndarray,
    cycles: Sequence[int] | np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> int | None:
    """First cycle whose CE is below the threshold.

    Parameters
    ----------
    ce
        CE of each cycle in %, in cycle order.  NaN (no charge in the cycle, CE undefined) never
        counts as a failure.
    cycles
        Cycle numbers matching ``ce``; default ``1, 2, ...``.
    threshold
        Failure threshold in %; a cycle fails when ``ce < threshold`` (strictly).

    Returns
    -------
    int or None
        The failure cycle, or None when no cycle is below the threshold (the run is then
        right-censored at its last cycle).  A later recovery above the threshold does not undo
        the failure: only the first crossing counts.
    """
    values = np.asarray(ce, dtype=float)
    cyc = np.arange(1, len(values) + 1) if cycles is None else np.asarray(cycles)
    if len(cyc) != len(values):
        raise ValueError("ce and cycles differ in length")
    order = np.argsort(cyc, kind="stable")
    values, cyc = values[order], cyc[order]
    below = np.flatnonzero(values < threshold)  # NaN compares False
    return int(cyc[below[0]]) if below.size else None


def _require(data: pd.DataFrame, columns: Iterable[str]) -> None:
    missing = [c for c in columns if c not in data.columns]
    if missing:
        raise AnalysisError(f"data set lacks column(s) {', '.join(missing)} (see docs/schema.md)")


def run_outcomes(
    data: pd.DataFrame,
    threshold: float = DEFAULT_THRESHOLD,
    horizon: int | None = None,
) -> pd.DataFrame:
    """One row per run: failure cycle, event indicator, censoring time, class label, pair energies.

    Parameters
    ----------
    data
        Per-cycle data set (``run_id``, ``cycle``, ``ce_pct`` and the ``e_pair_*_ev`` columns).
    threshold
        Failure threshold on the CE in %.
    horizon
        None (default): the label is "fails before the end of the run", whatever the run's
        length.  An integer H: the label is "fails at a cycle <= H"; runs that neither fail by
        H nor were observed up to H get a NaN label (excluded from the classifiers).  A run
        that its step budget ended (``end_reason`` ``step_limit``, a compute limit) before it
        failed has a NaN label unless it was seen up to the horizon: its outcome is unknown,
        not "no failure".

    Returns
    -------
    pandas.DataFrame
        Indexed by ``run_id`` with columns ``n_cycles`` (rows), ``last_cycle``, ``n_ce_missing``
        (cycles with NaN CE), ``failure_cycle`` (NaN when the run never fails), ``event`` (bool),
        ``time`` (failure cycle, or last cycle for a censored run), ``label`` (1.0 / 0.0 / NaN),
        ``cut_by_budget`` (the step budget ended the run) and one column per pair energy present
        in the data.
    """
    _require(data, [schema.RUN_ID, schema.CYCLE, schema.TARGET])
    if data.empty:
        raise AnalysisError("data set is empty")
    d = data[[schema.RUN_ID, schema.CYCLE, schema.TARGET]].sort_values(
        [schema.RUN_ID, schema.CYCLE], kind="stable"
    )
    ce = d[schema.TARGET].to_numpy(dtype=float)
    g = d.groupby(schema.RUN_ID, sort=True)
    out = pd.DataFrame(
        {
            "n_cycles": g.size(),
            "last_cycle": g[schema.CYCLE].max(),
            "n_ce_missing": pd.Series(np.isnan(ce), index=d.index).groupby(d[schema.RUN_ID]).sum(),
        }
    )
    fc = d.loc[ce < threshold].groupby(schema.RUN_ID)[schema.CYCLE].min()
    out["failure_cycle"] = fc.reindex(out.index).astype(float)
    out["event"] = out["failure_cycle"].notna()
    out["time"] = np.where(out["event"], out["failure_cycle"], out["last_cycle"]).astype(float)
    if horizon is None:
        out["label"] = out["event"].astype(float)
    else:
        fails_by_h = out["event"] & (out["failure_cycle"] <= horizon)
        seen_to_h = out["last_cycle"] >= horizon
        out["label"] = np.where(fails_by_h, 1.0, np.where(seen_to_h, 0.0, np.nan))
    if "end_reason" in data.columns:
        reason = data.groupby(schema.RUN_ID, sort=True)["end_reason"].first()
        out["cut_by_budget"] = (reason.reindex(out.index) == schema.END_STEP_LIMIT).to_numpy()
    else:
        out["cut_by_budget"] = False
    if horizon is None:  # with a horizon, a run seen to it has a known label, cut or not
        out.loc[out["cut_by_budget"] & (out["label"] == 0.0), "label"] = np.nan
    pairs = [c for c in schema.PAIR_COLUMNS if c in data.columns]
    if pairs:
        energies = data.groupby(schema.RUN_ID, sort=True)[pairs].first()
        out = out.join(energies)
    out.index.name = schema.RUN_ID
    return out


# ---------------------------------------------------------------------------- CE intervals
def ce_interval_labels(edges: Sequence[float] = CE_EDGES) -> list[str]:
    """Labels of the CE intervals, e.g. ``"[10, 20)"`` ... ``"[90, 100]"`` (last one closed)."""
    e = [f"{x:g}" for x in edges]
    labs = [f"[{a}, {b})" for a, b in zip(e[:-1], e[1:], strict=True)]
    labs[-1] = labs[-1][:-1] + "]"
    return labs


def assign_ce_interval(
    ce: Sequence[float] | np.ndarray, edges: Sequence[float] = CE_EDGES
) -> np.ndarray:
    """Interval index of each CE value.

    Parameters
    ----------
    ce
        CE values in %.
    edges
        Increasing interval edges; interval k is ``[edges[k], edges[k+1])`` and the last one is
        closed, ``[edges[-2], edges[-1]]``.

    Returns
    -------
    numpy.ndarray
        int array: 0 .. len(edges) - 2 for a value in an interval, :data:`BELOW_RANGE` (-1)
        below ``edges[0]``, :data:`ABOVE_RANGE` (-2) above ``edges[-1]`` and :data:`MISSING_CE`
        (-3) for NaN.
    """
    x = np.asarray(ce, dtype=float)
    e = np.asarray(edges, dtype=float)
    if e.ndim != 1 or len(e) < 2 or np.any(np.diff(e) <= 0):
        raise ValueError("edges must be a strictly increasing sequence of at least two values")
    idx = np.searchsorted(e, x, side="right") - 1
    idx = np.where(x == e[-1], len(e) - 2, idx)
    idx = np.where(x < e[0], BELOW_RANGE, idx)
    idx = np.where(x > e[-1], ABOVE_RANGE, idx)
    idx = np.where(np.isnan(x), MISSING_CE, idx)
    return idx.astype(int)


def minmax_normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Min-max normalise each column to [0, 1] over its finite values.

    A column without spread (max == min) or without finite values becomes NaN: it carries no
    information and is left out of the heatmaps.
    """
    lo = frame.min(skipna=True)
    hi = frame.max(skipna=True)
    span = (hi - lo).where(lambda s: s > 0)
    return (frame - lo) / span


def default_heatmap_features(data: pd.DataFrame) -> list[str]:
    """Per-cycle features of the heatmaps: the paper's event and mobility groups present in ``data``."""
    cols = [*schema.FEATURE_GROUPS["events"], *schema.FEATURE_GROUPS["mobility"]]
    return [c for c in cols if c in data.columns]


@dataclass
class IntervalTable:
    """Result of :func:`ce_interval_table`.

    Attributes
    ----------
    normalised
        Features x intervals: mean of the min-max-normalised feature over the cycles in the
        interval (NaN for an empty interval).
    absolute
        Features x intervals: mean of the raw feature.
    counts
        Number of cycles in each interval.
    outside
        Cycles left out: ``below`` (CE < first edge), ``above`` (CE > last edge), ``missing``
        (NaN CE).
    dropped
        Features left out because they are constant or entirely missing.
    """

    normalised: pd.DataFrame
    absolute: pd.DataFrame
    counts: pd.Series
    outside: dict[str, int]
    dropped: list[str] = field(default_factory=list)


def ce_interval_table(
    data: pd.DataFrame,
    features: Sequence[str] | None = None,
    edges: Sequence[float] = CE_EDGES,
) -> IntervalTable:
    """Mean min-max-normalised (and raw) features in each CE interval.

    Every cycle (row) with a CE inside ``[edges[0], edges[-1]]`` is assigned to one interval by
    :func:`assign_ce_interval`; the normalisation uses all rows of ``data`` so both heatmaps
    share one scale.

    Parameters
    ----------
    data
        Per-cycle data set.
    features
        Feature columns; default :func:`default_heatmap_features`.
    edges
        Interval edges in %.

    Returns
    -------
    IntervalTable
    """
    _require(data, [schema.TARGET])
    feats = list(features) if features is not None else default_heatmap_features(data)
    _require(data, feats)
    raw = data[feats].apply(pd.to_numeric, errors="coerce").astype(float)
    norm = minmax_normalise(raw)
    dropped = [c for c in feats if norm[c].isna().all()]
    keep = [c for c in feats if c not in dropped]
    codes = assign_ce_interval(data[schema.TARGET].to_numpy(dtype=float), edges)
    labels = ce_interval_labels(edges)
    inside = codes >= 0
    key = pd.Categorical.from_codes(np.where(inside, codes, -1), categories=labels)
    absolute = raw.loc[inside, keep].groupby(key[inside], observed=False).mean().T
    normalised = norm.loc[inside, keep].groupby(key[inside], observed=False).mean().T
    counts = pd.Series(
        np.bincount(codes[inside], minlength=len(labels)), index=labels, name="n_cycles"
    )
    outside = {
        "below": int(np.sum(codes == BELOW_RANGE)),
        "above": int(np.sum(codes == ABOVE_RANGE)),
        "missing": int(np.sum(codes == MISSING_CE)),
    }
    for t in (absolute, normalised):
        t.index.name = "feature"
        t.columns = pd.Index(labels, name="ce_interval_pct")
    return IntervalTable(normalised, absolute, counts, outside, dropped)


# ---------------------------------------------------------------------------- failure vs not
def failure_region_mask(
    data: pd.DataFrame, outcomes: pd.DataFrame, grouping: str = "run"
) -> np.ndarray:
    """Boolean mask of the rows of ``data`` that belong to the failure group.

    Parameters
    ----------
    data
        Per-cycle data set.
    outcomes
        :func:`run_outcomes` of the same data.
    grouping
        ``"run"`` (the paper): every cycle of a run that fails is in the failure group.
        ``"cycle"``: only the cycles at or after the run's failure cycle are.

    Returns
    -------
    numpy.ndarray
    """
    fc = data[schema.RUN_ID].map(outcomes["failure_cycle"]).to_numpy(dtype=float)
    if grouping == "run":
        return ~np.isnan(fc)
    if grouping == "cycle":
        return data[schema.CYCLE].to_numpy(dtype=float) >= fc  # NaN compares False
    raise ValueError(f"grouping must be 'run' or 'cycle', not {grouping!r}")


def failure_vs_nonfailure_table(
    data: pd.DataFrame,
    outcomes: pd.DataFrame,
    features: Sequence[str] | None = None,
    grouping: str = "run",
) -> pd.DataFrame:
    """Mean features in the failure and the non-failure group, and the relative change.

    Parameters
    ----------
    data
        Per-cycle data set.
    outcomes
        :func:`run_outcomes` of the same data.
    features
        Feature columns; default :func:`default_heatmap_features`.
    grouping
        See :func:`failure_region_mask`.

    Returns
    -------
    pandas.DataFrame
        Indexed by feature: ``mean_nonfailure``, ``mean_failure`` (raw means over the cycles of
        each group), ``norm_nonfailure``, ``norm_failure`` (means of the min-max-normalised
        feature, normalised over all rows) and ``rel_change_pct`` =
        100 (mean_failure - mean_nonfailure) / |mean_nonfailure| (NaN when the non-failure mean
        is 0), and ``rel_change_norm_pct``, the same on the normalised means (depends on the
        feature's minimum; given for comparison with the paper's percentages).  Constant
        features are dropped.

    Raises
    ------
    AnalysisError
        When one of the two groups is empty.
    """
    feats = list(features) if features is not None else default_heatmap_features(data)
    _require(data, feats)
    mask = failure_region_mask(data, outcomes, grouping)
    if mask.all() or not mask.any():
        which = "failure" if not mask.any() else "non-failure"
        raise AnalysisError(f"the {which} group is empty; nothing to compare")
    raw = data[feats].apply(pd.to_numeric, errors="coerce").astype(float)
    norm = minmax_normalise(raw)
    keep = [c for c in feats if not norm[c].isna().all()]
    table = pd.DataFrame(
        {
            "mean_nonfailure": raw.loc[~mask, keep].mean(),
            "mean_failure": raw.loc[mask, keep].mean(),
            "norm_nonfailure": norm.loc[~mask, keep].mean(),
            "norm_failure": norm.loc[mask, keep].mean(),
        }
    )
    base = table["mean_nonfailure"].abs().where(lambda s: s > 0)
    table["rel_change_pct"] = 100.0 * (table["mean_failure"] - table["mean_nonfailure"]) / base
    nbase = table["norm_nonfailure"].where(lambda s: s > 0)
    table["rel_change_norm_pct"] = (
        100.0 * (table["norm_failure"] - table["norm_nonfailure"]) / nbase
    )
    table["n_cycles_nonfailure"] = int((~mask).sum())
    table["n_cycles_failure"] = int(mask.sum())
    table.index.name = "feature"
    return table


def failure_cycle_stats(outcomes: pd.DataFrame) -> dict[str, Any]:
    """Summary of the failure-cycle distribution.

    Returns
    -------
    dict
        ``n_runs``, ``n_failed``, ``fraction_failing``, ``n_cut_by_budget`` (runs the step
        budget ended before they failed: outcome unknown), ``fraction_failing_known`` (failing
        among the runs whose outcome is known), ``n_censored_early`` (runs that never fail and
        end before the longest run for a reason of the model, not the step budget), and over the failing runs ``median``, ``q1``,
        ``q3``, ``iqr`` (q3 - q1, linear-interpolation quantiles), ``mean``, ``min``, ``max``
        (None when no run fails).
    """
    n = len(outcomes)
    fc = outcomes["failure_cycle"].dropna().to_numpy(dtype=float)
    longest = float(outcomes["last_cycle"].max()) if n else float("nan")
    cut = (
        outcomes["cut_by_budget"].to_numpy(dtype=bool)
        if "cut_by_budget" in outcomes
        else np.zeros(n, dtype=bool)
    )
    alive = ~outcomes["event"].to_numpy(dtype=bool)
    n_cut = int((cut & alive).sum())
    early = int((alive & ~cut & (outcomes["last_cycle"].to_numpy() < longest)).sum())
    known = n - n_cut
    stats: dict[str, Any] = {
        "n_runs": int(n),
        "n_failed": int(fc.size),
        "fraction_failing": float(fc.size / n) if n else None,
        "n_cut_by_budget": n_cut,
        "fraction_failing_known": float(fc.size / known) if known else None,
        "n_censored_early": early,
        "longest_run_cycles": longest if n else None,
    }
    if fc.size:
        q1, med, q3 = np.quantile(fc, [0.25, 0.5, 0.75])
        stats.update(
            median=float(med),
            q1=float(q1),
            q3=float(q3),
            iqr=float(q3 - q1),
            mean=float(fc.mean()),
            min=float(fc.min()),
            max=float(fc.max()),
        )
    else:
        stats.update(median=None, q1=None, q3=None, iqr=None, mean=None, min=None, max=None)
    return stats
