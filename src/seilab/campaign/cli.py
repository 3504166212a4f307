"""``seilab campaign run|status`` (owned by the campaign issue)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Run and inspect parameter campaigns.", no_args_is_help=True)
