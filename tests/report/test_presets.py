"""The preset table of `seilab run`: every preset plans a valid campaign; overrides apply."""

from __future__ import annotations

import pytest

from seilab.campaign.runner import plan_campaign
from seilab.errors import SeilabError
from seilab.report.pipeline import RunOptions, campaign_config
from seilab.report.presets import DEFAULT_PRESET, PRESETS, get_preset


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_plans_a_valid_campaign(name: str) -> None:
    p = get_preset(name)
    plan = plan_campaign(campaign_config(RunOptions(preset=p, workers=2)))
    assert len(plan.runs) == (380 if p.design == "paper" else p.n * p.replicates)
    assert plan.cycles == (p.cycles or 100)
    assert p.bo_trials >= 1 and p.verify >= 0 and p.description and p.short


def test_paper_preset_is_the_papers_design_and_the_default_is_a_preset() -> None:
    paper = plan_campaign(campaign_config(RunOptions(preset=get_preset("paper"))))
    # the paper preset runs the default model on its own box
    from seilab.model import load_model

    box = list(load_model("paper").spec.lattice.box)
    assert (len(paper.runs), paper.cycles, paper.box) == (380, 100, box)
    assert get_preset("paper").bo_trials == 150
    assert DEFAULT_PRESET in PRESETS


def test_overrides_and_errors() -> None:
    p = get_preset("smoke").with_options(cycles=7, set={"protocol.event_budget": 3}, box=[5, 5, 20])
    assert (p.cycles, p.box, p.set["protocol.event_budget"]) == (7, (5, 5, 20), 3)
    assert get_preset("smoke").cycles == 4  # the table is not changed
    with pytest.raises(SeilabError, match="unknown preset"):
        get_preset("nope")
    with pytest.raises(SeilabError, match="unknown preset field"):
        p.with_options(colour="red")
