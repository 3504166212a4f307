"""``seilab report`` and ``seilab run`` (owned by the report issue)."""

from __future__ import annotations


def report_cmd() -> None:
    """Write the HTML report of a finished folder (not implemented yet)."""
    raise SystemExit(1)


def run_cmd() -> None:
    """Run campaign, analyses and report in one command (not implemented yet)."""
    raise SystemExit(1)
