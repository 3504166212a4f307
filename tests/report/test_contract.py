"""The stage contract: after a tiny `seilab run`, every declared output of every stage exists or
is listed as skipped (with the reason) in its summary; no stage writes an undeclared file; the
report reads only declared names and types none by hand."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_common import FinishedRun

from seilab.report.html import render_report
from seilab.report.markup import _Folder
from seilab.stages.registry import REGISTRY
from seilab.stages.runfolder import read_status

ANALYSIS_STAGES = [n for n in REGISTRY if n != "campaign"]


@pytest.mark.parametrize("name", ANALYSIS_STAGES)
def test_every_declared_output_exists_or_is_skipped_with_a_reason(
    finished_run: FinishedRun, name: str
) -> None:
    stage = REGISTRY[name]
    out = finished_run.folder / stage.folder
    declared = stage.outputs({})
    summary = json.loads((out / stage.summary).read_text(encoding="utf-8"))
    skipped = summary["skipped"]
    for f in declared:
        if f == stage.summary:
            continue
        assert (out / f).exists() != (f in skipped), f"{name}/{f}: exists={(out / f).exists()}"
        if f in skipped:
            assert isinstance(skipped[f], str) and skipped[f].strip(), f
    assert set(summary["outputs"]) == {f for f in declared if (out / f).exists()} - {stage.summary}
    undeclared = {p.name for p in out.iterdir()} - set(declared)
    assert undeclared == set(), f"{name} wrote undeclared files {sorted(undeclared)}"


def test_campaign_stage_outputs(finished_run: FinishedRun) -> None:
    stage = REGISTRY["campaign"]
    out = finished_run.folder / stage.folder
    assert all((out / f).exists() for f in stage.outputs({}))


def test_report_reads_only_declared_names(finished_run: FinishedRun, monkeypatch) -> None:
    read: list[tuple[str, str]] = []
    original = _Folder.path

    def spy(self: _Folder, stage: str, name: str) -> Path:
        read.append((stage, name))
        return original(self, stage, name)

    monkeypatch.setattr(_Folder, "path", spy)
    html = render_report(finished_run.folder, read_status(finished_run.folder))
    assert "could not be built" not in html
    assert read, "the report read no stage output"
    for stage, name in read:
        assert name in REGISTRY[stage].outputs({}), (stage, name)
    with pytest.raises(ValueError, match="does not declare"):
        _Folder(finished_run.folder, {}).path("ce", "renamed_metrics.csv")


def test_report_source_types_no_file_name() -> None:
    src = Path(__file__).parents[2] / "src" / "seilab" / "report"
    pattern = re.compile(r"[\"'][\w./-]+\.(?:csv|png|json|parquet|db|pkl)[\"']")
    hits = [
        f"{p.name}: {m.group(0)}"
        for p in sorted(src.glob("*.py"))
        for m in pattern.finditer(p.read_text(encoding="utf-8"))
    ]
    assert hits == []
