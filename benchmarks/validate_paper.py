"""Validation of a model against the paper: the data-set table and the lattice mechanism figure.

Reads a finished (or partly finished) campaign folder of the paper design, for example the
``campaign/`` folder of ``seilab run --preset paper``, and writes

* ``<stem>.md`` / ``<stem>.csv``: :func:`seilab.calibrate.validation.validation_rows` plus the
  mechanism indicators of :func:`seilab.calibrate.fidelity.candidate_stats`;
* ``<stem>_mechanism.png``: per cycle, the median over runs of the CE, the slab height over the
  box height and the electrolyte (ETH) left, with the failure cycles: what the lattice does when
  runs fail.

Usage::

    python benchmarks/validate_paper.py /work/val/paper-run/campaign --stem validation_paper
"""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path

import numpy as np

os.environ.setdefault("MPLBACKEND", "Agg")

MECHANISM_KEYS = (
    "runs",
    "ce_median_pct",
    "share_ce_95_105",
    "ce_mode_bin",
    "share_charge_halves_at_budget",
    "share_discharge_halves_at_budget",
    "median_final_slab_over_box",
    "median_final_electrolyte_left",
    "median_slab_over_box_at_failure",
    "median_electrolyte_left_at_failure",
    "share_failures_discharge_timed_out",
    "spearman_Li-Li",
    "spearman_F-Li",
    "spearman_SFO-Li",
    "spearman_O-Li",
    "spearman_F5D-Li",
    "spearman_S-Li",
    "spearman_N-Li",
)


def main() -> int:
    import matplotlib.pyplot as plt
    import pandas as pd

    from seilab.analysis.failure import run_outcomes
    from seilab.calibrate import fidelity as F
    from seilab.calibrate.validation import validate_campaign
    from seilab.campaign import load_dataset
    from seilab.model import load_model

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("campaign", type=Path)
    ap.add_argument("--stem", default="validation_paper")
    ap.add_argument("--table-dir", type=Path, default=Path("docs/fidelity"))
    ap.add_argument("--fig-dir", type=Path, default=Path("docs/figures"))
    a = ap.parse_args()

    rows, stats = validate_campaign(a.campaign)
    rows += [[k, "-", F._fmt(stats[k])] for k in MECHANISM_KEYS if k in stats]
    table = pd.DataFrame(rows, columns=["statistic", "paper", "this model"])
    a.table_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(a.table_dir / f"{a.stem}.csv", index=False)
    md = ["| statistic | paper | this model |", "|---|---|---|"]
    md += [f"| {r[0]} | {r[1]} | {r[2]} |" for r in rows]
    (a.table_dir / f"{a.stem}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))

    cfg = tomllib.loads((a.campaign / "campaign.toml").read_text())
    sim = cfg["simulator"]
    model = load_model(sim["model"], sim.get("set") or None)
    box_a = float(sim["box"][2]) * float(model.spec.lattice.a_angstrom)
    d = load_dataset(a.campaign).sort_values(["run_id", "cycle"])
    eth0 = d.groupby("run_id")["n_sp_eth"].transform("first").astype(float)
    d = d.assign(slab_over_box=d["slab_height_a"] / box_a, eth_left=d["n_sp_eth"] / eth0)
    med = d.groupby("cycle")[["ce_pct", "slab_over_box", "eth_left"]].median()
    alive = d.groupby("cycle")["run_id"].nunique()
    fc = run_outcomes(d)["failure_cycle"].dropna()

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), layout="constrained")
    axes[0].plot(med.index, med["ce_pct"], color="#1f4e9c")
    axes[0].axhline(70, ls="--", color="grey", lw=0.8)
    axes[0].set(xlabel="cycle", ylabel="median CE (%)", title="CE")
    axes[1].plot(med.index, med["slab_over_box"], label="slab height / box height")
    axes[1].plot(med.index, med["eth_left"], label="electrolyte (ETH) left")
    axes[1].set(xlabel="cycle", ylabel="median over runs", title="lattice")
    axes[1].legend(fontsize=8)
    axes[2].hist(fc, bins=np.arange(0.5, fc.max() + 1.5 if len(fc) else 2.5), color="#b33")
    ax2 = axes[2].twinx()
    ax2.plot(alive.index, alive.values, color="k", lw=0.8)
    ax2.set_ylabel("runs still running")
    axes[2].set(xlabel="cycle", ylabel="runs failing (CE < 70 %)", title="failure cycles")
    fig.suptitle(f"{sim['model']} on the paper design ({stats['runs']} runs), box {sim['box']}")
    a.fig_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.fig_dir / f"{a.stem}_mechanism.png", dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
