"""How the kernels are compiled: every kernel states its reference-counting choice, and the
compiler that turns the loop vectorizer and loop unrolling off leaves Numba's settings as it
found them."""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import codegen as numba_codegen
from numba.core import config as numba_config
from numba.core.dispatcher import Dispatcher

from seilab.kmc import kernels as K


def _kernels() -> dict[str, Dispatcher]:
    return {n: d for n, d in vars(K).items() if isinstance(d, Dispatcher)}


def test_every_kernel_states_its_reference_counting_and_compiler():
    # a kernel that leaves _nrt unset takes the choice of whichever kernel compiles it first
    ks = _kernels()
    assert len(ks) > 30
    for name, disp in ks.items():
        opts = disp.targetoptions
        assert "_nrt" in opts, f"{name}: no _nrt choice"
        assert disp._compiler.pipeline_class is K._ScalarCompiler, name


def test_kernels_that_allocate_keep_reference_counting():
    ks = _kernels()
    with_nrt = {n for n, d in ks.items() if d.targetoptions["_nrt"]}
    assert with_nrt == {"init_state", "half_stats"}


def test_scalar_compiler_turns_the_vectorizer_off_and_restores_it():
    seen = []

    class Recording(K._ScalarCompiler):
        def define_pipelines(self):
            seen.append(numba_config.LOOP_VECTORIZE)
            return super().define_pipelines()

    before = numba_config.LOOP_VECTORIZE
    f = njit(pipeline_class=Recording)(lambda a: a.sum())
    assert f(np.arange(5.0)) == 10.0
    assert seen == [0]
    assert numba_config.LOOP_VECTORIZE == before
    # a compilation that fails restores it too
    g = njit(pipeline_class=Recording)(lambda a: a.no_such_attribute)
    try:
        g(np.arange(3.0))
    except Exception:  # noqa: BLE001 - a typing error is what this checks
        pass
    assert seen[-1] == 0
    assert numba_config.LOOP_VECTORIZE == before


def test_scalar_compiler_turns_loop_unrolling_off_and_restores_it():
    assert K._UNROLL_HOOK, "this Numba builds its passes elsewhere: the kernels unroll loops"
    seen = []
    made = []
    real = K._passes_without_unrolling

    def spy(*a, **kw):
        made.append(True)
        return real(*a, **kw)

    class Recording(K._ScalarCompiler):
        def define_pipelines(self):
            seen.append(numba_codegen.create_pass_builder)
            return super().define_pipelines()

    before = numba_codegen.create_pass_builder
    K._passes_without_unrolling = spy
    try:
        f = njit(pipeline_class=Recording)(lambda a: a.sum() + 1.0)
        assert f(np.arange(5.0)) == 11.0
    finally:
        K._passes_without_unrolling = real
    # the hook was in place while the kernel compiled, and Numba's optimiser went through it
    assert seen == [spy] and made
    assert numba_codegen.create_pass_builder is before
