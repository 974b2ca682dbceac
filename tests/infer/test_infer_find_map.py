"""Tests of ppl_ad.infer.find_map."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import SamplingError
from ppl_ad.infer.find_map import find_MAP
from ppl_ad.infer.gaussian import GaussianLogDensity, NormalNormalLogDensity

Y = np.array([0.3, 1.7, 2.2, -0.4, 1.1])


def closed_form_mean(y, prior_sd=10.0, noise_sd=1.0):
    precision = len(y) / noise_sd**2 + 1.0 / prior_sd**2
    return float(np.sum(y) / noise_sd**2 / precision)


@pytest.mark.parametrize("method", ["L-BFGS-B", "BFGS", "Newton-CG", "Nelder-Mead"])
def test_find_map_on_a_conjugate_fake(method):
    ld = NormalNormalLogDensity(Y)
    result = find_MAP(ld, method=method, seed=0)
    assert set(result) == {"mu", "mu_shifted"}
    rtol = 1e-4 if method == "Nelder-Mead" else 1e-7
    assert float(result["mu"]) == pytest.approx(ld.posterior_mean(), rel=rtol)
    assert float(result["mu_shifted"]) == pytest.approx(ld.posterior_mean() + 1.0, rel=rtol)


def test_find_map_with_start():
    ld = GaussianLogDensity(np.array([1.0, -2.0, 3.0]), np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]]))
    result = find_MAP(ld, start={"x": np.array([10.0, 10.0, 10.0])})
    np.testing.assert_allclose(result["x"], ld.mean, atol=1e-4)  # scipy's default tolerances
    assert float(result["x_norm"]) == pytest.approx(np.linalg.norm(result["x"]), rel=1e-12)


@pa.model
def normal_normal_dsl(y):
    mu = pa.sample("mu", dist.Normal(0.0, 10.0))
    pa.observe("y", dist.Normal(mu, 1.0), y)


def test_find_map_with_the_dsl_equals_closed_form():
    result = find_MAP(normal_normal_dsl(Y), backend="finite-difference", seed=1)
    assert float(result["mu"]) == pytest.approx(closed_form_mean(Y), rel=1e-6)


def test_find_map_default_backend():
    ld = pa.logdensity(normal_normal_dsl(Y))
    result = find_MAP(ld)
    assert float(result["mu"]) == pytest.approx(closed_form_mean(Y), rel=1e-7)


class Unbounded(NormalNormalLogDensity):
    def logdensity_and_gradient(self, theta):
        return float(theta[0]), np.array([1.0])


def test_find_map_raises_on_unbounded_density():
    with pytest.raises(SamplingError, match=r"find_MAP: optimising the log density of model 'normal_normal'.*unbounded"):
        find_MAP(Unbounded(Y), seed=0)


def test_find_map_rejects_bad_start():
    with pytest.raises(TypeError, match="start"):
        find_MAP(NormalNormalLogDensity(Y), start=[1.0])


# --------------------------------------------------------------------------- #
# MAP in model space (jacobian=False, the default) or of the unconstrained density
# --------------------------------------------------------------------------- #

@pa.model
def half_normal_scale(y):
    s = pa.sample("s", dist.HalfNormal(1.0))
    pa.observe("y", dist.Normal(0.0, s), y)


SCALE_Y = np.array([2.0, 0.0, 0.0])  # n = 3, sum of squares 4


def test_find_map_default_is_the_model_space_mode_of_a_scale():
    # log p(s | y) = -s**2/2 - 3 log s - 4/(2 s**2): the mode solves s**4 + 3 s**2 - 4 = 0, s = 1.
    # With the log transform's Jacobian (+ log s) it solves s**4 + 2 s**2 - 4 = 0 instead.
    model = half_normal_scale(SCALE_Y)
    assert float(find_MAP(model, backend="autograd", seed=0)["s"]) == pytest.approx(1.0, rel=1e-6)
    with_jacobian = find_MAP(model, backend="autograd", seed=0, jacobian=True)
    assert float(with_jacobian["s"]) == pytest.approx(np.sqrt(np.sqrt(5.0) - 1.0), rel=1e-6)


def test_find_map_rebuilds_a_logdensity_for_the_jacobian_asked():
    ld = pa.logdensity(half_normal_scale(SCALE_Y), "autograd")
    assert ld.jacobian
    assert float(find_MAP(ld, seed=0)["s"]) == pytest.approx(1.0, rel=1e-6)
    assert float(find_MAP(ld, seed=0, jacobian=True)["s"]) == pytest.approx(np.sqrt(np.sqrt(5.0) - 1.0), rel=1e-6)


@pa.model
def location_and_scale(y):
    mu = pa.sample("mu", dist.Normal(0.0, 10.0))
    sigma = pa.sample("sigma", dist.InverseGamma(3.0, 2.0))
    w = pa.sample("w", dist.Beta(2.0, 3.0))
    pa.observe("y", dist.Normal(mu, sigma), y)
    pa.deterministic("w_sigma", w * sigma)


def _model_space_logp(values, y=Y):
    from scipy import stats

    mu, sigma, w = values
    if sigma <= 0 or not 0 < w < 1:
        return -np.inf
    return (stats.norm.logpdf(mu, 0, 10) + stats.invgamma.logpdf(sigma, 3.0, scale=2.0)
            + stats.beta.logpdf(w, 2.0, 3.0) + stats.norm.logpdf(y, mu, sigma).sum())


def test_find_map_matches_scipy_on_the_model_space_density():
    from scipy.optimize import minimize

    reference = minimize(lambda v: -_model_space_logp(v), [1.0, 1.0, 0.5], method="Nelder-Mead",
                         options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000}).x
    result = find_MAP(location_and_scale(Y), backend="autograd", seed=2)
    np.testing.assert_allclose([result["mu"], result["sigma"], result["w"]], reference, rtol=1e-5)
    assert float(result["w"]) == pytest.approx(1.0 / 3.0, rel=1e-6)  # Beta(2, 3)'s mode: no data on w
    assert float(result["w_sigma"]) == pytest.approx(float(result["w"] * result["sigma"]))


@pytest.mark.parametrize("backend", ["autograd", "torch", "jax", "finite-difference"])
def test_logdensity_without_jacobian_on_every_backend(backend):
    pytest.importorskip({"autograd": "autograd", "torch": "torch", "jax": "jax"}.get(backend, "numpy"))
    model = location_and_scale(Y)
    plain = pa.logdensity(model, backend, jacobian=False)
    full = pa.logdensity(model, backend)
    assert not plain.jacobian and full.jacobian
    theta = np.array([0.4, -0.3, 0.8])
    mu, sigma, w = plain.constrain(theta).values()
    assert plain.logdensity(theta) == pytest.approx(_model_space_logp([mu, sigma, w]), rel=1e-10)
    # the log-Jacobians: log sigma for the log transform, log w(1-w) for the logit
    assert full.logdensity(theta) - plain.logdensity(theta) == pytest.approx(np.log(sigma) + np.log(w * (1 - w)))
    value, gradient = plain.logdensity_and_gradient(theta)
    assert value == pytest.approx(plain.logdensity(theta), rel=1e-12)
    step = 1e-6
    numerical = [(plain.logdensity(theta + step * e) - plain.logdensity(theta - step * e)) / (2 * step)
                 for e in np.eye(3)]
    np.testing.assert_allclose(gradient, numerical, rtol=1e-5)


def test_find_map_start_may_fix_some_sites_only():
    result = find_MAP(location_and_scale(Y), backend="autograd", start={"sigma": 3.0}, seed=0)
    reference = find_MAP(location_and_scale(Y), backend="autograd", seed=0)
    np.testing.assert_allclose([result[k] for k in ("mu", "sigma", "w")],
                               [reference[k] for k in ("mu", "sigma", "w")], rtol=1e-5)


def test_the_find_map_example_in_the_docs():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "sampling.md").read_text()
    start = text.index("<!-- example: find-map -->")
    block = text[text.index("```python", start) + len("```python"):]
    block = block[: block.index("```")]
    namespace: dict = {}
    exec(compile(block, "docs/sampling.md", "exec"), namespace)  # noqa: S102 - our own docs
    # L-BFGS-B's default tolerances: over 30 starting points the error reached 1.4e-6
    assert float(namespace["mode"]) == pytest.approx(1.0, rel=1e-5)
    assert float(namespace["unconstrained"]) == pytest.approx(np.sqrt(np.sqrt(5.0) - 1.0), rel=1e-5)


@pa.model
def german_tank(y):
    th = pa.sample("th", dist.Exponential(0.1))
    pa.observe("y", dist.Uniform(0.0, th), y)


@pytest.mark.parametrize("start", [{"th": 10.0}, {"th": 50.0}, None])
def test_a_mode_on_a_wall_of_the_support_is_found_and_said(start):
    # L-BFGS-B's line search ran into -inf and reported success at the start (th = 10, slope -4)
    with pytest.warns(pa.SamplingWarning, match="lies on a wall of its support"):
        mode = find_MAP(german_tank(np.array([3.0, 7.0, 1.0])), backend="jax", start=start, seed=0)
    np.testing.assert_allclose(mode["th"], 7.0, rtol=1e-6)


def test_a_density_unbounded_towards_a_boundary_is_refused():
    # it returned s = 1e-154 (a HalfFlat scale with y = 0) and a degenerate LKJ factor
    @pa.model
    def spike(y):
        s = pa.sample("s", dist.HalfFlat())
        pa.observe("y", dist.Normal(0.0, s), y)

    @pa.model
    def lkj():
        pa.sample("L", dist.LKJCholesky(2, 0.5))

    for model in (spike(np.array([0.0])), lkj()):
        with pytest.raises(SamplingError, match="unbounded"):
            find_MAP(model, backend="jax", seed=0)


def test_no_finite_start_is_said_in_find_maps_words():
    @pa.model
    def never(y):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0))
        pa.observe("y", dist.Uniform(mu + 100.0, mu + 101.0), y)

    with pytest.raises(SamplingError, match="find_MAP: could not find an initial point") as info:
        find_MAP(never(np.array([0.5])), backend="jax", seed=0)
    assert "chain 0" not in str(info.value) and "init=" not in str(info.value)


def test_a_flat_direction_is_refused_naming_the_coordinates():
    # find_MAP returned the random start as "the mode" of an improper posterior
    @pa.model
    def nuisance(y):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0))
        pa.sample("z", dist.Flat(), shape=(2,))
        pa.observe("y", dist.Normal(mu, 1.0), y)

    with pytest.raises(SamplingError, match=r"does not change with z\[0\], z\[1\].*improper"):
        find_MAP(nuisance(np.array([0.5, 1.0])), backend="jax", seed=0)

    @pa.model
    def informed(y):
        mu = pa.sample("mu", dist.Flat())
        pa.observe("y", dist.Normal(mu, 1.0), y)

    np.testing.assert_allclose(find_MAP(informed(np.array([0.5, 1.0])), backend="jax", seed=0)["mu"], 0.75, atol=1e-6)


def test_an_unbounded_density_names_the_parameter_that_runs_away():
    # it said "probably unbounded there" without naming s, and gave the gradient twice
    @pa.model
    def degenerate(y):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0))
        s = pa.sample("s", dist.HalfFlat())
        pa.observe("y", dist.Normal(mu, s), y)

    with pytest.raises(SamplingError, match="unbounded") as info:
        find_MAP(degenerate(np.zeros(3)), backend="jax", seed=0)
    message = str(info.value)
    assert "far out on the unconstrained scale: s (" in message
    assert message.count("max |gradient|") == 1


@pytest.mark.parametrize("method, hint", [("lbfgs", "L-BFGS-B"), ("nelder_mead", "Nelder-Mead"), ("newton", "Newton-CG"),
                                          ("simplex-annealing", None), (42, None)])
def test_an_unknown_method_is_a_config_error_naming_find_map(method, hint):
    with pytest.raises(pa.ConfigError, match="find_MAP: unknown method=") as info:
        find_MAP(NormalNormalLogDensity(Y), method=method)
    assert (f"did you mean {hint!r}" in str(info.value)) if hint else ("did you mean" not in str(info.value))


def test_a_callable_method_is_passed_to_scipy():
    from scipy.optimize import minimize

    calls = []

    def custom(fun, x0, args=(), jac=None, **options):
        calls.append(1)
        return minimize(fun, x0, args=args, jac=jac, method="BFGS")

    ld = NormalNormalLogDensity(Y)
    mode = find_MAP(ld, method=custom, seed=0)
    assert calls and float(mode["mu"]) == pytest.approx(ld.posterior_mean(), rel=1e-6)


@pa.model
def skew_hierarchy(g, y):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    tau = pa.sample("tau", dist.HalfNormal(2.0))
    z = pa.sample("z", dist.Normal(0.0, 1.0), shape=(6,))
    sigma = pa.sample("sigma", dist.Gamma(2.0, 2.0))
    alpha = pa.sample("alpha", dist.Normal(0.0, 3.0))
    pa.observe("y", dist.SkewNormal((mu + tau * z)[g], sigma, alpha), y)


def test_an_early_stop_of_lbfgsb_is_restarted_not_called_unbounded():
    """From seed 0's start, L-BFGS-B stopped after 13 iterations with a gradient of 1.2 (its relative
    ftol test), and find_MAP called this proper posterior "probably unbounded". Every start now reaches
    the mode (PyMC's find_MAP: mu 1.9964, alpha 4.1469)."""
    import scipy.stats as st

    rng = np.random.default_rng(110)
    g = np.repeat(np.arange(6), 15)
    theta = 2.0 + rng.normal(size=6)
    y = st.skewnorm.rvs(3.0, loc=theta[g], scale=1.0, random_state=rng)
    model = skew_hierarchy(g, y)
    for seed in (0, 1, 2):
        mode = find_MAP(model, seed=seed)
        assert float(mode["mu"]) == pytest.approx(1.9964, abs=2e-3), seed
        assert float(mode["alpha"]) == pytest.approx(4.1469, abs=5e-3), seed


@pa.model
def non_centred_eight_schools(y, sigma):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    tau = pa.sample("tau", dist.HalfCauchy(5.0))
    theta_tilde = pa.sample("theta_tilde", dist.Normal(0.0, 1.0), shape=(8,))
    pa.observe("y", dist.Normal(mu + tau * theta_tilde, sigma), y)


def test_a_mode_on_the_edge_of_a_scale_is_said():
    """Non-centred eight schools: the model-space density rises all the way to tau = 0. find_MAP
    returned tau = 0.0019 (where the log transform's Jacobian made the gradient small) and said
    nothing; it now warns, naming tau."""
    model = non_centred_eight_schools(np.array([28.0, 8, -3, 7, -1, 1, 18, 12]),
                                      np.array([15.0, 10, 16, 11, 9, 11, 10, 18]))
    with pytest.warns(pa.SamplingWarning, match=r"keeps rising as tau \(now 0\.\d+\) moves further towards the edge"):
        mode = find_MAP(model, seed=0)
    assert float(mode["tau"]) < 0.05


def test_an_interior_mode_far_out_on_the_unconstrained_scale_is_not_flagged():
    """A scale whose mode is at 0.01 (log -4.6): moving it 5 further out lowers the density."""
    rng = np.random.default_rng(0)
    y = rng.normal(0.0, 0.01, 50)

    @pa.model(name="tiny_scale")
    def tiny_scale(y):
        s = pa.sample("s", dist.HalfNormal(1.0))
        pa.observe("y", dist.Normal(0.0, s), y)

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mode = find_MAP(tiny_scale(y))
    assert float(mode["s"]) == pytest.approx(np.sqrt(np.mean(y**2)), rel=0.05)
