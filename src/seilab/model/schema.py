"""Pydantic schema of a model file.  Unknown keys are errors; every number is validated."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SITE_TYPES = ("BCB", "BCO", "BA", "OC", "TE")
SITE_CLASSES = ("OC_type", "BA_type")
ROLES = ("metal", "background", "molecule", "fragment")
KINDS = ("molecule", "fragment", "strip", "hop")

PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False, validate_assignment=True)


class ModelInfo(_Strict):
    name: str
    description: str = ""
    schema_version: Literal[1] = 1


class Physics(_Strict):
    temperature_k: PositiveFloat
    k_boltzmann_ev_per_k: PositiveFloat
    global_prefactor: PositiveFloat


class MinR(_Strict):
    OC_type: PositiveFloat
    BA_type: PositiveFloat


class Lattice(_Strict):
    a_angstrom: PositiveFloat
    reference_a_angstrom: PositiveFloat
    box: tuple[int, int, int]
    neighbor_tolerance: Annotated[float, Field(ge=1.0, le=1.2)]
    cutoffs: dict[str, PositiveFloat]
    min_r: MinR

    @field_validator("box")
    @classmethod
    def _box(cls, v: tuple[int, int, int]) -> tuple[int, int, int]:
        if any(n < 2 for n in v):
            raise ValueError(f"every box dimension must be >= 2 cubes, got {list(v)}")
        return v

    @field_validator("cutoffs")
    @classmethod
    def _cutoffs(cls, v: dict[str, float]) -> dict[str, float]:
        for key in v:
            parts = key.split("-")
            if len(parts) != 2 or any(p not in SITE_TYPES for p in parts):
                raise ValueError(
                    f"cut-off key {key!r} must be 'A-B' with A, B in {', '.join(SITE_TYPES)}"
                )
        return v


class Initial(_Strict):
    anode_thickness_angstrom: PositiveFloat
    electrolyte_max_li_neighbors: Annotated[int, Field(ge=0)]


class Electrolyte(_Strict):
    background: str
    sphere_radius_angstrom: PositiveFloat
    packing_fraction: Annotated[float, Field(gt=0, le=1)]
    molecules: dict[str, NonNegFloat]


class Species(_Strict):
    role: Literal["metal", "background", "molecule", "fragment"]
    label: str = ""
    site_class: Literal["OC_type", "BA_type"] | None = None
    column: str | None = None

    @model_validator(mode="after")
    def _fragment_class(self) -> Species:
        if self.role == "fragment" and self.site_class is None:
            raise ValueError("a fragment needs site_class = 'OC_type' or 'BA_type'")
        return self


class PairSettings(_Strict):
    allowed_range_ev: tuple[float, float]
    window: bool
    window_ev: tuple[float, float]


class Diffusion(_Strict):
    k0: NonNegFloat
    sigma: NonNegFloat
    max_to_stop: Annotated[int, Field(ge=0)]
    min_li_neighbors_destination: Annotated[int, Field(ge=0)]


class Protocol(_Strict):
    cycles: Annotated[int, Field(ge=1)]
    first_half: Literal["charge", "discharge"]
    event_budget: Annotated[int, Field(ge=1)]
    scan_interval_s: PositiveFloat
    reject_fraction: Annotated[float, Field(gt=0, le=1)]
    max_failed_attempts: Annotated[int, Field(ge=1)]
    max_rejections: Annotated[int, Field(ge=1)]
    max_steps: Annotated[int, Field(ge=0)] = 0  # steps per run before it ends (0: no limit)
    stall_ends_run: bool = True
    ce_pairing: Literal["charge_then_discharge", "discharge_then_charge"]
    voltage_charge_v: float
    voltage_discharge_v: float


class Rules(_Strict):
    wrap: bool
    wrap_bcb_when_free_ba_below: Annotated[int, Field(ge=0)]
    li_remove: bool
    li_fill: bool
    max_li_neighbors_strip: Annotated[int, Field(ge=0)]
    plating_min_li: Annotated[int, Field(ge=0)]
    plating_max_li: Annotated[int, Field(ge=0)]
    pack_min_li: Annotated[int, Field(ge=0)]
    hop_bcb_max_li: Annotated[int, Field(ge=0)]
    hop_bco_min_li: Annotated[int, Field(ge=0)]
    # legacy order (spec 6.1): SOL/FSI are flushed before wrap/updateLiMetal, so the back-fill
    # sees a site whose only electrolyte neighbours held molecules as buried
    flush_molecules_before_framework: bool = True


class Count(_Strict):
    species: str
    charge: Literal[0, 1] | None = None
    sites: list[Literal["BCB", "BCO", "BA", "OC", "TE"]]


class Channel(_Strict):
    weight: NonNegFloat
    products: list[str]


class Reaction(_Strict):
    name: str
    column: str
    paper: str = ""
    half: Literal["charge", "discharge"]
    kind: Literal["molecule", "fragment", "strip", "hop"]
    reactant: str
    count: Count | None = None
    enabled: bool = True
    # fragment reactions: the reacting fragment stays (legacy, spec 4.2) or is consumed
    keep_parent: bool = True
    k0: NonNegFloat
    ea: NonNegFloat | Literal["bonds"]
    alpha: float
    e0: float
    sigma: NonNegFloat
    electrons: Literal[0, 1]
    channels: list[Channel] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shape(self) -> Reaction:
        if self.kind == "molecule" and self.count is None:
            raise ValueError("a 'molecule' reaction needs a 'count' table")
        if self.kind in ("molecule", "fragment"):
            if not self.channels:
                raise ValueError(f"a {self.kind!r} reaction needs at least one channel")
            if sum(c.weight for c in self.channels) <= 0:
                raise ValueError("channel weights must not all be 0")
            if self.ea == "bonds":
                raise ValueError("ea = 'bonds' is only for 'strip' and 'hop' reactions")
        if not self.keep_parent and self.kind != "fragment":
            raise ValueError(
                f"keep_parent = false is only for 'fragment' reactions ({self.name!r} is a "
                f"{self.kind!r} reaction; allowed: true)"
            )
        return self


class ModelSpec(_Strict):
    """A complete model: what a model file holds, validated."""

    model: ModelInfo
    physics: Physics
    lattice: Lattice
    initial: Initial
    electrolyte: Electrolyte
    species: dict[str, Species]
    pairs: dict[str, float]
    pair_settings: PairSettings
    diffusion: Diffusion
    protocol: Protocol
    rules: Rules
    reactions: list[Reaction]

    @model_validator(mode="after")
    def _cross(self) -> ModelSpec:
        sp = self.species
        roles = {r: [n for n, s in sp.items() if s.role == r] for r in ROLES}
        if len(roles["metal"]) != 1:
            raise ValueError("species: exactly one species must have role 'metal'")
        if len(roles["background"]) != 1:
            raise ValueError("species: exactly one species must have role 'background'")
        if self.electrolyte.background not in roles["background"]:
            raise ValueError(
                f"electrolyte.background: {self.electrolyte.background!r} is not the background "
                f"species (allowed: {', '.join(roles['background'])})"
            )
        for m in self.electrolyte.molecules:
            if m not in roles["molecule"]:
                raise ValueError(
                    f"electrolyte.molecules: unknown molecule {m!r} "
                    f"(allowed: {', '.join(roles['molecule'])})"
                )
        lo, hi = self.pair_settings.allowed_range_ev
        for key, val in self.pairs.items():
            parts = key.split("-")
            if len(parts) != 2 or any(p not in sp for p in parts):
                raise ValueError(
                    f"pairs: {key!r} must be 'A-B' with known species (allowed: {', '.join(sp)})"
                )
            if not (lo <= val <= hi):
                raise ValueError(
                    f"pairs.{key} = {val} eV is outside the allowed range [{lo}, {hi}] eV"
                )
        names = set()
        for rx in self.reactions:
            where = f"reactions.{rx.name}"
            if rx.name in names:
                raise ValueError(f"{where}: duplicate reaction name")
            names.add(rx.name)
            if rx.reactant not in sp:
                raise ValueError(
                    f"{where}.reactant: unknown species {rx.reactant!r} (allowed: {', '.join(sp)})"
                )
            need = {
                "molecule": "molecule",
                "fragment": "fragment",
                "strip": "metal",
                "hop": "metal",
            }
            if sp[rx.reactant].role != need[rx.kind]:
                raise ValueError(
                    f"{where}.reactant: a {rx.kind!r} reaction needs a {need[rx.kind]} species, "
                    f"{rx.reactant!r} is a {sp[rx.reactant].role}"
                )
            if rx.kind in ("strip", "hop") and rx.half != "discharge":
                raise ValueError(
                    f"{where}.half: strip and hop reactions belong to the discharge half"
                )
            if rx.kind in ("molecule", "fragment") and rx.half != "charge":
                raise ValueError(
                    f"{where}.half: molecule and fragment reactions belong to the charge half"
                )
            if rx.count is not None and rx.count.species not in sp:
                raise ValueError(
                    f"{where}.count.species: unknown species {rx.count.species!r} "
                    f"(allowed: {', '.join(sp)})"
                )
            for i, ch in enumerate(rx.channels):
                for p in ch.products:
                    if p not in sp or sp[p].role not in ("metal", "fragment"):
                        ok = [n for n, s in sp.items() if s.role in ("metal", "fragment")]
                        raise ValueError(
                            f"{where}.channels[{i}].products: {p!r} is not a metal or fragment "
                            f"species (allowed: {', '.join(ok)})"
                        )
        kinds = [rx.kind for rx in self.reactions if rx.enabled]
        for k in ("strip", "hop"):
            if kinds.count(k) > 1:
                raise ValueError(f"reactions: at most one enabled {k!r} reaction")
        r = self.rules
        if r.plating_min_li > r.plating_max_li:
            raise ValueError("rules.plating_min_li must be <= rules.plating_max_li")
        return self
