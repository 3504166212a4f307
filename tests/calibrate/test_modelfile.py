"""The best setting as a model file: the base text is patched, and resolves to the calibration."""

from __future__ import annotations

import tomllib

from seilab.calibrate.modelfile import model_toml, patch_model_text
from seilab.model import load_model, model_text

TEXT = """# a model
[model]
name = "m"  # the name

[protocol]
cycles = 10                # cycles
scan_interval_s = 3600.0   # the cap

[[reactions]]
name = "sfo"
k0 = 1e-6                  # rate

[[reactions]]
name = "f5d"
k0 = 2e-6
"""


def test_patch_replaces_and_inserts_keeping_comments():
    out = patch_model_text(
        TEXT,
        {
            "protocol.scan_interval_s": (7200.0, "calibrated"),
            "reactions.f5d.k0": (3e-6, "calibrated too"),
            "reactions.f5d.keep_parent": (False, "inserted"),
            "reactions.sfo.keep_parent": (False, ""),
        },
    )
    data = tomllib.loads(out)
    assert data["protocol"]["scan_interval_s"] == 7200.0 and data["protocol"]["cycles"] == 10
    f5d = next(r for r in data["reactions"] if r["name"] == "f5d")
    sfo = next(r for r in data["reactions"] if r["name"] == "sfo")
    assert f5d == {"name": "f5d", "k0": 3e-6, "keep_parent": False}
    assert sfo == {"name": "sfo", "k0": 1e-6, "keep_parent": False}
    assert (
        "# the name" in out and "# rate" in out and "scan_interval_s = 7200.0  # calibrated" in out
    )
    assert patch_model_text(TEXT, {"nowhere.k": (1, "")}) is None


def test_full_dump_round_trips_the_paper_model():
    m = load_model("paper").with_overrides({"reactions.sfo.keep_parent": False})
    text = model_toml(m.to_dict(), {"reactions.sfo.keep_parent": "c"}, "header")
    from seilab.model import ModelSpec

    assert ModelSpec.model_validate(tomllib.loads(text)).model_dump(mode="json") == m.to_dict()
    assert "keep_parent = false  # c" in text
    assert model_text("paper").startswith("#")
