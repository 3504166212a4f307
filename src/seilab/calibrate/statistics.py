"""The statistics registry of ``seilab calibrate``: name -> function, description, unit.

Every statistic is a function of a :class:`TrialData` (the per-cycle data set of one trial's
campaign, see ``docs/schema.md``) that returns a float, or NaN when it is undefined (for
example the failure-cycle median when no run fails).  Targets files may only name statistics
of :data:`STATISTICS`; unknown names are rejected before any simulation.

Conventions (documented in ``docs/calibrate.md``):

* **The end of a run.**  A run ends at the first of: the engine stopping it (``end_reason``
  ``stalled`` or ``exhausted``), or the first cycle whose discharge half has no reaction event
  (nothing can be stripped any more: the cell no longer cycles, even if fragment reactions
  still fire in the charge halves).  ``end_half`` counts the half-cycles up to that point: a
  run whose discharge of cycle ``c`` is empty ends at half ``2c - 1`` (the original's reference
  run: 77 charges, 76 discharges, 153 halves); a run the engine stopped in the first half of
  cycle ``c + 1`` after ``c`` complete cycles ends at ``2c + 1``; a run that reaches the
  horizon is censored at ``2 x cycles``.
* **Per-half statistics** (events per half, end of the halves, reductions per plating, CE of
  the run) use the halves up to the end of each run only; the empty discharge that marks the
  end is not counted.  They pool every half of every run of the trial.
* **Why a run ended**: ``box_full`` when the Li slab reaches the box height (slab height >=
  box height - one cube), else ``electrolyte_gone`` when fewer than 1 % of the first cycle's
  electrolyte sites are left, else ``stall``; runs that reach the horizon are ``not_ended``.
* **Data-set statistics of the fidelity study** (CE distribution, failures, Li-X signs) are
  :func:`seilab.calibrate.fidelity.candidate_stats` over all cycles, as in the fidelity study;
  the Li-X signs need a design with one-at-a-time runs (``design = "mini"`` or ``"screen"`` in
  the calibration spec).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from seilab import schema

#: Reactions of the charge half (column suffix -> paper vocabulary).
CHARGE_REACTIONS: dict[str, str] = {
    "plating": "Li plating on Li metal (RxnPlating)",
    "plating_sei": "Li plating over SEI (RxnPlatingSEI)",
    "fsi": "salt_IDP1, FSI reduction (RxnFSI)",
    "sfo": "salt_IDP2, SFO reduction (RxnSFO)",
    "sol": "solv_IDP1, F5DEE defluorination (RxnSOL)",
    "sol2": "F5DEE on Li2O (RxnSOL2)",
    "f5d": "solv_IDP3, F5D reaction (RxnF5D)",
}
DISCHARGE_REACTIONS: dict[str, str] = {
    "stripping": "Li stripping (RxnStripping)",
    "li_surface": "Li surface hop (RxnLiSurface)",
}
#: Reductions ("decompositions" in the original's vocabulary): every charge reaction but plating.
DECOMPOSITIONS: tuple[str, ...] = ("fsi", "sfo", "sol", "sol2", "f5d")
PLATINGS: tuple[str, ...] = ("plating", "plating_sei")
HALF_ENDS: tuple[str, ...] = ("budget", "time", "no_events", "stalled")
END_CAUSES: tuple[str, ...] = ("box_full", "electrolyte_gone", "stall", "not_ended")
#: Electrolyte left (fraction of the first cycle's sites) under which a run "ran out of it".
ELECTROLYTE_GONE_FRACTION = 0.01
#: Fidelity statistics exposed in the registry (name in candidate_stats -> description, unit).
FIDELITY_STATS: dict[str, tuple[str, str]] = {
    "ce_median_pct": ("median per-cycle CE over all cycles of all runs", "%"),
    "share_ce_95_105": ("share of cycles with CE in [95, 105] %", "fraction"),
    "share_ce_above_105": ("share of cycles with CE above 105 %", "fraction"),
    "share_ce_below_70": ("share of cycles with CE below 70 %", "fraction"),
    "ce_intervals_populated_of_9": (
        "number of the paper's nine 10 % CE intervals (10-20 .. 90-100 %) holding a cycle",
        "intervals",
    ),
    "fraction_failing": ("share of runs that fail (first cycle with CE < 70 %)", "fraction"),
    "failure_cycle_median": ("median failure cycle of the failing runs", "cycle"),
    "failure_cycle_q1": ("first quartile of the failure cycle", "cycle"),
    "failure_cycle_q3": ("third quartile of the failure cycle", "cycle"),
    "share_failing_in_75_83": ("share of failing runs that fail in cycles 75-83", "fraction"),
}
LI_X_SIGN_PAIRS: tuple[str, ...] = ("Li-Li", "F-Li", "SFO-Li", "O-Li", "F5D-Li", "S-Li", "N-Li")


@dataclass
class TrialData:
    """The data of one trial: per-cycle rows of its runs and what the statistics need.

    Attributes
    ----------
    data
        ``load_dataset`` of the trial's campaign (``run_id``, ``cycle`` and the run-table columns).
    box
        Box ``(nx, ny, nz)`` in cubes.
    a_angstrom
        Lattice constant (Angstrom).
    cycles
        Cycle horizon of the runs.
    meta
        Per-run design meta (``kind``, ``pair``, ``level``; :func:`seilab.calibrate.fidelity.run_meta`)
        or ``None`` for a single-setting design.
    """

    data: pd.DataFrame
    box: tuple[int, int, int]
    a_angstrom: float
    cycles: int
    meta: pd.DataFrame | None = None
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # a disabled reaction has no counter column in its runs: it fired 0 times
        cols = [f"n_rxn_{c}" for c in (*CHARGE_REACTIONS, *DISCHARGE_REACTIONS)]
        missing = [c for c in cols if c not in self.data.columns]
        if missing or self.data[cols].isna().any().any():
            self.data = self.data.assign(**{c: 0 for c in missing})
            self.data[cols] = self.data[cols].fillna(0)

    @property
    def box_height_a(self) -> float:
        """Box height in Angstrom."""
        return float(self.box[2]) * float(self.a_angstrom)

    @cached_property
    def ends(self) -> pd.DataFrame:
        """One row per run: ``end_cycle``, ``end_half``, ``cause``, ``ended`` (see the module)."""
        return run_ends(self.data, self.cycles, self.box_height_a, self.a_angstrom)

    @cached_property
    def active(self) -> pd.DataFrame:
        """Rows up to each run's end cycle, with ``dis_active`` (False for the final empty discharge)."""
        d = self.data.merge(
            self.ends[["end_cycle", "dis_counted"]], left_on="run_id", right_index=True
        )
        d = d[d["cycle"] <= d["end_cycle"]].copy()
        last = d["cycle"] == d["end_cycle"]
        d["dis_active"] = ~last | d["dis_counted"]
        return d

    @cached_property
    def fidelity(self) -> dict[str, Any]:
        """:func:`seilab.calibrate.fidelity.candidate_stats` of the whole data set."""
        from seilab.calibrate.fidelity import candidate_stats

        meta = self.meta
        if meta is None:
            runs = pd.Index(sorted(self.data["run_id"].unique()), name="run_id")
            meta = pd.DataFrame({"kind": "single", "pair": None, "level": np.nan}, index=runs)
        return candidate_stats(self.data, meta, box_height_a=self.box_height_a)


def run_ends(data: pd.DataFrame, cycles: int, box_height_a: float, a: float) -> pd.DataFrame:
    """Where and why each run ended (conventions in the module docstring).

    Returns
    -------
    pandas.DataFrame
        Index ``run_id``; ``end_cycle`` (last cycle counted), ``end_half``, ``cause`` (one of
        :data:`END_CAUSES`), ``ended`` (bool), ``dis_counted`` (whether the discharge of the end
        cycle counts as a half of the run).
    """
    rows = []
    for rid, d in data.sort_values(["run_id", "cycle"]).groupby("run_id", sort=True):
        cyc = d["cycle"].to_numpy()
        n = int(cyc.max())
        empty = np.flatnonzero(d["n_events_dis"].to_numpy() == 0)
        end_reason = str(d["end_reason"].iloc[0]) if "end_reason" in d else "completed"
        if empty.size:
            c = int(cyc[empty[0]])
            half, counted, ended = 2 * c - 1, False, True
        elif end_reason in ("stalled", "exhausted"):
            c = n
            last_dis = str(d["end_dis"].iloc[-1])
            # stalled in the discharge of the last row, or in the next cycle's first half
            half = 2 * n if last_dis == "stalled" else 2 * n + 1
            counted, ended = True, True
        else:
            # a run cut by the compute budget (protocol.max_steps) did not end: censored
            c, half, counted = n, 2 * n, True
            ended = n < cycles and end_reason != schema.END_STEP_LIMIT
        at = d[d["cycle"] == c].iloc[0]
        eth0 = float(d["n_sp_eth"].iloc[0]) or 1.0
        if not ended:
            cause = "not_ended"
        elif float(at["slab_height_a"]) >= box_height_a - a - 1e-9:
            cause = "box_full"
        elif float(at["n_sp_eth"]) < ELECTROLYTE_GONE_FRACTION * eth0:
            cause = "electrolyte_gone"
        else:
            cause = "stall"
        rows.append(
            dict(
                run_id=rid,
                end_cycle=c,
                end_half=half,
                cause=cause,
                ended=ended,
                dis_counted=counted,
            )
        )
    return pd.DataFrame(rows).set_index("run_id")


def li_metal_initial(d: pd.DataFrame) -> pd.Series:
    """Li metal sites before the first half, per run, from the first row's Li ledger.

    At the start every Li is metal (no SEI yet), so it is the Li total before cycle 1:
    ``n_li_total(1) - (li_plated - li_stripped + li_wrap_created + li_framework_filled -
    li_framework_removed)(1)``.
    """
    first = d.sort_values(["run_id", "cycle"]).groupby("run_id").first()
    delta = (
        first["li_plated"]
        - first["li_stripped"]
        + first["li_wrap_created"]
        + first["li_framework_filled"]
        - first["li_framework_removed"]
    )
    return (first["n_li_total"] - delta).astype(float)


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Statistic:
    """One registered statistic.

    Attributes
    ----------
    name
        Registry name (what a targets file names).
    func
        ``func(trial_data, **params) -> float`` (NaN when undefined).
    description, unit
        For tables and ``docs/calibrate.md``.
    params
        Extra arguments a target may give, with their defaults (e.g. ``{"half": 152}``).
    needs_design
        True when the statistic needs one-at-a-time runs (a ``mini`` or ``screen`` design).
    """

    name: str
    func: Callable[..., float]
    description: str
    unit: str
    params: Mapping[str, int] = field(default_factory=dict)
    needs_design: bool = False


STATISTICS: dict[str, Statistic] = {}


def _register(
    name: str, func: Callable[..., float], description: str, unit: str, **kw: Any
) -> None:
    STATISTICS[name] = Statistic(name, func, description, unit, **kw)


def _mean(x: pd.Series) -> float:
    x = pd.to_numeric(x, errors="coerce").astype(float)
    return float(x.mean()) if len(x) and x.notna().any() else math.nan


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def _charge_rows(t: TrialData) -> pd.DataFrame:
    return t.active


def _discharge_rows(t: TrialData) -> pd.DataFrame:
    a = t.active
    return a[a["dis_active"]]


def _per_charge(cols: tuple[str, ...]) -> Callable[[TrialData], float]:
    def f(t: TrialData) -> float:
        d = _charge_rows(t)
        return _mean(sum(d[f"n_rxn_{c}"] for c in cols)) if len(d) else math.nan

    return f


def _per_discharge(col: str) -> Callable[[TrialData], float]:
    def f(t: TrialData) -> float:
        d = _discharge_rows(t)
        return _mean(d[col]) if len(d) else math.nan

    return f


def _share_end(half: str, how: str) -> Callable[[TrialData], float]:
    col = "end_ch" if half == "charge" else "end_dis"

    def f(t: TrialData) -> float:
        d = _charge_rows(t) if half == "charge" else _discharge_rows(t)
        return float(np.mean(d[col] == how)) if len(d) else math.nan

    return f


def _reductions_per_plating(t: TrialData) -> float:
    d = _charge_rows(t)
    red = sum(d[f"n_rxn_{c}"].sum() for c in DECOMPOSITIONS)
    pl = sum(d[f"n_rxn_{c}"].sum() for c in PLATINGS)
    return _ratio(red, pl)


def _sol_fsi(t: TrialData) -> float:
    d = _charge_rows(t)
    return _ratio(d["n_rxn_sol"].sum(), d["n_rxn_fsi"].sum())


def _ce_run(t: TrialData) -> float:
    d = t.active
    q_dis = d.loc[d["dis_active"], "q_dis_e"].sum()
    return 100.0 * _ratio(q_dis, d["q_ch_e"].sum())


def _state_at_half(col: str) -> Callable[..., float]:
    def f(t: TrialData, half: int = 152) -> float:
        c = max(1, int(half) // 2)
        vals = []
        for rid, d in t.data.groupby("run_id"):
            end = int(t.ends.loc[rid, "end_cycle"])
            row = d[d["cycle"] == min(c, end)]
            if len(row):
                vals.append(float(row[col].iloc[0]))
        return float(np.mean(vals)) if vals else math.nan

    return f


def _state_at_end(col: str) -> Callable[[TrialData], float]:
    def f(t: TrialData) -> float:
        e = t.ends["end_cycle"]
        d = t.data.merge(e, left_on="run_id", right_index=True)
        return _mean(d.loc[d["cycle"] == d["end_cycle"], col])

    return f


def _li_metal_initial(t: TrialData) -> float:
    return float(li_metal_initial(t.data).mean())


def _li_growth(t: TrialData) -> float:
    e = t.ends["end_cycle"]
    d = t.data.merge(e, left_on="run_id", right_index=True)
    final = d.loc[d["cycle"] == d["end_cycle"]].set_index("run_id")["n_li_metal"].astype(float)
    init = li_metal_initial(t.data)
    return float((final / init.reindex(final.index)).mean())


def _end_half(t: TrialData) -> float:
    return float(t.ends["end_half"].mean())


def _share_cause(cause: str) -> Callable[[TrialData], float]:
    def f(t: TrialData) -> float:
        return float(np.mean(t.ends["cause"] == cause))

    return f


def _fidelity(name: str) -> Callable[[TrialData], float]:
    def f(t: TrialData) -> float:
        v = t.fidelity.get(name)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan

    return f


def _li_x_negative(t: TrialData) -> float:
    neg = t.fidelity.get("li_x_pairs_negative_of_6")
    if not isinstance(neg, str) or "/" not in neg or neg.startswith("undefined"):
        return math.nan
    k, n = neg.split("/")
    return _ratio(int(k), int(n))


def _build() -> None:
    _register(
        "events_per_charge_half",
        _per_charge(tuple(CHARGE_REACTIONS)),
        "reaction events per charge half (all charge reactions)",
        "events",
    )
    _register(
        "events_per_discharge_half",
        lambda t: _per_discharge("n_events_dis")(t),
        "reaction events per discharge half (stripping + surface hops)",
        "events",
    )
    _register(
        "platings_per_charge_half",
        _per_charge(PLATINGS),
        "Li platings per charge half (plating + plating over SEI)",
        "events",
    )
    _register(
        "decompositions_per_charge_half",
        _per_charge(DECOMPOSITIONS),
        "reductions per charge half (FSI, SFO, SOL, SOL2, F5D)",
        "events",
    )
    for c, label in CHARGE_REACTIONS.items():
        _register(
            f"{c}_per_charge_half", _per_charge((c,)), f"{label} events per charge half", "events"
        )
    for c, label in DISCHARGE_REACTIONS.items():
        _register(
            f"{c}_per_discharge_half",
            _per_discharge(f"n_rxn_{c}"),
            f"{label} events per discharge half",
            "events",
        )
    for half in ("charge", "discharge"):
        for how in HALF_ENDS:
            _register(
                f"share_{half}_halves_{how}",
                _share_end(half, how),
                f"share of {half} halves ending on '{how}' (end_{'ch' if half == 'charge' else 'dis'})",
                "fraction",
            )
    _register(
        "reductions_per_plating",
        _reductions_per_plating,
        "reductions (FSI+SFO+SOL+SOL2+F5D events) per plating (plating + plating over SEI), pooled",
        "ratio",
    )
    _register(
        "sol_fsi_event_ratio",
        _sol_fsi,
        "SOL (solv_IDP1) events per FSI (salt_IDP1) event, pooled",
        "ratio",
    )
    _register(
        "ce_run_pct",
        _ce_run,
        "CE of the whole run: 100 x stripped / charge-half electrons, pooled up to the end",
        "%",
    )
    _register(
        "sei_sites_at_half",
        _state_at_half("n_sei_sites"),
        "SEI fragment sites after `half` half-cycles (cycle half//2; the end state if the run ended before)",
        "sites",
        params={"half": 152},
    )
    _register(
        "li_metal_at_half",
        _state_at_half("n_li_metal"),
        "Li metal sites after `half` half-cycles (as sei_sites_at_half)",
        "sites",
        params={"half": 152},
    )
    _register(
        "sei_sites_at_end",
        _state_at_end("n_sei_sites"),
        "SEI fragment sites at the end of the run",
        "sites",
    )
    _register(
        "li_metal_at_end",
        _state_at_end("n_li_metal"),
        "Li metal sites at the end of the run",
        "sites",
    )
    _register(
        "li_total_at_end",
        _state_at_end("n_li_total"),
        "all Li sites (metal + SEI-bound) at the end of the run",
        "sites",
    )
    _register(
        "li_metal_initial",
        _li_metal_initial,
        "Li metal sites before the first half (slab geometry)",
        "sites",
    )
    _register(
        "li_metal_growth_ratio",
        _li_growth,
        "Li metal at the end of the run / Li metal at the start",
        "ratio",
    )
    _register(
        "end_half",
        _end_half,
        "half-cycle at which the run ends (censored at 2 x cycles)",
        "half-cycles",
    )
    for cause in END_CAUSES:
        _register(
            f"share_runs_end_{cause}",
            _share_cause(cause),
            f"share of runs whose end cause is '{cause}'",
            "fraction",
        )
    for name, (desc, unit) in FIDELITY_STATS.items():
        _register(name, _fidelity(name), f"{desc} (fidelity study)", unit)
    for p in LI_X_SIGN_PAIRS:
        _register(
            f"spearman_{p}",
            _fidelity(f"spearman_{p}"),
            f"Spearman rank correlation of run mean CE with the {p} energy (OAT runs)",
            "-",
            needs_design=True,
        )
    _register(
        "li_x_negative_fraction",
        _li_x_negative,
        "share of the 6 Li-X pairs other than SFO-Li with a negative CE response (OAT runs)",
        "fraction",
        needs_design=True,
    )


_build()


def compute(t: TrialData, name: str, params: Mapping[str, Any] | None = None) -> float:
    """Value of one registered statistic (NaN when undefined)."""
    st = STATISTICS[name]
    try:
        v = float(st.func(t, **dict(params or {})))
    except (KeyError, ZeroDivisionError):
        return math.nan
    return v if math.isfinite(v) else math.nan


def registry_table() -> pd.DataFrame:
    """The registry as a table (name, unit, parameters, needs a design, description)."""
    return pd.DataFrame(
        [
            {
                "statistic": s.name,
                "unit": s.unit,
                "parameters": ", ".join(f"{k} (default {v})" for k, v in s.params.items()),
                "needs_oat_design": s.needs_design,
                "description": s.description,
            }
            for s in STATISTICS.values()
        ]
    )
