"""pa.condition: observed sites take new values by site name (NumPyro's condition handler)."""

from __future__ import annotations

import pickle

import cloudpickle
import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.model.condition import ConditionedModelFunction, observed_site_names
from ppl_ad.testing.scenarios import eight_schools, normal_normal

Y = np.array([0.3, -1.2, 2.0, 0.7])


@pa.model
def shifted(y, offset):
    """Observes an expression of the data: conditioning replaces the site value, not ``y``."""
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    sigma = pa.sample("sigma", dist.HalfNormal(1.0))
    pa.observe("z", dist.Normal(mu, sigma), y - offset)
    pa.observe("w", dist.Normal(mu, 1.0), 1.5)


def _logp(model, theta, backend="finite-difference"):
    return pa.logdensity(model, backend=backend).logdensity(np.asarray(theta, dtype=float))


@pytest.mark.parametrize("backend", ["finite-difference", "jax", "autograd"])
def test_conditioned_density_equals_the_model_bound_to_the_new_data(backend):
    new = np.array([1.0, 2.0, 3.0, 4.0])
    conditioned = pa.condition(normal_normal(Y, 1.0, 0.5), {"y": new})
    theta = np.array([0.4])
    expected = _logp(normal_normal(new, 1.0, 0.5), theta)
    assert _logp(conditioned, theta, backend) == pytest.approx(expected, rel=1e-12)
    value, gradient = pa.logdensity(conditioned, backend=backend).logdensity_and_gradient(theta)
    _, expected_gradient = pa.logdensity(normal_normal(new, 1.0, 0.5), backend="jax").logdensity_and_gradient(theta)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-6)


def test_the_site_value_is_replaced_where_it_is_declared():
    model = shifted(Y, 10.0)
    conditioned = pa.condition(model, {"z": Y})  # not Y - 10
    theta = np.array([0.2, -0.3])

    @pa.model
    def reference(y):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0))
        sigma = pa.sample("sigma", dist.HalfNormal(1.0))
        pa.observe("z", dist.Normal(mu, sigma), y)
        pa.observe("w", dist.Normal(mu, 1.0), 1.5)

    assert _logp(conditioned, theta) == pytest.approx(_logp(reference(Y), theta), rel=1e-12)
    assert _logp(model, theta) != pytest.approx(_logp(conditioned, theta))
    observed = pa.logdensity(conditioned, backend="finite-difference").observed_data()
    np.testing.assert_array_equal(observed["z"], Y)
    assert observed["w"] == 1.5


def test_the_original_model_is_unchanged_and_conditions_merge():
    model = shifted(Y, 0.0)
    once = pa.condition(model, {"z": Y + 1, "w": 0.0})
    twice = pa.condition(once, {"w": 2.0})
    assert isinstance(twice.function, ConditionedModelFunction)
    assert twice.function.base is model.function
    observed = pa.logdensity(twice, backend="finite-difference").observed_data()
    np.testing.assert_array_equal(observed["z"], Y + 1)
    assert observed["w"] == 2.0
    assert pa.logdensity(model, backend="finite-difference").observed_data()["w"] == 1.5
    assert twice.name == model.name and twice.data is not None
    assert "conditioned on ['w', 'z']" in repr(twice.function)


def test_unknown_site_names_are_a_data_error_naming_the_model_and_its_observed_sites():
    model = shifted(Y, 0.0)
    assert observed_site_names(model) == ["z", "w"]
    with pytest.raises(pa.DataError, match=r"model 'shifted'.*\['zz'\].*no site 'zz'.*observed sites are \['z', 'w'\]"):
        pa.condition(model, {"zz": 1.0})
    with pytest.raises(pa.DataError, match=r"'mu' is a sample site"):
        pa.condition(model, {"mu": 1.0})
    with pytest.raises(TypeError, match="bound model"):
        pa.condition(shifted, {"z": 1.0})


def test_conditioned_models_pickle_by_reference_and_by_value():
    conditioned = pa.condition(eight_schools(Y.repeat(2), np.ones(8)), {"y": np.arange(8.0)})
    theta = np.linspace(-1, 1, 10)
    expected = _logp(conditioned, theta)
    data = pickle.dumps(conditioned)
    assert b"__main__" not in data
    assert _logp(pickle.loads(data), theta) == expected
    assert _logp(cloudpickle.loads(cloudpickle.dumps(conditioned)), theta) == expected


def test_conditioned_shapes_are_checked_when_compiled():
    conditioned = pa.condition(eight_schools(np.zeros(8), np.ones(8)), {"y": np.zeros(3)})
    with pytest.raises(pa.DataError, match="site 'y'.*does not broadcast"):
        pa.logdensity(conditioned, backend="finite-difference")


def test_prior_predictive_reports_the_conditioned_observations():
    conditioned = pa.condition(normal_normal(Y, 1.0, 0.5), {"y": Y + 5})
    idata = pa.sample_prior_predictive(conditioned, draws=3, seed=1)
    np.testing.assert_array_equal(idata.observed_data["y"].values, Y + 5)
