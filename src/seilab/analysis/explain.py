"""SHAP explanations of the CE regressors and the mean |SHAP| ranking.

* Any regressor (the dense NN in particular) is explained with shap's model-agnostic
  :class:`shap.PermutationExplainer` against an independent-features background sample.  Each
  permutation is evaluated forwards and backwards, so the values of every row sum exactly
  (to float precision) to ``f(x) - E_background[f]`` (additivity).
* XGBoost is explained with :class:`shap.TreeExplainer` (exact tree SHAP, path-dependent).

SHAP values are in the units of the target: percentage points of CE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from seilab import schema


def sample_rows(
    X: pd.DataFrame, n: int, *, seed: int, groups: pd.Series | np.ndarray | None = None
) -> pd.DataFrame:
    """A reproducible sample of ``n`` rows spread over simulations.

    Parameters
    ----------
    X
        Feature table.
    n
        Rows wanted (all rows when ``n >= len(X)``).
    seed
        Random seed.
    groups
        Run id per row: when given, rows are drawn round-robin over simulations so that every
        simulation contributes before any contributes twice.
    """
    if n >= len(X):
        return X.copy()
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = np.sort(rng.choice(len(X), size=n, replace=False))
        return X.iloc[idx]
    g = np.asarray(groups)
    order = rng.permutation(len(X))
    # rank of each row within its group, in random order, then take the lowest ranks first
    df = pd.DataFrame({"pos": order, "g": g[order]})
    df["rank"] = df.groupby("g").cumcount()
    key = df["rank"].to_numpy() + rng.random(len(df)) * 0.5
    chosen = df["pos"].to_numpy()[np.argsort(key, kind="stable")[:n]]
    return X.iloc[np.sort(chosen)]


def explain_model(
    estimator,
    background: pd.DataFrame,
    X: pd.DataFrame,
    *,
    n_permutations: int = 1,
    seed: int = 0,
    batch_size: int = 2000,
):
    """Model-agnostic SHAP values (permutation explainer) of a fitted regressor.

    Parameters
    ----------
    estimator
        Fitted regressor with ``predict``.
    background
        Background sample (the "absent feature" distribution; 50-200 rows is typical).
    X
        Rows to explain.
    n_permutations
        Antithetic permutations per row (cost: ``n_permutations * (2 M + 1)`` model calls on
        the whole background per row, M features).
    seed
        Seed of the permutations.
    batch_size
        Masked samples per model call.

    Returns
    -------
    shap.Explanation
        ``values`` (rows x features), ``base_values`` (``E_background[f]``), ``data``, feature
        names = column names.
    """
    import shap

    cols = list(X.columns)
    bg = np.asarray(background[cols], dtype=np.float64)
    masker = shap.maskers.Independent(bg, max_samples=len(bg))

    def f(a: np.ndarray) -> np.ndarray:
        return np.asarray(estimator.predict(pd.DataFrame(a, columns=cols)), dtype=np.float64)

    m = len(cols)
    # shap seeds and shuffles with the legacy global numpy RNG; restore it afterwards.
    state = np.random.get_state()  # noqa: NPY002
    try:
        explainer = shap.PermutationExplainer(f, masker, seed=seed)
        expl = explainer(
            np.asarray(X, dtype=np.float64),
            max_evals=n_permutations * (2 * m + 1),
            batch_size=batch_size,
            silent=True,
        )
    finally:
        np.random.set_state(state)  # noqa: NPY002
    expl.feature_names = cols
    return expl


def explain_tree(model, X: pd.DataFrame):
    """Exact TreeSHAP values of a fitted XGBoost (or other tree) regressor.

    Parameters
    ----------
    model
        Fitted tree model supported by :class:`shap.TreeExplainer`.
    X
        Rows to explain.

    Returns
    -------
    shap.Explanation
    """
    import shap

    explainer = shap.TreeExplainer(model)
    expl = explainer(X)
    expl.feature_names = list(X.columns)
    return expl


def additivity_error(expl, predictions) -> float:
    """Largest |sum(SHAP) + expected value - prediction| over the explained rows."""
    total = np.asarray(expl.values).sum(axis=1) + np.asarray(expl.base_values).reshape(-1)
    return float(np.max(np.abs(total - np.asarray(predictions, dtype=np.float64))))


def shap_ranking(
    explanations: Mapping[str, object], feature_groups: Mapping[str, Sequence[str]]
) -> pd.DataFrame:
    """Mean |SHAP| ranking of the features, overall and within each feature group.

    Parameters
    ----------
    explanations
        Model name -> :class:`shap.Explanation` (feature names = columns).
    feature_groups
        Group name -> columns.

    Returns
    -------
    pandas.DataFrame
        One row per (model, feature): ``model``, ``feature``, ``label`` (paper vocabulary),
        ``group``, ``mean_abs_shap`` (percentage points of CE), ``mean_shap``,
        ``rank_overall`` and ``rank_in_group`` (1 = most important), sorted by model and rank.
    """
    group_of = {c: g for g, cols in feature_groups.items() for c in cols}
    frames = []
    for model, expl in explanations.items():
        vals = np.asarray(expl.values)
        names = list(expl.feature_names)
        df = pd.DataFrame(
            {
                "model": model,
                "feature": names,
                "label": [schema.label(c) for c in names],
                "group": [group_of.get(c, "other") for c in names],
                "mean_abs_shap": np.abs(vals).mean(axis=0),
                "mean_shap": vals.mean(axis=0),
            }
        )
        df["rank_overall"] = df["mean_abs_shap"].rank(ascending=False, method="first").astype(int)
        df["rank_in_group"] = (
            df.groupby("group")["mean_abs_shap"].rank(ascending=False, method="first").astype(int)
        )
        frames.append(df.sort_values("rank_overall"))
    return pd.concat(frames, ignore_index=True)


def top_pairs(ranking: pd.DataFrame, k: int, *, model: str | None = None) -> list[str]:
    """The ``k`` pair names (e.g. ``"SFO-Li"``) with the largest mean |SHAP| in a ranking.

    Parameters
    ----------
    ranking
        Output of :func:`shap_ranking` (or the ``shap_ranking.csv`` written by ``analyze ce``).
    k
        Number of pairs.
    model
        Model whose ranking is used (default: ``dense_nn`` if present, else the first model).
    """
    col_to_pair = {schema.pair_column(p): p for p in schema.PAIRS}
    models = list(dict.fromkeys(ranking["model"]))
    if model is None:
        model = "dense_nn" if "dense_nn" in models else models[0]
    sub = ranking[(ranking["model"] == model) & ranking["feature"].isin(col_to_pair)]
    sub = sub.sort_values("mean_abs_shap", ascending=False)
    return [col_to_pair[c] for c in sub["feature"].head(k)]
