"""SHAP: additivity of both explainers and the known-answer ranking."""

from __future__ import annotations

import numpy as np
import pytest
from known_answer import write_known_answer

from seilab import schema
from seilab.analysis.dataset import build_ce_dataset, load_campaign
from seilab.analysis.explain import (
    additivity_error,
    explain_model,
    explain_tree,
    sample_rows,
    shap_ranking,
    top_pairs,
)
from seilab.analysis.regressors import make_regressor


@pytest.fixture(scope="module")
def known(tmp_path_factory):
    folder = write_known_answer(tmp_path_factory.mktemp("known"))
    return build_ce_dataset(load_campaign(folder), groups="pairs", include_cycle=False)


@pytest.fixture(scope="module")
def fitted(known):
    xgb = make_regressor("xgboost", seed=0, size="small", n_jobs=1).fit(known.X, known.y)
    nn = make_regressor("dense_nn", seed=0, size="small", n_jobs=1).fit(
        known.X, known.y, groups=known.groups
    )
    rows = sample_rows(known.X, 60, seed=0, groups=known.groups)
    bg = sample_rows(known.X, 30, seed=1, groups=known.groups)
    return {
        "xgboost": (xgb, explain_tree(xgb, rows)),
        "dense_nn": (nn, explain_model(nn, bg, rows, seed=0)),
        "rows": rows,
        "background": bg,
    }


def test_tree_shap_additivity(fitted):
    model, expl = fitted["xgboost"]
    assert expl.values.shape == fitted["rows"].shape
    # exact up to XGBoost's float32 arithmetic on CE values ~ 90 %
    assert additivity_error(expl, model.predict(fitted["rows"])) < 1e-3


def test_permutation_shap_additivity(fitted):
    model, expl = fitted["dense_nn"]
    rows, bg = fitted["rows"], fitted["background"]
    pred = model.predict(rows)
    assert additivity_error(expl, pred) < 1e-6
    # the expected value is the mean prediction over the background sample
    np.testing.assert_allclose(np.asarray(expl.base_values), model.predict(bg).mean(), rtol=1e-9)


def test_known_answer_ranks_the_two_pairs_first(fitted, known):
    ranking = shap_ranking(
        {"dense_nn": fitted["dense_nn"][1], "xgboost": fitted["xgboost"][1]}, known.feature_groups
    )
    truth = {schema.pair_column("SFO-Li"), schema.pair_column("F-Li")}
    for model in ("dense_nn", "xgboost"):
        sub = ranking[ranking["model"] == model].sort_values("rank_overall")
        assert set(sub["feature"].head(2)) == truth, sub.head(4)
        assert (sub["rank_in_group"] == sub["rank_overall"]).all()  # one group
        assert sub["label"].iloc[0].endswith("(eV)")
        assert set(top_pairs(ranking, 2, model=model)) == {"SFO-Li", "F-Li"}


def test_sample_rows_spreads_over_simulations(known):
    rows = sample_rows(known.X, known.n_runs, seed=0, groups=known.groups)
    assert known.groups.loc[rows.index].nunique() == known.n_runs
    assert sample_rows(known.X, 10**6, seed=0).shape == known.X.shape
