"""Tests of ppl_ad.infer.init: initial points, full and partial initial values."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import DataError, SamplingError
from ppl_ad.infer.init import MAX_INIT_ATTEMPTS, initial_position, initial_spec


@pa.model
def three_sites(y):
    a = pa.sample("a", dist.Normal(0.0, 1.0))
    b = pa.sample("b", dist.HalfNormal(1.0), shape=(2,))
    c = pa.sample("c", dist.Uniform(a, a + 3.0))  # a support that depends on a
    pa.observe("y", dist.Normal(a + c, b[0] + b[1]), y)


@pytest.fixture(scope="module")
def ld():
    return pa.logdensity(three_sites(np.array([0.1, 0.3])), "finite-difference")


def test_partial_init_fixes_the_sites_given_and_jitters_the_rest(ld):
    starts = [ld.constrain(initial_position(ld, np.random.default_rng(seed), {"b": 2.0})) for seed in range(3)]
    for start in starts:
        np.testing.assert_allclose(start["b"], [2.0, 2.0], rtol=1e-12)
    assert len({float(start["a"]) for start in starts}) == 3  # a and c jittered, per seed
    assert len({float(start["c"]) for start in starts}) == 3
    # the jitter is uniform(-2, 2) on the unconstrained space, as without init
    theta = initial_position(ld, np.random.default_rng(0), {"b": 2.0})
    jitter = initial_position(ld, np.random.default_rng(0), "jitter")
    assert theta[0] == jitter[0] and theta[3] == jitter[3]
    np.testing.assert_allclose(theta[1:3], np.log(2.0))


def test_partial_init_with_a_dependent_support(ld):
    start = ld.constrain(initial_position(ld, np.random.default_rng(1), {"a": 0.5, "c": 3.0}))
    assert float(start["a"]) == pytest.approx(0.5) and float(start["c"]) == pytest.approx(3.0)
    assert np.all(start["b"] > 0)
    with pytest.raises(DataError, match=r"site 'c'.*3\.6.*outside its support interval"):
        initial_position(ld, np.random.default_rng(1), {"a": 0.5, "c": 3.6})


def test_full_init_is_that_point(ld):
    values = {"a": 0.2, "b": np.array([0.5, 1.5]), "c": 1.0}
    start = ld.constrain(initial_position(ld, np.random.default_rng(0), values))
    for name, value in values.items():
        np.testing.assert_allclose(start[name], value, rtol=1e-12)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"b": -1.0}, r"model 'three_sites', site 'b': the value \[-1\. -1\.\] is outside its support positive"),
        ({"b": 0.0}, r"site 'b'.*outside its support positive"),
        ({"b": [1.0, 2.0, 3.0]}, r"site 'b': value of shape \(3,\), expected \(2,\)"),
        ({"bb": 1.0}, r"unknown site 'bb' \(did you mean 'b'\?\)"),
        ({"alpha": 1.0, "b": 1.0}, r"unknown site 'alpha'; the parameters are \['a', 'b', 'c'\]"),
    ],
)
def test_bad_initial_values_name_the_site(ld, values, message):
    with pytest.raises(DataError, match=message):
        initial_position(ld, np.random.default_rng(0), values)


def test_partial_init_that_never_gives_a_finite_point_names_the_fixed_sites():
    @pa.model
    def walled(y):
        a = pa.sample("a", dist.Normal(0.0, 1.0))
        b = pa.sample("b", dist.Normal(0.0, 1.0))
        pa.factor("wall", pa.math.where(b > 5.0, 0.0, -np.inf) + 0.0 * a)
        pa.observe("y", dist.Normal(a, 1.0), y)

    ld = pa.logdensity(walled(np.array([0.0])), "finite-difference")
    with pytest.raises(SamplingError, match=rf"{MAX_INIT_ATTEMPTS} attempts.*\['a'\] fixed by init"):
        initial_position(ld, np.random.default_rng(0), {"a": 1.0})
    assert np.isfinite(ld.logdensity(initial_position(ld, np.random.default_rng(0), {"b": 6.0})))


@pytest.mark.filterwarnings("ignore::ppl_ad.errors.SamplingWarning")  # max_treedepth=1 is hit on purpose
def test_sample_with_partial_and_per_chain_init():
    model = three_sites(np.array([0.1, 0.3]))
    kwargs = dict(backend="autograd", draws=1, tune=0, chains=2, cores=1, max_treedepth=1, seed=3, progressbar=False)
    idata = pa.sample(model, init={"a": 40.0}, **kwargs)  # far out: one small step stays near
    assert np.all(idata.posterior.a.values > 30)
    idata = pa.sample(model, init=[{"a": 40.0}, {"a": -40.0, "b": [0.5, 0.5]}], **kwargs)
    a = idata.posterior.a.values
    assert np.all(a[0] > 30) and np.all(a[1] < -30)
    with pytest.raises(DataError, match="did you mean 'a'"):
        pa.sample(model, init={"A": 1.0}, **kwargs)


@pytest.mark.parametrize("engine", ["python", "jax"])
def test_per_chain_init_errors_name_the_chain_and_the_count(engine):
    model = three_sites(np.array([0.1, 0.3]))
    kwargs = dict(backend="jax", engine=engine, draws=1, tune=0, chains=2, cores=1, seed=3, progressbar=False)
    with pytest.raises(pa.ConfigError, match="init is a list of 1 dict of initial values for 2 chains"):
        pa.sample(model, init=[{"a": 1.0}], **kwargs)
    with pytest.raises(DataError, match=r"init\[1\] \(the initial values of chain 1\): .*site 'b'"):
        pa.sample(model, init=[{"a": 1.0}, {"b": [-1.0, 1.0]}], **kwargs)


def test_initial_spec_fixes_what_init_gives(ld):
    base, mask = initial_spec(ld, np.random.default_rng(0), "jitter")
    assert not mask.any() and not base.any()
    values = {"a": 0.2, "b": np.array([0.5, 1.5]), "c": 1.0}
    base, mask = initial_spec(ld, np.random.default_rng(0), [{"b": 2.0}, values], chain=1)
    assert mask.all()
    np.testing.assert_allclose(base, ld.unconstrain(values))
    # partial values: the start is found here (c's unconstrained value depends on a's jitter)
    base, mask = initial_spec(ld, np.random.default_rng(0), {"b": 2.0})
    assert mask.all()
    np.testing.assert_array_equal(base, initial_position(ld, np.random.default_rng(0), {"b": 2.0}))
    with pytest.raises(DataError, match="site 'b'"):
        initial_spec(ld, np.random.default_rng(0), {"b": -1.0})


@pa.model
def with_a_deterministic(y):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    pa.deterministic("d", 2.0 * mu)
    pa.observe("y", dist.Normal(mu, 1.0), y)


def test_a_value_for_a_deterministic_is_refused_unless_the_parameters_give_it():
    """init={"d": 1000.0} ran with d ignored; a whole draw or find_MAP's result (which hold the
    deterministics too) still starts a chain."""
    model = with_a_deterministic(np.array([0.1, -0.2]))
    with pytest.raises(DataError, match=r"site 'd' is a deterministic, computed from the parameters \['mu'\]"):
        pa.sample(model, init={"d": 1000.0}, draws=5, tune=5, chains=1, progressbar=False)
    with pytest.raises(DataError, match="site 'd' is a deterministic"):
        pa.find_MAP(model, start={"mu": 1.0, "d": 3.0})
    mode = pa.find_MAP(model)
    idata = pa.sample(model, init=mode, draws=5, tune=0, chains=1, progressbar=False, seed=1)
    assert idata.posterior["mu"].shape == (1, 5)
