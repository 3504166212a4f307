"""The campaign folder: reading it (manifest, data set) and writing the manifest atomically.

Layout (see ``docs/schema.md`` and ``docs/campaigns.md``)::

    DIR/
      campaign.toml          resolved campaign configuration
      manifest.parquet       one row per run (written by the parent only, temp file + os.replace)
      param_sets.json        the parameter sets of a ``file``/``sets`` design
      runs/<run_id>.parquet  run tables (each written by its worker to a temporary name, then renamed)
      .lock                  held (fcntl.flock) by the process running the campaign; holds its pid

A run is finished if and only if ``runs/<run_id>.parquet`` exists and is readable.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from seilab import schema
from seilab.errors import AnalysisError
from seilab.io import LOCK_FILE, atomic_write_parquet, atomic_write_text  # noqa: F401 - re-exported

#: Manifest columns written by seilab besides :data:`seilab.schema.MANIFEST_COLUMNS`, the
#: ``e_pair_*_ev`` columns and the ``param.*`` columns.
EXTRA_MANIFEST_COLUMNS: tuple[str, ...] = ("design_index", "replicate")
#: Manifest schema-metadata key holding the campaign's sessions (JSON).
MANIFEST_METADATA_KEY = b"seilab_campaign"
#: Where a run file that exists but cannot be read is moved (never left among ``runs/``).
QUARANTINE_DIR = "quarantine"
PARAM_SETS_FILE = "param_sets.json"
PARAM_PREFIX = "param."

_BASE_TYPES: dict[str, pa.DataType] = {
    "run_id": pa.string(),
    "design_set": pa.string(),
    "seed": pa.int64(),
    "status": pa.string(),
    "wall_s": pa.float64(),
    "n_cycles": pa.int32(),
    "end_reason": pa.string(),
    "error": pa.string(),
    "seilab_version": pa.string(),
    "model_sha256": pa.string(),
    "design_index": pa.int32(),
    "replicate": pa.int32(),
}


def check_campaign_folder(folder: str | Path) -> Path:
    """Check, before any work, that ``folder`` is a campaign folder (it has a manifest).

    Raises
    ------
    AnalysisError
        One line: the folder does not exist, is not a folder, is empty or has no manifest.
    """
    path = Path(folder)
    if not path.exists():
        raise AnalysisError(f"{path}: folder does not exist")
    if not path.is_dir():
        raise AnalysisError(f"{path}: not a folder (expected a campaign folder)")
    if not any(path.iterdir()):
        raise AnalysisError(
            f"{path}: folder is empty (expected {schema.MANIFEST} and {schema.RUNS_DIR}/)"
        )
    if not (path / schema.MANIFEST).is_file():
        raise AnalysisError(f"{path}: no {schema.MANIFEST}; not a campaign folder")
    return path


def run_path(folder: str | Path, run_id: str) -> Path:
    """Path of a run's file, ``DIR/runs/<run_id>.parquet``."""
    return Path(folder) / schema.RUNS_DIR / f"{run_id}.parquet"


def read_manifest(folder: str | Path) -> pd.DataFrame:
    """Read the manifest of a campaign folder as a DataFrame (one row per run)."""
    path = Path(folder) / schema.MANIFEST
    if not path.is_file():
        raise AnalysisError(f"{folder}: no {schema.MANIFEST}; not a campaign folder")
    return pq.read_table(path).to_pandas()


def read_run_metadata(path: str | Path) -> dict:
    """Provenance of one run file (seed, model hash, parameters, version...)."""
    md = pq.read_schema(path).metadata or {}
    raw = md.get(schema.METADATA_KEY)
    return json.loads(raw) if raw else {}


_BATCH = 256  # run tables merged into one contiguous Arrow table while loading a campaign


@contextmanager
def _system_allocator():
    """Arrow allocates from the C library's allocator inside the block (its default after).

    Loading a campaign reads thousands of small tables, merges them and converts the result;
    Arrow's default mimalloc pool keeps much of what is freed on the way.  A 10,000-run
    campaign (1.26 GB loaded frame) peaked at 1.71-2.12 GB with it and 1.57-1.58 GB with the
    system allocator, loading 3-5 % slower (benchmarks/run_all.py, December 2026).  Buffers
    remember their pool, so those made here are freed correctly after the default returns.
    The default is process-wide: Arrow work in other threads meanwhile uses the system
    allocator too (harmless), and two loads in parallel threads could leave it set.
    """
    before = pa.default_memory_pool()
    pa.set_memory_pool(pa.system_memory_pool())
    try:
        yield
    finally:
        pa.set_memory_pool(before)


def load_dataset(
    folder: str | Path, *, with_layers: bool = False, status: str = "done"
) -> pd.DataFrame:
    """Load the joined per-cycle data set of a campaign folder.

    Parameters
    ----------
    folder
        A campaign folder (``manifest.parquet`` + ``runs/*.parquet``).
    with_layers
        Keep the per-layer list columns (``layers_*``); they are large and dropped by default.
    status
        Only runs with this manifest status are loaded.  With ``"done"`` (the default), runs
        whose file exists but that the manifest still lists as pending (a campaign that is
        running or was killed) are loaded too, since a run file is only ever complete.

    Returns
    -------
    pandas.DataFrame
        One row per (run, cycle): ``run_id``, the run table's columns, and the manifest's
        columns that the run table does not already carry (``design_set``, ``seed``,
        ``status``, ``wall_s``, ``param.*``, ...).
    """
    with _system_allocator():
        return _read_dataset(Path(folder), with_layers, status)


def _read_dataset(folder: Path, with_layers: bool, status: str) -> pd.DataFrame:
    """What :func:`load_dataset` returns, read with Arrow's current allocator."""
    man = read_manifest(folder)
    if "status" in man:
        keep = man["status"] == status
        if status == "done":
            keep |= man["run_id"].map(lambda r: run_path(folder, r).is_file()).astype(bool)
        man = man[keep]
    # Runs are read as Arrow tables and merged into contiguous batches of _BATCH runs (a run
    # table is ~100 short columns; kept apart, 10,000 of them cost more in per-array overhead
    # than their data), converted to pandas once, and the manifest's columns are added by run
    # id, so a large campaign (10,000 runs) is never held twice in memory.
    batches: list[pa.Table] = []
    part: list[pa.Table] = []
    counts: list[int] = []
    rows_of: list[int] = []  # manifest row of each loaded run
    for pos, run_id in enumerate(man[schema.RUN_ID]):
        path = run_path(folder, run_id)
        if not path.is_file():
            continue
        pf = pq.ParquetFile(path)  # one open and footer parse per run file
        cols = None
        if not with_layers:
            cols = [c for c in pf.schema_arrow.names if not c.startswith("layers_")]
        t = pf.read(columns=cols).replace_schema_metadata(None)
        pf.close()
        if schema.RUN_ID in t.column_names:
            t = t.drop_columns([schema.RUN_ID])
        part.append(t)
        counts.append(t.num_rows)
        rows_of.append(pos)
        if len(part) == _BATCH:
            batches.append(pa.concat_tables(part, promote_options="permissive").combine_chunks())
            part = []
    if part:
        batches.append(pa.concat_tables(part, promote_options="permissive").combine_chunks())
        part = []
    if not batches:
        raise AnalysisError(f"{folder}: no finished runs to load")
    table = pa.concat_tables(batches, promote_options="permissive")
    del batches
    extra = [schema.RUN_ID] + [
        c for c in man.columns if c != schema.RUN_ID and c not in table.column_names
    ]
    mt = pa.Table.from_pandas(man[extra].reset_index(drop=True), preserve_index=False)
    mt = mt.take(pa.array(np.repeat(np.asarray(rows_of, dtype=np.int64), counts)))
    table = table.add_column(0, schema.RUN_ID, mt.column(schema.RUN_ID))
    for c in extra[1:]:
        table = table.append_column(c, mt.column(c))
    del mt
    data = table.to_pandas(self_destruct=True, split_blocks=True)
    del table
    if "status" in data.columns and status == "done":
        data["status"] = "done"
    return data


# ------------------------------------------------------------------------------ writing
def infer_param_type(values: Iterable[Any]) -> pa.DataType:
    """Arrow type of a ``param.*`` column from the values of the runs (None ignored)."""
    vals = [v for v in values if v is not None]
    if vals and all(isinstance(v, bool) for v in vals):
        return pa.bool_()
    if vals and all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
        return pa.int64()
    if vals and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
        return pa.float64()
    return pa.string()


def coerce_param(value: Any, typ: pa.DataType) -> Any:
    """A value converted for a column of type ``typ`` (None when it does not fit)."""
    if value is None:
        return None
    if pa.types.is_boolean(typ):
        return value if isinstance(value, bool) else None
    if pa.types.is_integer(typ):
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if pa.types.is_floating(typ):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return float(value) if ok else None
    return value if isinstance(value, str) else json.dumps(value)


def manifest_schema(
    pairs: Sequence[str], param_types: Mapping[str, pa.DataType] | None = None
) -> pa.Schema:
    """The manifest's explicit Arrow schema.

    Columns: :data:`seilab.schema.MANIFEST_COLUMNS`, :data:`EXTRA_MANIFEST_COLUMNS`, one
    ``e_pair_*_ev`` (float64) per pair, then ``param.<key>`` per other varied model key.
    """
    cols = [*schema.MANIFEST_COLUMNS, *EXTRA_MANIFEST_COLUMNS]
    fields = [pa.field(c, _BASE_TYPES[c], nullable=c != "run_id") for c in cols]
    fields += [pa.field(schema.pair_column(p), pa.float64()) for p in pairs]
    fields += [pa.field(f"{PARAM_PREFIX}{k}", t) for k, t in (param_types or {}).items()]
    return pa.schema(fields)


def manifest_table(
    records: Sequence[Mapping[str, Any]],
    schema_: pa.Schema,
    metadata: Mapping[str, Any] | None = None,
) -> pa.Table:
    """Build the manifest table from run records (dicts keyed by column name)."""
    arrays = [pa.array([r.get(f.name) for r in records], type=f.type) for f in schema_]
    table = pa.Table.from_arrays(arrays, schema=schema_)
    if metadata is not None:
        table = table.replace_schema_metadata(
            {MANIFEST_METADATA_KEY: json.dumps(metadata).encode()}
        )
    return table


def write_manifest(
    folder: str | Path,
    records: Sequence[Mapping[str, Any]],
    schema_: pa.Schema,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``DIR/manifest.parquet`` atomically (parent process only)."""
    return atomic_write_parquet(
        manifest_table(records, schema_, metadata), Path(folder) / schema.MANIFEST
    )


def read_manifest_metadata(folder: str | Path) -> dict[str, Any]:
    """The campaign metadata (sessions) stored in the manifest's schema metadata."""
    path = Path(folder) / schema.MANIFEST
    md = pq.read_schema(path).metadata or {}
    raw = md.get(MANIFEST_METADATA_KEY)
    return json.loads(raw) if raw else {}


def record_from_run_file(path: str | Path) -> dict[str, Any]:
    """Manifest fields of a finished run recovered from its file (footer and provenance).

    Raises
    ------
    OSError, pyarrow.ArrowInvalid, ValueError
        When the file cannot be read.
    """
    meta = pq.read_metadata(path)
    md = read_run_metadata(path)
    return {
        "status": "done",
        "n_cycles": int(meta.num_rows),
        "wall_s": md.get("wall_s"),
        "end_reason": md.get("end_reason"),
        "error": None,
        "seilab_version": md.get("seilab_version"),
        "model_sha256": md.get("model_sha256"),
        "seed": md.get("seed"),
    }


# ------------------------------------------------------------------------------ status
def lock_owner(folder: str | Path) -> int | None:
    """Pid of the live process that last locked the folder, else None (no lock is taken)."""
    path = Path(folder) / LOCK_FILE
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    from seilab.campaign.task import process_alive

    return pid if pid > 0 and process_alive(pid) else None


def campaign_status(folder: str | Path) -> dict[str, Any]:
    """Summary of a campaign folder.

    Returns
    -------
    dict
        ``folder``, ``n_runs``, ``counts`` (by status, counting a run whose file exists as
        done), ``in_manifest_pending_with_file``, ``end_reasons``, ``run_wall_s`` (sum over
        finished runs), ``elapsed_s`` (wall time of all sessions), ``sessions``,
        ``running_pid``, ``failures`` (``[{run_id, error}]``), ``config`` (``campaign.toml``).
    """
    import tomllib

    folder = Path(folder)
    if not (folder / schema.MANIFEST).is_file():
        raise AnalysisError(f"{folder}: no {schema.MANIFEST}; not a campaign folder")
    man = read_manifest(folder)
    status = man["status"].astype(object).to_numpy().copy()
    has_file = man["run_id"].map(lambda r: run_path(folder, r).is_file()).to_numpy(bool)
    late = (status != "done") & has_file
    status[late] = "done"
    counts = Counter({"done": 0, "failed": 0, "pending": 0})
    counts.update(status.tolist())
    done_rows = man[(man["status"] == "done")]
    failed = man[status == "failed"]
    meta = read_manifest_metadata(folder)
    sessions = meta.get("sessions", [])
    cfg: dict[str, Any] = {}
    cfg_path = folder / schema.CAMPAIGN_CONFIG
    if cfg_path.is_file():
        try:
            cfg = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError:
            cfg = {}
    return {
        "folder": str(folder),
        "n_runs": int(len(man)),
        "counts": dict(counts),
        "in_manifest_pending_with_file": int(late.sum()),
        "end_reasons": {
            str(k): int(v) for k, v in done_rows["end_reason"].value_counts(dropna=True).items()
        },
        "run_wall_s": float(done_rows["wall_s"].sum(skipna=True)) if len(done_rows) else 0.0,
        "elapsed_s": float(sum(s.get("wall_s", 0.0) or 0.0 for s in sessions)),
        "sessions": sessions,
        "running_pid": lock_owner(folder),
        "failures": [
            {"run_id": str(r), "error": None if pd.isna(e) else str(e)}
            for r, e in zip(failed["run_id"], failed["error"], strict=True)
        ],
        "config": cfg,
    }
