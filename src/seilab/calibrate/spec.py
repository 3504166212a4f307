"""Calibration spec and targets files: reading and validation (one clear line per error).

Spec (``specs/paper-reference.toml`` is the shipped example)::

    [calibration]
    name = "paper-reference"
    model = "paper"                 # default model (the CLI --model wins)
    cycles = 80                     # or half_cycles = 160 (cycles = ceil(half_cycles / 2))
    box = [10, 10, 30]              # default: the model's
    replicates = 1                  # seeds per trial; run seeds derive from `seed`
    seed = 0
    design = "single"               # or a fidelity subset: mini, screen
    trials = 40

    [set]                           # fixed overrides of every trial
    "protocol.event_budget" = 50

    [search]                        # Optuna sampler, every setting explicit
    sampler = "tpe"                 # tpe | random | grid
    seed = 0
    n_startup_trials = 8
    n_ei_candidates = 24
    multivariate = true

    [execution]                     # not part of the calibration's identity
    backend = "dask"                # dask (one local cluster for all trials) | process
    workers = 2
    parallel_trials = 2             # trials run at once (default: workers // runs per trial)

    [knobs.scan_interval]
    key = "protocol.scan_interval_s"        # a model key, or a list of keys moved together
    range = [3600.0, 720000.0]              # or values = [..]
    log = true
    mode = "set"                            # or "scale": value x the model's value of each key
    source = "why this range"

Knob keys are ``--set`` keys of the model (``reactions.f5d.k0``, ``pair.SFO-Li``) plus
``lattice.box.nx`` / ``ny`` / ``nz`` for one box dimension.

Targets::

    [targets.events_per_charge_half]        # a statistic of the registry
    value = 49.8
    tolerance = 2.5
    source = "G §5.3 via original-engine-reference-run.md §3"
    [targets.sei_sites]
    statistic = "sei_sites_at_half"         # when the table name is not the statistic's
    half = 152                              # a parameter of that statistic
    value = 1300
    tolerance = 300
    source = "..."
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seilab.errors import SeilabError

SAMPLERS: tuple[str, ...] = ("tpe", "random", "grid")
BACKENDS: tuple[str, ...] = ("dask", "process")
DESIGNS: tuple[str, ...] = ("single", "mini", "screen")
MODES: tuple[str, ...] = ("set", "scale")
BOX_KEYS: dict[str, int] = {"lattice.box.nx": 0, "lattice.box.ny": 1, "lattice.box.nz": 2}
_CAL_KEYS = {
    "name",
    "description",
    "model",
    "cycles",
    "half_cycles",
    "box",
    "replicates",
    "seed",
    "design",
    "trials",
}
_SEARCH_KEYS = {"sampler", "seed", "n_startup_trials", "n_ei_candidates", "multivariate"}
_EXEC_KEYS = {"backend", "workers", "parallel_trials", "scheduler"}
_KNOB_KEYS = {"key", "range", "values", "log", "mode", "source", "note"}
_TARGET_KEYS = {"statistic", "value", "tolerance", "source", "note"}
_SECTIONS = {"calibration", "set", "search", "execution", "knobs"}


class CalibrationError(SeilabError):
    """A calibration spec, targets file or output folder is invalid (one line)."""


@dataclass(frozen=True)
class Knob:
    """One searched knob.

    Attributes
    ----------
    name
        Table name in the spec (the Optuna parameter name).
    keys
        Model keys it sets (several: moved together).
    kind
        ``float``, ``int`` or ``categorical``.
    low, high, log
        The range (float/int knobs).
    values
        The choices (categorical knobs).
    mode
        ``set`` or ``scale``.
    source
        Why this range.
    """

    name: str
    keys: tuple[str, ...]
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    values: tuple[Any, ...] = ()
    mode: str = "set"
    source: str = ""
    note: str = ""

    def describe_range(self) -> str:
        """``[lo, hi] (log)`` or ``{a, b, c}``."""
        if self.kind == "categorical":
            return "{" + ", ".join(json.dumps(v) for v in self.values) + "}"
        return f"[{self.low:g}, {self.high:g}]" + (" (log)" if self.log else "")


@dataclass(frozen=True)
class Target:
    """One target: a registered statistic, its value, tolerance and source."""

    name: str
    statistic: str
    value: float
    tolerance: float
    source: str
    params: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass
class CalibrationSpec:
    """A validated calibration spec (see the module docstring for the file format)."""

    path: str
    name: str
    description: str
    model: str | None
    cycles: int | None
    box: tuple[int, int, int] | None
    replicates: int
    seed: int
    design: str
    trials: int
    fixed: dict[str, Any]
    knobs: list[Knob]
    sampler: str = "tpe"
    sampler_seed: int = 0
    n_startup_trials: int = 8
    n_ei_candidates: int = 24
    multivariate: bool = True
    backend: str = "dask"
    workers: int = 2
    parallel_trials: int | None = None
    scheduler: str | None = None
    sha256: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def _read(path: str | Path, what: str) -> tuple[str, dict[str, Any]]:
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"{p}: {what} file not found")
    try:
        text = p.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CalibrationError(f"{p}: malformed TOML: {exc}") from None


def _canonical_hash(data: Any) -> str:
    from seilab.io import stable_hash

    return stable_hash(data)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_keys(src: str, where: str, table: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise CalibrationError(f"{src}: key '{where}': must be a table")
    for k in table:
        if k not in allowed:
            raise CalibrationError(
                f"{src}: key '{where}.{k}': unknown key (allowed: {', '.join(sorted(allowed))})"
            )
    return table


def _int_opt(src: str, where: str, v: Any, lo: int, default: int | None) -> int | None:
    if v is None:
        return default
    if not _is_int(v) or v < lo:
        raise CalibrationError(f"{src}: key '{where}': {v!r} must be an integer >= {lo}")
    return int(v)


def _choice(src: str, where: str, v: Any, allowed: tuple[str, ...], default: str) -> str:
    if v is None:
        return default
    if v not in allowed:
        raise CalibrationError(f"{src}: key '{where}': {v!r} (allowed: {', '.join(allowed)})")
    return str(v)


def load_spec(path: str | Path) -> CalibrationSpec:
    """Read a calibration spec (format and keys checked; knobs against the model later).

    Raises
    ------
    CalibrationError
        One line naming the file, the key and what is allowed.
    """
    src = str(path)
    _, data = _read(path, "calibration spec")
    for sec in data:
        if sec not in _SECTIONS:
            raise CalibrationError(
                f"{src}: unknown section [{sec}] (allowed: {', '.join(sorted(_SECTIONS))})"
            )
    cal = _check_keys(src, "calibration", data.get("calibration", {}), _CAL_KEYS)
    search = _check_keys(src, "search", data.get("search", {}), _SEARCH_KEYS)
    exe = _check_keys(src, "execution", data.get("execution", {}), _EXEC_KEYS)
    fixed = data.get("set", {})
    if not isinstance(fixed, dict):
        raise CalibrationError(f"{src}: key 'set': must be a table of model key = value")
    cycles = _int_opt(src, "calibration.cycles", cal.get("cycles"), 1, None)
    halves = _int_opt(src, "calibration.half_cycles", cal.get("half_cycles"), 1, None)
    if cycles is not None and halves is not None:
        raise CalibrationError(f"{src}: key 'calibration.half_cycles': give cycles or half_cycles")
    if halves is not None:
        cycles = (halves + 1) // 2
    box = cal.get("box")
    if box is not None:
        if not (
            isinstance(box, list) and len(box) == 3 and all(_is_int(v) and v >= 2 for v in box)
        ):
            raise CalibrationError(
                f"{src}: key 'calibration.box': {box!r} must be three integers >= 2 [nx, ny, nz]"
            )
        box = tuple(int(v) for v in box)
    model = cal.get("model")
    if model is not None and not isinstance(model, str):
        raise CalibrationError(f"{src}: key 'calibration.model': must be a model name or path")
    for k in ("name", "description"):
        if k in cal and not isinstance(cal[k], str):
            raise CalibrationError(f"{src}: key 'calibration.{k}': must be a string")
    mv = search.get("multivariate", True)
    if not isinstance(mv, bool):
        raise CalibrationError(f"{src}: key 'search.multivariate': must be true or false")
    sched = exe.get("scheduler")
    if sched is not None and not isinstance(sched, str):
        raise CalibrationError(f"{src}: key 'execution.scheduler': must be an address string")
    knobs_raw = data.get("knobs")
    if not isinstance(knobs_raw, dict) or not knobs_raw:
        raise CalibrationError(f"{src}: key 'knobs': give at least one [knobs.NAME] table")
    knobs = [_parse_knob(src, name, k) for name, k in knobs_raw.items()]
    seen: dict[str, str] = {}
    for kn in knobs:
        for key in kn.keys:
            if key in seen or key in fixed:
                other = f"knobs.{seen[key]}" if key in seen else "set"
                raise CalibrationError(
                    f"{src}: key 'knobs.{kn.name}.key': {key!r} is also set by '{other}'"
                )
            seen[key] = kn.name
    sampler = _choice(src, "search.sampler", search.get("sampler"), SAMPLERS, "tpe")
    if sampler == "grid" and any(k.kind != "categorical" for k in knobs):
        bad = next(k.name for k in knobs if k.kind != "categorical")
        raise CalibrationError(
            f"{src}: key 'knobs.{bad}': the grid sampler needs `values` for every knob"
        )
    # identity: everything that decides the simulations and the search, not trials/execution
    ident = {k: v for k, v in data.items() if k != "execution"}
    ident["calibration"] = {k: v for k, v in cal.items() if k not in ("trials", "description")}
    return CalibrationSpec(
        path=src,
        name=str(cal.get("name", Path(src).stem)),
        description=str(cal.get("description", "")),
        model=model,
        cycles=cycles,
        box=box,
        replicates=int(_int_opt(src, "calibration.replicates", cal.get("replicates"), 1, 1)),
        seed=int(_int_opt(src, "calibration.seed", cal.get("seed"), 0, 0)),
        design=_choice(src, "calibration.design", cal.get("design"), DESIGNS, "single"),
        trials=int(_int_opt(src, "calibration.trials", cal.get("trials"), 1, 20)),
        fixed=dict(fixed),
        knobs=knobs,
        sampler=sampler,
        sampler_seed=int(_int_opt(src, "search.seed", search.get("seed"), 0, 0)),
        n_startup_trials=int(
            _int_opt(src, "search.n_startup_trials", search.get("n_startup_trials"), 0, 8)
        ),
        n_ei_candidates=int(
            _int_opt(src, "search.n_ei_candidates", search.get("n_ei_candidates"), 1, 24)
        ),
        multivariate=mv,
        backend=_choice(src, "execution.backend", exe.get("backend"), BACKENDS, "dask"),
        workers=int(_int_opt(src, "execution.workers", exe.get("workers"), 1, 2)),
        parallel_trials=_int_opt(
            src, "execution.parallel_trials", exe.get("parallel_trials"), 1, None
        ),
        scheduler=sched,
        sha256=_canonical_hash(ident),
        raw=data,
    )


def _parse_knob(src: str, name: str, k: Any) -> Knob:
    where = f"knobs.{name}"
    k = _check_keys(src, where, k, _KNOB_KEYS)
    key = k.get("key")
    keys = [key] if isinstance(key, str) else key
    if not keys or not isinstance(keys, list) or not all(isinstance(x, str) and x for x in keys):
        raise CalibrationError(f"{src}: key '{where}.key': give a model key or a list of keys")
    source = k.get("source")
    if not isinstance(source, str) or not source.strip():
        raise CalibrationError(
            f"{src}: key '{where}.source': required (where the range comes from, or "
            "'unknown, documented range')"
        )
    mode = _choice(src, f"{where}.mode", k.get("mode"), MODES, "set")
    if any(x in BOX_KEYS for x in keys) and (len(keys) > 1 or mode != "set"):
        raise CalibrationError(f"{src}: key '{where}.key': a box dimension is a knob of its own")
    log = k.get("log", False)
    if not isinstance(log, bool):
        raise CalibrationError(f"{src}: key '{where}.log': must be true or false")
    has_r, has_v = "range" in k, "values" in k
    if has_r == has_v:
        raise CalibrationError(
            f"{src}: key '{where}': give exactly one of range = [lo, hi] or values = [...]"
        )
    note = str(k.get("note", ""))
    if has_v:
        vals = k["values"]
        if not isinstance(vals, list) or not vals:
            raise CalibrationError(f"{src}: key '{where}.values': give a non-empty list")
        if any(isinstance(v, list | dict) for v in vals) or len(
            {json.dumps(v) for v in vals}
        ) < len(vals):
            raise CalibrationError(
                f"{src}: key '{where}.values': scalars (number, boolean, string), each once"
            )
        return Knob(
            name,
            tuple(keys),
            "categorical",
            values=tuple(vals),
            mode=mode,
            source=source,
            note=note,
        )
    r = k["range"]
    if not (isinstance(r, list) and len(r) == 2 and all(_is_num(v) for v in r)):
        raise CalibrationError(f"{src}: key '{where}.range': {r!r} must be [lo, hi] (two numbers)")
    lo, hi = r
    if not lo < hi:
        raise CalibrationError(f"{src}: key '{where}.range': lo < hi required, got [{lo}, {hi}]")
    if log and lo <= 0:
        raise CalibrationError(f"{src}: key '{where}.range': a log range needs lo > 0, got {lo}")
    kind = "int" if _is_int(lo) and _is_int(hi) else "float"
    return Knob(
        name, tuple(keys), kind, float(lo), float(hi), log, mode=mode, source=source, note=note
    )


@dataclass
class TargetSet:
    """A validated targets file."""

    path: str
    description: str
    targets: list[Target]
    sha256: str


def load_targets(path: str | Path) -> TargetSet:
    """Read a targets file: every statistic must be registered, every value sourced.

    Raises
    ------
    CalibrationError
        One line naming the file, the key and what is allowed.
    """
    from seilab.calibrate.statistics import STATISTICS

    src = str(path)
    text, data = _read(path, "targets")
    allowed_top = {"description", "targets"}
    for k in data:
        if k not in allowed_top:
            raise CalibrationError(
                f"{src}: unknown key '{k}' (allowed: {', '.join(sorted(allowed_top))})"
            )
    raw = data.get("targets")
    if not isinstance(raw, dict) or not raw:
        raise CalibrationError(f"{src}: key 'targets': give at least one [targets.NAME] table")
    out: list[Target] = []
    for name, t in raw.items():
        where = f"targets.{name}"
        if not isinstance(t, dict):
            raise CalibrationError(f"{src}: key '{where}': must be a table")
        stat = t.get("statistic", name)
        if stat not in STATISTICS:
            raise CalibrationError(
                f"{src}: key '{where}{'.statistic' if 'statistic' in t else ''}': unknown "
                f"statistic {stat!r} (allowed: {', '.join(STATISTICS)})"
            )
        st = STATISTICS[stat]
        allowed = _TARGET_KEYS | set(st.params)
        _check_keys(src, where, t, allowed)
        for k in ("value", "tolerance"):
            if k not in t:
                raise CalibrationError(f"{src}: key '{where}.{k}': required key is missing")
            if not _is_num(t[k]):
                raise CalibrationError(f"{src}: key '{where}.{k}': {t[k]!r} must be a number")
        if not t["tolerance"] > 0:
            raise CalibrationError(
                f"{src}: key '{where}.tolerance': must be > 0, got {t['tolerance']}"
            )
        source = t.get("source")
        if not isinstance(source, str) or not source.strip():
            raise CalibrationError(
                f"{src}: key '{where}.source': required (where the target value comes from)"
            )
        params = {}
        for p, default in st.params.items():
            v = t.get(p, default)
            if not _is_int(v) or v < 1:
                raise CalibrationError(f"{src}: key '{where}.{p}': {v!r} must be an integer >= 1")
            params[p] = int(v)
        out.append(
            Target(
                name,
                stat,
                float(t["value"]),
                float(t["tolerance"]),
                source.strip(),
                params,
                str(t.get("note", "")),
            )
        )
    ident = [(t.name, t.statistic, t.value, t.tolerance, t.params) for t in out]
    return TargetSet(src, str(data.get("description", "")), out, _canonical_hash(ident))
