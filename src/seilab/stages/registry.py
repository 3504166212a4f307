"""The registered stages of ``seilab run``, in order (the report follows them:
:mod:`seilab.report.pipeline`)."""

from __future__ import annotations

from seilab.errors import SeilabError
from seilab.stages.base import Stage
from seilab.stages.bo_run import BOStage
from seilab.stages.campaign import CampaignStage
from seilab.stages.ce import CEStage
from seilab.stages.dataset import DatasetStage
from seilab.stages.failure import FailureStage

#: Stage name -> stage, in the order ``seilab run`` runs them.
REGISTRY: dict[str, Stage] = {
    s.name: s
    for s in (
        CampaignStage(),
        DatasetStage(),
        CEStage(),
        BOStage(),
        FailureStage(),
    )
}
#: Stage names in order.
STAGES: tuple[str, ...] = tuple(REGISTRY)
#: Stage name -> folder inside the run folder.
STAGE_DIRS: dict[str, str] = {n: s.folder for n, s in REGISTRY.items() if s.folder}
#: Stage name -> title.
STAGE_TITLES: dict[str, str] = {n: s.title for n, s in REGISTRY.items()}


def get_stage(name: str) -> Stage:
    """The registered stage called ``name``."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise SeilabError(f"unknown stage {name!r} (known: {', '.join(REGISTRY)})") from None


#: The report file that ends every ``seilab run`` (written by :mod:`seilab.report`).
REPORT_FILE = "report.html"
#: The steps of ``seilab run`` in order: the registered stages, then the report.
STEPS: tuple[str, ...] = (*STAGES, "report")
#: Step name -> title.
STEP_TITLES: dict[str, str] = {**STAGE_TITLES, "report": "HTML report"}
