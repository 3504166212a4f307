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

    With a stable ranking (:func:`stable_ranking`, column ``selected``) only pairs that beat the
    permutation null are eligible: fewer than ``k`` are returned when fewer pass, and the single
    most important pair when none does.

    Parameters
    ----------
    ranking
        Output of :func:`shap_ranking` or :func:`stable_ranking` (or the ``shap_ranking.csv`` /
        ``shap_ranking_stability.csv`` written by ``analyze ce``).
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
    if "selected" in sub.columns:
        chosen = sub[sub["selected"].astype(bool)]
        sub = chosen if len(chosen) else sub.head(1)
    return [col_to_pair[c] for c in sub["feature"].head(k)]


# ---------------------------------------------------------------------- stability
#: Prefix of the shadow (permuted-copy) columns of :func:`stable_ranking`.
SHADOW_PREFIX = "shadow_"


def shadow_features(
    X: pd.DataFrame, groups: pd.Series | np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Permuted copies of every column: inputs with the same distribution and no effect.

    A column that is constant within every simulation (a pair energy) is permuted *across
    simulations*, so its shadow identifies simulations exactly as well as the real column does
    (and can be used just as well to memorise a simulation's own noise); any other column is
    permuted across rows.

    Returns
    -------
    pandas.DataFrame
        Columns ``shadow_<name>``, same index as ``X``.
    """
    g = pd.Series(np.asarray(groups), index=X.index)
    codes, uniq = pd.factorize(g)
    out = {}
    for c in X.columns:
        col = X[c]
        if (col.groupby(codes).nunique(dropna=False) <= 1).all():
            per_group = col.groupby(codes).first().to_numpy()
            out[SHADOW_PREFIX + c] = per_group[rng.permutation(len(uniq))][codes]
        else:
            out[SHADOW_PREFIX + c] = col.to_numpy()[rng.permutation(len(col))]
    return pd.DataFrame(out, index=X.index)


def _offer_every_feature(est) -> None:
    """Switch off per-tree feature subsampling for a ranking refit.

    With column subsampling a tree that is not offered a driver splits on whatever input
    happens to correlate with it in this sample, and that stand-in then beats the shadows
    (which correlate with nothing) in every refit.
    """
    params = est.get_params()
    if "colsample_bytree" in params:
        est.set_params(colsample_bytree=1.0)
    if "max_features" in params and not isinstance(est.get_params().get("max_features"), str):
        est.set_params(max_features=1.0)


def _mean_abs_shap(est, model: str, bg: pd.DataFrame, rows: pd.DataFrame, seed: int) -> np.ndarray:
    if model == "xgboost":
        expl = explain_tree(est, rows)
    else:
        expl = explain_model(est, bg, rows, seed=seed)
    return np.abs(np.asarray(expl.values)).mean(axis=0)


def stable_ranking(
    X: pd.DataFrame,
    y: pd.Series,
    groups: pd.Series,
    *,
    models: Sequence[str] = ("xgboost",),
    repeats: int = 5,
    subsample: float = 0.8,
    quorum: float = 0.8,
    seed: int = 0,
    size: str = "full",
    n_jobs: int = 2,
    n_explain: int = 200,
    n_background: int = 50,
    feature_groups: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Mean |SHAP| ranking with its stability and a permutation null (shadow features).

    Each repeat ``r`` draws ``subsample`` of the simulations (without replacement), adds a
    shadow copy of every input (:func:`shadow_features`, a fresh permutation per repeat), fits
    the model with seed ``seed + r`` on those simulations and explains rows of the *other*
    simulations (TreeSHAP for XGBoost, the permutation explainer otherwise).  A feature
    *beats the null* in a repeat when its mean |SHAP| exceeds that of every shadow (tree models
    are refitted with every feature offered to every tree, see :func:`_offer_every_feature`);
    it is
    ``selected`` when it does so in at least ``quorum`` of the repeats *and* its mean over the
    repeats exceeds the largest shadow importance of all repeats (``null_max_all``).  The second
    condition matters because the real inputs are the same in every repeat while the shadows
    are drawn afresh: an inert input that happens to correlate with the noise of this sample
    beats a single repeat's shadows more often than chance, but rarely all of them.

    Parameters
    ----------
    X, y, groups
        Features, target and run id of every row.
    models
        Regressors (names of :func:`seilab.analysis.regressors.make_regressor`).
    repeats
        Refits per model.
    subsample
        Fraction of the simulations each refit trains on.
    quorum
        Fraction of repeats in which a feature must beat every shadow to be ``selected``.
    seed
        Base seed (subsamples, permutations, models).
    size, n_jobs
        Model size and threads.
    n_explain, n_background
        Rows explained per repeat (from the held-out simulations) and background rows of the
        permutation explainer (from the training simulations).
    feature_groups
        Group name -> columns, for the ``group`` column.

    Returns
    -------
    pandas.DataFrame
        One row per (model, feature), sorted by model and ``rank_overall``: ``mean_abs_shap``
        (mean over repeats, percentage points of CE), ``mean_abs_shap_std``,
        ``mean_abs_shap_q25`` / ``_q75``, ``rank_overall`` (order of ``mean_abs_shap``),
        ``rank_mean``, ``rank_q25`` / ``_q75`` (rank among the real features in each repeat),
        ``rank_freq`` (fraction of repeats at its overall rank), ``null_max_mean`` (mean over
        repeats of the largest shadow importance), ``null_max_all`` (the largest over all
        repeats), ``beats_null_frac``, ``selected``, ``repeats``.
    """
    from seilab.analysis.regressors import fit_grouped, make_regressor

    if repeats < 1 or not 0 < subsample < 1 or not 0 < quorum <= 1:
        raise ValueError("repeats >= 1, 0 < subsample < 1 and 0 < quorum <= 1 are required")
    g = pd.Series(np.asarray(groups), index=X.index)
    uniq = np.unique(g)
    if len(uniq) < 3:
        raise ValueError(f"{len(uniq)} simulation(s): the stable ranking needs at least 3")
    group_of = {c: gr for gr, cols in (feature_groups or {}).items() for c in cols}
    cols = list(X.columns)
    frames = []
    for model in models:
        imp = np.empty((repeats, len(cols)))
        null = np.empty(repeats)
        for r in range(repeats):
            rng = np.random.default_rng([seed, r, 14])
            n_tr = min(len(uniq) - 1, max(2, int(round(subsample * len(uniq)))))
            train_g = rng.choice(uniq, size=n_tr, replace=False)
            in_tr = g.isin(train_g).to_numpy()
            Xa = pd.concat([X, shadow_features(X, g, rng)], axis=1)
            est = make_regressor(model, seed=seed + r, size=size, n_jobs=n_jobs)
            _offer_every_feature(est)
            fit_grouped(est, Xa[in_tr], y[in_tr], g[in_tr])
            rows = sample_rows(Xa[~in_tr], n_explain, seed=seed + r, groups=g[~in_tr])
            bg = sample_rows(Xa[in_tr], n_background, seed=seed + r + 1, groups=g[in_tr])
            v = _mean_abs_shap(est, model, bg, rows, seed + r)
            imp[r], null[r] = v[: len(cols)], v[len(cols) :].max()
        ranks = (-imp).argsort(axis=1).argsort(axis=1) + 1  # rank among the real features
        mean = imp.mean(axis=0)
        overall = (-mean).argsort(kind="stable").argsort() + 1
        beats = (imp > null[:, None]).mean(axis=0)
        df = pd.DataFrame(
            {
                "model": model,
                "feature": cols,
                "label": [schema.label(c) for c in cols],
                "group": [group_of.get(c, "other") for c in cols],
                "mean_abs_shap": mean,
                "mean_abs_shap_std": imp.std(axis=0, ddof=1) if repeats > 1 else np.nan,
                "mean_abs_shap_q25": np.quantile(imp, 0.25, axis=0),
                "mean_abs_shap_q75": np.quantile(imp, 0.75, axis=0),
                "rank_overall": overall,
                "rank_mean": ranks.mean(axis=0),
                "rank_q25": np.quantile(ranks, 0.25, axis=0),
                "rank_q75": np.quantile(ranks, 0.75, axis=0),
                "rank_freq": (ranks == overall[None, :]).mean(axis=0),
                "null_max_mean": null.mean(),
                "null_max_all": null.max(),
                "beats_null_frac": beats,
                "selected": (beats >= quorum - 1e-12) & (mean > null.max()),
                "repeats": repeats,
            }
        )
        frames.append(df.sort_values("rank_overall"))
    return pd.concat(frames, ignore_index=True)
