"""The whole job (``seilab run``) and its HTML report (``seilab report``).

Public API
----------
run_pipeline, RunOptions
    Run or resume campaign, data-set summary, CE analysis, optimisation, failure analysis and
    report into a run folder (``seilab.report.pipeline``).
write_report, render_report
    (Re)write the self-contained HTML report of a run folder from its files
    (``seilab.report.html``).
PRESETS, DEFAULT_PRESET, get_preset, Preset
    The presets of ``seilab run`` (``seilab.stages.presets``).

Everything loads on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from seilab.report.html import render_report, write_report
    from seilab.report.pipeline import RunOptions, run_pipeline
    from seilab.stages.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "Preset",
    "RunOptions",
    "get_preset",
    "render_report",
    "run_pipeline",
    "write_report",
]

_LAZY = {
    "run_pipeline": "seilab.report.pipeline",
    "RunOptions": "seilab.report.pipeline",
    "write_report": "seilab.report.html",
    "render_report": "seilab.report.html",
    "PRESETS": "seilab.stages.presets",
    "DEFAULT_PRESET": "seilab.stages.presets",
    "Preset": "seilab.stages.presets",
    "get_preset": "seilab.stages.presets",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'seilab.report' has no attribute {name!r}")
