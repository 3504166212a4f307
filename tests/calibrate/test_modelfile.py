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


def _leaves(d, prefix=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(d, list) and d and all(isinstance(x, dict) and "name" in x for x in d):
        for x in d:
            yield from _leaves(x, f"{prefix}.{x['name']}")
    else:
        yield prefix, d


def test_shipped_calibrated_model_comments_every_change():
    """paper (calibrated) differs from paper-2025-study only in commented values (knob, range, evidence)."""
    from seilab.calibrate.modelfile import _blocks

    cal, base = load_model("paper"), load_model("paper-2025-study")
    a, b = dict(_leaves(cal.to_dict())), dict(_leaves(base.to_dict()))
    changed = sorted(k for k in a if a[k] != b.get(k) and not k.startswith("model."))
    assert {
        "lattice.box",
        "protocol.scan_interval_s",
        "protocol.event_budget",
        "reactions.sfo.keep_parent",
        "reactions.f5d.keep_parent",
    } <= set(changed)
    lines = model_text("paper").splitlines()
    blocks = _blocks(lines)
    # set apart from the calibration, each with its own documented evidence in the file
    not_calibrated = {"protocol.max_steps": "A compute budget, not physics"}
    for key in changed:
        table, _, leaf = key.rpartition(".")
        _, start, end = next(bl for bl in blocks if bl[0] == table)
        if key in not_calibrated:
            assert not_calibrated[key] in "\n".join(lines[start:end]), key
            continue
        line = next(ln for ln in lines[start:end] if ln.split("=")[0].strip() == leaf)
        assert "calibrated (paper-reference trial" in line or "fixed by calibration spec" in line, (
            key
        )
    assert any("452 simulations" in ln for ln in lines[:20])
