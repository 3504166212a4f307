"""The data contract: column names of the per-cycle run table and of a campaign folder.

Everything downstream (campaigns, analysis, report) reads columns through the names defined
here, so a data set produced by another tool in the same schema can be analysed too.  The
meaning and unit of every column is documented in ``docs/schema.md``.
"""

from __future__ import annotations

#: The 19 pair-bonding energies (directional "A-B": the barrier of species A feels B).
PAIRS: tuple[str, ...] = (
    "Li-Li",
    "F-Li",
    "F-F",
    "F-SOL",
    "SFO-Li",
    "SFO-SFO",
    "SFO-SOL",
    "O-Li",
    "O-O",
    "O-SOL",
    "F5D-Li",
    "F5D-F5D",
    "F5D-SOL",
    "S-Li",
    "S-S",
    "S-SOL",
    "N-Li",
    "N-N",
    "N-SOL",
)


def pair_column(pair: str) -> str:
    """Column name of a pair energy, e.g. ``"SFO-Li"`` -> ``"e_pair_sfo_li_ev"``."""
    a, b = pair.split("-")
    return f"e_pair_{a.lower()}_{b.lower()}_ev"


PAIR_COLUMNS: tuple[str, ...] = tuple(pair_column(p) for p in PAIRS)

#: Event counters of one cycle (charge + discharge half), with the paper's vocabulary.
EVENT_COLUMNS: dict[str, str] = {
    "n_rxn_plating": "Li plating on Li metal",
    "n_rxn_plating_sei": "Li plating over SEI",
    "n_rxn_stripping": "Li stripping",
    "n_rxn_li_surface": "Li surface hop",
    "n_rxn_fsi": "salt_IDP1 (FSI reduction, a-1)",
    "n_rxn_sfo": "salt_IDP2 (SFO reduction, a-2..a-8)",
    "n_rxn_sol": "solv_IDP1 (F5DEE reduction, b-1)",
    "n_rxn_sol2": "F5DEE on Li2O (c-1)",
    "n_rxn_f5d": "solv_IDP3 (F5D reaction, b-2/b-3)",
}
SFO_CHANNEL_COLUMNS: tuple[str, ...] = tuple(f"n_rxn_sfo_ch{c}" for c in range(8))

#: Fragments created by reactions in the cycle.
FORMED_COLUMNS: dict[str, str] = {
    "n_formed_f": "F- formation (LiF)",
    "n_formed_o": "O2- formation (Li2O)",
    "n_formed_s": "S2- formation (Li2S)",
    "n_formed_n": "N3- formation (Li3N)",
    "n_formed_sfo": "SFO fragments formed",
    "n_formed_f5d": "F5D fragments formed",
}

#: Species with a per-cycle mobility feature.
MOBILITY_SPECIES: tuple[str, ...] = ("FSI", "SOL", "SFO", "F5D", "F", "O", "S", "N", "Li0")
MOBILITY_COLUMNS: tuple[str, ...] = tuple(f"mob_{s.lower()}" for s in MOBILITY_SPECIES)
LAYER_COLUMNS: tuple[str, ...] = tuple(
    f"layers_{half}_{s.lower()}" for half in ("ch", "dis") for s in MOBILITY_SPECIES
)

TARGET = "ce_pct"
RUN_ID = "run_id"
CYCLE = "cycle"

#: Feature groups of the paper's SHAP figures.
FEATURE_GROUPS: dict[str, tuple[str, ...]] = {
    "events": tuple(EVENT_COLUMNS) + tuple(FORMED_COLUMNS)[:4],
    "mobility": MOBILITY_COLUMNS,
    "pairs": PAIR_COLUMNS,
}

#: Human labels in the paper's vocabulary, for figures and tables.
LABELS: dict[str, str] = {
    **{c: lab.split(" (")[0] for c, lab in EVENT_COLUMNS.items()},
    "n_formed_f": "F- formation",
    "n_formed_o": "O2- formation",
    "n_formed_s": "S2- formation",
    "n_formed_n": "N3- formation",
    "n_formed_sfo": "SFO formation",
    "n_formed_f5d": "F5D formation",
    **{f"mob_{s.lower()}": f"{s} mobility" for s in MOBILITY_SPECIES},
    **{pair_column(p): f"{p} (eV)" for p in PAIRS},
    "ce_pct": "CE (%)",
    "cycle": "cycle",
}
LABELS["n_rxn_fsi"] = "salt_IDP1"
LABELS["n_rxn_sfo"] = "salt_IDP2"
LABELS["n_rxn_sol"] = "solv_IDP1"
LABELS["n_rxn_f5d"] = "solv_IDP3"
LABELS["n_rxn_sol2"] = "F5DEE on Li2O"


#: The four CE regressors of the paper: name -> title (analysis tables, figures, report).
REGRESSOR_TITLES: dict[str, str] = {
    "dense_nn": "DenseNN",
    "mlp": "MLPRegressor",
    "xgboost": "XGBoost",
    "extra_trees": "Extra Trees",
}
#: The five failure classifiers, in the paper's order.
CLASSIFIER_NAMES: tuple[str, ...] = (
    "LogisticRegression",
    "RandomForest",
    "GradientBoosting",
    "CatBoost",
    "XGBoost",
)


def label(column: str) -> str:
    """Readable label of a column in the paper's vocabulary (falls back to the name)."""
    return LABELS.get(column, column)


# ---------------------------------------------------------------- campaign folder layout
#: A campaign folder holds ``runs/<run_id>.parquet`` (one per simulation, the run table),
#: ``manifest.parquet`` (one row per run) and ``campaign.toml`` (resolved configuration).
RUNS_DIR = "runs"
MANIFEST = "manifest.parquet"
CAMPAIGN_CONFIG = "campaign.toml"
#: Manifest columns besides one ``e_pair_*_ev`` column per pair and any ``param.*`` overrides.
MANIFEST_COLUMNS: tuple[str, ...] = (
    "run_id",
    "design_set",
    "seed",
    "status",  # "done" | "failed" | "pending"
    "wall_s",
    "n_cycles",
    "end_reason",
    "error",
    "seilab_version",
    "model_sha256",
)
#: ``end_reason`` of a run that its step budget (``protocol.max_steps``) ended: a compute limit,
#: not an outcome; its later cycles are unknown (right-censored, no failure label).
END_STEP_LIMIT = "step_limit"
#: Parquet schema-metadata key that carries the run's provenance as JSON.
METADATA_KEY = b"seilab"
