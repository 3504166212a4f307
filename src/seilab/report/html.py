"""The report of a run folder: one self-contained HTML file (figures embedded as base64 PNG).

The report is built from the files in the run folder only (``seilab-run.json``,
``campaign/campaign.toml``, the stage folders' JSON, CSV and PNG files), so ``seilab report DIR``
rewrites it for any finished (or partly finished) folder without recomputing anything.  A part
that is missing (a stage not run, failed, or skipped by the analysis because the data do not
allow it) is said so in its section.  No matplotlib here: the figures are the stages' PNG files.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from seilab.errors import SeilabError
from seilab.io import atomic_write_text, utc_now
from seilab.report.headline import PAPER, _headline, headline_rows  # noqa: F401 - re-exported
from seilab.report.markup import _CSS, SECTIONS, _e, _Folder, _p, _section  # noqa: F401
from seilab.report.sections_ce import _optimisation, _regression, _shap
from seilab.report.sections_failure import _classifiers, _failure, _survival
from seilab.report.sections_run import _dataset, _overview, _provenance
from seilab.stages.registry import REPORT_FILE
from seilab.stages.runfolder import read_status

_BUILDERS = {
    "overview": _overview,
    "dataset": _dataset,
    "regression": _regression,
    "shap": _shap,
    "optimisation": _optimisation,
    "failure": _failure,
    "classifiers": _classifiers,
    "survival": _survival,
    "headline": _headline,
    "provenance": _provenance,
}


def render_report(folder: str | Path, status: Mapping[str, Any] | None = None) -> str:
    """The report of a run folder as an HTML string.

    Parameters
    ----------
    folder
        Run folder (see :mod:`seilab.report.pipeline`).
    status
        Its status document (default: read from ``seilab-run.json``).

    Returns
    -------
    str
        A complete HTML5 document, figures embedded as ``data:`` URIs.
    """
    folder = Path(folder)
    st = dict(status) if status is not None else read_status(folder)
    f = _Folder(folder, st)
    parts = []
    for sid, build in _BUILDERS.items():
        try:
            body = build(f)
        except Exception as exc:  # noqa: BLE001 - one unreadable file must not lose the report
            body = [
                _p(_e(f"This section could not be built: {type(exc).__name__}: {exc}"), "missing")
            ]
        parts.append(_section(sid, body))
    title = f"seilab report: {folder.resolve().name}"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(title)}</h1>"
        f"<p>SEI growth on Li metal: kMC campaign, CE analysis and failure analysis. "
        f"Written {_e(utc_now())} by seilab {_e((st.get('versions') or {}).get('seilab', ''))}.</p></header>"
        "<main>" + "".join(parts) + "</main></body></html>\n"
    )


def write_report(
    folder: str | Path, output: str | Path | None = None, *, status: Mapping[str, Any] | None = None
) -> Path:
    """(Re)write the self-contained HTML report of a run folder.

    Parameters
    ----------
    folder
        Run folder written by ``seilab run`` (finished or not).
    output
        Report file (default: ``DIR/report.html``).
    status
        Status document (default: read from the folder).

    Returns
    -------
    pathlib.Path
        The report file (written atomically).

    Raises
    ------
    SeilabError
        The folder is not a seilab run folder.
    """
    folder = Path(folder)
    if status is None:
        status = read_status(folder)
    out = Path(output) if output is not None else folder / REPORT_FILE
    if out.is_dir():
        raise SeilabError(f"--output {out}: is a folder; give a file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_text(render_report(folder, status), out)
