"""Campaign designs: which parameter sets to run, with which run ids and seeds.

A design expands into a list of :class:`RunSpec` (one per simulation).  Every run has

* a **run id** ``<design_set>-<index:05d>-r<replicate>`` (e.g. ``oat-00042-r0``), stable because it
  depends only on the design, the position of the parameter set in it and the replicate;
* a **seed** derived from the campaign seed ``S`` with NumPy's ``SeedSequence``::

      SeedSequence(entropy=S, spawn_key=(crc32(design_set), index, replicate)).generate_state(1, uint32)[0]

  so a run's seed does not depend on the size of the design, on the order of execution or on
  the other runs, and replicates of one parameter set get independent streams.

Designs on the pair energies use the paper's grid: 0.0, 0.1, ..., 1.5 eV (16 levels, integer
tenths of an eV, so the values are exact decimal floats):

``oat``
    One-at-a-time: for each varied pair, the 16 levels; every other pair keeps the model's
    value.  ``index = pair_position * 16 + level``.
``random``
    ``n`` sets in which every varied pair is drawn independently and uniformly from the 16
    levels, with ``default_rng(SeedSequence(S, spawn_key=(crc32("design:random"),)))``.  The
    first ``n`` sets do not depend on ``n`` (a larger design extends a smaller one).
``sobol``
    ``n`` points of a scrambled Sobol' sequence (``scipy.stats.qmc.Sobol``, ``d`` = number of
    varied pairs, scramble seed from ``SeedSequence(S, spawn_key=(crc32("design:sobol"),))``),
    snapped to the grid by ``level = min(floor(16 u), 15)``.  Balance is best when ``n`` is a
    power of two.
``paper``
    The paper's 380 runs (model spec section 9): ``oat`` over the 19 pairs (304 runs, set
    ``oat``) plus 76 ``random`` runs (set ``random``).
``file``
    Parameter sets read from a CSV, TOML or JSON file (see :func:`read_param_file`).
``sets``
    Parameter sets given in Python (:func:`seilab.campaign.run_param_sets`).
"""

from __future__ import annotations

import csv
import json
import math
import tomllib
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from seilab import schema
from seilab.errors import CampaignError

#: Step and number of levels of the paper's energy grid (0.0 .. 1.5 eV).
GRID_STEP_EV = 0.1
GRID_LEVELS = 16
#: Size of the random part of the paper design (4 x 19).
PAPER_RANDOM_RUNS = 76
#: Designs known to :func:`expand_design`.
DESIGNS: tuple[str, ...] = ("paper", "oat", "random", "sobol", "file", "sets")
#: Seed derivation, as recorded in ``campaign.toml``.
SEED_SCHEME = (
    "SeedSequence(entropy=campaign_seed, spawn_key=(crc32(design_set), index, replicate))"
    ".generate_state(1, uint32)[0]"
)


@dataclass(frozen=True)
class RunSpec:
    """One simulation of a campaign.

    Attributes
    ----------
    run_id
        Stable identifier, also the stem of the run file ``runs/<run_id>.parquet``.
    design_set
        Part of the design the run belongs to (``oat``, ``random``, ``sobol``, ``file``, ``sets``).
    index
        Position of the parameter set within its design set.
    replicate
        Replicate number, 0-based.
    seed
        Seed of the simulation.
    params
        The run's own parameter values, keyed by pair name (``"SFO-Li"``) or dotted model key
        (``"protocol.event_budget"``); campaign-wide options are not repeated here.
    """

    run_id: str
    design_set: str
    index: int
    replicate: int
    seed: int
    params: dict[str, Any] = field(default_factory=dict)


def grid_levels() -> list[float]:
    """The 16 energies of the paper's grid, ``[0.0, 0.1, ..., 1.5]`` (exact decimal floats)."""
    return [level_value(k) for k in range(GRID_LEVELS)]


def level_value(level: int) -> float:
    """Energy (eV) of grid level ``level`` (integer tenths of an eV)."""
    return round(int(level) / 10, 1)


def set_code(design_set: str) -> int:
    """The integer that stands for a design-set name in seed derivations (CRC-32 of the name)."""
    return zlib.crc32(design_set.encode("utf-8"))


def run_seed(campaign_seed: int, design_set: str, index: int, replicate: int) -> int:
    """Seed of one run, derived from the campaign seed (see the module docstring).

    Parameters
    ----------
    campaign_seed
        Non-negative campaign seed.
    design_set, index, replicate
        The run's place in the design.

    Returns
    -------
    int
        A seed in ``[0, 2**32)``.
    """
    ss = np.random.SeedSequence(
        entropy=int(campaign_seed), spawn_key=(set_code(design_set), int(index), int(replicate))
    )
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def run_id(design_set: str, index: int, replicate: int) -> str:
    """Run identifier ``<design_set>-<index:05d>-r<replicate>``."""
    return f"{design_set}-{int(index):05d}-r{int(replicate)}"


def _design_rng(campaign_seed: int, name: str) -> np.random.Generator:
    ss = np.random.SeedSequence(int(campaign_seed), spawn_key=(set_code(f"design:{name}"),))
    return np.random.default_rng(ss)


# ------------------------------------------------------------------------------ keys
def canonical_key(key: str, pairs: Sequence[str]) -> str:
    """Normalise a parameter name.

    Pair energies may be written ``SFO-Li`` (any case), ``pair.SFO-Li``, ``pairs.SFO-Li`` or as
    their data-set column ``e_pair_sfo_li_ev``; they all become ``"SFO-Li"``.  Anything else is
    returned unchanged as a dotted model key (``protocol.event_budget``), validated later by the
    model.

    Parameters
    ----------
    key
        The name as the user wrote it.
    pairs
        Pair names of the model.
    """
    k = str(key).strip()
    by_upper = {p.upper(): p for p in pairs}
    by_column = {schema.pair_column(p): p for p in pairs}
    bare = k
    for prefix in ("pair.", "pairs."):
        if k.startswith(prefix):
            bare = k[len(prefix) :]
    if bare.upper() in by_upper:
        return by_upper[bare.upper()]
    if k in by_column:
        return by_column[k]
    return k


def override_key(key: str, pairs: Sequence[str]) -> str:
    """The ``Model.with_overrides`` key of a canonical parameter name."""
    return f"pair.{key}" if key in pairs else key


def resolve_pairs(names: Sequence[str] | None, pairs: Sequence[str]) -> list[str]:
    """Validate a list of pair names (``--pairs``); ``None`` means every pair of the model."""
    if names is None:
        return list(pairs)
    out: list[str] = []
    for name in names:
        key = canonical_key(name, pairs)
        if key not in pairs:
            raise CampaignError(f"--pairs: unknown pair {name!r} (allowed: {', '.join(pairs)})")
        if key in out:
            raise CampaignError(f"--pairs: pair {key!r} is listed twice")
        out.append(key)
    if not out:
        raise CampaignError("--pairs: give at least one pair")
    return out


# ------------------------------------------------------------------------------ designs
def oat_sets(pairs: Sequence[str]) -> list[dict[str, Any]]:
    """One-at-a-time sets: each pair at each of the 16 grid levels, the others untouched."""
    return [{p: level_value(k)} for p in pairs for k in range(GRID_LEVELS)]


def random_sets(n: int, pairs: Sequence[str], campaign_seed: int) -> list[dict[str, Any]]:
    """``n`` sets with every pair drawn uniformly from the grid (independently per pair)."""
    rng = _design_rng(campaign_seed, "random")
    levels = rng.integers(0, GRID_LEVELS, size=(int(n), len(pairs)))
    return [{p: level_value(v) for p, v in zip(pairs, row, strict=True)} for row in levels]


def sobol_sets(n: int, pairs: Sequence[str], campaign_seed: int) -> list[dict[str, Any]]:
    """``n`` scrambled Sobol' points snapped to the grid (``level = min(floor(16 u), 15)``)."""
    from scipy.stats import qmc

    sampler = qmc.Sobol(d=len(pairs), scramble=True, seed=_design_rng(campaign_seed, "sobol"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "balance properties ... power of 2"
        u = sampler.random(int(n))
    levels = np.minimum(np.floor(u * GRID_LEVELS).astype(np.int64), GRID_LEVELS - 1)
    return [{p: level_value(v) for p, v in zip(pairs, row, strict=True)} for row in levels]


def expand(
    sets_by_design_set: Sequence[tuple[str, Sequence[Mapping[str, Any]]]],
    *,
    replicates: int,
    campaign_seed: int,
) -> list[RunSpec]:
    """Turn parameter sets into run specs (ids and seeds), replicate by replicate.

    Parameters
    ----------
    sets_by_design_set
        ``[(design_set, [params, ...]), ...]``.
    replicates
        Number of seeds per parameter set.
    campaign_seed
        The campaign seed.
    """
    runs: list[RunSpec] = []
    for design_set, sets in sets_by_design_set:
        for index, params in enumerate(sets):
            for rep in range(int(replicates)):
                runs.append(
                    RunSpec(
                        run_id=run_id(design_set, index, rep),
                        design_set=design_set,
                        index=index,
                        replicate=rep,
                        seed=run_seed(campaign_seed, design_set, index, rep),
                        params=dict(params),
                    )
                )
    return runs


def check_design_args(
    design: str,
    *,
    n: int | None,
    pairs: Sequence[str] | None,
    file: str | Path | None,
    replicates: int,
    seed: int,
    has_sets: bool = False,
) -> None:
    """Reject inconsistent design arguments with one clear message (nothing is written).

    Raises
    ------
    CampaignError
    """
    if design not in DESIGNS or (design == "sets" and not has_sets):
        allowed = ", ".join(d for d in DESIGNS if d != "sets")
        raise CampaignError(f"--design {design!r}: unknown design (allowed: {allowed})")
    if replicates is None or int(replicates) < 1:
        raise CampaignError(f"--replicates {replicates}: must be an integer >= 1")
    if seed is None or int(seed) < 0:
        raise CampaignError(f"--seed {seed}: must be an integer >= 0")
    if design in ("random", "sobol"):
        if n is None:
            raise CampaignError(f"--design {design} needs --n N (the number of parameter sets)")
        if int(n) < 1:
            raise CampaignError(f"--n {n}: must be an integer >= 1")
    elif n is not None:
        fixed = " (the paper design has 304 + 76 = 380 runs)" if design == "paper" else ""
        raise CampaignError(f"--n applies to --design random and sobol, not {design}{fixed}")
    if pairs is not None and design not in ("oat", "random", "sobol"):
        raise CampaignError(f"--pairs applies to --design oat, random and sobol, not {design}")
    if design == "file":
        if file is None:
            raise CampaignError("--design file needs --file PATH (a .csv, .toml or .json file)")
    elif file is not None:
        raise CampaignError(f"--file applies to --design file, not {design}")


def design_sets(
    design: str,
    *,
    pairs: Sequence[str],
    n: int | None = None,
    campaign_seed: int = 0,
    param_sets: Sequence[Mapping[str, Any]] | None = None,
) -> list[tuple[str, list[dict[str, Any]]]]:
    """Parameter sets of a design, grouped by design set.

    Parameters
    ----------
    design
        One of :data:`DESIGNS`.
    pairs
        Pairs varied by ``oat``, ``random`` and ``sobol`` (all 19 for ``paper``).
    n
        Number of sets of ``random`` and ``sobol``.
    campaign_seed
        Seed of the random designs.
    param_sets
        The sets of the ``file`` and ``sets`` designs.
    """
    if design == "paper":
        return [
            ("oat", oat_sets(pairs)),
            ("random", random_sets(PAPER_RANDOM_RUNS, pairs, campaign_seed)),
        ]
    if design == "oat":
        return [("oat", oat_sets(pairs))]
    if design == "random":
        return [("random", random_sets(int(n or 0), pairs, campaign_seed))]
    if design == "sobol":
        return [("sobol", sobol_sets(int(n or 0), pairs, campaign_seed))]
    if design in ("file", "sets"):
        return [(design, [dict(s) for s in (param_sets or [])])]
    raise CampaignError(f"unknown design {design!r}")


# ------------------------------------------------------------------------------ user files
def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, f"{key}."))
        else:
            out[key] = v
    return out


def _parse_cell(text: str) -> Any:
    from seilab.model import parse_value

    return parse_value(text.strip())


def read_param_file(path: str | Path) -> list[dict[str, Any]]:
    """Read a user file of parameter sets.

    Formats (by suffix):

    ``.csv``
        A header row of parameter names (pair names such as ``SFO-Li`` or model keys such as
        ``protocol.event_budget``) and one row per parameter set.  Cells are parsed as TOML
        values (``0.3``, ``30``, ``true``, ``[4, 4, 16]``); an empty cell leaves the parameter
        at the model's value.
    ``.toml``
        An array of tables ``[[set]]``, one per parameter set; quote names that contain dots or
        dashes (``"SFO-Li" = 0.3``, ``"protocol.event_budget" = 30``); nested tables are
        flattened to dotted keys.
    ``.json``
        A list of objects, one per parameter set.

    Returns
    -------
    list of dict
        One dict per parameter set, keys as written in the file.

    Raises
    ------
    CampaignError
        Missing or unreadable file, unknown format, no parameter sets.
    """
    p = Path(path)
    if not p.is_file():
        raise CampaignError(f"--file {p}: file not found")
    suffix = p.suffix.lower()
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignError(f"--file {p}: cannot read ({exc})") from None
    sets: list[dict[str, Any]]
    if suffix == ".csv":
        rows = list(csv.reader(text.splitlines()))
        rows = [r for r in rows if any(c.strip() for c in r)]
        if not rows:
            raise CampaignError(f"--file {p}: empty CSV (expected a header row of parameter names)")
        header = [h.strip() for h in rows[0]]
        if any(not h for h in header):
            raise CampaignError(f"--file {p}: the header row has an empty column name")
        dup = sorted({h for h in header if header.count(h) > 1})
        if dup:
            raise CampaignError(f"--file {p}: duplicate column(s) {', '.join(dup)}")
        sets = []
        for line, row in enumerate(rows[1:], start=2):
            if len(row) > len(header):
                raise CampaignError(
                    f"--file {p}: line {line} has {len(row)} cells, the header has {len(header)}"
                )
            sets.append({h: _parse_cell(c) for h, c in zip(header, row, strict=False) if c.strip()})
    elif suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CampaignError(f"--file {p}: malformed TOML: {exc}") from None
        raw = data.get("set")
        if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
            raise CampaignError(
                f"--file {p}: expected an array of tables [[set]], one per parameter set"
            )
        sets = [_flatten(s) for s in raw]
    elif suffix == ".json":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CampaignError(f"--file {p}: malformed JSON: {exc}") from None
        if not isinstance(raw, list) or not all(isinstance(s, dict) for s in raw):
            raise CampaignError(f"--file {p}: expected a list of objects, one per parameter set")
        sets = [_flatten(s) for s in raw]
    else:
        raise CampaignError(f"--file {p}: unknown format {suffix!r} (allowed: .csv, .toml, .json)")
    if not sets:
        raise CampaignError(f"--file {p}: no parameter sets")
    return normalise_sets(sets, source=f"--file {p}")


def normalise_sets(sets: Sequence[Mapping[str, Any]], *, source: str) -> list[dict[str, Any]]:
    """Check that parameter sets are JSON-representable dicts with string keys.

    Raises
    ------
    CampaignError
    """
    out = []
    for i, s in enumerate(sets):
        if not isinstance(s, Mapping):
            raise CampaignError(f"{source}: parameter set {i} is not a mapping of name -> value")
        d = {}
        for k, v in s.items():
            if isinstance(v, np.generic):
                v = v.item()
            if isinstance(v, float) and not math.isfinite(v):
                raise CampaignError(f"{source}: parameter set {i}: {k} = {v} is not finite")
            try:
                json.dumps(v)
            except TypeError:
                raise CampaignError(
                    f"{source}: parameter set {i}: {k} = {v!r} is not a number, string, boolean "
                    "or list"
                ) from None
            d[str(k)] = v
        out.append(d)
    return out


def sets_sha256(sets: Sequence[Mapping[str, Any]]) -> str:
    """Hash of a list of parameter sets (canonical JSON), the identity of ``file``/``sets`` designs."""
    from seilab.io import stable_hash

    return stable_hash([dict(s) for s in sets])
