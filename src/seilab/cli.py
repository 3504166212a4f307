"""The ``seilab`` command line (Typer).

Sub-commands live beside the code they drive and import their heavy dependencies lazily, so
``seilab --help`` starts fast.  User errors (:class:`seilab.errors.SeilabError`) are printed as
one line and exit with status 2, unless ``--traceback`` is given.
"""

from __future__ import annotations

import sys

import typer

from seilab.calibrate.cli import calibrate_cmd
from seilab.campaign.cli import app as campaign_app
from seilab.kmc.cli import model_app, simulate_cmd, warmup_cmd
from seilab.report.cli import report_cmd, run_cmd
from seilab.stages.cli import analyze_app, optimize_cmd

app = typer.Typer(
    name="seilab",
    help="Kinetic Monte Carlo of SEI growth on Li metal: simulate, run campaigns, analyse CE.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("simulate")(simulate_cmd)
app.add_typer(model_app, name="model")
app.add_typer(campaign_app, name="campaign")
app.add_typer(analyze_app, name="analyze")
app.command("optimize")(optimize_cmd)
app.command("calibrate")(calibrate_cmd)
app.command("report")(report_cmd)
app.command("run")(run_cmd)
app.command("warmup")(warmup_cmd)


def main() -> None:  # pragma: no cover - thin wrapper
    """Entry point that turns user errors into one clear line."""
    from seilab.errors import SeilabError

    show_tb = "--traceback" in sys.argv
    if show_tb:
        sys.argv.remove("--traceback")
    try:
        app(standalone_mode=True)
    except SeilabError as exc:
        if show_tb:
            raise
        typer.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
