"""Model files: loading, overrides and clear errors."""

import pytest

from seilab.errors import ModelError
from seilab.model import available_models, load_model, model_text


def test_bundled_models_load_and_hash():
    assert {"paper", "paper-legacy"} <= set(available_models())
    m = load_model("paper")
    assert len(m.spec.pairs) == 19
    assert m.sha256 == load_model("paper").sha256
    assert m.with_overrides({"pair.Li-Li": 0.3}).sha256 != m.sha256


def test_overrides_reach_every_kind_of_value():
    m = load_model("paper").with_overrides(
        {
            "pair.SFO-Li": 0.9,
            "reactions.plating.k0": 1e-3,
            "protocol.event_budget": 30,
            "lattice.box": [6, 6, 24],
        }
    )
    assert m.spec.pairs["SFO-Li"] == 0.9
    assert next(r for r in m.spec.reactions if r.name == "plating").k0 == 1e-3
    assert m.spec.protocol.event_budget == 30
    assert m.spec.lattice.box == (6, 6, 24)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"pair.Li-X": 1.0}, r"unknown pair 'Li-X' \(allowed: Li-Li"),
        ({"pair.Li-Li": 1.6}, r"pairs.Li-Li = 1.6 eV is outside the allowed range \[0.0, 1.5\]"),
        ({"reactions.plating.k0": -1.0}, r"key 'reactions.plating.k0'"),
        ({"protocol.nope": 1}, r"unknown name 'nope' \(allowed: cycles"),
        ({"reactions.nope.k0": 1}, r"unknown name 'nope' \(allowed: plating"),
    ],
)
def test_bad_overrides_give_one_clear_line(overrides, match):
    with pytest.raises(ModelError, match=match):
        load_model("paper").with_overrides(overrides)


def test_bad_files_name_file_and_key(tmp_path):
    text = model_text("paper")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 1")
    with pytest.raises(ModelError, match=r"bad.toml: malformed TOML"):
        load_model(bad)
    bad.write_text(text.replace('reactant = "FSI"', 'reactant = "XYZ"', 1))
    with pytest.raises(ModelError, match=r"bad.toml: .*unknown species 'XYZ' \(allowed: Li, ETH"):
        load_model(bad)
    bad.write_text(text.replace("[physics]", "[physics]\nfoo = 1"))
    with pytest.raises(
        ModelError, match=r"bad.toml: key 'physics.foo': unknown key \(allowed: temperature_k"
    ):
        load_model(bad)
    bad.write_text(text.replace("k0 = 56.25", "k0 = -56.25"))
    with pytest.raises(ModelError, match=r"key 'reactions.stripping.k0'"):
        load_model(bad)
