"""The presets of ``seilab run`` (they live in :mod:`seilab.stages.presets`; kept here too)."""

from seilab.stages.presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

__all__ = ["DEFAULT_PRESET", "PRESETS", "Preset", "get_preset"]
