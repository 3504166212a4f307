"""What the figures show (not only that they are PNG files): ROC end points, boxes, steps, rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seilab import schema
from seilab.analysis import failure as fa
from seilab.plotting import failure as fplot
from seilab.plotting.shap import beeswarm
from seilab.plotting.style import DPI, save_figure


def _cycles(fail_at: dict[str, int | None], n_cycles: int = 12) -> pd.DataFrame:
    """Per-cycle data: CE 95 % until a run's failure cycle, 40 % from then on."""
    rows = []
    for rid, fc in fail_at.items():
        for c in range(1, n_cycles + 1):
            rows.append(
                {
                    schema.RUN_ID: rid,
                    schema.CYCLE: c,
                    schema.TARGET: 40.0 if fc and c >= fc else 95.0,
                }
            )
    return pd.DataFrame(rows)


def test_roc_curves_run_from_0_0_to_1_1():
    rng = np.random.default_rng(3)
    n = 60
    X = pd.DataFrame(
        {schema.pair_column(p): rng.uniform(0, 1.5, n) for p in ("Li-Li", "F-Li", "SFO-Li")},
        index=[f"r{i}" for i in range(n)],
    )
    y = (X[schema.pair_column("Li-Li")] + rng.normal(0, 0.3, n) > 0.75).astype(int).to_numpy()
    names = ("LogisticRegression", "RandomForest")
    res = fa.fit_classifiers(X, y, seed=0, cv_splits=3, cv_repeats=1, small=True, names=names)
    fig = fplot.plot_roc_curves(res)
    ax = fig.axes[0]
    curves = [ln for ln in ax.lines if not ln.get_label().startswith("chance")]
    assert len(curves) == len(names)
    for ln in curves:
        x, yv = ln.get_xdata(), ln.get_ydata()
        assert (x[0], yv[0]) == (0.0, 0.0) and (x[-1], yv[-1]) == (1.0, 1.0)
        assert np.all(np.diff(x) >= 0) and np.all(np.diff(yv) >= 0)  # a ROC curve never falls


def test_failure_cycle_boxplot_has_one_box_at_the_median():
    data = _cycles({"a": 3, "b": 5, "c": 5, "d": 9, "e": None, "f": None})
    out = fa.run_outcomes(data, threshold=70.0)
    stats = fa.failure_cycle_stats(out)
    fig = fplot.plot_failure_cycle_box(out, stats, 70.0)
    ax = fig.axes[0]
    boxes = [p for p in ax.patches if p.__class__.__name__ == "PathPatch"]
    assert len(boxes) == 1
    medians = [ln for ln in ax.lines if ln.get_color() == "black" and ln.get_linewidth() == 2]
    assert len(medians) == 1 and set(medians[0].get_xdata()) == {stats["median"]} == {5.0}
    dots = ax.collections[0].get_offsets()
    assert sorted(dots[:, 0]) == [3.0, 5.0, 5.0, 9.0]  # one dot per failing run


def test_kaplan_meier_steps_follow_the_estimate():
    data = _cycles({"a": 3, "b": 5, "c": 5, "d": 9, "e": None, "f": None}, n_cycles=10)
    out = fa.run_outcomes(data, threshold=70.0)
    km = fa.kaplan_meier(out["time"].to_numpy(), out["event"].to_numpy())
    fig = fplot.plot_kaplan_meier(km, out, 70.0)
    step = fig.axes[0].lines[0]
    assert step.get_drawstyle() == "steps-post"
    surv = np.asarray(step.get_ydata(), dtype=float)
    # 6 runs: 1 fails at 3, 2 at 5, 1 at 9 -> 5/6, 3/6, then 2/3 of the 3 left at 9 -> 2/6
    drops = surv[np.r_[True, np.diff(surv) != 0]]
    assert drops[0] == pytest.approx(1.0) or drops[0] == pytest.approx(5 / 6)
    assert [round(v, 6) for v in drops if v < 1] == [round(v, 6) for v in (5 / 6, 3 / 6, 2 / 6)]
    assert np.all(np.diff(surv) <= 1e-12)  # never rises


def test_beeswarm_one_row_per_feature_most_important_on_top(tmp_path):
    rng = np.random.default_rng(0)
    cols = [schema.pair_column(p) for p in ("Li-Li", "F-Li", "SFO-Li")]
    scale = np.array([0.1, 3.0, 1.0])  # F-Li matters most, then SFO-Li, then Li-Li
    values = rng.normal(size=(40, 3)) * scale
    fig = beeswarm(values, rng.uniform(size=(40, 3)), cols, title="t", xlabel="x", importance=True)
    ax = fig.axes[0]
    assert len(ax.collections) == 3
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == [schema.label(c) for c in (cols[0], cols[2], cols[1])]  # top = last tick
    bars = [p.get_width() for p in fig.axes[1].patches]
    assert bars == sorted(bars)
    path = save_figure(fig, tmp_path / "b.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    from matplotlib.image import imread

    h, w = imread(path).shape[:2]
    assert (w, h) == (round(fig.get_figwidth() * DPI), round(fig.get_figheight() * DPI))
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file is gone
