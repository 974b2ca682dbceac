"""The rewrites of the traced JAX log density (``ppl_ad.backends._jax_rewrites``)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.backends import _jax_rewrites

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)
jnp = jax.numpy
special = jax.scipy.special

X = np.array([0.0, 1.0, 3.0, 0.0, 7.0])  # counts, with zeros
B = np.array([0.0, 1.0, 1.0, 0.0, 1.0])  # 0/1 outcomes

#: name -> (density of (a, x), the primitives the rewrite removes)
CASES = {
    "log_exp": (lambda a, x: jnp.sum(x * jnp.log(jnp.exp(a))), {"log"}),
    "log_logistic": (lambda a, x: jnp.sum(x * jnp.log(jax.nn.sigmoid(a))), {"log"}),
    "log1p_neg_logistic": (lambda a, x: jnp.sum(x * jnp.log1p(-jax.nn.sigmoid(a))), {"log1p"}),
    "xlogy_exp": (lambda a, x: jnp.sum(special.xlogy(x, jnp.exp(a)) - jnp.exp(a)), {"custom_jvp_call"}),
    "xlogy_logistic": (lambda a, x: jnp.sum(special.xlogy(x, jax.nn.sigmoid(a))), {"custom_jvp_call"}),
    "xlog1py_neg_logistic": (lambda a, x: jnp.sum(special.xlog1py(1.0 - x, -jax.nn.sigmoid(a))),
                             {"custom_jvp_call"}),
}


def _as_fn(f):
    return lambda theta, data: f(theta, data["x"])


def _primitives(fn, theta, data) -> set:
    return {eqn.primitive.name for eqn in jax.make_jaxpr(fn)(theta, data).jaxpr.eqns}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_rewrite_removes_the_logarithm(case):
    f, removed = CASES[case]
    data = {"x": B if "logistic" in case else X}
    theta = jnp.linspace(-1.0, 2.0, 5)
    fn = _as_fn(f)
    assert removed <= _primitives(fn, theta, data)
    assert not removed & _primitives(_jax_rewrites.simplify(fn), theta, data)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(CASES)), st.lists(st.floats(-8.0, 8.0), min_size=5, max_size=5))
def test_value_and_gradient_unchanged(case, values):
    f, _ = CASES[case]
    data = {"x": B if "logistic" in case else X}
    theta = jnp.asarray(values)
    fn = _as_fn(f)
    expected = jax.value_and_grad(fn)(theta, data)
    got = jax.jit(jax.value_and_grad(_jax_rewrites.simplify(fn)))(theta, data)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-10, atol=1e-12)


def test_extreme_values_stay_finite():
    """Where exp overflows or the logistic rounds to 0 or 1, the rewritten density is finite."""
    theta = jnp.array([-800.0, 800.0, 800.0, -800.0, 800.0])  # logistic rounds to 0 and 1
    for case in ("log1p_neg_logistic", "xlog1py_neg_logistic", "xlogy_logistic"):
        f, _ = CASES[case]
        fn = _as_fn(f)
        data = {"x": B if case == "log1p_neg_logistic" else 1.0 - B}
        value, gradient = jax.value_and_grad(_jax_rewrites.simplify(fn))(theta, data)
        assert np.isfinite(value) and np.all(np.isfinite(gradient)), case
        assert not np.isfinite(fn(theta, data)), case  # as traced: log(0)
    big = jnp.full(5, 720.0)  # exp overflows: inf - inf as traced
    fn = _as_fn(CASES["xlogy_exp"][0])
    assert np.isnan(fn(big, {"x": X}))
    assert _jax_rewrites.simplify(fn)(big, {"x": X}) == -np.inf


def test_xlogy_keeps_its_zero_convention_and_nan():
    fn = _as_fn(lambda a, x: special.xlogy(x, jnp.exp(a)))
    out = np.asarray(_jax_rewrites.simplify(fn)(jnp.array([-np.inf, 0.5, np.nan, np.nan, 1.0]),
                                                {"x": np.array([0.0, 0.0, 0.0, 2.0, 2.0])}))
    np.testing.assert_array_equal(np.isnan(out), [False, False, True, True, False])
    np.testing.assert_allclose(out[[0, 1, 4]], [0.0, 0.0, 2.0])


def test_broadcasting_of_a_scalar_rate_against_vector_data():
    fn = _as_fn(lambda a, x: special.xlogy(x, jnp.exp(a[0])) - jnp.exp(a[0]))
    theta = jnp.array([0.7])
    np.testing.assert_allclose(_jax_rewrites.simplify(fn)(theta, {"x": X}), fn(theta, {"x": X}), rtol=1e-14)


def test_the_environment_variable_turns_it_off(monkeypatch):
    fn = _as_fn(CASES["log_exp"][0])
    monkeypatch.setenv(_jax_rewrites.ENV_VAR, "0")
    assert _jax_rewrites.simplify(fn) is fn
    monkeypatch.setenv(_jax_rewrites.ENV_VAR, "1")
    assert _jax_rewrites.simplify(fn) is not fn


@pa.model
def poisson_glm(x, y):
    a = pa.sample("a", dist.Normal(0.0, 1.0))
    b = pa.sample("b", dist.Normal(0.0, 1.0))
    sigma = pa.sample("sigma", dist.HalfNormal(1.0))
    pa.observe("y", dist.Poisson(M.exp(a + b * x)), y)
    pa.observe("z", dist.Bernoulli(M.sigmoid(a - b * x)), (y > 1).astype(float))
    pa.observe("w", dist.Normal(a, M.exp(sigma)), x)


@pytest.mark.parametrize("backend", ["jax", "jax-forward"])
def test_models_agree_with_the_tape_backend(backend):
    x = np.linspace(-1.0, 1.0, 7)
    y = np.array([0.0, 1.0, 0.0, 2.0, 3.0, 1.0, 5.0])
    theta = np.array([0.2, 0.4, -0.3])
    ld = pa.logdensity(poisson_glm(x, y), backend=backend)
    fn, data = ld.traceable()
    assert "log" not in _primitives(fn, jnp.asarray(theta), data)  # every log was rewritten away
    value, gradient = ld.logdensity_and_gradient(theta)
    ref_value, ref_gradient = pa.logdensity(poisson_glm(x, y), backend="autograd").logdensity_and_gradient(theta)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(gradient, ref_gradient, rtol=1e-10, atol=1e-12)


@jax.custom_vjp
def _sine(x):
    return jnp.sin(x)


_sine.defvjp(lambda x: (jnp.sin(x), jnp.cos(x)), lambda cos, g: (g * cos,))

#: densities with control flow and custom rules: the equations around the rewritten ones are
#: bound as traced (loops, conditionals, nested jit, remat, custom derivatives, linear algebra)
CONTROL_FLOW = {
    "scan": lambda t: jax.lax.scan(lambda c, v: (c + jnp.log(jnp.exp(v * c)), None), 0.1, t)[0],
    "fori_loop": lambda t: jax.lax.fori_loop(0, 3, lambda i, c: c * 0.9 + jnp.sum(t), 0.0),
    "cond": lambda t: jax.lax.cond(t[0] > 0, lambda u: jnp.sum(u**2), lambda u: jnp.sum(u), t),
    "checkpoint": lambda t: jnp.sum(jax.checkpoint(lambda u: jnp.log(jax.nn.sigmoid(u)))(t)),
    "nested_jit": lambda t: jnp.sum(jax.jit(lambda u: jnp.log(jnp.exp(u)) * 2.0)(t)),
    "cholesky": lambda t: jnp.sum(jax.scipy.linalg.solve_triangular(
        jnp.linalg.cholesky(jnp.eye(3) * 2.0 + 0.1 * jnp.outer(t[:3], t[:3])), jnp.asarray(X[:3]), lower=True) ** 2),
    "custom_vjp": lambda t: jnp.sum(_sine(t)) + jnp.sum(jnp.log(jnp.exp(t))),
}


@pytest.mark.parametrize("case", sorted(CONTROL_FLOW))
def test_control_flow_and_custom_rules_pass_through(case):
    def fn(theta, data):
        return CONTROL_FLOW[case](theta) + jnp.sum(special.xlogy(data["x"], jnp.exp(theta)))

    theta, data = jnp.array([0.3, -0.2, 0.5, 0.1, 0.7]), {"x": X}
    expected = jax.value_and_grad(fn)(theta, data)
    got = jax.jit(jax.value_and_grad(_jax_rewrites.simplify(fn)))(theta, data)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-14)
    if case != "custom_vjp":  # JAX refuses forward mode through a custom_vjp, rewritten or not
        np.testing.assert_allclose(jax.hessian(_jax_rewrites.simplify(fn))(theta, data),
                                   jax.hessian(fn)(theta, data), rtol=1e-12, atol=1e-13)
