"""Calibration: search a model's open knobs so that its simulated statistics hit targets.

Public API
----------
calibrate
    Run (or continue) a calibration; returns a :class:`CalibrationResult`
    (``seilab.calibrate.search``).
load_spec, load_targets, CalibrationError
    Read and validate a calibration spec and a targets file (``seilab.calibrate.spec``).
STATISTICS, TrialData
    The statistics registry (``seilab.calibrate.statistics``).
bundled_file
    Path of a shipped spec (``specs/``) or targets file (``targets/``) by name.

The data-set statistics of the fidelity study live in :mod:`seilab.calibrate.fidelity`.
Everything loads on first use.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from seilab.calibrate.search import CalibrationResult, calibrate
    from seilab.calibrate.spec import CalibrationError, load_spec, load_targets
    from seilab.calibrate.statistics import STATISTICS, TrialData

__all__ = [
    "STATISTICS",
    "CalibrationError",
    "CalibrationResult",
    "TrialData",
    "bundled_file",
    "calibrate",
    "load_spec",
    "load_targets",
]

_LAZY = {
    "calibrate": "seilab.calibrate.search",
    "CalibrationResult": "seilab.calibrate.search",
    "CalibrationError": "seilab.calibrate.spec",
    "load_spec": "seilab.calibrate.spec",
    "load_targets": "seilab.calibrate.spec",
    "STATISTICS": "seilab.calibrate.statistics",
    "TrialData": "seilab.calibrate.statistics",
}


def bundled_file(kind: str, name_or_path: str | Path) -> Path:
    """A shipped file (``kind`` = ``specs`` or ``targets``) by name, or the path as given.

    ``bundled_file("targets", "reference-run")`` is the package's
    ``targets/reference-run.toml``; anything that exists or ends in ``.toml`` is a path.
    """
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        return p
    f = resources.files("seilab.calibrate").joinpath(kind, f"{name_or_path}.toml")
    return Path(str(f)) if f.is_file() else p


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seilab.calibrate' has no attribute {name!r}")
