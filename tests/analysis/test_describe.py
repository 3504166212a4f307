"""The data-set description counts every finished run, also one without a complete cycle."""

import pandas as pd

from seilab import schema
from seilab.analysis.describe import describe_dataset


def test_a_run_without_a_complete_cycle_is_counted_as_finished():
    data = pd.DataFrame(
        {
            schema.RUN_ID: ["a", "a", "a", "b", "b"],
            schema.CYCLE: [1, 2, 3, 1, 2],
            schema.TARGET: [95.0, 90.0, 10.0, 97.0, 96.0],
        }
    )
    manifest = pd.DataFrame(
        {
            "run_id": ["a", "b", "c", "d"],
            "status": ["done", "done", "done", "failed"],
            "end_reason": ["exhausted", "stalled", schema.END_STEP_LIMIT, None],
        }
    )
    d = describe_dataset(data, manifest)
    s = d.summary
    assert s["n_runs_design"] == 4
    assert s["n_runs_done"] == 3  # c finished, cut by the step budget before its first cycle
    assert s["n_runs_no_cycle"] == 1
    assert s["n_runs_failed"] == 1
    assert s["n_rows"] == 5
    assert s["cycles_per_run"] == {"min": 0, "max": 3}
    assert d.runs.loc["c", "n_cycles"] == 0
    assert d.runs.loc["c", "end_reason"] == schema.END_STEP_LIMIT
    assert d.runs.loc["a", "n_cycles"] == 3
    assert pd.isna(d.runs.loc["c", "ce_mean_pct"])
