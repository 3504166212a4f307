"""Presets of ``seilab run``: the whole pipeline's settings as data, in one table.

A preset fixes the campaign (design, size, simulator options) and the analysis settings
(model sizes, Bayesian-optimisation trials, verification in the simulator).  Command-line
options of ``seilab run`` override single fields.  To retune a preset (for example once the
simulator is faster, so that ``paper`` fits the default's time budget), edit :data:`PRESETS`
and :data:`DEFAULT_PRESET` only; ``docs/run.md`` documents the table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from seilab.errors import SeilabError


@dataclass(frozen=True)
class Preset:
    """Settings of one ``seilab run`` preset.

    Attributes
    ----------
    name
        Preset name (``--preset``).
    short
        A few words for ``--help``.
    description
        One line for ``--help`` and the report.
    design, n, pairs, replicates
        Campaign design (see ``docs/campaigns.md``); ``n`` for ``random``/``sobol``.
    cycles
        Cycles per simulation (None: the model's, 100 for ``paper``).
    box
        Simulation box in cubes (None: the model's default box).
    set
        Campaign-wide model overrides (``--set``).
    ce_size
        Size of the CE regressors: ``full`` (the paper's) or ``small``.
    shap_samples, shap_background
        Test rows explained by SHAP and training rows of its background sample.
    bo_trials
        Trials of the Bayesian optimisation (the paper: 150).
    bo_top_k
        Pairs optimised (the top of the dense NN's SHAP ranking).
    bo_surrogate, bo_size
        Surrogate regressor of the optimisation and its size.
    verify, verify_replicates
        Best proposals simulated to verify the optimum, and replicate seeds per proposal (and
        for the DFT defaults); ``verify = 0`` skips the verification.
    failure_small
        Small classifiers in the failure analysis (fewer trees).
    cv_repeats
        Repeats of the stratified cross-validation of the failure classifiers.
    budget
        What the preset is sized for (shown in ``--help`` and the report).
    """

    name: str
    short: str
    description: str
    design: str = "paper"
    n: int | None = None
    pairs: tuple[str, ...] | None = None
    replicates: int = 1
    cycles: int | None = None
    box: tuple[int, int, int] | None = None
    set: dict[str, Any] = field(default_factory=dict)
    ce_size: str = "full"
    shap_samples: int = 200
    shap_background: int = 50
    bo_trials: int = 150
    bo_top_k: int = 5
    bo_surrogate: str = "xgboost"
    bo_size: str = "full"
    verify: int = 3
    verify_replicates: int = 3
    failure_small: bool = False
    cv_repeats: int = 5
    budget: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (JSON-ready), as stored in the run folder's status file."""
        d = asdict(self)
        d["pairs"] = None if self.pairs is None else list(self.pairs)
        d["box"] = None if self.box is None else list(self.box)
        return d

    def with_options(self, **given: Any) -> Preset:
        """A copy with the non-None values of ``given`` replacing the preset's."""
        known = set(asdict(self))
        unknown = sorted(set(given) - known)
        if unknown:
            raise SeilabError(f"unknown preset field(s): {', '.join(unknown)}")
        vals = {k: v for k, v in given.items() if v is not None}
        if "set" in vals:
            vals["set"] = {**self.set, **vals["set"]}
        if "box" in vals:
            vals["box"] = tuple(int(v) for v in vals["box"])
        if "pairs" in vals:
            vals["pairs"] = tuple(vals["pairs"])
        return replace(self, **vals)


#: The presets.  Timings are for this project's shared 2-core machine with the simulator and the
#: default model of December 2026 (docs/run.md).
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="paper",
            short="380 runs x 100 cycles, the paper's design",
            description="the paper's data set: 380 runs (19 x 16 one-at-a-time + 76 random), "
            "100 cycles, the model's default box, paper-size models, 150 BO trials, 3 x 3 verification",
            design="paper",
            cycles=100,
            box=None,
            budget="about 10 minutes on 2 cores (measured: 10 min 1 s end to end, campaign 496 s)",
        ),
        Preset(
            name="quick",
            short="24 random runs over six Li-X pairs x 10 cycles, 8 x 8 x 32 box",
            description="a small random design over the six Li-X pairs that the paper's failure "
            "analysis singles out (Li-Li, F-Li, SFO-Li, O-Li, F5D-Li, N-Li; the others at their "
            "DFT values): 24 runs, 10 cycles, 8 x 8 x 32 box, paper-size models, 150 BO trials, "
            "the best proposal and the DFT defaults simulated with 2 seeds each",
            design="random",
            n=24,
            pairs=("Li-Li", "F-Li", "SFO-Li", "O-Li", "F5D-Li", "N-Li"),
            cycles=10,
            box=(8, 8, 32),
            verify=1,
            verify_replicates=2,
            budget="1-5 minutes on 2 cores (58 s measured on a quiet machine)",
        ),
        Preset(
            name="smoke",
            short="10 runs x 4 cycles on a tiny box, a smoke test",
            description="a smoke test of the whole pipeline: 10 runs, 4 cycles, 4 x 4 x 16 box, "
            "2 reaction events per half-cycle, small models, 20 BO trials, 1 proposal verified",
            design="random",
            n=10,
            cycles=4,
            box=(4, 4, 16),
            set={"protocol.event_budget": 2},
            ce_size="small",
            shap_samples=40,
            shap_background=20,
            bo_trials=20,
            bo_top_k=3,
            bo_size="small",
            verify=1,
            verify_replicates=1,
            failure_small=True,
            cv_repeats=1,
            budget="about a minute on 2 cores (not a result: too small to mean anything)",
        ),
    )
}

#: The preset of ``seilab run`` without ``--preset``: the full paper design, which finishes
#: within 15 minutes on 2 cores (10 min 1 s measured end to end; docs/run.md).
DEFAULT_PRESET = "paper"


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises
    ------
    SeilabError
        Unknown name (the message lists the presets).
    """
    try:
        return PRESETS[name]
    except KeyError:
        raise SeilabError(
            f"--preset {name!r}: unknown preset; choose one of {', '.join(PRESETS)}"
        ) from None
