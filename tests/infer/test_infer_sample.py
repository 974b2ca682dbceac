"""Tests of ppl_ad.infer.sample (and its init and results modules): sample(), chains, InferenceData.

Chains in worker processes: tests/infer/test_infer_parallel.py.
"""

from __future__ import annotations

import inspect
import math
import pickle
import warnings

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import ConfigError, SamplingError, SamplingWarning
from ppl_ad.infer import init as init_module
from ppl_ad.infer import parallel
from ppl_ad.infer.gaussian import GaussianLogDensity, NormalNormalLogDensity
from ppl_ad.infer.sample import sample
from ppl_ad.testing.scenarios import get_scenario


def arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


def correlated_cov(scales, rho):
    d = len(scales)
    corr = rho ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    return corr * np.outer(scales, scales)


def check_gaussian_draws(idata, mean, cov, var="x"):
    az = arviz()
    draws = idata.posterior[var]
    mcse = az.mcse(idata, var_names=[var], method="mean")[var].values
    ess = az.ess(idata, var_names=[var])[var].values
    est_mean = draws.mean(("chain", "draw")).values
    est_sd = draws.std(("chain", "draw")).values
    assert np.all(ess > 200), ess
    assert np.all(np.abs(est_mean - mean) < 4 * mcse), (est_mean, mean, mcse)
    np.testing.assert_allclose(est_sd, np.sqrt(np.diag(cov)), rtol=0.10)


# --------------------------------------------------------------------------- #
# Correctness on Gaussians
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("metric", ["diag", "dense"])
def test_nuts_samples_a_correlated_5d_gaussian(metric):
    mean = np.array([1.0, -2.0, 0.0, 3.0, 0.5])
    cov = correlated_cov(np.array([0.5, 1.0, 2.0, 1.0, 3.0]), 0.8)
    ld = GaussianLogDensity(mean, cov)
    idata = sample(ld, draws=800, tune=500, chains=2, cores=1, seed=11, metric=metric, progressbar=False)
    check_gaussian_draws(idata, mean, cov)
    assert not idata.sample_stats.diverging.values.any()


def test_nuts_samples_a_strongly_correlated_2d_gaussian():
    mean = np.array([0.0, 10.0])
    cov = correlated_cov(np.array([1.0, 5.0]), 0.95)
    idata = sample(GaussianLogDensity(mean, cov), draws=800, tune=500, chains=2, cores=1, seed=5,
                   metric="dense", progressbar=False)
    check_gaussian_draws(idata, mean, cov)


@pytest.mark.parametrize("metric", ["diag", "dense"])
def test_hmc_samples_a_correlated_5d_gaussian(metric):
    mean = np.array([1.0, -2.0, 0.0, 3.0, 0.5])
    cov = correlated_cov(np.array([0.5, 1.0, 2.0, 1.0, 3.0]), 0.5)
    idata = sample(GaussianLogDensity(mean, cov), draws=1000, tune=500, chains=2, cores=1, seed=3,
                   sampler="hmc", metric=metric, progressbar=False)
    check_gaussian_draws(idata, mean, cov)
    assert "tree_depth" not in idata.sample_stats
    assert idata.attrs["sampler"] == "hmc"


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["nuts", "hmc"])
def test_long_run_on_a_100d_gaussian(sampler):
    rng = np.random.default_rng(0)
    scales = np.exp(rng.uniform(-1, 1, 100))
    ld = GaussianLogDensity(np.zeros(100), scales**2)
    idata = sample(ld, draws=1000, tune=1000, chains=4, cores=1, seed=1, sampler=sampler, progressbar=False)
    check_gaussian_draws(idata, np.zeros(100), np.diag(scales**2))


# --------------------------------------------------------------------------- #
# Seeds, processes
# --------------------------------------------------------------------------- #


def test_same_seed_gives_identical_draws():
    ld = GaussianLogDensity(np.zeros(3), [1.0, 2.0, 3.0])
    kwargs = dict(draws=50, tune=60, chains=2, cores=1, progressbar=False)
    a = sample(ld, seed=42, **kwargs)
    b = sample(ld, seed=42, **kwargs)
    c = sample(ld, seed=43, **kwargs)
    np.testing.assert_array_equal(a.posterior.x.values, b.posterior.x.values)
    np.testing.assert_array_equal(a.sample_stats.step_size.values, b.sample_stats.step_size.values)
    assert not np.array_equal(a.posterior.x.values, c.posterior.x.values)
    # Chains get different streams.
    assert not np.array_equal(a.posterior.x.values[0], a.posterior.x.values[1])
    assert a.attrs["seed"] == "42"


class CountingGaussian(GaussianLogDensity):
    """A Gaussian log density that counts its value-and-gradient calls."""

    calls = 0

    def logdensity_and_gradient(self, theta):
        type(self).calls += 1
        return super().logdensity_and_gradient(theta)


def test_gradient_evaluations_and_time_are_recorded():
    ld = CountingGaussian(np.zeros(4), [1.0, 2.0, 3.0, 4.0])
    CountingGaussian.calls = 0
    idata = sample(ld, draws=80, tune=120, chains=2, cores=1, seed=3, progressbar=False)
    attrs = idata.attrs
    # every call inside the chains, i.e. all but the finiteness check of each chain's initial point
    assert attrs["gradient_evaluations"] == CountingGaussian.calls - 2
    # one call per leapfrog step of the kept draws, plus warmup and the step-size heuristics
    assert attrs["gradient_evaluations"] > int(idata.sample_stats.n_steps.sum())
    assert 0 < attrs["gradient_time"] < attrs["tuning_time"] + attrs["sampling_time"]


def test_seed_none_is_recorded_and_reproducible():
    ld = GaussianLogDensity(np.zeros(2), [1.0, 1.0])
    kwargs = dict(draws=20, tune=100, chains=1, progressbar=False)
    a = sample(ld, **kwargs)
    b = sample(ld, seed=int(a.attrs["seed"]), **kwargs)
    np.testing.assert_array_equal(a.posterior.x.values, b.posterior.x.values)


# --------------------------------------------------------------------------- #
# Divergences, warnings, initialisation
# --------------------------------------------------------------------------- #


class WalledGaussian(GaussianLogDensity):
    """Standard normal with a wall at x[0] = 0.5 where the log density is NaN or raises."""

    def logdensity_and_gradient(self, theta):
        if theta[0] > 1.0:
            raise FloatingPointError("overflow beyond the wall")
        if theta[0] > 0.5:
            return math.nan, np.full_like(theta, np.nan)
        return super().logdensity_and_gradient(theta)


def test_non_finite_log_density_is_a_divergence_and_warns():
    ld = WalledGaussian(np.zeros(2), [1.0, 1.0], name="walled")
    with pytest.warns(SamplingWarning, match=r"divergent transitions after warmup \(per chain: \[") as record:
        idata = sample(ld, draws=200, tune=200, chains=2, cores=1, seed=0, init={"x": np.array([-1.0, 0.0])},
                       progressbar=False)
    divergences = [w for w in record if "divergent" in str(w.message)]  # (the R-hat check may add its own)
    assert len(divergences) == 1
    message = str(divergences[0].message)
    assert "'walled'" in message and "target_accept" in message and "reparameteri" in message
    diverging = idata.sample_stats.diverging.values
    assert diverging.sum() > 0
    per_chain = diverging.sum(axis=1).tolist()
    assert f"per chain: {per_chain}" in message
    assert np.all(idata.posterior.x.values[..., 0] <= 0.5)


def test_max_treedepth_hits_warn():
    ld = GaussianLogDensity(np.zeros(2), [1e-4, 1e4])
    with pytest.warns(SamplingWarning, match="maximum tree depth of 2"):
        idata = sample(ld, draws=30, tune=0, chains=1, seed=0, max_treedepth=2, progressbar=False)
    assert idata.sample_stats.reached_max_treedepth.values.sum() > 0
    assert idata.sample_stats.tree_depth.values.max() == 2


class NowhereFinite(GaussianLogDensity):
    def __init__(self):
        super().__init__(np.zeros(2), [1.0, 1.0], name="broken_model")
        self.calls = 0

    def logdensity_and_gradient(self, theta):
        self.calls += 1
        return -math.inf, np.zeros(2)

    def non_finite_sites(self, theta):
        return ["sigma", "y"]


def test_init_failure_names_model_and_sites():
    ld = NowhereFinite()
    with pytest.raises(SamplingError, match=r"'broken_model'.*100 attempts.*\['sigma', 'y'\]"):
        sample(ld, draws=10, tune=10, chains=1, progressbar=False)
    assert ld.calls == init_module.MAX_INIT_ATTEMPTS


def test_init_failure_in_a_worker_process_reaches_the_caller():
    ld = GaussianLogDensity(np.array([np.inf, 0.0]), [1.0, 1.0], name="infinite_mean")
    assert parallel.worker_spec(ld) is not None
    with pytest.raises(SamplingError, match=r"'infinite_mean'.*\['x'\]") as info:
        sample(ld, draws=10, tune=10, chains=2, cores=2, progressbar=False)
    assert any("in a worker process" in note for note in info.value.__notes__)  # and which chain


# the reference backend: a cheap, deterministic gradient for this test
@pytest.mark.filterwarnings("ignore:sampling with backend 'finite-difference':ppl_ad.errors.SamplingWarning")
def test_init_failure_with_a_dsl_model_names_the_site():
    @pa.model
    def impossible(y):
        # y beyond every upper bound the parameter can take: -inf wherever the sampler starts (data outside a
        # constant support would be refused when the model is built)
        upper = pa.sample("upper", dist.Beta(2.0, 2.0))
        pa.observe("y", dist.Uniform(0.0, upper), y)

    with pytest.raises(SamplingError, match=r"impossible.*'y'"):
        sample(impossible(np.array([0.5, 2.0])), backend="finite-difference", draws=10, tune=10, chains=1,
               progressbar=False)


def test_init_dict_and_per_chain_list():
    ld = GaussianLogDensity(np.zeros(2), [1.0, 1.0])
    # A start far out in the tail: with no warmup and tiny max tree depth, the
    # first draws stay near it.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)  # a divergence is possible out there
        idata = sample(ld, draws=1, tune=0, chains=1, max_treedepth=1, seed=0, progressbar=False,
                       init={"x": np.array([30.0, -30.0])})
        assert np.all(np.abs(idata.posterior.x.values) > 20)
        idata = sample(ld, draws=1, tune=0, chains=2, cores=1, max_treedepth=1, seed=0, progressbar=False,
                       init=[{"x": np.array([30.0, 30.0])}, {"x": np.array([-30.0, -30.0])}])
    x = idata.posterior.x.values
    assert np.all(x[0] > 20) and np.all(x[1] < -20)
    with pytest.raises(SamplingError, match="initial values given in init"):
        sample(WalledGaussian(np.zeros(2), [1.0, 1.0]), draws=1, tune=0, chains=1, progressbar=False,
               init={"x": np.array([0.7, 0.0])})


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(draws=0), dict(tune=-1), dict(chains=0), dict(cores=0), dict(sampler="mh"),
        dict(target_accept=1.0), dict(max_treedepth=0), dict(metric="full"), dict(init="zeros"),
        dict(init=[{"x": np.zeros(2)}]), dict(path_length=-1.0), dict(draws=1.5),
    ],
)
def test_invalid_arguments(kwargs):
    ld = GaussianLogDensity(np.zeros(2), [1.0, 1.0])
    base = dict(draws=10, tune=10, chains=2, progressbar=False)
    base.update(kwargs)
    with pytest.raises(ConfigError):
        sample(ld, **base)


def test_backend_with_a_logdensity_is_rejected():
    with pytest.raises(ConfigError, match="LogDensity"):
        sample(GaussianLogDensity(np.zeros(1), [1.0]), backend="jax", progressbar=False)


# --------------------------------------------------------------------------- #
# InferenceData
# --------------------------------------------------------------------------- #


@pa.model
def schools(y, sigma):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    tau = pa.sample("tau", dist.HalfCauchy(5.0))
    theta_tilde = pa.sample("theta_tilde", dist.Normal(0.0, 1.0), shape=(len(y),))
    pa.deterministic("theta", mu + tau * theta_tilde)
    pa.observe("y", dist.Normal(mu + tau * theta_tilde, sigma), y)


def test_inference_data_layout_and_arviz_functions():
    az = arviz()
    y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
    sigma = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        idata = sample(schools(y, sigma), draws=60, tune=60, chains=2, cores=1, seed=0, progressbar=False)
    post = idata.posterior
    assert set(post.data_vars) == {"mu", "tau", "theta_tilde", "theta"}
    assert post.mu.shape == (2, 60)
    assert post.theta.dims == ("chain", "draw", "theta_dim_0") and post.theta.shape == (2, 60, 8)
    assert post.theta_tilde.dims[-1] == "theta_tilde_dim_0"
    assert np.all(post.tau.values > 0)
    np.testing.assert_allclose(post.theta.values, post.mu.values[..., None] + post.tau.values[..., None]
                               * post.theta_tilde.values)
    stats = idata.sample_stats
    expected = {"lp", "acceptance_rate", "step_size", "tree_depth", "n_steps", "diverging", "energy",
                "energy_error", "reached_max_treedepth"}
    assert set(stats.data_vars) == expected
    assert stats.diverging.dtype == bool and stats.reached_max_treedepth.dtype == bool
    assert stats.tree_depth.dtype.kind == "i" and stats.n_steps.dtype.kind == "i"
    assert np.all((stats.acceptance_rate.values >= 0) & (stats.acceptance_rate.values <= 1))
    assert np.all(stats.n_steps.values <= 2 ** (stats.tree_depth.values + 1) - 1)
    np.testing.assert_array_equal(idata.observed_data.y.values, y)
    for key in ("backend", "backend_source", "ppl_ad_version", "tuning_time", "sampling_time", "sampler",
                "target_accept", "max_treedepth", "metric", "metric_adaptation", "draws", "tune", "chains", "seed"):
        assert key in idata.attrs, key
    ld = pa.logdensity(schools(y, sigma))
    assert idata.attrs["backend"] == ld.backend.name
    assert idata.attrs["backend_source"] == ld.backend_source
    assert idata.attrs["ppl_ad_version"] == pa.__version__
    assert idata.attrs["tuning_time"] > 0 and idata.attrs["sampling_time"] > 0

    summary = az.summary(idata)
    assert "theta[7]" in summary.index and "mu" in summary.index
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib import MatplotlibDeprecationWarning

    with warnings.catch_warnings():
        # arviz 0.23's own plotting code triggers a matplotlib 3.11 deprecation
        # (normalize_kwargs with a dict); that is not ours to fix.
        warnings.filterwarnings("ignore", category=MatplotlibDeprecationWarning, module="arviz")
        warnings.filterwarnings("ignore", category=MatplotlibDeprecationWarning, message=".*normalize_kwargs")
        axes = az.plot_trace(idata, var_names=["mu", "tau", "theta"])
        assert axes.shape == (3, 2)
        plt.close("all")
        az.plot_energy(idata)
        plt.close("all")


def test_scalar_logdensity_sites_and_deterministics():
    ld = NormalNormalLogDensity(np.array([1.0, 2.0, 3.0]))
    idata = sample(ld, draws=200, tune=200, chains=2, cores=1, seed=1, progressbar=False)
    assert idata.posterior.mu.dims == ("chain", "draw")
    np.testing.assert_allclose(idata.posterior.mu_shifted.values, idata.posterior.mu.values + 1.0)
    assert abs(float(idata.posterior.mu.mean()) - ld.posterior_mean()) < 0.15


def test_pickled_settings_round_trip():
    from ppl_ad.infer.chain import ChainSettings

    s = ChainSettings(draws=3, metric="dense")
    assert pickle.loads(pickle.dumps(s)) == s


def test_beta_bernoulli_matches_its_closed_form_posterior():
    """A bounded scalar parameter against vector data, on a tape backend (autograd)."""
    az = arviz()
    scenario = get_scenario("beta_bernoulli")
    idata = sample(scenario.model(), backend="autograd", draws=1000, tune=500, chains=2, cores=1, seed=11,
                   progressbar=False)
    draws = idata.posterior.p.values
    mcse = float(az.mcse(idata, var_names=["p"], method="mean")["p"])
    assert abs(draws.mean() - scenario.reference["p_mean"]) < 4 * mcse
    np.testing.assert_allclose(draws.std(), scenario.reference["p_sd"], rtol=0.1)
    assert np.all((draws > 0) & (draws < 1))


class RaisesInItsGradient(GaussianLogDensity):
    """Finite values everywhere, but the gradient computation fails (as a backend bug would)."""

    def logdensity_and_gradient(self, theta):
        raise ValueError("array is not broadcastable to correct shape")


def test_init_failure_reports_what_the_backend_raised():
    ld = RaisesInItsGradient(np.zeros(2), [1.0, 1.0], name="grad_bug")
    with pytest.raises(SamplingError, match=r"'grad_bug'.*raised ValueError: array is not broadcastable"):
        sample(ld, draws=5, tune=5, chains=1, progressbar=False)


def test_pa_sample_signature_mirrors_the_sampler():
    import inspect

    mirror = inspect.signature(pa.sample).parameters
    real = inspect.signature(sample).parameters
    assert list(mirror)[1:] == list(real)[1:]
    for name in list(real)[1:]:
        assert (mirror[name].kind, mirror[name].default) == (real[name].kind, real[name].default), name


@pytest.mark.parametrize("wrong, right", [("num_warmup", "tune"), ("num_samples", "draws"), ("chians", "chains")])
def test_misspelled_keywords_get_a_did_you_mean(wrong, right):
    model = GaussianLogDensity(np.zeros(2), [1.0, 1.0])
    with pytest.raises(TypeError, match=f"'{wrong}' \\(did you mean '{right}'\\?\\)") as info:
        pa.sample(model, **{wrong: 10})
    assert isinstance(info.value, pa.ConfigError)


def test_the_model_may_be_passed_by_keyword_and_is_named_in_the_signature():
    model = GaussianLogDensity(np.zeros(2), [1.0, 1.0])
    idata = pa.sample(model=model, draws=5, tune=5, chains=1, progressbar=False, seed=1)
    assert idata.posterior.sizes["draw"] == 5
    assert list(inspect.signature(pa.sample).parameters)[0] == "model"
    with pytest.raises(TypeError, match="needs a model"):
        pa.sample()


def test_sampling_with_the_reference_backend_warns():
    @pa.model
    def tiny(y):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0))
        pa.observe("y", dist.Normal(mu, 1.0), y)

    with pytest.warns(pa.SamplingWarning, match="finite-difference"):
        sample(tiny(np.array([0.5])), backend="finite-difference", draws=10, tune=10, chains=1, progressbar=False)


@pytest.mark.parametrize("estimator", ["nutpie", "fisher", "stan"])
def test_metric_adaptation_estimators_give_the_right_scales(estimator):
    scales = np.array([0.1, 10.0])
    idata = sample(GaussianLogDensity(np.zeros(2), scales**2), draws=400, tune=600, chains=1, seed=3,
                   progressbar=False, metric_adaptation=estimator)
    assert idata.attrs["engine"] == "python"
    # a unit metric would need a step size near the smallest scale (0.1); the adapted one does not
    assert 0.3 < float(idata.sample_stats["step_size"].to_numpy().flat[0]) < 3.0


def test_an_unknown_metric_adaptation_is_refused():
    with pytest.raises(pa.ConfigError, match="metric_adaptation"):
        sample(GaussianLogDensity(np.zeros(2), [1.0, 1.0]), metric_adaptation="numpyro", progressbar=False)


@pytest.mark.parametrize("backend", ["jax", "autograd"])
def test_a_model_without_parameters_is_refused_before_sampling(backend):
    @pa.model
    def only_data(y):
        pa.observe("y", dist.Normal(0.0, 1.0), y)

    with pytest.raises(SamplingError, match="'only_data' has no parameters to sample"):
        pa.sample(only_data(np.array([1.0, 2.0])), backend=backend, draws=10, tune=10, chains=1, progressbar=False)


@pytest.mark.parametrize("value, ok", [(np.float32(1.5), True), (np.int64(2), True), (True, False), (0.0, False)])
def test_path_length_takes_numpy_numbers_and_refuses_bools(value, ok):
    from ppl_ad.errors import ConfigError

    @pa.model
    def one():
        pa.sample("x", dist.Normal(0.0, 1.0))

    kw = dict(sampler="hmc", path_length=value, draws=5, tune=5, chains=1, seed=1, progressbar=False, backend="autograd")
    if ok:
        assert pa.sample(one(), **kw).posterior["x"].shape == (1, 5)
    else:
        with pytest.raises(ConfigError, match="path_length"):
            pa.sample(one(), **kw)


@pa.model
def _normal_scale(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0))
    s = pa.sample("s", dist.HalfNormal(1.0))
    pa.deterministic("twice", 2.0 * mu)
    pa.observe("y", dist.Normal(mu, s), y)


@pytest.mark.parametrize("engine, chain_method", [("jax", "sequential"), ("jax", "vectorized"), ("python", "sequential")])
def test_discard_tuned_samples_false_keeps_the_warmup_as_pymc_does(engine, chain_method):
    y = np.array([0.1, 0.5, -0.3])
    kwargs = dict(draws=30, tune=40, chains=2, seed=3, progressbar=False, engine=engine, chain_method=chain_method)
    kept = pa.sample(_normal_scale(y), discard_tuned_samples=False, **kwargs)
    plain = pa.sample(_normal_scale(y), **kwargs)
    assert "warmup_posterior" in kept.groups() and "warmup_posterior" not in plain.groups()
    for name in ("mu", "s", "twice"):
        assert kept.warmup_posterior[name].shape == (2, 40)
        np.testing.assert_array_equal(kept.posterior[name].values, plain.posterior[name].values)
    np.testing.assert_allclose(kept.warmup_posterior["twice"].values, 2.0 * kept.warmup_posterior["mu"].values)
    assert np.all(kept.warmup_posterior["s"].values > 0)
    stats = kept.warmup_sample_stats
    assert set(stats.data_vars) == set(kept.sample_stats.data_vars)
    # warmup adapts the step size: it changes between iterations, and each transition cost gradients
    assert np.unique(stats["step_size"].values[0]).size > 5 and np.all(stats["n_steps"].values >= 1)
    # every leapfrog step is in one of the two groups (the rest: initial point and step-size heuristics)
    steps = int(stats["n_steps"].sum() + kept.sample_stats["n_steps"].sum())
    assert steps <= kept.attrs["gradient_evaluations"] < steps + 200
    assert kept.attrs["warmup_divergences"] == int(stats["diverging"].sum())


def test_discard_tuned_samples_is_checked(tmp_path):
    y = np.array([0.1, 0.5])
    with pytest.raises(ConfigError, match="discard_tuned_samples"):
        pa.sample(_normal_scale(y), discard_tuned_samples="no", draws=5, tune=5, progressbar=False)
    with pytest.raises(ConfigError, match="checkpoint=... cannot be combined with discard_tuned_samples=False"):
        pa.sample(_normal_scale(y), discard_tuned_samples=False, checkpoint=tmp_path / "run.zarr", draws=5, tune=5,
                  chains=1, progressbar=False)
