"""The small real campaign of the analysis tests (simulator + campaign machinery).

Used by the session fixtures ``real_campaign`` and ``real_data`` of ``conftest.py``; tests import
the constants from here (``from real_campaign import REAL_CAMPAIGN``), not from ``conftest``.
"""

from __future__ import annotations

#: The small real campaign: 16 random parameter sets over four pairs, a 5 x 5 x 20 box, 8 cycles,
#: two worker processes.  ``protocol.max_rejections = 300`` ends a half-cycle that only draws
#: rejected events after 300 rejections instead of 100000: in so small a box such stalls are
#: common and otherwise cost minutes per run; the CE and event columns keep their meaning.
#: ``protocol.stall_ends_run = false`` lets the run go on after such a half (the default stops
#: it), so every run has its 8 cycles.
#: In this box the Li reservoir is used up within a few cycles (CE well above 100 % at first,
#: then a collapse to 0 %), so runs do fail at the paper's 70 % threshold, at different cycles.
#: The model is the previous default, ``paper-2025-study``: the calibrated ``paper`` needs a
#: 50.8 Angstrom slab, which leaves a 5 x 5 x 20 box (89 Angstrom) too little electrolyte to
#: run 8 cycles; these tests check the analyses on real simulator output, not the model.
REAL_CAMPAIGN = {
    "model": "paper-2025-study",
    "design": "random",
    "n": 16,
    "pairs": ["SFO-Li", "F-Li", "O-Li", "Li-Li"],
    "box": (5, 5, 20),
    "cycles": 8,
    "seed": 3,
    "workers": 2,
    "set": {"protocol.max_rejections": 300, "protocol.stall_ends_run": False},
}
