"""End to end: `seilab run` on a tiny campaign, the report, resume, `seilab report`, bad folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from report_common import TINY_RUN, FinishedRun, seilab
from report_html_check import check_html, decode_png

from seilab.report.html import SECTIONS, write_report
from seilab.report.pipeline import STAGE_DIRS, STAGES, STATUS_FILE

#: Figures each finished stage must contribute to the report (alt texts).
EXPECTED_FIGURES = [
    "CE against cycle for every run",
    "parity plots of the four regressors",
    "mean |SHAP| ranking",
    "SHAP beeswarm, DenseNN, chemical-process events",
    "optimisation history",
    "verification in the simulator",
    "Kaplan-Meier curve",
]


def _report(folder: Path) -> str:
    return (folder / "report.html").read_text(encoding="utf-8")


def test_run_writes_every_stage_and_a_valid_report(finished_run: FinishedRun) -> None:
    folder = finished_run.folder
    status = json.loads((folder / STATUS_FILE).read_text())
    assert [s for s in STAGES if status["stages"][s]["status"] != "done"] == []
    for stage, sub in STAGE_DIRS.items():
        assert (folder / sub).is_dir(), stage
    assert "[1/6] campaign" in finished_run.proc.stderr
    assert "Warning" not in finished_run.proc.stderr  # library warnings are recorded, not shown
    assert "report:" in finished_run.proc.stdout

    text = _report(folder)
    parsed = check_html(text)
    assert parsed.errors == []
    for sid in SECTIONS:
        assert sid in parsed.ids, f"section {sid} missing"
        assert f'<section id="{sid}"><h2>' in text
    assert len(parsed.images) >= len(EXPECTED_FIGURES)
    for img in parsed.images:
        w, h = decode_png(img["src"])
        assert w > 100 and h > 100, img["alt"]
        assert img["alt"]
    alts = {img["alt"] for img in parsed.images}
    assert set(EXPECTED_FIGURES) <= alts, set(EXPECTED_FIGURES) - alts

    rows = parsed.tables["headline-table"]
    assert rows[0] == ["figure", "paper", "this run"]
    body = rows[1:]
    assert len(body) >= 15
    assert all(len(r) == 3 and all(c.strip() for c in r) for r in body), body
    by_name = {r[0]: r for r in body}
    assert by_name["DenseNN: test RMSE (%)"][1] == "≈ 1.93 %"
    assert by_name["RandomForest: ROC AUC"][1].startswith("0.864")
    assert by_name["XGBoost: ROC AUC"][1].startswith("0.835")
    assert by_name["median failure cycle"][1] == "78"
    assert "40 of 150" in by_name["BO convergence trial"][1]
    float(by_name["DenseNN: test RMSE (%)"][2])  # this run's value is a number
    assert "trials" in by_name["BO convergence trial"][2]
    # the data set against the paper (dataset/validation.csv), every cell filled
    share = by_name["share of cycles with CE in [90, 105] %"]
    assert share[1].startswith("most cycles")
    assert 0.0 <= float(share[2]) <= 1.0
    assert by_name["CE intervals populated (of 9)"][2].strip()
    assert "median failure cycle (failing runs)" not in by_name  # shown once, by the failure row

    desc = parsed.tables["descriptive-statistics"]
    assert desc[0][:3] == ["feature", "mean", "std"]
    assert any(r[0] == "Li stripping" for r in desc[1:])
    prov = {r[0]: r[1] for r in parsed.tables["provenance-table"][1:]}
    assert len(prov["model hash (sha256, with the campaign-wide options)"]) == 64
    assert prov["campaign seed (every run's seed derives from it)"] == "0"
    stages = {r[0]: r for r in parsed.tables["stage-times"][1:]}
    assert float(stages["campaign (simulations)"][2]) > 0
    versions = {r[0]: r[1] for r in parsed.tables["versions"][1:]}
    assert versions["seilab"] and versions["numpy"]


def test_rerun_skips_every_finished_stage_and_simulates_nothing(
    finished_run: FinishedRun,
) -> None:
    folder = finished_run.folder
    runs = sorted((folder / "campaign" / "runs").glob("*.parquet"))
    before = {p.name: p.stat().st_mtime_ns for p in runs}
    manifest_sessions = len(json.loads((folder / STATUS_FILE).read_text())["sessions"])
    proc = seilab("run", "--out", folder, *TINY_RUN, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "5 skipped" in proc.stdout
    assert "already finished, skipped" in proc.stderr
    after = {p.name: p.stat().st_mtime_ns for p in (folder / "campaign" / "runs").glob("*.parquet")}
    assert after == before  # no simulation ran, no run file was rewritten
    status = json.loads((folder / STATUS_FILE).read_text())
    assert len(status["sessions"]) == manifest_sessions + 1
    last = status["sessions"][-1]
    assert last["ran"] == ["report"]
    assert last["skipped"] == ["campaign", "dataset", "ce", "bo", "failure"]
    assert check_html(_report(folder)).errors == []


def test_rerun_with_other_bo_settings_reruns_only_the_bo_stage(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    """The bo stage resumes by the hash of its one recipe (BOSettings): a changed setting runs
    it again (from scratch), every other stage is skipped."""
    from dataclasses import replace

    from seilab.analysis.optimize import BOSettings
    from seilab.io import LOCK_FILE

    folder = tmp_path / "copy"
    shutil.copytree(finished_run.folder, folder)
    (folder / LOCK_FILE).unlink(missing_ok=True)
    old = json.loads((folder / "bo" / "summary.json").read_text())
    # the pairs come from the CE stage's stable ranking (shadow-feature null), not the plain one
    assert "shap_ranking_stability.csv" in old["params_chosen_by"]
    assert "beat the shadow-feature null" in old["params_chosen_by"]
    recipe = BOSettings(**old["settings"])
    assert recipe.trials == 12 and old["settings_hash"] == recipe.settings_hash()
    args = [a if a != "12" else "13" for a in TINY_RUN]  # --trials 13
    proc = seilab("run", "--out", folder, *args, "--no-progress")
    assert proc.returncode == 0, proc.stderr
    last = json.loads((folder / STATUS_FILE).read_text())["sessions"][-1]
    assert last["skipped"] == ["campaign", "dataset", "ce", "failure"]
    assert last["ran"] == ["bo", "report"]
    new = json.loads((folder / "bo" / "summary.json").read_text())
    assert new["settings"] == replace(recipe, trials=13).to_dict()
    assert new["settings_hash"] == replace(recipe, trials=13).settings_hash()
    assert new["settings_hash"] != old["settings_hash"]
    assert new["trials"] == 13 and new["trials_added_this_run"] == 13  # started afresh


def test_rerun_with_other_campaign_settings_is_refused(finished_run: FinishedRun) -> None:
    args = [a if a != "3" else "5" for a in TINY_RUN]  # --cycles 5
    proc = seilab("run", "--out", finished_run.folder, *args)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: run folder") and "cycles" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_report_command_rewrites_the_report_of_a_finished_folder(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    folder = finished_run.folder
    path = folder / "report.html"
    old = path.stat().st_mtime_ns
    proc = seilab("report", folder)
    assert proc.returncode == 0, proc.stderr
    assert path.stat().st_mtime_ns > old
    assert check_html(path.read_text()).errors == []
    other = tmp_path / "elsewhere" / "r.html"
    proc = seilab("report", folder, "--output", other)
    assert proc.returncode == 0, proc.stderr
    parsed = check_html(other.read_text())
    assert parsed.errors == [] and set(SECTIONS) <= set(parsed.ids)


@pytest.mark.parametrize("kind", ["empty", "missing", "campaign"])
def test_report_of_a_folder_that_is_not_a_run_folder_is_one_clear_line(
    finished_run: FinishedRun, tmp_path: Path, kind: str
) -> None:
    target = tmp_path / "x"
    if kind == "empty":
        target.mkdir()
    elif kind == "campaign":
        target = finished_run.folder / "campaign"
    proc = seilab("report", target)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert ("not a seilab run folder" in lines[0]) or ("no such folder" in lines[0])
    if kind == "campaign":
        assert "campaign folder" in lines[0]
    assert not (target / "report.html").exists()


def test_run_refuses_bad_arguments_and_foreign_folders(tmp_path: Path) -> None:
    proc = seilab("run", "--out", tmp_path / "a", "--preset", "nope")
    assert proc.returncode == 2 and "unknown preset" in proc.stderr
    assert not (tmp_path / "a").exists()
    foreign = tmp_path / "b"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    proc = seilab("run", "--out", foreign, *TINY_RUN)
    assert proc.returncode == 2
    assert "not empty and not a seilab run folder" in proc.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


def test_report_copes_with_no_failures_and_missing_stages(
    finished_run: FinishedRun, tmp_path: Path
) -> None:
    """Re-analyse with a threshold nothing falls below, drop the BO stage: still a full report."""
    from seilab.campaign import load_dataset
    from seilab.stages.failure import run_failure_analysis

    folder = tmp_path / "copy"
    shutil.copytree(finished_run.folder, folder, ignore=shutil.ignore_patterns(".lock"))
    shutil.rmtree(folder / "failure")
    summary = run_failure_analysis(
        load_dataset(folder / "campaign"), folder / "failure", threshold=-1.0, small=True
    )
    assert summary["n_failed"] == 0
    shutil.rmtree(folder / "bo")
    text = write_report(folder).read_text()
    parsed = check_html(text)
    assert parsed.errors == [] and set(SECTIONS) <= set(parsed.ids)
    assert "No run fails" in text
    assert "No optimisation results in this folder" in text
    rows = {r[0]: r[2] for r in parsed.tables["headline-table"][1:]}
    assert rows["median failure cycle"].startswith("n/a (no run fails")
    assert rows["XGBoost: ROC AUC"].startswith("n/a")
    assert rows["failure fraction"].startswith("0.0 %")
    assert all(c.strip() for c in rows.values())
