"""Report sections about the run itself: overview, data set, provenance."""

from __future__ import annotations

import json

from seilab.io import utc_now
from seilab.report.markup import (
    SECTIONS,
    _e,
    _figure,
    _Folder,
    _num,
    _p,
    _stage_problem,
    _table,
    fmt,
    pct,
)
from seilab.report.sections_failure import _failure_summary
from seilab.stages import bo as bo_out
from seilab.stages import ce as ce_out
from seilab.stages import dataset as ds_out
from seilab.stages.registry import STEP_TITLES, STEPS


def _overview(f: _Folder) -> list[str]:
    s = f.status
    settings = s.get("settings") or {}
    toml = f.campaign_toml()
    sim, camp = toml.get("simulator", {}), toml.get("campaign", {})
    ds = f.json("dataset", ds_out.SUMMARY) or {}
    body = [
        _p(
            f"Run folder <code>{_e(f.folder.resolve())}</code>, preset <b>{_e(s.get('preset'))}</b>: "
            f"{_e(settings.get('description', ''))}."
        ),
        _p(
            "This report re-creates, on this run's data, the workflow of Guerrero Navarro et al., "
            "<i>J. Phys. Chem. C</i> 2025, 129, 14687 (doi 10.1021/acs.jpcc.5c04292): a kinetic "
            "Monte Carlo data set of SEI growth on Li metal, regressors of the Coulombic "
            "efficiency (CE) with SHAP, Bayesian optimisation of the pair-bonding energies, and "
            "the failure analysis."
        ),
    ]
    if camp or sim:
        box = sim.get("box")
        body.append(
            _p(
                f"Campaign: design <b>{_e(camp.get('design'))}</b>, {_e(camp.get('n_runs'))} runs, "
                f"model <code>{_e(sim.get('model'))}</code>, {_e(sim.get('cycles'))} cycles, box "
                f"{_e(' x '.join(str(v) for v in box) if box else 'n/a')} cubes, seed "
                f"{_e(camp.get('seed'))}."
            )
        )
    rows = []
    for st in STEPS:
        rec = f.stage(st)
        status = rec.get("status", "not run")
        if st == "report" and status == "running":
            status = "this file"
        rows.append(
            [
                STEP_TITLES[st],
                status,
                fmt(rec.get("wall_s")) if rec.get("wall_s") is not None else "",
                rec.get("error") or rec.get("note") or "",
            ]
        )
    body.append(
        _table(["stage", "status", "wall time (s)", "note"], rows, left=2, caption="Stages")
    )
    ce = ds.get("ce_pct") or {}
    frac = _num(ce.get("fraction_above_100"))
    if frac:
        body.append(
            _p(
                f"Caveat: {100 * frac:.1f} % of the simulated cycles have a CE above 100 % "
                f"(maximum {pct(ce.get('max'))}). A CE above 100 % means more Li was stripped "
                "than plated in that cycle; it is what the simulator's current default model "
                "gives, and the numbers below describe these data, not the paper's.",
                "note",
            )
        )
    toc = "".join(
        f'<li><a href="#{sid}">{_e(title)}</a></li>'
        for sid, title in SECTIONS.items()
        if sid != "overview"
    )
    body.append(f"<nav><ol>{toc}</ol></nav>")
    return body


def _dataset(f: _Folder) -> list[str]:
    body: list[str] = []
    prob = _stage_problem(f, "dataset")
    ds = f.json("dataset", ds_out.SUMMARY)
    if ds is None:
        return [_p(_e(prob or "No data-set summary in this folder."), "missing")]
    if prob:
        body.append(_p(_e(prob), "missing"))
    ce = ds.get("ce_pct") or {}
    cpr = ds.get("cycles_per_run") or {}
    body.append(
        _p(
            f"{fmt(ds.get('n_runs_done'))} of {fmt(ds.get('n_runs_design'))} simulations finished "
            f"({fmt(ds.get('n_runs_failed'))} failed to run"
            + (
                f"; {fmt(ds['n_runs_no_cycle'])} ended before completing a cycle"
                if ds.get("n_runs_no_cycle")
                else ""
            )
            + f"), {fmt(ds.get('n_rows'))} cycles in "
            f"all, {fmt(cpr.get('min'))}-{fmt(cpr.get('max'))} cycles per run. CE over all "
            f"cycles: mean {pct(ce.get('mean'))}, median {pct(ce.get('median'))}, range "
            f"{fmt(ce.get('min'))}-{pct(ce.get('max'))}; {fmt(ce.get('n_missing'))} cycles "
            "without a CE (nothing charged)."
        )
    )
    ends = ds.get("end_reasons") or {}
    if ends:
        body.append(
            _p("End of the runs: " + _e(", ".join(f"{k} {v}" for k, v in ends.items())) + ".")
        )
    body.append(
        _figure(
            f.png("dataset", ds_out.CE_VS_CYCLE),
            "CE against cycle for every run",
            "CE against cycle for every run (thin lines), the median over runs and the band of "
            "10-90 % of runs at each cycle; dashed: the failure threshold of the failure analysis.",
        )
    )
    desc = f.csv("dataset", ds_out.DESCRIPTIVE_STATS)
    if desc is not None and not desc.empty:
        cols = ["mean", "std", "min", "25%", "50%", "75%", "max"]
        rows = [[r["feature"], *[r.get(c) for c in cols]] for _, r in desc.iterrows()]
        body.append(
            _table(
                ["feature", "mean", "std", "min", "25 %", "50 %", "75 %", "max"],
                rows,
                caption="Descriptive statistics of the per-cycle features (all cycles of all "
                "runs; events and formations per cycle, mobility as species moved per cycle) "
                "and of the CE (%)",
                table_id="descriptive-statistics",
            )
        )
    else:
        body.append(_p("Descriptive statistics table not available.", "missing"))
    return body


def _provenance(f: _Folder) -> list[str]:
    s = f.status
    toml = f.campaign_toml()
    sim, camp = toml.get("simulator", {}), toml.get("campaign", {})
    ce = f.json("ce", ce_out.SUMMARY) or {}
    bo = f.json("bo", bo_out.SUMMARY) or {}
    fa = _failure_summary(f) or {}
    ident = s.get("campaign_identity") or {}
    rows = [
        ["model", str(sim.get("model", ident.get("model", "n/a")))],
        [
            "model hash (sha256, with the campaign-wide options)",
            str(sim.get("model_sha256", "n/a")),
        ],
        [
            "campaign seed (every run's seed derives from it)",
            fmt(camp.get("seed", ident.get("seed"))),
        ],
        ["seed scheme", str(camp.get("seed_scheme", "n/a"))],
        ["CE-analysis seed", fmt((ce.get("settings") or {}).get("seed"))],
        ["BO sampler seed", fmt((bo.get("sampler") or {}).get("seed"))],
        ["failure-analysis seed", fmt(fa.get("seed"))],
        [
            "data fingerprint (CE analysis)",
            str((ce.get("dataset") or {}).get("fingerprint", "n/a")),
        ],
        [
            "campaign options",
            json.dumps(
                {
                    k: ident.get(k)
                    for k in ("design", "n", "pairs", "replicates", "cycles", "box", "set")
                }
            ),
        ],
        ["execution", json.dumps(s.get("execution") or {})],
        ["platform", json.dumps(s.get("platform") or {})],
        ["run folder created", str(s.get("created_utc", "n/a"))],
        ["report written", utc_now()],
    ]
    body = [
        _table(
            ["item", "value"],
            rows,
            left=2,
            caption="Seeds, model and settings",
            table_id="provenance-table",
        )
    ]
    stage_rows = []
    for st in STEPS:
        rec = f.stage(st)
        stage_rows.append(
            [
                STEP_TITLES[st],
                rec.get("status", "not run"),
                fmt(rec.get("wall_s")) if rec.get("wall_s") is not None else "",
                rec.get("started_utc") or "",
                rec.get("finished_utc") or "",
            ]
        )
    body.append(
        _table(
            ["stage", "status", "wall time (s)", "started (UTC)", "finished (UTC)"],
            stage_rows,
            left=2,
            caption="Wall time of each stage (of the session that computed it)",
            table_id="stage-times",
        )
    )
    sess = s.get("sessions") or []
    if sess:
        body.append(
            _table(
                ["started (UTC)", "command", "stages run", "stages skipped", "wall time (s)"],
                [
                    [
                        x.get("started_utc", ""),
                        x.get("command", ""),
                        ", ".join(x.get("ran") or []),
                        ", ".join(x.get("skipped") or []),
                        fmt(x.get("wall_s")),
                    ]
                    for x in sess
                ],
                left=4,
                caption="Sessions (seilab run on this folder)",
            )
        )
    vers = dict(s.get("versions") or {})
    for k, v in (toml.get("versions") or {}).items():
        vers.setdefault(k, v)
    if vers:
        body.append(
            _table(
                ["package", "version"],
                sorted(vers.items()),
                left=2,
                caption="Versions",
                table_id="versions",
            )
        )
    return body
