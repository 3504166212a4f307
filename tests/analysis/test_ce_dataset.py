"""CE data set: features by group, NaN targets, splits by simulation, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from seilab import schema
from seilab.analysis.dataset import (
    build_ce_dataset,
    group_split,
    load_campaign,
    train_calib_test_split,
)
from seilab.errors import AnalysisError


def test_dataset_groups_and_target(synthetic_campaign):
    data = load_campaign(synthetic_campaign)
    ds = build_ce_dataset(data)
    expected = [c for g in ("events", "mobility", "pairs") for c in schema.FEATURE_GROUPS[g]]
    assert ds.features == [*expected, schema.CYCLE]
    assert ds.feature_groups["pairs"] == schema.PAIR_COLUMNS
    assert ds.y.name == schema.TARGET and ds.y.notna().all()
    assert ds.n_runs == 16  # the failed run has no file and is not loaded
    assert ds.X.dtypes.eq(np.float64).all()
    no_cycle = build_ce_dataset(data, groups="pairs", include_cycle=False)
    assert no_cycle.features == list(schema.PAIR_COLUMNS)


def test_nan_targets_are_dropped(make_campaign):
    folder = make_campaign(n_runs=5, n_cycles=12, seed=3, nan_cycles=2)
    data = load_campaign(folder)
    assert data[schema.TARGET].isna().sum() == 10
    ds = build_ce_dataset(data)
    assert len(ds.y) == len(data) - 10 and ds.n_dropped == 10


def test_splits_never_share_a_simulation(synthetic_campaign):
    ds = build_ce_dataset(load_campaign(synthetic_campaign))
    a, b = group_split(ds.groups, test_size=0.25, seed=7)
    assert not set(ds.groups.iloc[a]) & set(ds.groups.iloc[b])
    assert len(a) + len(b) == len(ds.y)
    s = train_calib_test_split(ds.groups, test_size=0.2, calib_size=0.25, seed=3)
    parts = [set(ds.groups.iloc[i]) for i in (s.train, s.calib, s.test)]
    assert all(p for p in parts)
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(np.concatenate([s.train, s.calib, s.test]).tolist()) == list(range(len(ds.y)))
    again = train_calib_test_split(ds.groups, test_size=0.2, calib_size=0.25, seed=3)
    assert np.array_equal(again.test, s.test)  # seeded


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(AnalysisError, match="folder is empty"):
        load_campaign(tmp_path)
    with pytest.raises(AnalysisError, match="does not exist"):
        load_campaign(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(AnalysisError, match="manifest"):
        load_campaign(tmp_path)


def test_missing_column_is_named(make_campaign):
    folder = make_campaign(n_runs=5, n_cycles=5, drop_columns=["mob_sfo"])
    data = load_campaign(folder)
    with pytest.raises(AnalysisError, match="missing column\\(s\\) mob_sfo"):
        build_ce_dataset(data)
    build_ce_dataset(data, groups="events,pairs")  # fine without the mobility group


def test_unknown_group_and_too_few_runs():
    with pytest.raises(AnalysisError, match="allowed: events, mobility, pairs"):
        build_ce_dataset(pd.DataFrame(), groups="events,chemistry")
    df = pd.DataFrame(
        {schema.RUN_ID: ["a", "a", "b"], schema.TARGET: [90.0, 91.0, 92.0], schema.CYCLE: [1, 2, 1]}
    )
    for c in schema.PAIR_COLUMNS:
        df[c] = 0.5
    with pytest.raises(AnalysisError, match="at least 4"):
        build_ce_dataset(df, groups="pairs")
