"""HTML building blocks of the report and read-only access to a run folder's declared outputs."""

from __future__ import annotations

import base64
import html
import json
import math
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from seilab import schema
from seilab.stages import campaign as camp_out
from seilab.stages import ce as ce_out
from seilab.stages.registry import REGISTRY, STAGE_DIRS, STEP_TITLES

#: Section ids and titles of the report, in order (they follow the paper).
SECTIONS: dict[str, str] = {
    "overview": "Overview",
    "dataset": "Data set",
    "regression": "CE regression: results and parity plots",
    "shap": "SHAP: what drives the CE",
    "optimisation": "Bayesian optimisation and its verification in the simulator",
    "failure": "Failure analysis",
    "classifiers": "Classifiers of failure",
    "survival": "Survival and early warning",
    "headline": "Headline figures: this run against the paper",
    "provenance": "Provenance",
}

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 max-width:1100px;margin:0 auto;padding:1.5em;color:#1b1b1b;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:2px solid #1f4e9c;padding-bottom:.2em;margin-top:2em}
h3{margin-top:1.4em}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}
th,td{border:1px solid #c8c8c8;padding:.25em .55em;text-align:right;vertical-align:top}
th{background:#eef2f8} td.l,th.l{text-align:left}
caption{caption-side:top;text-align:left;font-weight:600;padding:.3em 0}
figure{margin:1em 0} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:.9em;color:#444}
.note{background:#fff8e1;border-left:4px solid #f0a202;padding:.5em .8em}
.missing{background:#fdecea;border-left:4px solid #c0392b;padding:.5em .8em}
.ok{color:#1e7b34} .bad{color:#c0392b} code{background:#f3f3f3;padding:0 .2em}
nav ol{columns:2}
"""


def declared_outputs(stage: str) -> tuple[str, ...]:
    """Every name a stage may write (the CE stage: with every regressor and feature group)."""
    from seilab.analysis.dataset import DEFAULT_GROUPS

    if stage == "ce":
        return ce_out.ce_outputs(schema.REGRESSOR_TITLES, DEFAULT_GROUPS)
    return REGISTRY[stage].outputs({})


class _Folder:
    """Read-only access to a run folder's files (None for what is missing or unreadable)."""

    def __init__(self, folder: Path, status: Mapping[str, Any]) -> None:
        self.folder = folder
        self.status = status

    def path(self, stage: str, name: str) -> Path:
        """A declared output of a stage (anything else is a programming error)."""
        if name not in declared_outputs(stage):
            raise ValueError(f"the report reads {name!r}, which stage {stage!r} does not declare")
        return self.folder / STAGE_DIRS[stage] / name

    def json(self, stage: str, name: str) -> dict[str, Any] | None:
        p = self.path(stage, name)
        try:
            return json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def csv(self, stage: str, name: str, **kwargs: Any) -> Any:
        import pandas as pd

        p = self.path(stage, name)
        if not p.is_file():
            return None
        try:
            return pd.read_csv(p, **kwargs)
        except (OSError, ValueError):
            return None

    def png(self, stage: str, name: str) -> bytes | None:
        p = self.path(stage, name)
        try:
            data = p.read_bytes()
        except OSError:
            return None
        return data if data.startswith(b"\x89PNG\r\n\x1a\n") else None

    def campaign_toml(self) -> dict[str, Any]:
        p = self.path("campaign", camp_out.CONFIG)
        try:
            return tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            return {}

    def stage(self, name: str) -> dict[str, Any]:
        return dict((self.status.get("stages") or {}).get(name) or {})


# ------------------------------------------------------------------------------ HTML helpers
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def fmt(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits (integers as they are; missing as n/a)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    v = _num(value)
    if v is None:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "n/a"
        return str(value)
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    return f"{v:.{digits}g}"


def pct(value: Any) -> str:
    """A percentage: ``fmt(value) + " %"``, or n/a."""
    return "n/a" if _num(value) is None else f"{fmt(value)} %"


def _p(text: str, cls: str | None = None) -> str:
    return f'<p class="{cls}">{text}</p>' if cls else f"<p>{text}</p>"


def _table(
    header: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    caption: str | None = None,
    left: int = 1,
    table_id: str | None = None,
) -> str:
    """An HTML table; the first ``left`` columns are left-aligned text, cells are escaped."""
    out = [f'<table id="{_e(table_id)}">' if table_id else "<table>"]
    if caption:
        out.append(f"<caption>{_e(caption)}</caption>")
    out.append(
        "<thead><tr>"
        + "".join(
            f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
            for i, h in enumerate(header)
        )
        + "</tr></thead><tbody>"
    )
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            text = v if isinstance(v, str) else fmt(v)
            cells.append(f'<td class="l">{_e(text)}</td>' if i < left else f"<td>{_e(text)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure(data: bytes | None, alt: str, caption: str, missing: str | None = None) -> str:
    if data is None:
        return _p(_e(missing or f"Figure not available: {alt}."), "missing")
    b64 = base64.b64encode(data).decode("ascii")
    return (
        f'<figure><img alt="{_e(alt)}" src="data:image/png;base64,{b64}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _stage_problem(f: _Folder, stage: str) -> str | None:
    """A sentence when the stage did not finish (None when it did)."""
    rec = f.stage(stage)
    status = rec.get("status")
    if status == "done":
        return None
    title = STEP_TITLES.get(stage, stage)
    if status == "failed":
        return f"The {title} stage failed: {rec.get('error') or 'unknown error'}."
    if status in ("running", "interrupted"):
        return (
            f"The {title} stage did not finish ({status}); run `seilab run` on this folder again."
        )
    return f"The {title} stage has not run."


def _section(sid: str, body: Sequence[str]) -> str:
    return f'<section id="{sid}"><h2>{_e(SECTIONS[sid])}</h2>' + "".join(body) + "</section>"


def _opening(f: _Folder, stage: str, data: object, absent: str) -> tuple[list[str], bool]:
    """A section's first paragraphs: the stage's problem if any, or why there is nothing to show.

    Returns the paragraphs and whether the section's data exist.
    """
    prob = _stage_problem(f, stage)
    if data is None:
        return [_p(_e(prob or absent), "missing")], False
    return ([_p(_e(prob), "missing")] if prob else []), True
