"""Tests of ppl_ad.infer.results: InferenceData labels (dims, coords) and the log_likelihood group from pa.sample."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.errors import ConfigError, DataError, SamplingWarning

SCHOOLS = ["Choate", "Deerfield", "Phillips Andover", "Phillips Exeter", "Hotchkiss", "Lawrenceville",
           "St. Paul's", "Mt. Hermon"]
Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


@pa.model
def schools(y, sigma):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    tau = pa.sample("tau", dist.HalfCauchy(5.0))
    theta_tilde = pa.sample("theta_tilde", dist.Normal(0.0, 1.0), shape=(len(sigma),), dims="school")
    theta = pa.deterministic("theta", mu + tau * theta_tilde, dims="school")
    pa.observe("y", dist.Normal(theta, sigma), y, dims="school")


def run(model, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        return pa.sample(model, backend="autograd", draws=40, tune=40, chains=2, cores=1, seed=0,
                         progressbar=False, **kwargs)


def test_coords_label_posterior_observed_data_and_log_likelihood():
    idata = run(schools(Y, SIGMA), coords={"school": SCHOOLS}, log_likelihood=True)
    for group in ("posterior", "observed_data", "log_likelihood"):
        assert list(getattr(idata, group)["school"].values) == SCHOOLS, group
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert idata.posterior["theta_tilde"].dims == ("chain", "draw", "school")
    assert idata.observed_data["y"].dims == ("school",)
    assert idata.log_likelihood["y"].dims == ("chain", "draw", "school")
    # downstream functions reuse the labels in idata
    pp = pa.sample_posterior_predictive(schools(Y, SIGMA), idata, seed=1)
    assert list(pp.posterior_predictive["school"].values) == SCHOOLS
    new = pa.compute_log_likelihood(schools(Y, SIGMA), idata, extend_inferencedata=False)
    assert list(new.log_likelihood["school"].values) == SCHOOLS


def test_dims_name_the_axes_without_coords():
    idata = run(schools(Y, SIGMA))
    assert idata.posterior["theta"].dims == ("chain", "draw", "school")
    assert "theta_dim_0" not in idata.posterior.dims
    assert list(idata.posterior["school"].values) == list(range(8))
    assert "log_likelihood" not in idata.groups()


def test_coords_of_the_wrong_length_are_refused_before_sampling():
    with pytest.raises(DataError, match=r"coords\['school'\] has 3 labels, but dimension 'school' of site '\w+' has length 8"):
        pa.sample(schools(Y, SIGMA), backend="autograd", coords={"school": SCHOOLS[:3]}, progressbar=False)


def test_coords_for_an_undeclared_dimension_get_a_hint():
    with pytest.raises(ConfigError, match="'schools' \\(did you mean 'school'\\?\\)"):
        pa.sample(schools(Y, SIGMA), backend="autograd", coords={"schools": SCHOOLS}, progressbar=False)
    with pytest.raises(ConfigError, match="coords must be a dict"):
        pa.sample(schools(Y, SIGMA), backend="autograd", coords=SCHOOLS, progressbar=False)


def test_coords_with_a_site_that_leaves_an_axis_unnamed():
    # dims=("row", None) made the check itself fail: TypeError comparing None with str
    @pa.model
    def table(y):
        b = pa.sample("b", dist.Normal(0.0, 1.0), shape=(3, 2), dims=("row", None))
        pa.observe("y", dist.Normal(b.sum(), 1.0), y)

    with pytest.raises(ConfigError, match="'rwo' \\(did you mean 'row'\\?\\)"):
        pa.sample(table(1.0), backend="autograd", coords={"rwo": ["a", "b", "c"]}, progressbar=False)
    idata = run(table(1.0), coords={"row": ["a", "b", "c"]})
    assert idata.posterior["b"].dims == ("chain", "draw", "row", "b_dim_1")
    assert list(idata.posterior["row"].values) == ["a", "b", "c"]


def test_sample_signature_shows_coords_and_log_likelihood():
    parameters = inspect.signature(pa.sample).parameters
    assert parameters["coords"].default is None and parameters["log_likelihood"].default is False
    from ppl_ad.infer.sample import sample

    assert inspect.signature(sample).parameters["log_likelihood"].kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises(ConfigError, match="'idata_kwargs' \\(did you mean 'log_likelihood'\\?\\)"):
        pa.sample(schools(Y, SIGMA), idata_kwargs={"log_likelihood": True})


def test_boolean_and_integer_deterministics_keep_their_type():
    # a boolean deterministic was float64 in the posterior and bool in the posterior predictive
    @pa.model
    def signs(y):
        mu = pa.sample("mu", dist.Normal(0.0, 1.0))
        pa.deterministic("positive", mu > 0)
        pa.deterministic("count", M.sum(M.stack([mu, -mu]) > 0))
        pa.deterministic("half", mu / 2)
        pa.observe("y", dist.Normal(mu, 1.0), y)

    model = signs(np.array([0.5, 1.0]))
    idata = pa.sample(model, draws=40, tune=40, chains=2, seed=2, progressbar=False)
    post = idata.posterior
    assert post["positive"].dtype == bool and post["count"].dtype.kind == "i" and post["half"].dtype == np.float64
    np.testing.assert_array_equal(post["positive"].values, post["mu"].values > 0)
    np.testing.assert_array_equal(post["count"].values, 1)
    predicted = pa.sample_posterior_predictive(model, idata, var_names=["positive"], seed=1)
    assert predicted.posterior_predictive["positive"].dtype == bool


@pa.model
def two_separated_modes():
    pa.sample("x", dist.NormalMixture(np.array([0.5, 0.5]), np.array([-6.0, 6.0]), np.array([0.5, 0.5])))


def test_chains_stuck_in_different_modes_are_reported():
    # a chain in another mode used to finish silently (R-hat 1.5 in two outside users' runs)
    with pytest.warns(pa.SamplingWarning, match=r"the chains disagree: R-hat above 1.05 \(x [0-9.]+; 1 values above"):
        pa.sample(two_separated_modes(), chains=2, draws=200, tune=200, seed=1, progressbar=False,
                  init=[{"x": -6.0}, {"x": 6.0}])


def test_chains_that_agree_are_not_reported():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pa.sample(two_separated_modes(), chains=2, draws=300, tune=300, seed=1, progressbar=False,
                  init=[{"x": 6.0}, {"x": 6.0}])
    assert not [w for w in caught if "the chains disagree" in str(w.message)]
    from ppl_ad.infer.results import _convergence_warning

    assert _convergence_warning("m", type("I", (), {"posterior": None})(), ["x"]) is None  # nothing to check
