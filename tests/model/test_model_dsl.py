"""The model DSL: log density against hand-written formulas, layout, primitives, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.errors import DataError, ModelDefinitionError, ModelEvaluationError
from ppl_ad.testing.scenarios import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, get_scenario

FD = "finite-difference"
FAST = settings(max_examples=30, deadline=None)


@pytest.fixture(scope="module")
def eight():
    return pa.logdensity(get_scenario("eight_schools").model(), backend=FD)


def _eight_schools_reference(theta):
    mu, log_tau, tt = theta[0], theta[1], theta[2:]
    tau = np.exp(log_tau)
    return (
        st.norm(0, 5).logpdf(mu)
        + st.halfcauchy(scale=5).logpdf(tau) + log_tau
        + st.norm(0, 1).logpdf(tt).sum()
        + st.norm(mu + tau * tt, EIGHT_SCHOOLS_SIGMA).logpdf(EIGHT_SCHOOLS_Y).sum()
    )


@FAST
@given(theta=hnp.arrays(np.float64, (10,), elements=hs.floats(-3, 3)))
def test_eight_schools_matches_hand_written(eight, theta):
    expected = _eight_schools_reference(theta)
    np.testing.assert_allclose(eight.logdensity(theta), expected, rtol=1e-10)
    np.testing.assert_allclose(eight.compiled.logdensity(theta), expected, rtol=1e-10)


def test_eight_schools_layout(eight, rng):
    assert eight.dimension == 10
    assert [(name, shape) for name, shape, _ in eight.compiled.layout()] == [
        ("mu", ()), ("tau", ()), ("theta_tilde", (8,))
    ]
    theta = eight.initial_point(rng)
    assert theta.shape == (10,) and np.all(np.abs(theta) < 2)
    values = eight.constrain(theta)
    assert set(values) == {"mu", "tau", "theta_tilde"}
    assert values["tau"] > 0 and np.isclose(values["tau"], np.exp(theta[1]))
    np.testing.assert_allclose(eight.unconstrain(values), theta, rtol=1e-12, atol=1e-12)
    det = eight.constrain(theta, deterministics=True)
    np.testing.assert_allclose(det["theta"], values["mu"] + values["tau"] * values["theta_tilde"])


def test_initial_points_inside_box(eight):
    points = np.array([eight.initial_point(np.random.default_rng(s)) for s in range(50)])
    assert np.all((points > -2) & (points < 2))


@pa.model
def shaped(y):
    x = pa.sample("x", dist.Normal(0.0, 2.0), shape=(2, 3))
    s = pa.sample("s", dist.HalfNormal(1.0), shape=3)
    w = pa.sample("w", dist.Dirichlet(np.ones(4)))
    pa.observe("y", dist.Normal(x, s), y)
    pa.deterministic("total", M.sum(x) + M.sum(w))


def test_shape_expansion_and_round_trip(rng):
    y = rng.normal(size=(2, 3))
    ld = pa.logdensity(shaped(y), backend=FD)
    assert ld.site_shapes == {"x": (2, 3), "s": (3,), "w": (4,)}
    assert ld.dimension == 6 + 3 + 3
    theta = ld.initial_point(rng)
    values = ld.constrain(theta, deterministics=True)
    assert values["x"].shape == (2, 3) and values["w"].shape == (4,)
    np.testing.assert_allclose(values["w"].sum(), 1.0)
    np.testing.assert_allclose(values["total"], values["x"].sum() + 1.0)
    np.testing.assert_allclose(ld.unconstrain({k: values[k] for k in ("x", "s", "w")}), theta, atol=1e-10)
    x, s = values["x"], values["s"]
    from ppl_ad.transforms import StickBreaking

    u_w = theta[9:]
    expected = (
        st.norm(0, 2).logpdf(x).sum() + st.halfnorm().logpdf(s).sum() + np.log(s).sum()
        + st.dirichlet(np.ones(4)).logpdf(values["w"]) + StickBreaking().log_abs_det_jacobian(u_w, None)
        + st.norm(x, s).logpdf(y).sum()
    )
    np.testing.assert_allclose(ld.logdensity(theta), expected, rtol=1e-10)


@pa.model
def control_flow(y, use_prior, groups):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    if use_prior:
        pa.factor("extra", -0.5 * mu * mu)
    for g in range(groups):
        pa.observe(f"y{g}", dist.Normal(mu + g, 1.0), y[g])


@pytest.mark.parametrize("use_prior", [True, False])
def test_loops_if_and_factor(use_prior):
    y = np.array([0.3, 1.5, 1.9])
    ld = pa.logdensity(control_flow(y, use_prior, 3), backend=FD)
    assert ld.dimension == 1
    assert [s for s in ld.compiled.sites if s.startswith("y")] == ["y0", "y1", "y2"]
    for mu in (-1.0, 0.4):
        expected = st.norm(0, 1).logpdf(mu) + st.norm(mu + np.arange(3), 1).logpdf(y).sum()
        if use_prior:
            expected += -0.5 * mu * mu
        np.testing.assert_allclose(ld.logdensity(np.array([mu])), expected, rtol=1e-12)


@pa.model
def garch_like():
    a0 = pa.sample("a0", dist.Uniform(0.0, 1.0))
    pa.sample("a1", dist.Flat(0.0, 1.0 - a0))
    pa.sample("free", dist.Flat())
    pa.sample("pos", dist.HalfFlat())


def test_flat_and_dependent_bounds(rng):
    ld = pa.logdensity(garch_like(), backend=FD)
    assert ld.dimension == 4
    theta = rng.normal(size=4)
    values = ld.constrain(theta)
    a0 = 1 / (1 + np.exp(-theta[0]))
    assert np.isclose(values["a0"], a0)
    assert 0 < values["a1"] < 1 - a0 and values["pos"] > 0 and values["free"] == theta[2]

    def log_jac_interval(u, width):
        return np.log(width) - np.logaddexp(0, -u) - np.logaddexp(0, u)

    expected = log_jac_interval(theta[0], 1.0) + log_jac_interval(theta[1], 1 - a0) + theta[3]
    np.testing.assert_allclose(ld.logdensity(theta), expected, rtol=1e-10)
    np.testing.assert_allclose(ld.unconstrain(values), theta, atol=1e-10)


@pa.model(name="custom-name")
def renamed():
    pa.sample("x", dist.Normal(0.0, 1.0))


def test_model_name():
    assert renamed().name == "custom-name"
    assert control_flow([1.0], False, 1).name == "control_flow"


def test_model_pickles():
    m = control_flow(np.array([0.1, 0.2]), True, 2)
    clone = pickle.loads(pickle.dumps(m))
    assert clone.name == m.name
    np.testing.assert_array_equal(clone.data["y"], m.data["y"])
    theta = np.array([0.7])
    assert pa.logdensity(clone, backend=FD).logdensity(theta) == pa.logdensity(m, backend=FD).logdensity(theta)
    assert pickle.loads(pickle.dumps(renamed)).name == "custom-name"


def test_list_data_becomes_array():
    assert isinstance(control_flow([1.0, 2.0], False, 2).data["y"], np.ndarray)


# ---------------------------------------------------------------- errors
@pa.model
def observed(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0), shape=(3,))
    pa.observe("obs", dist.Normal(mu, 1.0), y)


def test_observed_shape_mismatch_names_site_and_shapes():
    with pytest.raises(DataError) as info:
        pa.logdensity(observed(np.zeros(4)), backend=FD)
    message = str(info.value)
    assert "'obs'" in message and "(4,)" in message and "(3,)" in message and "'observed'" in message


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_observed_data_names_argument(bad):
    with pytest.raises(DataError) as info:
        pa.logdensity(observed(np.array([0.0, bad, 1.0])), backend=FD)
    assert "argument 'y'" in str(info.value) and "NaN or inf" in str(info.value) and "[1]" in str(info.value)


@pa.model
def observed_log(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0), shape=(3,))
    pa.observe("obs", dist.Normal(mu, 1.0), np.log(y))


def test_non_finite_observed_value_computed_in_the_model_names_site():
    with np.errstate(divide="ignore"), pytest.raises(DataError) as info:
        pa.logdensity(observed_log(np.array([1.0, 0.0, 1.0])), backend=FD)
    assert "'obs'" in str(info.value) and "NaN or inf" in str(info.value)


@pa.model
def duplicated():
    pa.sample("a", dist.Normal(0.0, 1.0))
    pa.sample("a", dist.Normal(0.0, 1.0))


def test_duplicate_site_names():
    with pytest.raises(ModelDefinitionError, match="duplicate site name 'a'") as info:
        pa.logdensity(duplicated(), backend=FD)
    assert "'duplicated'" in str(info.value)


@pa.model
def raising():
    pa.sample("alpha", dist.Normal(0.0, 1.0))
    raise KeyError("boom")


def test_model_that_raises_names_model_and_site():
    with pytest.raises(ModelEvaluationError) as info:
        pa.logdensity(raising(), backend=FD)
    message = str(info.value)
    assert "'raising'" in message and "'alpha'" in message and "KeyError" in message and "boom" in message


def test_theta_of_wrong_length(eight):
    for call in (eight.logdensity, eight.logdensity_and_gradient):
        with pytest.raises(ValueError) as info:
            call(np.zeros(3))
        assert "(3,)" in str(info.value) and "(10,)" in str(info.value)
    with pytest.raises(ValueError, match="length 10"):
        eight.compiled.logdensity(np.zeros(11))


def test_unknown_keyword_data():
    with pytest.raises(DataError) as info:
        observed(y=np.zeros(3), z=1.0)
    assert "'observed'" in str(info.value) and "'z'" in str(info.value)


def test_primitive_outside_model():
    with pytest.raises(pa.ModelError, match="outside a model"):
        pa.sample("x", dist.Normal(0.0, 1.0))


@pa.model
def discrete_parameter():
    pa.sample("k", dist.Poisson(3.0))


def test_discrete_parameter_rejected():
    with pytest.raises(ModelDefinitionError, match="'k'.*discrete"):
        pa.logdensity(discrete_parameter(), backend=FD)


@pa.model
def observed_outside_support(y):
    lam = pa.sample("lam", dist.Exponential(1.0))
    pa.observe("y", dist.Poisson(lam), y)


def test_observed_value_outside_support_is_refused_when_the_model_is_built():
    # it was a log density of -inf everywhere, which only failed at the sampler's initial points
    with pytest.raises(DataError, match="site 'y': 1 observed value outside the support nonnegative_integer of Poisson: -2 at 1"):
        pa.logdensity(observed_outside_support(np.array([1, -2])), backend=FD)


@pa.model
def german_tank(y):
    theta = pa.sample("theta", dist.Exponential(0.5))
    pa.observe("y", dist.Uniform(0.0, theta), y)


@pa.model
def german_tank_factor(y):
    theta = pa.sample("theta", dist.Exponential(0.5))
    pa.factor("y", dist.Uniform(0.0, theta).logpdf(y))


def _german_tank_reference(y, theta):
    """log p(theta, y) on the log scale of theta (with the Jacobian), -inf below max(y)."""
    if theta <= np.max(y):
        return -np.inf
    return st.expon(scale=2.0).logpdf(theta) + np.sum(st.uniform(0.0, theta).logpdf(y)) + np.log(theta)


@pytest.mark.parametrize("backend", ["jax", "jax-forward", "torch", "autograd", FD])
@pytest.mark.parametrize("y", [np.array([0.8, 0.5, 0.3, 0.9]), np.array([0.8, 2.1, 1.5, 0.3])])
@pytest.mark.parametrize("model", [german_tank, german_tank_factor])
def test_observed_data_are_checked_against_bounds_that_are_parameters_at_every_evaluation(backend, y, model):
    # the support of Uniform(0, theta) moves with theta: whether the data lie inside it is decided
    # at each evaluation, never frozen at the parameter values the model was compiled with (observe),
    # and logpdf compares in the backend's arrays (factor)
    ld = pa.logdensity(model(y), backend=backend)
    for theta in (0.5, 0.95, 2.0, 3.0, 20.0):
        expected = _german_tank_reference(y, theta)
        value = ld.logdensity(np.log([theta]))
        if np.isfinite(expected):
            assert value == pytest.approx(expected, rel=1e-12)
            # d/du of -theta/2 - n log(theta) + u at theta = exp(u)
            _, grad = ld.logdensity_and_gradient(np.log([theta]))
            assert grad[0] == pytest.approx(-theta / 2 - len(y) + 1, rel=1e-6)
        else:
            assert value == -np.inf


@pa.model
def pareto_minimum(y):
    m = pa.sample("m", dist.HalfNormal(1.0))
    pa.observe("y", dist.Pareto(2.0, m), y)


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_data_below_a_bound_that_is_a_parameter_give_minus_infinity_not_nan(backend):
    # log(y) of a negative y is NaN; outside the support the formula must be selected away, not added to
    ld = pa.logdensity(pareto_minimum(np.array([-1.0, 0.5])), backend=backend)
    assert ld.logdensity(np.log([0.3])) == -np.inf
    assert ld.non_finite_sites(np.log([0.3])) == ["y"]
    inside = pa.logdensity(pareto_minimum(np.array([1.0, 0.5])), backend=backend)
    want = np.sum(st.pareto(2.0, scale=0.3).logpdf([1.0, 0.5])) + st.halfnorm.logpdf(0.3) + np.log(0.3)
    assert inside.logdensity(np.log([0.3])) == pytest.approx(want, rel=1e-12)


def test_a_posterior_bounded_by_its_data_is_sampled_above_the_data():
    y = np.array([0.8, 0.5, 0.3, 0.9])
    with pytest.warns(pa.SamplingWarning, match="divergent"):  # the wall at max(y) rejects trajectories
        idata = pa.sample(german_tank(y), chains=2, draws=500, tune=300, seed=3, progressbar=False)
    theta = idata.posterior["theta"].values
    # posterior density proportional to exp(-theta / 2) theta^-4 on theta > 0.9: mean 1.2153
    assert theta.min() > 0.9 and abs(theta.mean() - 1.2153) < 0.08


@pytest.mark.parametrize("name", ["eight_schools", "hierarchical_poisson", "garch-garch11", "diamonds-diamonds"])
def test_constrain_skips_the_log_density_but_gives_the_same_values(name):
    from ppl_ad.model.compiled import compile_model

    compiled = compile_model(get_scenario(name).model())
    theta = compiled.initial_point(np.random.default_rng(5))
    full = compiled.trace(theta)  # values and every log-density term
    fast = compiled.trace(theta, log_density=False)
    assert fast.total == 0.0 and not fast.terms and full.terms
    assert set(fast.values) == set(full.values)
    for site, value in full.values.items():
        np.testing.assert_array_equal(np.asarray(fast.values[site]), np.asarray(value), err_msg=site)
    constrained = compiled.constrain(theta, deterministics=True)
    assert set(constrained) == set(full.values)


@pa.model
def built_from_parameters(y, counts):
    b = pa.sample("b", dist.Normal(0.0, 1.0))
    s = pa.sample("s", dist.Normal(0.0, 1.0))
    r = pa.sample("r", dist.Normal(0.0, 0.3))
    pa.observe("counts", dist.Poisson(M.where(b > 5.0, 1.0, b * b)), counts)  # lam = 0 at b = 0
    v = s * s  # a covariance that is singular at s = 0
    pa.observe("y", dist.MvNormal(np.zeros(2), M.stack([M.stack([v, r * v]), M.stack([r * v, v])])), y)


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd", FD])
def test_parameters_combined_by_where_or_stack_are_not_validated_as_constants(backend):
    # compiling evaluates the model at the unconstrained origin, where these parameters are invalid;
    # the values depend on parameters, so they are not constants to refuse
    model = built_from_parameters(np.array([0.1, 0.2]), np.array([1, 2]))
    theta = np.array([1.0, 1.0, 0.3])
    cov = np.array([[1.0, 0.3], [0.3, 1.0]])
    expected = (st.norm(0, 1).logpdf(1.0) * 2 + st.norm(0, 0.3).logpdf(0.3) + st.poisson(1.0).logpmf([1, 2]).sum()
                + st.multivariate_normal(np.zeros(2), cov).logpdf([0.1, 0.2]))
    assert pa.logdensity(model, backend=backend).logdensity(theta) == pytest.approx(expected, rel=1e-12)


def test_an_invalid_constant_parameter_names_the_model_line():
    # "Normal: parameter 'sigma' must satisfy positive" did not say which of several Normal sites
    @pa.model
    def two(y):
        a = pa.sample("a", dist.Normal(0.0, 1.0))
        pa.observe("y1", dist.Normal(a, 1.0), y)
        pa.observe("y2", dist.Normal(a, -1.0), y)

    with pytest.raises(ModelDefinitionError) as info:
        pa.logdensity(two(np.zeros(2)), backend="finite-difference")
    message = str(info.value)
    assert message.startswith("model 'two', line ")
    assert 'pa.observe("y2", dist.Normal(a, -1.0), y)' in message
    assert message.endswith("Normal: parameter 'sigma' must satisfy positive, got -1.0")
