"""The per-cycle table keeps one schema across a model family, so campaigns concatenate."""

import pyarrow as pa

from seilab.kmc import simulate
from seilab.model import load_model


def _schema(table):
    return table.schema.remove_metadata()


def test_tables_of_one_model_family_have_the_same_columns_and_types():
    kw = dict(cycles=2, seed=3, box=(4, 4, 16))
    on = simulate("paper", **kw).table  # F5D reaction on
    off = simulate("paper-legacy", **kw).table  # F5D reaction off, other deck
    assert not any(r.enabled for r in load_model("paper-legacy").spec.reactions if r.name == "f5d")
    assert _schema(on) == _schema(off)
    assert off.column("n_rxn_f5d").to_pylist() == [0, 0]
    both = pa.concat_tables([on.replace_schema_metadata(None), off.replace_schema_metadata(None)])
    assert both.num_rows == 4
    # a run that completes no cycle still writes the full schema (zero rows)
    stall = {"protocol.reject_fraction": 1e-6, "protocol.max_rejections": 3}
    empty = simulate(load_model("paper", stall), cycles=2, seed=1, box=(4, 4, 16))
    assert empty.end_reason == "stalled" and empty.table.num_rows == 0
    assert _schema(empty.table) == _schema(on)
