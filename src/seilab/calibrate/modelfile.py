"""The best knob setting as a model file that ``seilab model validate`` accepts.

The base model's own TOML text is kept, comments included, and only the changed values are
replaced (a comment with the knob, its range and the range's source is appended to each
changed line; keys the base file does not spell out are added under their section or
reaction).  The result is loaded back and must resolve to exactly the calibrated model; if the
text cannot be patched that way (an unusual layout), the whole resolved model is written
instead (:func:`model_toml`), with the same comments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from seilab.calibrate.spec import BOX_KEYS, CalibrationSpec, TargetSet


def native(v: Any) -> Any:
    """A NumPy scalar as a Python value."""
    return v.item() if hasattr(v, "item") else v


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _key(k: str) -> str:
    return k if k.replace("_", "").isalnum() and not k[0].isdigit() else json.dumps(k)


def _val(v: Any) -> str:
    from seilab.campaign.config import _toml_value

    if isinstance(v, dict):
        inner = ", ".join(f"{_key(k)} = {_val(x)}" for k, x in v.items() if x is not None)
        return "{ " + inner + " }"
    if isinstance(v, list | tuple) and any(isinstance(x, dict) for x in v):
        return "[\n" + "".join(f"  {_val(x)},\n" for x in v) + "]"
    return _toml_value(v)


# ------------------------------------------------------------------------------ full dump
def model_toml(data: Mapping[str, Any], comments: Mapping[str, str], header: str) -> str:
    """Write a resolved model (``Model.to_dict()``) as a model file, commenting given keys.

    Parameters
    ----------
    data
        The resolved model.
    comments
        Dotted key (``protocol.scan_interval_s``, ``reactions.f5d.k0``, ``lattice.box``) ->
        comment written after its line.
    header
        Comment lines at the top.
    """
    out = [f"# {h}" if h else "#" for h in header.splitlines()]

    def line(k: str, v: Any, path: str) -> None:
        text = f"{_key(k)} = {_val(v)}"
        c = comments.get(path)
        out.append(f"{text}  # {c}" if c else text)

    def table(name: str, d: Mapping[str, Any], path: str) -> None:
        out.extend(["", f"[{name}]"])
        subs = []
        for k, v in d.items():
            if v is None:
                continue
            if isinstance(v, dict):
                subs.append((k, v))
            else:
                line(k, v, f"{path}.{k}")
        for k, v in subs:
            table(f"{name}.{_key(k)}", v, f"{path}.{k}")

    for sec, v in data.items():
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                out.extend(["", f"[[{sec}]]"])
                for k, x in item.items():
                    if x is not None:
                        line(k, x, f"{sec}.{item.get('name')}.{k}")
        elif isinstance(v, dict):
            table(_key(sec), v, sec)
    return "\n".join(out).lstrip("\n") + "\n"


# ------------------------------------------------------------------------------ patching
_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def _blocks(lines: list[str]) -> list[tuple[str, int, int]]:
    """(table name, first line, end line) of every table; ``reactions.<name>`` for entries."""
    heads = [(i, _HEADER.match(ln)) for i, ln in enumerate(lines)]
    heads = [(i, m.group(1).replace('"', "")) for i, m in heads if m]
    out = []
    for j, (i, name) in enumerate(heads):
        end = heads[j + 1][0] if j + 1 < len(heads) else len(lines)
        if lines[i].lstrip().startswith("[["):
            for k in range(i + 1, end):
                m = re.match(r'^\s*name\s*=\s*"([^"]+)"', lines[k])
                if m:
                    name = f"{name}.{m.group(1)}"
                    break
        out.append((name, i, end))
    return out


def patch_model_text(text: str, changes: Mapping[str, tuple[Any, str]]) -> str | None:
    """Replace values in a model file's text, keeping its layout and comments.

    Parameters
    ----------
    text
        The base model file.
    changes
        Dotted key (``protocol.scan_interval_s``, ``reactions.f5d.k0``, ``pairs.Li-Li``,
        ``lattice.box``, ``model.name``) -> (new value, comment or "").

    Returns
    -------
    str or None
        The patched text, or None when a key's table is not in the text.
    """
    lines = text.splitlines()
    for key, (value, comment) in changes.items():
        table, _, leaf = key.rpartition(".")
        block = next((b for b in _blocks(lines) if b[0] == table), None)
        if block is None:
            return None
        _, start, end = block
        new = f"{_key(leaf)} = {_val(value)}" + (f"  # {comment}" if comment else "")
        pat = re.compile(rf'^\s*"?{re.escape(leaf)}"?\s*=')
        hit = next((k for k in range(start + 1, end) if pat.match(lines[k])), None)
        if hit is not None:
            if "\n" in _val(value) or lines[hit].rstrip().endswith(("[", "{")):
                return None  # multi-line values are not patched in place
            lines[hit] = new
        else:
            last = max(
                k
                for k in range(start, end)
                if lines[k].strip() and not lines[k].lstrip().startswith("#")
            )
            lines.insert(last + 1, new)
    return "\n".join(lines) + "\n"


def _comment_key(key: str) -> str:
    parts = key.split(".")
    if parts[0] == "pair":
        parts[0] = "pairs"
    return ".".join(parts)


def best_model_text(
    best: Mapping[str, Any],
    spec: CalibrationSpec,
    targets: TargetSet,
    model: Any,
    model_arg: str,
    cycles: int,
) -> str:
    """The best setting as a model file; it resolves to exactly the calibrated model.

    Raises
    ------
    RuntimeError
        Neither the patched text nor the full dump resolves to the calibrated model (a bug).
    """
    from seilab import __version__
    from seilab.calibrate.knobs import knob_overrides
    from seilab.model import load_model, model_text

    values = {k.name: native(best[k.name]) for k in spec.knobs}
    over, box = knob_overrides(spec, values, model)
    over = {**over, "lattice.box": box}
    target = model.with_overrides(over).to_dict()
    name = f"{model.name}-calibrated"
    desc = (
        f"{model.name} with the knobs of calibration '{spec.name}' (trial {int(best['trial'])}, "
        f"loss {float(best['loss']):.4g})"
    )
    target["model"].update(name=name, description=desc)
    comments: dict[str, str] = {}
    for kn in spec.knobs:
        ev = (
            f"calibrated: knob '{kn.name}' = {_fmt(values[kn.name])}, range {kn.describe_range()}"
            f", mode {kn.mode}; range source: {kn.source}"
        )
        for key in kn.keys:
            comments["lattice.box" if key in BOX_KEYS else _comment_key(key)] = ev
    for key in spec.fixed:
        comments[_comment_key(key)] = f"fixed by calibration spec '{spec.name}' [set]"
    if "lattice.box" not in comments and list(box) != list(model.spec.lattice.box):
        comments["lattice.box"] = f"box of calibration spec '{spec.name}' [calibration]"
    header = "\n".join(
        [
            f"seilab model file written by `seilab calibrate` (seilab {__version__}).",
            f"Base model: {model_arg} ({model.source}, sha256 {model.source_sha256[:16]}).",
            f"Calibration spec {spec.path} (sha256 {spec.sha256[:16]}), targets {targets.path} "
            f"(sha256 {targets.sha256[:16]}).",
            f"Best trial {int(best['trial'])}, loss {float(best['loss']):.6g} (mean z^2 over "
            f"{len(targets.targets)} targets), {cycles} cycles, {spec.replicates} replicate(s), "
            f"seed {spec.seed}.",
            "Every changed key carries its knob, range and range source in a comment.",
        ]
    )
    from seilab.campaign.plan import _lookup

    changes: dict[str, tuple[Any, str]] = {
        "model.name": (name, ""),
        "model.description": (desc, ""),
    }
    for key, c in comments.items():
        val = (
            target["pairs"][key.split(".", 1)[1]]
            if key.startswith("pairs.")
            else _lookup(target, key)
        )
        changes[key] = (val, c)
    head = "".join(f"# {h}\n" for h in header.splitlines()) + "#\n"
    patched = patch_model_text(model_text(model_arg), changes)
    candidates = [] if patched is None else [head + patched]
    candidates.append(model_toml(target, comments, header))
    import tempfile
    from pathlib import Path

    for text in candidates:
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / "m.toml"
            p.write_text(text, encoding="utf-8")
            if load_model(p).to_dict() == target:
                return text
    raise RuntimeError("the calibrated model file does not resolve to the calibrated model")
