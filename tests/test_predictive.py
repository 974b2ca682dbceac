"""Tests of ppl_ad.predictive: prior and posterior predictive sampling, out-of-sample prediction."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import DataError, PplAdDeprecationWarning


def arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
    return az


@pa.model
def regression(x, y):
    a = pa.sample("a", dist.Normal(0.0, 5.0))
    b = pa.sample("b", dist.Normal(0.0, 5.0))
    s = pa.sample("s", dist.HalfNormal(2.0))
    pa.deterministic("mu", a + b * x)
    pa.observe("y", dist.Normal(a + b * x, s), y)


@pytest.fixture
def fitted():
    """A regression on 200 points and a posterior near a = 1, b = 2, s = 0.01 (no sampling)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    y = 1.0 + 2.0 * x + 0.01 * rng.normal(size=200)
    chains, draws = 2, 50
    posterior = {
        "a": rng.normal(1.0, 1e-3, (chains, draws)),
        "b": rng.normal(2.0, 1e-3, (chains, draws)),
        "s": np.full((chains, draws), 0.01),
    }
    idata = arviz().from_dict(posterior=posterior, observed_data={"y": y})
    return regression(x, y), idata, x


def test_out_of_sample_prediction_after_an_in_sample_call_returns_the_new_data(fitted):
    # Issue 12 item 2: the second call returned the first call's 200-point draws.
    model, idata, _ = fitted
    idata = pa.sample_posterior_predictive(model, idata, seed=1, extend_inferencedata=True)
    assert idata.posterior_predictive["y"].shape == (2, 50, 200)
    x_new = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    for y_new in (None, np.zeros(5)):
        out = pa.sample_posterior_predictive(regression(x_new, y_new), idata, seed=2)
        draws = out.posterior_predictive["y"].values
        assert draws.shape == (2, 50, 5)
        np.testing.assert_allclose(draws.mean(axis=(0, 1)), 1.0 + 2.0 * x_new, atol=0.01)
    # extend_inferencedata=False (the default) leaves idata alone
    assert idata.posterior_predictive["y"].shape == (2, 50, 200)


def test_predictions_group_with_constant_data_and_repeated_calls_replace_it(fitted):
    model, idata, _ = fitted
    for x_new in (np.array([0.0, 1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0])):
        result = pa.sample_posterior_predictive(regression(x_new, None), idata, seed=3, predictions=True,
                                                extend_inferencedata=True)
        assert result is idata
        assert idata.predictions["y"].shape == (2, 50, len(x_new))
        np.testing.assert_allclose(idata.predictions["y"].values.mean(axis=(0, 1)), 1.0 + 2.0 * x_new, atol=0.01)
        np.testing.assert_array_equal(idata.predictions_constant_data["x"].values, x_new)
    assert "posterior_predictive" not in idata.groups()
    assert idata.observed_data["y"].shape == (200,)  # untouched


def test_extending_posterior_predictive_with_new_data_raises(fitted):
    model, idata, _ = fitted
    with pytest.raises(DataError, match=r"'y' \(bound to None\).*predictions=True"):
        pa.sample_posterior_predictive(regression(np.zeros(5), None), idata, extend_inferencedata=True)
    with pytest.raises(DataError, match=r"'y' \(shape \(5,\), observed_data has \(200,\)\)"):
        pa.sample_posterior_predictive(regression(np.zeros(5), np.zeros(5)), idata, extend_inferencedata=True)
    assert "posterior_predictive" not in idata.groups()


def test_extend_replaces_an_existing_group_and_default_returns_a_new_one(fitted):
    model, idata, _ = fitted
    first = pa.sample_posterior_predictive(model, idata, seed=1, extend_inferencedata=True).posterior_predictive
    second = pa.sample_posterior_predictive(model, idata, seed=2, extend_inferencedata=True).posterior_predictive
    assert not np.array_equal(first["y"].values, second["y"].values)
    assert idata.posterior_predictive is second
    new = pa.sample_posterior_predictive(model, idata, seed=3)
    assert new is not idata and set(new.groups()) == {"posterior_predictive", "observed_data"}
    assert idata.posterior_predictive is second


def test_extend_keyword_is_deprecated(fitted):
    model, idata, _ = fitted
    with pytest.warns(PplAdDeprecationWarning, match="extend_inferencedata"):
        out = pa.sample_posterior_predictive(model, idata, seed=1, extend=True)
    assert out is idata and "posterior_predictive" in idata.groups()


def test_unobserved_site_is_simulated_and_logdensity_refuses_it():
    model = regression(np.linspace(0.0, 1.0, 7), None)
    with pytest.raises(DataError, match=r"site 'y': the observed value is None.*prediction only"):
        pa.logdensity(model, backend="finite-difference")
    with pytest.raises(DataError, match="site 'y'"):
        pa.sample(model, backend="finite-difference", draws=5, tune=5, chains=1, progressbar=False)
    prior = pa.sample_prior_predictive(model, draws=20, seed=0)
    assert prior.prior_predictive["y"].shape == (1, 20, 7)
    assert "observed_data" not in prior.groups()


def test_posterior_missing_a_parameter_names_it(fitted):
    model, idata, _ = fitted
    del idata.posterior["b"]
    with pytest.raises(DataError, match="site 'b': no draws"):
        pa.sample_posterior_predictive(model, idata)


def test_dims_label_predictive_groups_and_coords_are_inherited_when_lengths_match():
    @pa.model
    def schools(y, sigma):
        mu = pa.sample("mu", dist.Normal(0.0, 5.0))
        theta = pa.sample("theta", dist.Normal(mu, 5.0), shape=(len(sigma),), dims="school")
        pa.observe("y", dist.Normal(theta, sigma), y, dims="school")

    names = ["a", "b", "c"]
    az = arviz()
    rng = np.random.default_rng(1)
    idata = az.from_dict(posterior={"mu": rng.normal(size=(1, 10)), "theta": rng.normal(size=(1, 10, 3))},
                         observed_data={"y": np.zeros(3)}, dims={"theta": ["school"], "y": ["school"]},
                         coords={"school": names})
    sigma = np.ones(3)
    out = pa.sample_posterior_predictive(schools(np.zeros(3), sigma), idata, seed=0)
    assert out.posterior_predictive["y"].dims == ("chain", "draw", "school")
    assert list(out.posterior_predictive["school"].values) == names
    prior = pa.sample_prior_predictive(schools(None, sigma), draws=5, seed=0, coords={"school": names})
    assert list(prior.prior["theta"]["school"].values) == names
    with pytest.raises(DataError, match=r"coords\['school'\] has 2 labels.*site 'theta' has length 3"):
        pa.sample_prior_predictive(schools(None, sigma), draws=5, coords={"school": ["a", "b"]})


def test_out_of_sample_example_in_docs_runs(monkeypatch):
    """The out-of-sample example of docs/sampling.md, run as written.

    Only ``pa.sample`` is adjusted for the test's speed: its chains run in this process with the
    Python engine (no worker processes, no compilation of the whole sampler); the same draws,
    tune, chains and seed.
    """
    from pathlib import Path

    original = pa.sample

    def fast_sample(first, *args, **kwargs):
        if isinstance(first, str):  # pa.sample("a", ...) inside the model
            return original(first, *args, **kwargs)
        return original(first, *args, backend="jax", engine="python", cores=1, progressbar=False, **kwargs)

    monkeypatch.setattr(pa, "sample", fast_sample)

    text = (Path(__file__).resolve().parents[1] / "docs" / "sampling.md").read_text()
    start = text.index("<!-- example: out-of-sample -->")
    block = text[text.index("```python", start) + len("```python"):]
    block = block[: block.index("```")]
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        exec(compile(block, "docs/sampling.md", "exec"), namespace)  # noqa: S102 - our own docs
    preds, x_new = namespace["preds"], namespace["x_new"]
    assert preds.predictions["y"].shape == (2, 300, 5)
    assert list(preds.predictions["obs"].values) == list(x_new)
    np.testing.assert_allclose(preds.predictions["y"].mean(("chain", "draw")).values, 1.0 - 2.0 * x_new, atol=0.5)
    assert namespace["idata"].posterior_predictive["y"].shape == (2, 300, 200)


def test_var_names_return_deterministics_recomputed_on_the_new_data_and_parameters(fitted):
    model, idata, _ = fitted
    x_new = np.array([-3.0, 0.0, 2.0])
    out = pa.sample_posterior_predictive(regression(x_new, None), idata, seed=3, predictions=True,
                                         var_names=["mu", "y", "a"])
    group = out.predictions
    assert set(group.data_vars) == {"mu", "y", "a"}
    a, b = idata.posterior["a"].values, idata.posterior["b"].values
    np.testing.assert_allclose(group["mu"].values, a[..., None] + b[..., None] * x_new, rtol=1e-15)
    np.testing.assert_array_equal(group["a"].values, a)
    assert group["y"].shape == (2, 50, 3)
    default = pa.sample_posterior_predictive(regression(x_new, None), idata, seed=3, predictions=True)
    assert set(default.predictions.data_vars) == {"y"}  # PyMC's default: the observed sites
    np.testing.assert_array_equal(default.predictions["y"].values, group["y"].values)  # same seed, same draws


def test_an_unknown_var_name_is_named_with_the_closest_site(fitted):
    model, idata, _ = fitted
    with pytest.raises(DataError, match=r"'muu'.*did you mean 'mu'"):
        pa.sample_posterior_predictive(model, idata, var_names=["muu"])


def test_prior_draws_widening_a_size_one_axis_are_independent():
    # shape=(3, 4) from a (3, 1) batch copied one draw along the last axis: corr 1, Var(y) 4x too big
    sigma = np.array([1.0, 10.0, 100.0])

    @pa.model
    def widened(y):
        beta = pa.sample("beta", dist.Normal(0.0, sigma[:, None]), shape=(3, 4))
        pa.observe("y", dist.Normal(beta.sum(), 1.0), y)

    pp = pa.sample_prior_predictive(widened(0.0), draws=4000, seed=0)
    beta = pp.prior["beta"].values.reshape(-1, 3, 4)
    assert abs(np.corrcoef(beta[:, 0, 0], beta[:, 0, 1])[0, 1]) < 0.1
    np.testing.assert_allclose(beta.std(axis=0), np.broadcast_to(sigma[:, None], (3, 4)), rtol=0.1)
    expected = 1.0 + 4.0 * np.sum(sigma**2)
    assert abs(pp.prior_predictive["y"].values.var() / expected - 1.0) < 0.1


def test_observed_draws_widening_a_size_one_axis_are_independent_given_the_parameters():
    @pa.model
    def rows(y):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0), shape=(1, 2))
        pa.observe("y", dist.MvNormal(mu, np.eye(2)), y)

    pp = pa.sample_prior_predictive(rows(np.zeros((5, 2))), draws=3000, seed=1)
    y = pp.prior_predictive["y"].values.reshape(-1, 5, 2)
    # rows share mu (covariance 1) and have independent noise (variance 1 + 1)
    assert abs(np.corrcoef(y[:, 0, 0], y[:, 1, 0])[0, 1] - 0.5) < 0.06
    np.testing.assert_allclose(y.var(axis=0), 2.0, rtol=0.12)


def test_a_shape_smaller_than_the_distribution_is_refused():
    # accepted before: three priors summed into one parameter (posterior sd 1/sqrt(3) instead of 1)
    @pa.model
    def narrowed():
        pa.sample("x", dist.Normal(np.zeros(3), 1.0), shape=(1,))

    with pytest.raises(pa.ModelDefinitionError, match=r"site 'x'.*shape \(3,\) does not broadcast to shape=\(1,\)"):
        pa.logdensity(narrowed(), backend="jax")


def test_predictive_draws_keep_the_chain_and_draw_labels_of_a_thinned_posterior(fitted):
    model, idata, _ = fitted
    thinned = idata.sel(draw=slice(None, None, 10), chain=[1])
    out = pa.sample_posterior_predictive(model, thinned, var_names=["mu"], seed=3)
    np.testing.assert_array_equal(out.posterior_predictive.draw.values, [0, 10, 20, 30, 40])
    np.testing.assert_array_equal(out.posterior_predictive.chain.values, [1])
    import xarray as xr

    mu = out.posterior_predictive["mu"]
    x = xr.DataArray(model.data["x"], dims=[mu.dims[-1]])
    difference = mu - (thinned.posterior["a"] + thinned.posterior["b"] * x)  # aligned by label
    assert difference.sizes["draw"] == 5 and float(abs(difference).max()) < 1e-12


@pytest.mark.parametrize("draws", [0, -3, 2.5, True, "10"])
def test_prior_predictive_refuses_draws_that_are_not_a_count(draws):
    with pytest.raises(pa.ConfigError, match=r"sample_prior_predictive: invalid draws="):
        pa.sample_prior_predictive(regression(np.zeros(3), None), draws=draws)


def test_posterior_predictive_takes_pymc_argument_order(fitted):
    model, idata, _ = fitted
    ours = pa.sample_posterior_predictive(model, idata, seed=3)
    for theirs in (pa.sample_posterior_predictive(idata, model=model, seed=3),
                   pa.sample_posterior_predictive(idata, model, seed=3)):
        np.testing.assert_array_equal(theirs.posterior_predictive["y"].values, ours.posterior_predictive["y"].values)


def test_prior_predictive_var_names_keep_the_named_sites_and_the_same_draws():
    model = regression(np.linspace(0.0, 1.0, 4), None)
    full = pa.sample_prior_predictive(model, draws=20, seed=5)
    some = pa.sample_prior_predictive(model, draws=20, seed=5, var_names=["a", "y"])
    assert list(some.prior.data_vars) == ["a"] and list(some.prior_predictive.data_vars) == ["y"]
    np.testing.assert_array_equal(some.prior["a"], full.prior["a"])
    np.testing.assert_array_equal(some.prior_predictive["y"], full.prior_predictive["y"])
    with pytest.raises(DataError, match=r"sample_prior_predictive: model 'regression' has no .* site 'yy' \(did you mean 'y'\?\)"):
        pa.sample_prior_predictive(model, draws=5, var_names=["yy"])


@pa.model
def rows_of_three(Y, n):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=3, dims="var")
    L = pa.sample("L", dist.LKJCholesky(3, 2.0))
    pa.observe("Y", dist.MvNormalCholesky(mu, L), Y, dims=("row", "var"), shape=None if n is None else (n, 3))


def test_observe_shape_sets_how_many_multivariate_rows_are_predicted():
    # PyMC's shape= of an observed variable: mu has no row axis, so without shape=, None gives one row
    rng = np.random.default_rng(0)
    Y = rng.multivariate_normal([1.0, -1.0, 0.5], np.eye(3), size=40)
    theta = np.linspace(-1.0, 1.0, 6)
    without = pa.logdensity(rows_of_three(Y, None), backend="jax").logdensity(theta)  # shape=(None, 3): see below
    for backend in ("jax", "torch"):
        assert pa.logdensity(rows_of_three(Y, 40), backend=backend).logdensity(theta) == pytest.approx(without, rel=1e-12)
    idata = pa.sample(rows_of_three(Y, 40), draws=150, tune=150, chains=2, seed=1, progressbar=False)
    pred = pa.sample_posterior_predictive(rows_of_three(None, 7), idata, predictions=True, seed=3)
    assert pred.predictions["Y"].dims == ("chain", "draw", "row", "var")
    assert pred.predictions["Y"].shape == (2, 150, 7, 3)
    # seven independent rows per draw, not one row repeated
    assert np.all(np.std(pred.predictions["Y"].values, axis=2) > 0)
    assert pa.sample_prior_predictive(rows_of_three(None, 5), draws=10, seed=3).prior_predictive["Y"].shape == (1, 10, 5, 3)


def test_observe_shape_must_fit_the_data_and_the_distribution():
    Y = np.zeros((40, 3))

    @pa.model
    def wrong_rows(Y):
        mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=3)
        pa.observe("Y", dist.MvNormal(mu, np.eye(3)), Y, shape=(10, 3))

    @pa.model
    def wrong_event(Y):
        mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=3)
        pa.observe("Y", dist.MvNormal(mu, np.eye(3)), Y, shape=(40, 4))

    with pytest.raises(pa.errors.DataError, match=r"site 'Y': observed value of shape \(40, 3\), but shape=\(10, 3\)"):
        pa.logdensity(wrong_rows(Y), backend="jax")
    with pytest.raises(pa.errors.ModelDefinitionError, match=r"site 'Y': the distribution's shape \(3,\) does not "
                                                              r"broadcast to shape=\(40, 4\)"):
        pa.logdensity(wrong_event(Y), backend="jax")
