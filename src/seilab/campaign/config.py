"""Campaign configuration: options, the ``campaign.toml`` file, identity checks on resume.

``campaign.toml`` (written in the campaign folder, and accepted by ``--config``) has sections

``[campaign]``   design, seed, replicates, n, pairs, file, param_sets_sha256, n_runs, seed_scheme
``[simulator]``  model, model_sha256, cycles, box, and ``[simulator.set]`` (the ``--set`` values)
``[execution]``  backend, workers, scheduler (not part of the campaign's identity)
``[slurm]``      keyword arguments of ``dask_jobqueue.SLURMCluster`` plus ``jobs``,
                 ``minimum_jobs``, ``maximum_jobs``, ``lifetime``, ``lifetime_stagger``
                 (see :mod:`seilab.campaign.backends`; checked by :func:`check_slurm_settings`)
``[versions]``   python and :data:`seilab.io.PROVENANCE_PACKAGES` (:func:`seilab.io.versions`)
``[created]``    utc

A campaign's *identity* is what decides its runs and their results: design, seed, replicates,
n, pairs, the parameter sets' hash, the number of runs, the resolved model hash (file plus
``--set``, ``--box``, ``--cycles``), cycles, box and the ``--set`` values.  Re-running on an
existing folder with a different identity is refused.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from seilab.errors import CampaignError
from seilab.io import utc_now, versions  # noqa: F401 - re-exported (older imports)

BACKENDS: tuple[str, ...] = ("process", "dask", "slurm")


@dataclass
class CampaignConfig:
    """Options of a campaign (what ``seilab campaign run`` accepts).

    Attributes
    ----------
    design
        ``paper``, ``oat``, ``random``, ``sobol``, ``file`` or ``sets`` (Python API only).
    n
        Number of parameter sets of ``random`` and ``sobol``.
    pairs
        Pairs varied by ``oat``, ``random``, ``sobol`` (default: all of the model's pairs).
    file
        Parameter-set file of the ``file`` design.
    replicates
        Seeds per parameter set.
    seed
        Campaign seed, from which every run's seed derives.
    model
        Bundled model name or TOML path.
    cycles
        Cycles per run (default: the model's ``protocol.cycles``).
    box
        ``(nx, ny, nz)`` (default: the model's ``lattice.box``).
    set
        Campaign-wide model overrides ``{key: value}`` (``--set``).
    backend
        ``process``, ``dask`` or ``slurm``.
    workers
        Worker processes of the ``process`` backend and of a local Dask cluster.
    scheduler
        Address of an existing Dask scheduler (``--backend dask``).
    slurm
        Settings of the ``slurm`` backend.
    param_sets
        The sets of the ``file``/``sets`` designs once read (filled by the planner).
    """

    design: str = "paper"
    n: int | None = None
    pairs: list[str] | None = None
    file: str | None = None
    replicates: int = 1
    seed: int = 0
    model: str = "paper"
    cycles: int | None = None
    box: tuple[int, int, int] | None = None
    set: dict[str, Any] = field(default_factory=dict)
    backend: str = "process"
    workers: int | None = None
    scheduler: str | None = None
    slurm: dict[str, Any] = field(default_factory=dict)
    param_sets: list[dict[str, Any]] | None = None

    def merged(self, **given: Any) -> CampaignConfig:
        """A copy with the non-None values of ``given`` (command-line options) replacing these.

        ``set`` is merged key by key (the given values win).
        """
        data = asdict(self)
        for key, value in given.items():
            if value is None:
                continue
            if key not in data:
                raise CampaignError(f"unknown campaign option {key!r}")
            if key == "set":
                data["set"] = {**data["set"], **value}
            else:
                data[key] = value
        if data.get("box") is not None:
            data["box"] = tuple(int(v) for v in data["box"])
        return CampaignConfig(**data)

    def check(self) -> None:
        """Validate the execution options (the design is checked by the planner).

        Raises
        ------
        CampaignError
        """
        if self.backend not in BACKENDS:
            raise CampaignError(
                f"--backend {self.backend!r}: unknown backend (allowed: {', '.join(BACKENDS)})"
            )
        if self.workers is not None and int(self.workers) < 1:
            raise CampaignError(f"--workers {self.workers}: must be an integer >= 1")
        if self.scheduler is not None and self.backend != "dask":
            raise CampaignError("--scheduler applies to --backend dask")
        if self.cycles is not None and int(self.cycles) < 1:
            raise CampaignError(f"--cycles {self.cycles}: must be an integer >= 1")
        if self.box is not None and (len(self.box) != 3 or any(int(v) < 1 for v in self.box)):
            raise CampaignError(f"--box {list(self.box)}: give three positive integers NX NY NZ")
        check_slurm_settings(self.slurm)


def _count(settings: dict[str, Any], key: str, low: int) -> int | None:
    v = settings.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise CampaignError(f"[slurm] {key} = {v!r}: must be an integer >= {low}")
    return v


def walltime_seconds(text: str) -> float:
    """Seconds of a SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``."""
    days, _, rest = str(text).strip().rpartition("-")
    parts = [float(x) for x in rest.split(":")]
    if not parts or len(parts) > 3 or any(x < 0 for x in parts):
        raise ValueError(text)
    if days:
        h, m, sec = (parts + [0.0, 0.0])[:3]
        return float(days) * 86400 + h * 3600 + m * 60 + sec
    if len(parts) == 1:
        return parts[0] * 60
    if len(parts) == 2:
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def _duration(settings: dict[str, Any], key: str) -> float | None:
    v = settings.get(key)
    if v is None:
        return None
    from dask.utils import parse_timedelta

    try:
        if isinstance(v, bool):
            raise ValueError
        sec = float(parse_timedelta(v, default="s"))
    except (ValueError, TypeError, KeyError):
        sec = -1.0
    if sec <= 0:
        raise CampaignError(
            f"[slurm] {key} = {v!r}: give a positive duration such as '50m', '3h', '90s' or "
            "a number of seconds"
        )
    return sec


def check_slurm_settings(settings: dict[str, Any] | None) -> None:
    """Validate the keys of a ``[slurm]`` section that seilab handles itself.

    ``jobs`` (>= 1) or ``minimum_jobs`` (>= 0) / ``maximum_jobs`` (>= 1, >= minimum_jobs), not
    both; ``lifetime`` and ``lifetime_stagger`` (durations), lifetime shorter than
    ``walltime``; the other keys are ``SLURMCluster``'s and checked when the cluster starts.

    Raises
    ------
    CampaignError
        One line naming the key and the allowed values.
    """
    s = settings or {}
    jobs = _count(s, "jobs", 1)
    lo = _count(s, "minimum_jobs", 0)
    hi = _count(s, "maximum_jobs", 1)
    if jobs is not None and (lo is not None or hi is not None):
        raise CampaignError(
            "[slurm] jobs and minimum_jobs/maximum_jobs: give either a fixed number of jobs or "
            "the adaptive range, not both"
        )
    if lo is not None and hi is not None and hi < lo:
        raise CampaignError(f"[slurm] maximum_jobs = {hi}: must be >= minimum_jobs = {lo}")
    life = _duration(s, "lifetime")
    stagger = _duration(s, "lifetime_stagger")
    if stagger is not None and life is None:
        raise CampaignError("[slurm] lifetime_stagger: applies only with lifetime")
    if life is not None and s.get("walltime") is not None:
        try:
            wall = walltime_seconds(s["walltime"])
        except ValueError:
            raise CampaignError(
                f"[slurm] walltime = {s['walltime']!r}: give HH:MM:SS, MM:SS, MM or D-HH:MM:SS"
            ) from None
        if life + (stagger or 0.0) >= wall:
            raise CampaignError(
                f"[slurm] lifetime = {s['lifetime']!r}: lifetime (plus lifetime_stagger) must "
                f"be shorter than walltime = {s['walltime']!r}, so workers retire before SLURM "
                "ends the job"
            )


def read_config_file(path: str | Path) -> CampaignConfig:
    """Read a campaign configuration TOML (``--config``, or a folder's ``campaign.toml``).

    Raises
    ------
    CampaignError
        Missing file, malformed TOML, unknown section or key.
    """
    p = Path(path)
    if not p.is_file():
        raise CampaignError(f"--config {p}: file not found")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CampaignError(f"--config {p}: cannot read: {exc}") from None
    return config_from_dict(data, source=str(p))


_SECTION_KEYS = {
    "campaign": {"design", "n", "pairs", "file", "replicates", "seed"},
    "simulator": {"model", "cycles", "box", "set"},
    "execution": {"backend", "workers", "scheduler"},
}
_INFO_KEYS = {
    "campaign": {"n_runs", "param_sets_sha256", "seed_scheme", "param_sets_file"},
    "simulator": {"model_sha256"},
}
_INFO_SECTIONS = {"versions", "created"}


def config_from_dict(data: dict[str, Any], *, source: str) -> CampaignConfig:
    """Build a :class:`CampaignConfig` from the sections of a configuration file."""
    kwargs: dict[str, Any] = {}
    for section, value in data.items():
        if section == "slurm":
            if not isinstance(value, dict):
                raise CampaignError(f"{source}: [slurm] must be a table")
            kwargs["slurm"] = dict(value)
            continue
        if section in _INFO_SECTIONS:
            continue
        if section not in _SECTION_KEYS or not isinstance(value, dict):
            allowed = ", ".join([*_SECTION_KEYS, "slurm", *_INFO_SECTIONS])
            raise CampaignError(f"{source}: unknown section [{section}] (allowed: {allowed})")
        for key, v in value.items():
            if key in _INFO_KEYS.get(section, ()):
                continue
            if key not in _SECTION_KEYS[section]:
                allowed = ", ".join(sorted(_SECTION_KEYS[section]))
                raise CampaignError(
                    f"{source}: unknown key {key!r} in [{section}] (allowed: {allowed})"
                )
            kwargs[key] = v
    if "set" in kwargs and not isinstance(kwargs["set"], dict):
        raise CampaignError(f"{source}: [simulator] set must be a table of key = value")
    if kwargs.get("box") is not None:
        kwargs["box"] = tuple(int(v) for v in kwargs["box"])
    return CampaignConfig(**kwargs)


# -------------------------------------------------------------------------- TOML output
def _toml_key(key: str) -> str:
    return json.dumps(str(key))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise CampaignError(f"cannot write {v!r} ({type(v).__name__}) to TOML")


def dump_toml(data: dict[str, Any], header: str = "") -> str:
    """Write nested dicts as TOML (tables of scalars, lists and sub-tables; None is left out)."""
    lines: list[str] = [f"# {h}" if h else "#" for h in header.splitlines()] if header else []

    def table(name: str, d: dict[str, Any]) -> None:
        scalars = {k: v for k, v in d.items() if v is not None and not isinstance(v, dict)}
        subs = {k: v for k, v in d.items() if isinstance(v, dict)}
        if name:
            lines.append("")
            lines.append(f"[{name}]")
        for k, v in scalars.items():
            lines.append(f"{_toml_key(k) if not k.isidentifier() else k} = {_toml_value(v)}")
        for k, v in subs.items():
            sub = f"{name}.{_toml_key(k) if not k.isidentifier() else k}" if name else k
            table(sub, v)

    table("", {k: v for k, v in data.items() if not isinstance(v, dict)})
    for k, v in data.items():
        if isinstance(v, dict):
            table(k if k.isidentifier() else _toml_key(k), v)
    return "\n".join(lines).lstrip("\n") + "\n"


def normalised(d: dict[str, Any]) -> dict[str, Any]:
    """Round-trip through TOML so values compare equal regardless of tuple/list and int/float."""
    return tomllib.loads(dump_toml({"x": d})).get("x", {})


def identity_diff(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human-readable differences between two campaign identities (empty when equal)."""
    a, b = normalised(old), normalised(new)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(
                f"{key}: {a.get(key, '(unset)')!r} in the folder, {b.get(key, '(unset)')!r} now"
            )
    return out


def config_fields() -> list[str]:
    """Names of the :class:`CampaignConfig` fields."""
    return [f.name for f in fields(CampaignConfig)]
