"""Model definition: load, validate and override model files (TOML).

A model is plain data (:class:`Model`, wrapping the validated :class:`ModelSpec`); the engine
compiles it into integer tables.  Bundled models are registered by name (``paper``,
``paper-legacy``); any path to a TOML file works too.

Examples
--------
>>> from seilab.model import load_model
>>> m = load_model("paper").with_overrides({"pair.Li-Li": 0.3})
>>> m.spec.pairs["Li-Li"]
0.3
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from seilab.errors import ModelError
from seilab.io import text_hash
from seilab.model.schema import ModelSpec

__all__ = ["Model", "ModelSpec", "available_models", "load_model", "model_text", "parse_value"]


def available_models() -> list[str]:
    """Names of the models bundled with seilab."""
    files = resources.files("seilab.model").joinpath("models")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".toml"))


def _resolve(name_or_path: str | Path) -> tuple[str, str]:
    """Return (display name of the source, TOML text)."""
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        if not p.is_file():
            raise ModelError(f"{p}: model file not found")
        return str(p), p.read_text(encoding="utf-8")
    name = str(name_or_path)
    if name not in available_models():
        raise ModelError(
            f"unknown model {name!r}: give a TOML file path or one of {', '.join(available_models())}"
        )
    text = resources.files("seilab.model").joinpath("models", f"{name}.toml").read_text("utf-8")
    return f"{name} (bundled)", text


def model_text(name_or_path: str | Path = "paper") -> str:
    """The TOML text of a bundled model or a model file."""
    return _resolve(name_or_path)[1]


def _format_validation(source: str, err: ValidationError, data: dict | None = None) -> str:
    first = err.errors()[0]
    parts = list(first["loc"])
    # name reactions by their name, not their index: reactions.plating.k0
    if data and len(parts) > 1 and parts[0] == "reactions" and isinstance(parts[1], int):
        try:
            parts[1] = data["reactions"][parts[1]]["name"]
        except (KeyError, IndexError, TypeError):
            pass
    loc = ".".join(str(x) for x in parts)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown key"
        parent = _allowed_keys(first["loc"][:-1])
        if parent:
            msg += f" (allowed: {', '.join(parent)})"
    elif first["type"] == "missing":
        msg = "required key is missing"
    elif first["type"].startswith("literal_error"):
        msg = msg.replace("Input should be", "allowed:")
    where = f"key '{loc}': " if loc else ""
    return f"{source}: {where}{msg}"


def _allowed_keys(loc: tuple) -> list[str]:
    """Field names allowed at a location of the schema (for error messages)."""
    from pydantic import BaseModel

    cls: Any = ModelSpec
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return []
        f = cls.model_fields.get(str(part))
        if f is None:
            return []
        ann = f.annotation
        args = getattr(ann, "__args__", ())
        cls = next(
            (a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), ann
        )
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return list(cls.model_fields)
    return []


def _validate(source: str, data: dict) -> ModelSpec:
    try:
        return ModelSpec.model_validate(data)
    except ValidationError as err:
        raise ModelError(_format_validation(source, err, data)) from None


def parse_value(text: str) -> Any:
    """Parse a ``--set`` value as a TOML value (numbers, booleans, arrays, strings)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word is a string


@dataclass(frozen=True)
class Model:
    """A validated model with its provenance.

    Attributes
    ----------
    spec
        The validated model content.
    source
        Where it came from (file path or ``"paper (bundled)"``).
    source_sha256
        SHA-256 of the source file's bytes.
    overrides
        Values set on top of the file, as ``{"pair.Li-Li": 0.3, ...}``.
    """

    spec: ModelSpec
    source: str
    source_sha256: str
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Model name from the file."""
        return self.spec.model.name

    def to_dict(self) -> dict[str, Any]:
        """The resolved model as plain data (round-trips through :meth:`from_dict`)."""
        return self.spec.model_dump(mode="json")

    @property
    def sha256(self) -> str:
        """SHA-256 of the resolved model (file plus overrides), canonical JSON."""
        from seilab.io import stable_hash

        return stable_hash(self.to_dict())

    def with_overrides(self, overrides: dict[str, Any]) -> Model:
        """Return a new model with values replaced.

        Keys are dotted paths into the model file (``protocol.event_budget``,
        ``lattice.box``), ``pair.A-B`` or ``pairs.A-B`` for a pair energy, and
        ``reactions.NAME.KEY`` for a reaction (``reactions.plating.k0``).
        """
        data = self.to_dict()
        for key, value in overrides.items():
            _set_path(data, key, value, self.source)
        spec = _validate(f"{self.source} with --set", data)
        return Model(spec, self.source, self.source_sha256, {**self.overrides, **overrides})

    def with_box(self, box: tuple[int, int, int]) -> Model:
        """Shortcut for ``with_overrides({"lattice.box": box})``."""
        return self.with_overrides({"lattice.box": list(box)})

    def pair_energies(self) -> dict[str, float]:
        """The pair energies (eV) by name."""
        return dict(self.spec.pairs)


def _set_path(data: dict, key: str, value: Any, source: str) -> None:
    parts = key.split(".")
    if parts[0] == "pair":
        parts[0] = "pairs"
    if parts[0] == "pairs" and len(parts) == 2:
        if parts[1] not in data["pairs"]:
            raise ModelError(
                f"--set {key}: unknown pair {parts[1]!r} (allowed: {', '.join(data['pairs'])})"
            )
        data["pairs"][parts[1]] = value
        return
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):  # reactions addressed by name
            match = [r for r in node if isinstance(r, dict) and r.get("name") == part]
            if not match:
                names = [r.get("name") for r in node]
                raise ModelError(
                    f"--set {key}: unknown name {part!r} (allowed: {', '.join(map(str, names))})"
                )
            node = match[0]
            if last:
                raise ModelError(f"--set {key}: give a key below {part!r}, e.g. {key}.k0")
            continue
        if not isinstance(node, dict) or part not in node:
            allowed = ", ".join(map(str, node)) if isinstance(node, dict) else "(none)"
            raise ModelError(f"--set {key}: unknown name {part!r} (allowed: {allowed})")
        if last:
            node[part] = copy.deepcopy(value)
        else:
            node = node[part]


def load_model(
    name_or_path: str | Path = "paper", overrides: dict[str, Any] | None = None
) -> Model:
    """Load and validate a model by bundled name or TOML path.

    Parameters
    ----------
    name_or_path
        ``"paper"``, ``"paper-legacy"`` or a path to a TOML model file.
    overrides
        Optional ``{dotted.key: value}`` applied after loading (see :meth:`Model.with_overrides`).

    Raises
    ------
    ModelError
        With one line naming the file, the key and what is allowed.
    """
    source, text = _resolve(name_or_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{source}: malformed TOML: {exc}") from None
    spec = _validate(source, data)
    model = Model(spec, source, text_hash(text))
    return model.with_overrides(overrides) if overrides else model
