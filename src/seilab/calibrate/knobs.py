"""Knobs against the model: validation of a spec's knobs, and the overrides of one setting.

:func:`check_against_model` probes every knob's extremes (or each of its values) with the
model's own validation, checks that the box holds the slab at every combination and that
statistics needing one-at-a-time runs have such a design; :func:`knob_overrides` turns one knob
setting into model overrides and a box.
"""

from __future__ import annotations

import math
from typing import Any

from seilab.calibrate.spec import (
    BOX_KEYS,
    CalibrationError,
    CalibrationSpec,
    TargetSet,
    _is_int,
    _is_num,
)
from seilab.errors import SeilabError


def check_against_model(spec: CalibrationSpec, targets: TargetSet, model: Any) -> None:
    """Check knobs and fixed overrides against a model; the design against the targets.

    Every knob's extremes (or each value) must be accepted by the model's own validation, the
    box must hold the slab at every combination, and statistics that need one-at-a-time runs
    need such a design.

    Raises
    ------
    CalibrationError
    """
    from seilab.calibrate.statistics import STATISTICS

    src = spec.path
    if spec.fixed:
        try:
            model = model.with_overrides(dict(spec.fixed))
        except SeilabError as exc:
            raise CalibrationError(f"{src}: key 'set': {exc}") from None
    data = model.to_dict()
    box = list(spec.box or model.spec.lattice.box)
    for kn in spec.knobs:
        where = f"knobs.{kn.name}.{'values' if kn.kind == 'categorical' else 'range'}"
        if kn.kind == "categorical":
            probes = list(kn.values)
        elif kn.kind == "int":
            probes = [int(kn.low), int(kn.high)]
        else:
            probes = [kn.low, kn.high]
        for key in kn.keys:
            if key in BOX_KEYS:
                if kn.kind == "float" or not all(_is_int(v) for v in probes):
                    raise CalibrationError(f"{src}: key '{where}': a box dimension takes integers")
                if min(int(v) for v in probes) < 2:
                    raise CalibrationError(
                        f"{src}: key '{where}': {min(probes)} is outside what the model allows "
                        "(every box dimension >= 2 cubes)"
                    )
                continue
            base = _model_value(data, key)
            if base is _MISSING:
                try:
                    model.with_overrides({key: probes[0]})
                except SeilabError as exc:
                    raise CalibrationError(f"{src}: key 'knobs.{kn.name}.key': {exc}") from None
                raise CalibrationError(
                    f"{src}: key 'knobs.{kn.name}.key': {key!r} is not a model value"
                )
            if kn.mode == "scale" and not _is_num(base):
                raise CalibrationError(
                    f"{src}: key 'knobs.{kn.name}.mode': 'scale' needs a numeric model value at {key!r}"
                )
            if kn.kind == "float" and kn.mode == "set" and _is_int(base):
                raise CalibrationError(
                    f"{src}: key '{where}': {key!r} takes integers; give an integer range"
                )
            if kn.kind != "categorical" and kn.mode == "set" and not _is_num(base):
                raise CalibrationError(
                    f"{src}: key '{where}': {key!r} is a {type(base).__name__}; give values = [...]"
                )
            for v in probes:
                if kn.mode == "scale":
                    val = base * v
                elif kn.kind == "categorical":
                    ok = type(v) is type(base) or (_is_num(v) and isinstance(base, float))
                    if not ok:
                        raise CalibrationError(
                            f"{src}: key '{where}': {v!r} is a {type(v).__name__}, {key!r} takes a "
                            f"{type(base).__name__}"
                        )
                    val = float(v) if isinstance(base, float) else v
                else:
                    val = int(v) if _is_int(base) else float(v)
                try:
                    model.with_overrides({key: val})
                except SeilabError as exc:
                    msg = str(exc).split(": ", 1)[-1]
                    raise CalibrationError(
                        f"{src}: key '{where}': {v!r} is outside what the model allows ({msg})"
                    ) from None
    _check_geometry(spec, model, box)
    if spec.design == "single":
        for t in targets.targets:
            if STATISTICS[t.statistic].needs_design:
                raise CalibrationError(
                    f"{targets.path}: key 'targets.{t.name}': statistic {t.statistic!r} needs "
                    f"one-at-a-time runs; set calibration.design in {src} (allowed: mini, screen)"
                )


_MISSING = object()


def _model_value(data: dict[str, Any], key: str) -> Any:
    from seilab.campaign.plan import _lookup

    parts = key.split(".")
    if parts[0] in ("pair", "pairs") and len(parts) == 2:
        return data["pairs"].get(parts[1], _MISSING)
    v = _lookup(data, key)
    return _MISSING if v is None else v


def _extremes(spec: CalibrationSpec, key: str, base: float, lo_side: bool) -> float:
    for kn in spec.knobs:
        if key in kn.keys:
            vals = list(kn.values) if kn.kind == "categorical" else [kn.low, kn.high]
            vals = [base * v if kn.mode == "scale" else v for v in vals]
            return float(min(vals) if lo_side else max(vals))
    return float(base)


def _check_geometry(spec: CalibrationSpec, model: Any, box: list[int]) -> None:
    a = float(model.spec.lattice.a_angstrom)
    slab = _extremes(
        spec, "initial.anode_thickness_angstrom", model.spec.initial.anode_thickness_angstrom, False
    )
    nz = _extremes(spec, "lattice.box.nz", box[2], True)
    if nz * a < slab + 2 * a:
        need = math.ceil((slab + 2 * a) / a)
        where = (
            "knobs" if any("lattice.box.nz" in k.keys for k in spec.knobs) else "calibration.box"
        )
        raise CalibrationError(
            f"{spec.path}: key '{where}': nz = {nz:g} cubes ({nz * a:.1f} A) cannot hold a {slab:g} A "
            f"slab plus electrolyte; allowed: nz >= {need}"
        )


def knob_overrides(
    spec: CalibrationSpec, values: dict[str, Any], model: Any
) -> tuple[dict[str, Any], list[int]]:
    """Model overrides and box of one setting of the knobs.

    Parameters
    ----------
    spec
        The spec.
    values
        Knob name -> value.
    model
        The base model (before the spec's fixed overrides).

    Returns
    -------
    overrides, box
        ``--set`` overrides (fixed ones first, then the knobs; box dimensions excluded) and the
        box ``[nx, ny, nz]``.
    """
    base = model.with_overrides(dict(spec.fixed)) if spec.fixed else model
    data = base.to_dict()
    box = list(spec.box or base.spec.lattice.box)
    over: dict[str, Any] = dict(spec.fixed)
    for kn in spec.knobs:
        v = values[kn.name]
        for key in kn.keys:
            if key in BOX_KEYS:
                box[BOX_KEYS[key]] = int(v)
                continue
            b = _model_value(data, key)
            if kn.mode == "scale":
                over[key] = float(b) * float(v)
            elif kn.kind == "int" and _is_int(b):
                over[key] = int(v)
            elif _is_num(v) and isinstance(b, float):
                over[key] = float(v)
            else:
                over[key] = v
    return over, [int(x) for x in box]
