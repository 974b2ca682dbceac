"""Tests of ppl_ad.infer.lowering: the Threefry hash without a loop while ppl_ad lowers its program,
and small loops compiled as one function while XLA compiles it."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from ppl_ad.infer import jax_engine
from ppl_ad.infer import lowering
from ppl_ad.infer.lowering import (
    hoisted_small_loops,
    small_loop_hoisting_available,
    threefry_unrolled_available,
    unrolled_threefry,
)

jax = pytest.importorskip("jax")


def _draws(key):
    k1, k2 = jax.random.split(key)
    return jax.random.normal(k1, (7,)) + jax.random.uniform(jax.random.fold_in(k2, 3), (7,))


def _lowered_text(fn, *args) -> str:
    # a new function object each time: jit caches lowerings per function
    return jax.jit(lambda *a: fn(*a)).lower(*args).as_text()


def test_the_installed_jax_has_the_rule_where_expected():
    # when a JAX upgrade moves the registry the engine silently keeps the slower rolled hash:
    # this test is what notices
    assert threefry_unrolled_available()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the rolled hash is the CPU's lowering")
def test_unrolled_inside_the_context_rolled_again_after_it():
    key = jax.random.key(0, impl="threefry2x32")
    assert "stablehlo.while" in _lowered_text(_draws, key)
    with unrolled_threefry():
        assert "stablehlo.while" not in _lowered_text(_draws, key)
    assert "stablehlo.while" in _lowered_text(_draws, key)


def test_the_rule_comes_back_after_an_error_and_nesting_is_allowed():
    key = jax.random.key(0, impl="threefry2x32")
    before = _lowered_text(_draws, key)
    with pytest.raises(RuntimeError, match="inside"):
        with unrolled_threefry():
            with unrolled_threefry():
                pass
            raise RuntimeError("inside")
    assert _lowered_text(_draws, key) == before


def test_the_same_hash_gives_the_same_draws():
    key = jax.random.key(11, impl="threefry2x32")
    rolled = np.asarray(jax.jit(lambda k: _draws(k))(key))
    with unrolled_threefry():
        lowered = jax.jit(lambda k: _draws(k)).lower(key)
    np.testing.assert_array_equal(np.asarray(lowered.compile()(key)), rolled)


def _compile_eight_schools(iterations: int):
    """The engine's chunk program of eight schools (one chain, ``iterations`` of warmup and as many
    draws), compiled by ``jax_engine._compile``, and its arguments."""
    import ppl_ad as pa
    from ppl_ad.infer.chain import ChainSettings
    from ppl_ad.testing import get_scenario

    ld = pa.logdensity(get_scenario("eight_schools").model(), backend="jax")
    fn, data = ld.traceable()
    dim = int(ld.dimension)
    settings = ChainSettings(draws=iterations, tune=iterations, engine="jax")
    state = jax_engine._initial_state(dim, np.array([0, 1], np.uint32), settings)
    init = (np.zeros(dim), np.zeros(dim, bool), np.array([0, 7], np.uint32))
    flags = jax_engine._flags(iterations, iterations, iterations, settings.metric_adaptation, False)[:iterations]
    args = (state, jax.device_put(data), init, flags, np.asarray(iterations, np.int64))
    return jax_engine._compile(fn, settings, dim, False, args), args


def test_the_engine_lowers_its_program_inside_the_context(monkeypatch):
    from ppl_ad.infer import program_cache

    monkeypatch.setattr(program_cache, "stored", lambda key: False)  # lowered here, not loaded from disk

    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(True)
        with unrolled_threefry():
            yield

    monkeypatch.setattr(jax_engine, "unrolled_threefry", recording)
    compiled_in = []

    @contextlib.contextmanager
    def recording_compile(threshold):
        compiled_in.append(threshold)
        with hoisted_small_loops(threshold):
            yield

    monkeypatch.setattr(jax_engine, "hoisted_small_loops", recording_compile)
    compiled, args = _compile_eight_schools(5)
    assert entered == [True]
    assert compiled_in == [lowering.SMALL_LOOP_BYTES]
    if jax.default_backend() == "cpu":  # eight schools: every loop of the sampler is one function
        assert _hoisted(compiled) >= 4
    state, out = compiled(*args)
    assert np.all(np.isfinite(np.asarray(out["position"])))


# ------------------------------------------------------------------ small loops compiled whole


def _loop(x):
    def body(carry):
        i, v = carry
        return i + 1, jax.numpy.sin(v) * 0.5 + jax.numpy.cos(v[::-1]) * 0.25

    return jax.lax.while_loop(lambda carry: carry[0] < 50, body, (0, x))[1]


def _compiled(fn, *args):
    return jax.jit(lambda *a: fn(*a)).lower(*args).compile()


def _hoisted(compiled) -> int:
    return compiled.as_text().count("xla_cpu_small_call")


def test_the_installed_jax_takes_the_option_where_expected():
    # when a JAX upgrade moves backend_compile_and_load, the engine's small loops run as thunks again
    assert small_loop_hoisting_available()


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an option of XLA:CPU")
def test_a_loop_over_16_kb_is_one_function_inside_the_context_only():
    x = jax.numpy.linspace(0.0, 1.0, 2000)  # 16 kB per iteration: above XLA's default threshold
    # without JAX's persistent cache (which earlier tests in this process may have turned on): the
    # option is added after its lookup, so a slow compile of `plain` stored there (a loaded machine)
    # was handed back for `whole`
    enabled = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    try:
        plain = _compiled(_loop, x)
        with hoisted_small_loops():
            whole = _compiled(_loop, x)
        after = _compiled(_loop, x)
    finally:
        jax.config.update("jax_enable_compilation_cache", enabled)
    assert (_hoisted(plain), _hoisted(whole), _hoisted(after)) == (0, 1, 0)
    np.testing.assert_allclose(np.asarray(whole(x)), np.asarray(plain(x)), rtol=1e-12, atol=1e-14)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an option of XLA:CPU")
def test_the_threshold_is_respected_and_nesting_restores_the_outer_one():
    x = jax.numpy.linspace(0.0, 1.0, 2000)
    with hoisted_small_loops(threshold=1000):  # below the loop's bytes: stays thunks
        assert _hoisted(_compiled(_loop, x)) == 0
        with hoisted_small_loops():
            assert _hoisted(_compiled(_loop, x)) == 1
        assert _hoisted(_compiled(_loop, x)) == 0


def test_the_compile_function_comes_back_after_an_error():
    from jax._src import compiler

    before = compiler.backend_compile_and_load
    with pytest.raises(RuntimeError, match="inside"):
        with hoisted_small_loops():
            assert compiler.backend_compile_and_load is not before
            raise RuntimeError("inside")
    assert compiler.backend_compile_and_load is before


def test_other_threads_compile_with_jax_s_options(monkeypatch):
    import threading

    x = jax.numpy.linspace(0.0, 1.0, 2000)
    counts = []
    with hoisted_small_loops():
        worker = threading.Thread(target=lambda: counts.append(_hoisted(_compiled(_loop, x))))
        worker.start()
        worker.join()
    assert counts == [0]


def test_without_the_private_function_the_context_does_nothing(monkeypatch):
    monkeypatch.setattr(lowering, "_compiler", lambda: None)
    assert not small_loop_hoisting_available()
    x = jax.numpy.linspace(0.0, 1.0, 2000)
    with hoisted_small_loops():
        assert _hoisted(_compiled(_loop, x)) == 0


def test_options_that_do_not_survive_the_round_trip_leave_jax_s_options(monkeypatch):
    # a build option the copy cannot carry over: compile with JAX's options, unchanged
    real = lowering._visible

    def visible(options):
        found = real(options)
        if "optimization_level" in found:
            found["optimization_level"] = object()  # never equal to the copy's
        return found

    monkeypatch.setattr(lowering, "_visible", visible)
    x = jax.numpy.linspace(0.0, 1.0, 2000)
    with hoisted_small_loops():
        assert _hoisted(_compiled(_loop, x)) == 0


def test_the_option_bytes_are_the_proto_of_the_map_entry():
    from jax._src.lib import xla_client

    options = xla_client.CompileOptions()
    extra = lowering._extra_option("xla_cpu_small_while_loop_byte_threshold", "123")
    merged = lowering._with_extra(options, extra)
    assert merged is not None
    text = str(merged.executable_build_options.debug_options)
    assert "xla_cpu_small_while_loop_byte_threshold" in text and '"123"' in text
    assert "xla_cpu_small_while_loop_byte_threshold" not in str(options.executable_build_options.debug_options)


# ------------------------------------------------------------------ LLVM's optimisation level


def test_the_cpu_gets_llvm_at_o1_other_platforms_xla_s_defaults():
    assert lowering.compile_options("cpu") == {"xla_backend_optimization_level": lowering.CPU_OPTIMIZATION_LEVEL}
    assert lowering.CPU_OPTIMIZATION_LEVEL == 1
    assert lowering.compile_options("gpu") == {} and lowering.compile_options("tpu") == {}


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="an option of XLA:CPU")
def test_the_engine_compiles_its_program_with_the_level_and_the_small_loop_rule(monkeypatch, tmp_path):
    # what XLA receives: the level among the option overrides, the small-loop threshold in the
    # serialised debug options (either would be lost silently if the two mechanisms clashed)
    monkeypatch.setenv("PPL_AD_CACHE_DIR", str(tmp_path))
    compiler = lowering._compiler()
    received = []
    original = compiler.backend_compile_and_load

    def spy(backend, module, devices, options, *args, **kwargs):
        received.append(options)
        return original(backend, module, devices, options, *args, **kwargs)

    monkeypatch.setattr(compiler, "backend_compile_and_load", spy)
    compiled, _ = _compile_eight_schools(3)
    chunk = [o for o in received if ("xla_backend_optimization_level", 1) in list(o.env_option_overrides)]
    assert len(chunk) == 1
    threshold = lowering._extra_option("xla_cpu_small_while_loop_byte_threshold", str(lowering.SMALL_LOOP_BYTES))
    assert threshold[6:] in chunk[0].SerializeAsString()  # the map entry (key and value) without its enclosing fields
    assert _hoisted(compiled) >= 4
