"""Evidence for the training settings of the neural regressors (issue 14).

On the three-driver known-answer campaign (``tests/analysis/known_answer.py``: CE depends on
SFO-Li, F-Li and O-Li, 16 inert pairs, per-simulation and per-cycle noise, noise floor
0.71 percentage points), trains the dense NN and the MLP with several early-stopping settings
on the pair energies and the cycle, and prints the held-out (whole simulations) RMSE against
the noise floor, the epochs run and the fit time.

Usage::

    python benchmarks/nn_training_evidence.py [--runs 500] [--cycles 6] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "analysis"))

from known_answer import NOISE_FLOOR_PCT, write_three_pair  # noqa: E402

_PLATEAU = dict(kind="dense", lr_schedule="plateau", lr_patience=8, validation_fraction=0.2)
CONFIGS = {
    # the settings before issue 14
    "dense old: cosine, patience 8, val 10 %, 40 ep, batch 1024, no L2": dict(
        kind="dense",
        lr_schedule="cosine",
        learning_rate=2e-3,
        patience=8,
        validation_fraction=0.1,
        max_epochs=40,
        batch_size=1024,
    ),
    "dense plateau, patience 20, no L2": dict(
        **_PLATEAU, learning_rate=1e-3, patience=20, max_epochs=300, batch_size=256
    ),
    "dense plateau, patience 30, L2 1e-2": dict(
        **_PLATEAU,
        learning_rate=1e-3,
        weight_decay=1e-2,
        patience=30,
        max_epochs=300,
        batch_size=256,
    ),
    "dense plateau, patience 30, L2 3e-2 (chosen)": dict(
        **_PLATEAU,
        learning_rate=1e-3,
        weight_decay=3e-2,
        patience=30,
        max_epochs=300,
        batch_size=256,
    ),
    "dense plateau, patience 30, L2 1e-1": dict(
        **_PLATEAU,
        learning_rate=1e-3,
        weight_decay=1e-1,
        patience=30,
        max_epochs=300,
        batch_size=256,
    ),
    "xgboost (reference: full-size settings, no early stopping)": dict(kind="xgb"),
    "mlp old: sklearn early_stopping on rows": dict(kind="mlp_old"),
    "mlp group ES, alpha 1e-4, batch 256, lr 1e-3": dict(
        kind="mlp", alpha=1e-4, batch_size=256, learning_rate_init=1e-3
    ),
    "mlp group ES, alpha 1, batch 64, lr 3e-3 (chosen)": dict(
        kind="mlp", alpha=1.0, batch_size=64, learning_rate_init=3e-3
    ),
    "mlp group ES, alpha 3, batch 64, lr 3e-3": dict(
        kind="mlp", alpha=3.0, batch_size=64, learning_rate_init=3e-3
    ),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--cycles", type=int, default=6)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--only", default="", help="substring filter on the config names")
    args = ap.parse_args(argv)

    from sklearn.compose import TransformedTargetRegressor
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from seilab.analysis.dataset import build_ce_dataset, load_campaign, train_calib_test_split
    from seilab.analysis.regressors import (
        DenseNNRegressor,
        GroupMLPRegressor,
        fit_grouped,
        regression_metrics,
    )

    print(f"noise floor {NOISE_FLOOR_PCT:.3f} pct points; {args.runs} runs x {args.cycles} cycles")
    print(
        "config | seed | test RMSE | / floor | train RMSE | test R2 | epochs (best) | fit s | warn"
    )
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            folder = write_three_pair(
                Path(tmp) / "c", n_runs=args.runs, n_cycles=args.cycles, seed=seed
            )
            ds = build_ce_dataset(load_campaign(folder), groups="pairs", include_cycle=True)
        sp = train_calib_test_split(ds.groups, test_size=0.25, calib_size=0, seed=seed)
        Xtr, ytr, gtr = ds.X.iloc[sp.train], ds.y.iloc[sp.train], ds.groups.iloc[sp.train]
        Xte, yte = ds.X.iloc[sp.test], ds.y.iloc[sp.test]
        for name, cfg in CONFIGS.items():
            if args.only and args.only not in name:
                continue
            cfg = dict(cfg)
            kind = cfg.pop("kind")
            if kind == "dense":
                est = DenseNNRegressor((512, 256, 128), random_state=seed, n_threads=1, **cfg)
            elif kind == "xgb":
                from seilab.analysis.regressors import make_regressor

                est = make_regressor("xgboost", seed=seed, n_jobs=1)
            elif kind == "mlp":
                est = GroupMLPRegressor(
                    (128, 64), patience=30, max_iter=300, random_state=seed, **cfg
                )
            else:
                est = TransformedTargetRegressor(
                    regressor=make_pipeline(
                        StandardScaler(),
                        MLPRegressor(
                            hidden_layer_sizes=(128, 64),
                            batch_size=512,
                            max_iter=60,
                            early_stopping=True,
                            validation_fraction=0.1,
                            n_iter_no_change=8,
                            random_state=seed,
                        ),
                    ),
                    transformer=StandardScaler(),
                )
            t0 = time.perf_counter()
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                fit_grouped(est, Xtr, ytr, gtr)
            dt = time.perf_counter() - t0
            nwarn = sum(issubclass(x.category, ConvergenceWarning) for x in w)
            mte = regression_metrics(yte, est.predict(Xte))
            mtr = regression_metrics(ytr, est.predict(Xtr))
            ep = getattr(est, "n_epochs_", None)
            if kind == "xgb":
                ep, best = "-", "-"
            elif ep is None:
                inner = est.regressor_[-1]
                ep, best = inner.n_iter_, inner.best_iter_ if hasattr(inner, "best_iter_") else "?"
            else:
                best = est.best_epoch_
            print(
                f"{name} | {seed} | {mte['rmse']:.3f} | {mte['rmse'] / NOISE_FLOOR_PCT:.2f} | "
                f"{mtr['rmse']:.3f} | {mte['r2']:.3f} | {ep} ({best}) | {dt:.1f} | {nwarn}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
