"""The CE data set: features by group, the ``ce_pct`` target, and splits by simulation.

Every row is one (simulation, cycle).  Rows of one simulation are strongly correlated, so all
splits here are *grouped* by :data:`seilab.schema.RUN_ID`: no cycle of a test simulation is
ever seen in training (or calibration).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seilab import schema
from seilab.errors import AnalysisError

#: Default feature groups, in the order of the paper's SHAP figures.
DEFAULT_GROUPS: tuple[str, ...] = ("events", "mobility", "pairs")
#: Group name of the ``cycle`` feature in rankings.
CYCLE_GROUP = "cycle"


@dataclass
class CEDataset:
    """Features, target and groups of the CE regression.

    Attributes
    ----------
    X
        Feature matrix (float64), one row per (run, cycle); columns in group order.
    y
        Target ``ce_pct`` (%), NaN rows removed.
    groups
        ``run_id`` of each row (the unit of every split).
    feature_groups
        Group name -> feature columns of that group (``cycle`` is its own group when used).
    n_dropped
        Rows dropped because the target (or a feature) was missing.
    """

    X: pd.DataFrame
    y: pd.Series
    groups: pd.Series
    feature_groups: dict[str, tuple[str, ...]]
    n_dropped: int = 0
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """All feature columns, in order."""
        return list(self.X.columns)

    @property
    def n_runs(self) -> int:
        """Number of distinct simulations."""
        return int(self.groups.nunique())

    def group_of(self, column: str) -> str:
        """Feature group of a column."""
        for g, cols in self.feature_groups.items():
            if column in cols:
                return g
        raise KeyError(column)

    def fingerprint(self) -> str:
        """Short hash of the data (features, target, groups) for provenance and resume checks."""
        h = hashlib.sha256()
        h.update(",".join(self.features).encode())
        h.update(np.ascontiguousarray(self.X.to_numpy(np.float64)).tobytes())
        h.update(np.ascontiguousarray(self.y.to_numpy(np.float64)).tobytes())
        h.update("\n".join(self.groups.astype(str)).encode())
        return h.hexdigest()[:16]


def check_inputs(folder: str | Path, out: str | Path) -> None:
    """Before any work: ``folder`` is a campaign folder and ``out`` a writable folder."""
    from seilab.campaign.store import check_campaign_folder
    from seilab.io import check_writable_dir

    check_campaign_folder(folder)
    check_writable_dir(out)


def load_campaign(folder: str | Path) -> pd.DataFrame:
    """Load the per-cycle data of a campaign folder, with clear errors for bad folders.

    Parameters
    ----------
    folder
        Campaign folder (``manifest.parquet`` + ``runs/*.parquet``, see ``docs/schema.md``).

    Returns
    -------
    pandas.DataFrame
        The joined per-cycle data set of :func:`seilab.campaign.load_dataset`.
    """
    from seilab.campaign import load_dataset
    from seilab.campaign.store import check_campaign_folder

    path = check_campaign_folder(folder)
    data = load_dataset(path)
    if data.empty:
        raise AnalysisError(f"{path}: the campaign holds no rows")
    return data


def resolve_groups(groups: str | Sequence[str] | None) -> tuple[str, ...]:
    """Parse a feature-group selection (``"events,pairs"`` or a sequence) and validate it."""
    if groups is None:
        return DEFAULT_GROUPS
    if isinstance(groups, str):
        groups = [g.strip() for g in groups.split(",") if g.strip()]
    out = tuple(groups)
    unknown = [g for g in out if g not in schema.FEATURE_GROUPS]
    if unknown or not out:
        raise AnalysisError(
            f"unknown feature group(s) {unknown or '(none given)'}; allowed: "
            + ", ".join(schema.FEATURE_GROUPS)
        )
    return out


def build_ce_dataset(
    data: pd.DataFrame,
    *,
    groups: str | Sequence[str] | None = None,
    include_cycle: bool = True,
    source: str = "",
) -> CEDataset:
    """Select features by group and the CE target from a per-cycle data set.

    Parameters
    ----------
    data
        Per-cycle data in the schema of ``docs/schema.md`` (one row per run and cycle).
    groups
        Feature groups of :data:`seilab.schema.FEATURE_GROUPS` to use (default: all three).
    include_cycle
        Add ``cycle`` as a feature (its own group ``"cycle"``).
    source
        Description of where the data came from (kept for the report).

    Returns
    -------
    CEDataset
        Features (float64), target and run ids; rows with a missing target are dropped.
    """
    sel = resolve_groups(groups)
    feature_groups: dict[str, tuple[str, ...]] = {g: tuple(schema.FEATURE_GROUPS[g]) for g in sel}
    if include_cycle:
        feature_groups[CYCLE_GROUP] = (schema.CYCLE,)
    features = [c for cols in feature_groups.values() for c in cols]
    required = [schema.RUN_ID, schema.TARGET, *features]
    missing = [c for c in required if c not in data.columns]
    if missing:
        raise AnalysisError(
            f"{source or 'data set'}: missing column(s) {', '.join(missing)} (see docs/schema.md)"
        )
    # one float64 matrix filled column by column (a 10,000-run campaign has a million rows:
    # no per-column copies of the whole feature frame)
    Xa = np.empty((len(data), len(features)), dtype=np.float64)
    for k, c in enumerate(features):
        Xa[:, k] = pd.to_numeric(data[c], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    y = pd.to_numeric(data[schema.TARGET], errors="coerce").astype(np.float64)
    okv = np.isfinite(y.to_numpy()) & np.isfinite(Xa).all(axis=1)
    ok = pd.Series(okv, index=data.index)
    n_dropped = int((~okv).sum())
    X = pd.DataFrame(Xa if n_dropped == 0 else Xa[okv], columns=features, copy=False)
    del Xa
    y = y[ok].reset_index(drop=True).rename(schema.TARGET)
    grp = data.loc[ok, schema.RUN_ID].astype(str).reset_index(drop=True)
    if len(y) == 0:
        raise AnalysisError(f"{source or 'data set'}: no row with a finite {schema.TARGET}")
    if grp.nunique() < 4:
        raise AnalysisError(
            f"{source or 'data set'}: {grp.nunique()} simulation(s) with CE data; at least 4 are "
            "needed to split train, calibration and test by simulation"
        )
    cycle = (
        pd.to_numeric(data.loc[ok, schema.CYCLE], errors="coerce").to_numpy(np.float64)
        if schema.CYCLE in data.columns
        else np.full(len(y), np.nan)
    )
    return CEDataset(
        X=X,
        y=y,
        groups=grp,
        feature_groups=feature_groups,
        n_dropped=n_dropped,
        source=source,
        extra={"cycle": cycle},
    )


def group_split(
    groups: pd.Series | np.ndarray, *, test_size: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into two parts by simulation (GroupShuffleSplit, seeded).

    Parameters
    ----------
    groups
        Group (run id) of each row.
    test_size
        Fraction of *simulations* in the second part (at least one simulation each side).
    seed
        Random seed.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        Row indices of the first and second part.
    """
    from sklearn.model_selection import GroupShuffleSplit

    g = np.asarray(groups)
    n_groups = len(np.unique(g))
    if n_groups < 2:
        raise AnalysisError(f"cannot split {n_groups} simulation(s) into two parts")
    n_test = int(min(max(1, round(test_size * n_groups)), n_groups - 1))
    gss = GroupShuffleSplit(n_splits=1, test_size=n_test, random_state=seed)
    a, b = next(gss.split(np.zeros(len(g)), groups=g))
    return np.sort(a), np.sort(b)


@dataclass
class SplitIndices:
    """Row indices of the train (model fitting), calibration (conformal) and test parts."""

    train: np.ndarray
    calib: np.ndarray
    test: np.ndarray

    def labels(self, n: int) -> np.ndarray:
        """Per-row split name (``train`` / ``calib`` / ``test``)."""
        out = np.empty(n, dtype=object)
        out[self.train] = "train"
        out[self.calib] = "calib"
        out[self.test] = "test"
        return out


def train_calib_test_split(
    groups: pd.Series, *, test_size: float = 0.2, calib_size: float = 0.2, seed: int = 0
) -> SplitIndices:
    """Three-way split by simulation: test first, then calibration from the remainder.

    Parameters
    ----------
    groups
        Run id of every row.
    test_size
        Fraction of simulations held out for testing.
    calib_size
        Fraction of the *remaining* simulations held out to calibrate prediction intervals
        (0 disables calibration; the calibration part is then empty).
    seed
        Random seed of both splits.
    """
    g = np.asarray(groups)
    rest, test = group_split(g, test_size=test_size, seed=seed)
    if calib_size <= 0:
        return SplitIndices(train=rest, calib=np.array([], dtype=int), test=test)
    tr, cal = group_split(g[rest], test_size=calib_size, seed=seed + 1)
    return SplitIndices(train=rest[tr], calib=rest[cal], test=test)
