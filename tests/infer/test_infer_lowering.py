"""Tests of ppl_ad.infer.lowering: the Threefry hash without a loop while ppl_ad lowers its program."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from ppl_ad.infer import jax_engine
from ppl_ad.infer.lowering import threefry_unrolled_available, unrolled_threefry

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


def test_the_engine_lowers_its_program_inside_the_context(monkeypatch):
    import ppl_ad as pa
    from ppl_ad.infer import program_cache
    from ppl_ad.infer.chain import ChainSettings
    from ppl_ad.testing import get_scenario

    monkeypatch.setattr(program_cache, "stored", lambda key: False)  # lowered here, not loaded from disk

    entered = []

    @contextlib.contextmanager
    def recording():
        entered.append(True)
        with unrolled_threefry():
            yield

    monkeypatch.setattr(jax_engine, "unrolled_threefry", recording)
    ld = pa.logdensity(get_scenario("eight_schools").model(), backend="jax")
    fn, data = ld.traceable()
    dim = int(ld.dimension)
    settings = ChainSettings(draws=5, tune=5, engine="jax")
    state = jax_engine._initial_state(dim, np.array([0, 1], np.uint32), settings)
    init = (np.zeros(dim), np.zeros(dim, bool), np.array([0, 7], np.uint32))
    flags = jax_engine._flags(5, 5, 5, settings.metric_adaptation, False)[:5]
    args = (state, jax.device_put(data), init, flags, np.asarray(5, np.int64))
    compiled = jax_engine._compile(fn, settings, dim, False, args)
    assert entered == [True]
    state, out = compiled(*args)
    assert np.all(np.isfinite(np.asarray(out["position"])))
