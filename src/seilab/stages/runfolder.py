"""The run folder of ``seilab run``: its status file, its lock, and what decides resume.

::

    DIR/
      seilab-run.json   stage status, settings, sessions (written atomically after every change)
      campaign/ dataset/ ce/ bo/ failure/   one folder per stage (seilab.stages.registry)
      report.html       the report
      .lock             held while a ``seilab run`` works on the folder
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from seilab import schema
from seilab.errors import SeilabError
from seilab.io import LOCK_FILE, atomic_write_json, folder_lock, stable_hash, utc_now

STATUS_FILE = "seilab-run.json"
STATUS_FORMAT = "seilab-run/1"


def input_key(obj: Any) -> str:
    """The input key of a stage: the stable hash of its settings and inputs (16 hex digits)."""
    return stable_hash(obj, 16)


def read_status(folder: str | Path) -> dict[str, Any]:
    """Read ``DIR/seilab-run.json``.

    Raises
    ------
    SeilabError
        The folder does not exist, is not a run folder, or its status file is unreadable.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SeilabError(f"{folder}: no such folder")
    path = folder / STATUS_FILE
    if not path.is_file():
        hint = ""
        if (folder / schema.CAMPAIGN_CONFIG).is_file():
            hint = (
                " (it is a campaign folder: analyse it with `seilab analyze ce|failure`, "
                "or run the whole pipeline with `seilab run --out NEW_DIR`)"
            )
        raise SeilabError(
            f"{folder}: not a seilab run folder (no {STATUS_FILE}); create one with "
            f"`seilab run --out {folder}`{hint}"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SeilabError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != STATUS_FORMAT:
        raise SeilabError(f"{path}: not a {STATUS_FORMAT} status file")
    return doc


def check_target(folder: Path) -> dict[str, Any] | None:
    """Existing status of a run folder, None for a new/empty folder; refuse anything else."""
    if folder.exists() and not folder.is_dir():
        raise SeilabError(f"--out {folder}: exists and is not a folder")
    if folder.is_dir():
        if (folder / STATUS_FILE).is_file():
            return read_status(folder)
        entries = {p.name for p in folder.iterdir()} - {LOCK_FILE}
        if entries:
            what = (
                "a campaign folder"
                if schema.CAMPAIGN_CONFIG in entries
                else "not empty and not a seilab run folder"
            )
            raise SeilabError(
                f"--out {folder}: {what} (no {STATUS_FILE}); give a new or empty folder"
            )
    return None


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold ``DIR/.lock`` so that two ``seilab run`` never share a folder.

    Raises
    ------
    SeilabError
        "run folder DIR is in use by another process (pid N)".
    """
    with folder_lock(folder, what="run folder", error=SeilabError):
        yield


class RunStatus:
    """The run folder's status document; every change is written atomically at once."""

    def __init__(self, folder: Path, doc: dict[str, Any]) -> None:
        self.folder = folder
        self.doc = doc

    def save(self) -> None:
        self.doc["updated_utc"] = utc_now()
        atomic_write_json(self.doc, self.folder / STATUS_FILE, indent=1)

    def stage(self, name: str) -> dict[str, Any]:
        return self.doc.setdefault("stages", {}).setdefault(name, {"status": "pending"})

    def set_stage(self, name: str, **values: Any) -> None:
        self.stage(name).update(values)
        self.save()


def data_fingerprint(campaign_dir: Path) -> dict[str, Any]:
    """Hash of the finished runs of a campaign folder (run id, cycles, seed) and run counts."""
    from seilab.campaign.store import read_manifest, run_path

    man = read_manifest(campaign_dir)
    have = man["run_id"].map(lambda r: run_path(campaign_dir, r).is_file()).astype(bool)
    done = man[have | (man["status"] == "done")]
    rows = sorted(
        (str(r.run_id), int(r.n_cycles) if r.n_cycles == r.n_cycles else -1, int(r.seed))
        for r in done.itertuples()
    )
    counts = {
        "runs": len(man),
        "done": int(have.sum()),
        "failed": int((man["status"] == "failed").sum()),
    }
    counts["pending"] = counts["runs"] - counts["done"] - counts["failed"]
    return {"key": input_key(rows), **counts}
