"""Tests of ppl_ad.logdensity: deferred preparation and the backend-resolver hook."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad.backends import registry
from ppl_ad.testing import get_scenario


@pytest.fixture
def count_prepares(monkeypatch):
    calls = []
    original = registry.prepare

    def counting(compiled, backend):
        calls.append(backend.name)
        return original(compiled, backend)

    monkeypatch.setattr(registry, "prepare", counting)
    return calls


def test_deferred_preparation_happens_at_the_first_evaluation(count_prepares):
    model = get_scenario("eight_schools").model()
    lazy = pa.logdensity(model, backend="autograd", prepare=False)
    assert not lazy.is_prepared and lazy.prepare_seconds is None and count_prepares == []
    eager = pa.logdensity(model, backend="autograd")
    theta = np.linspace(-1.0, 1.0, lazy.dimension)
    value, gradient = lazy.logdensity_and_gradient(theta)
    assert lazy.is_prepared and lazy.prepare_seconds >= 0.0 and count_prepares == ["autograd", "autograd"]
    expected_value, expected_gradient = eager.logdensity_and_gradient(theta)
    assert value == expected_value
    np.testing.assert_array_equal(gradient, expected_gradient)
    lazy.logdensity(theta)
    assert lazy.prepare() is lazy and count_prepares == ["autograd", "autograd"]  # once only


def test_deferred_preparation_still_checks_the_backend_now(monkeypatch):
    monkeypatch.setattr(pa.backends.Autograd, "is_available", lambda self: False)
    with pytest.raises(pa.BackendUnavailableError, match=r"pip install 'ppl_ad\[autograd\]'"):
        pa.logdensity(get_scenario("normal_normal").model(), backend="autograd", prepare=False)
    with pytest.raises(pa.UnknownBackendError):
        pa.logdensity(get_scenario("normal_normal").model(), backend="no-such-backend", prepare=False)


def test_sample_prepares_in_the_parent_only_when_chains_run_there(count_prepares):
    model = get_scenario("normal_normal").model()
    kwargs = dict(backend="autograd", draws=50, tune=150, chains=2, seed=1, progressbar=False)
    parallel = pa.sample(model, cores=2, **kwargs)
    assert parallel.attrs["processes"] == 2 and count_prepares == []  # the workers prepared theirs
    sequential = pa.sample(model, cores=1, **kwargs)
    assert count_prepares == ["autograd"]
    np.testing.assert_array_equal(parallel.posterior.mu.values, sequential.posterior.mu.values)


def test_a_registered_resolver_chooses_the_backend():
    import sys

    module = sys.modules["ppl_ad.logdensity"]  # the attribute ppl_ad.logdensity is the function
    seen = []

    def smallest_first(compiled):
        seen.append(compiled.dimension)
        return "autograd", "the test's choice"

    pa.register_backend_resolver("Test-Choice", smallest_first)
    try:
        ld = pa.logdensity(get_scenario("normal_normal").model(), backend="test-choice")
    finally:
        module._RESOLVERS.pop("test-choice")
    assert ld.backend.name == "autograd" and seen == [1]
    assert ld.backend_source.startswith("test-choice (the test's choice); requested by")


@pytest.mark.parametrize("backend", ["jax", "jax-forward", "torch", "torch-forward", "autograd"])
def test_any_float64_view_goes_in_and_a_writable_gradient_comes_out(backend):
    ld = pa.logdensity(get_scenario("eight_schools").model(), backend=backend)
    theta = np.linspace(-1.0, 1.0, 10)
    read_only = theta.copy()
    read_only.flags.writeable = False
    reference = ld.logdensity_and_gradient(theta[::-1].copy())
    for view in (theta[::-1], read_only[::-1], np.stack([theta[::-1]] * 2)[:, ::1][0]):
        value, gradient = ld.logdensity_and_gradient(view)  # negative strides, read-only: no error, no warning
        assert value == reference[0] and np.array_equal(gradient, reference[1])
    gradient[:] = 0.0  # the caller owns it (a hand-written sampler scales it in place)
    assert np.array_equal(ld.logdensity_and_gradient(theta[::-1].copy())[1], reference[1])
