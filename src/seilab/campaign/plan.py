"""Planning a campaign: its runs (design, seeds, validated parameters) and identity."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seilab import io
from seilab.campaign import design as D
from seilab.campaign import store
from seilab.campaign.config import (
    CampaignConfig,
    utc_now,
    versions,
)
from seilab.campaign.task import format_error
from seilab.errors import CampaignError, SeilabError


@dataclass
class PlannedRun:
    """A run of the plan: its spec, the overrides it runs with, its resolved parameters.

    Attributes
    ----------
    spec
        Id, design set, index, replicate, seed, own parameters.
    overrides
        Every override applied to the base model (campaign-wide first, then the run's own).
    pairs
        Resolved pair energies (eV) by pair name.
    params
        Resolved values of the varied non-pair model keys.
    error
        Why the parameters are invalid (the run is recorded as failed without running).
    """

    spec: D.RunSpec
    overrides: dict[str, Any]
    pairs: dict[str, float | None]
    params: dict[str, Any]
    error: str | None = None


@dataclass
class CampaignPlan:
    """A validated campaign: configuration, base model and the list of runs."""

    config: CampaignConfig
    base_model: Any
    pairs: list[str]
    varied_pairs: list[str] | None
    param_keys: list[str]
    campaign_overrides: dict[str, Any]
    set_overrides: dict[str, Any]
    cycles: int
    box: list[int]
    model_sha256: str
    runs: list[PlannedRun]
    param_sets: list[dict[str, Any]] | None = None

    @property
    def identity(self) -> dict[str, Any]:
        """What must match when a folder is resumed (see :mod:`seilab.campaign.config`)."""
        c = self.config
        return {
            "design": c.design,
            "seed": int(c.seed),
            "replicates": int(c.replicates),
            "n": None if c.n is None else int(c.n),
            "pairs": self.varied_pairs,
            "param_sets_sha256": D.sets_sha256(self.param_sets) if self.param_sets else None,
            "n_runs": len(self.runs),
            "model_sha256": self.model_sha256,
            "cycles": self.cycles,
            "box": self.box,
            "set": self.set_overrides or None,
        }

    def config_document(self) -> dict[str, Any]:
        """Content of ``campaign.toml``."""
        c = self.config
        ident = self.identity
        return {
            "campaign": {
                "design": c.design,
                "seed": ident["seed"],
                "replicates": ident["replicates"],
                "n": ident["n"],
                "pairs": ident["pairs"],
                "file": None if c.file is None else str(Path(c.file).resolve()),
                "param_sets_file": store.PARAM_SETS_FILE if self.param_sets else None,
                "param_sets_sha256": ident["param_sets_sha256"],
                "n_runs": ident["n_runs"],
                "seed_scheme": D.SEED_SCHEME,
            },
            "simulator": {
                "model": str(c.model),
                "model_sha256": self.model_sha256,
                "cycles": self.cycles,
                "box": self.box,
                "set": self.set_overrides or None,
            },
            "execution": {
                "backend": c.backend,
                "workers": c.workers,
                "scheduler": c.scheduler,
            },
            "slurm": dict(c.slurm) or None,
            "versions": versions(),
            "created": {"utc": utc_now()},
        }


# ------------------------------------------------------------------------------ planning
def _lookup(data: Any, key: str) -> Any:
    """Value of a dotted model key in ``Model.to_dict()`` (reactions addressed by name)."""
    node = data
    for part in key.split("."):
        if isinstance(node, list):
            match = [r for r in node if isinstance(r, dict) and r.get("name") == part]
            if not match:
                return None
            node = match[0]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def _canonical_params(
    params: Mapping[str, Any], pairs: Sequence[str], where: str
) -> tuple[dict[str, Any], str | None]:
    out: dict[str, Any] = {}
    for k, v in params.items():
        ck = D.canonical_key(k, pairs)
        if ck in out:
            return out, f"{where}: parameter {ck!r} is given twice"
        out[ck] = v
    return out, None


def plan_campaign(config: CampaignConfig) -> CampaignPlan:
    """Validate a configuration and expand its design into runs (writes nothing).

    Raises
    ------
    CampaignError, ModelError
        Invalid design arguments, options or campaign-wide model overrides.
    """
    from seilab.model import load_model

    config.check()
    D.check_design_args(
        config.design,
        n=config.n,
        pairs=config.pairs,
        file=config.file,
        replicates=config.replicates,
        seed=config.seed,
        has_sets=config.param_sets is not None,
    )
    base = load_model(config.model)
    pairs = list(base.pair_energies())
    set_over: dict[str, Any] = {}
    for k, v in (config.set or {}).items():
        set_over[D.override_key(D.canonical_key(k, pairs), pairs)] = v
    camp_over = dict(set_over)
    if config.box is not None:
        camp_over["lattice.box"] = [int(v) for v in config.box]
    if config.cycles is not None:
        camp_over["protocol.cycles"] = int(config.cycles)
    camp_model = base.with_overrides(camp_over) if camp_over else base
    spec = camp_model.spec
    varied = None
    if config.design in ("oat", "random", "sobol", "paper"):
        varied = D.resolve_pairs(config.pairs, pairs)
    param_sets: list[dict[str, Any]] | None = None
    if config.design in ("file", "sets"):
        if config.param_sets is not None:
            param_sets = D.normalise_sets(config.param_sets, source="parameter sets")
        else:
            param_sets = D.read_param_file(str(config.file))
        if not param_sets:
            raise CampaignError("the design has no parameter sets")
    groups = D.design_sets(
        config.design,
        pairs=varied or pairs,
        n=config.n,
        campaign_seed=int(config.seed),
        param_sets=param_sets,
    )
    specs = D.expand(groups, replicates=int(config.replicates), campaign_seed=int(config.seed))
    base_pairs = camp_model.pair_energies()
    runs: list[PlannedRun] = []
    param_keys: list[str] = []
    seen_keys: set[str] = set()
    cache: dict[str, tuple[dict, dict, str | None]] = {}
    for s in specs:
        where = f"{s.design_set} set {s.index}"
        params, err = _canonical_params(s.params, pairs, where)
        own = {D.override_key(k, pairs): v for k, v in params.items()}
        full = {**camp_over, **own}
        for k in params:
            if k not in pairs and k not in seen_keys:
                seen_keys.add(k)
                param_keys.append(k)
        ckey = io.canonical_json(own)
        if ckey not in cache:
            res_pairs: dict[str, float | None] = dict(base_pairs)
            res_params: dict[str, Any] = {}
            error = err
            if error is None:
                try:
                    m = base.with_overrides(full)
                    res_pairs = dict(m.pair_energies())
                    data = m.to_dict()
                    res_params = {k: _lookup(data, k) for k in params if k not in pairs}
                except SeilabError as exc:
                    error = f"invalid parameters ({where}): {exc}"
                except Exception as exc:  # noqa: BLE001 - any bad value is this run's failure
                    error = f"invalid parameters ({where}): {format_error(exc)}"
            if error is not None:
                for k, v in params.items():
                    if k in pairs:
                        ok = isinstance(v, int | float) and not isinstance(v, bool)
                        res_pairs[k] = float(v) if ok else None
                    else:
                        res_params[k] = v
            cache[ckey] = (res_pairs, res_params, error)
        res_pairs, res_params, error = cache[ckey]
        runs.append(PlannedRun(s, full, dict(res_pairs), dict(res_params), error))
    return CampaignPlan(
        config=config,
        base_model=base,
        pairs=pairs,
        varied_pairs=varied,
        param_keys=param_keys,
        campaign_overrides=camp_over,
        set_overrides=set_over,
        cycles=int(spec.protocol.cycles),
        box=[int(v) for v in spec.lattice.box],
        model_sha256=camp_model.sha256,
        runs=runs,
        param_sets=param_sets,
    )


def plan_summary(plan: CampaignPlan, limit: int = 5) -> list[str]:
    """Lines describing a plan (``seilab campaign run --dry-run``)."""
    by_set = Counter(r.spec.design_set for r in plan.runs)
    lines = [
        f"design {plan.config.design}: {len(plan.runs)} runs ("
        + ", ".join(f"{k} {v}" for k, v in by_set.items())
        + f"), {plan.config.replicates} replicate(s), campaign seed {plan.config.seed}",
        f"model {plan.config.model}: {plan.cycles} cycles, box {plan.box}"
        + (f", --set {plan.set_overrides}" if plan.set_overrides else ""),
    ]
    bad = [r for r in plan.runs if r.error]
    if bad:
        lines.append(f"{len(bad)} run(s) have invalid parameters, e.g. {bad[0].error}")
    for r in plan.runs[:limit]:
        lines.append(f"  {r.spec.run_id}  seed {r.spec.seed}  {r.spec.params}")
    if len(plan.runs) > limit:
        lines.append(f"  ... ({len(plan.runs) - limit} more)")
    return lines
