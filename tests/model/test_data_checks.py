"""Data checked at compile time: observed shapes that broadcast up, non-finite arguments (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M
from ppl_ad.errors import DataError

FD = "finite-difference"


# ---------------------------------------------------------------- observed shapes (item 1)
@pa.model
def regression(x, y):
    alpha = pa.sample("alpha", dist.Normal(0.0, 10.0))
    beta = pa.sample("beta", dist.Normal(0.0, 10.0))
    sigma = pa.sample("sigma", dist.HalfNormal(5.0))
    pa.observe("y", dist.Normal(alpha + beta * x, sigma), y)


def test_column_vector_observation_against_vector_mean_is_refused():
    x = np.linspace(0.0, 1.0, 200)
    y = (1.0 - 2.0 * x)[:, None]  # (200, 1) against a mean of shape (200,): would be 200 x 200
    with pytest.raises(DataError) as info:
        pa.logdensity(regression(x, y), backend=FD)
    message = str(info.value)
    assert "'regression'" in message and "'y'" in message
    assert "(200, 1)" in message and "(200,)" in message and "(200, 200)" in message
    assert ".ravel()" in message


def test_scalar_observation_against_vector_distribution_is_refused():
    with pytest.raises(DataError, match=r"shape \(\).*\(3,\).*ravel"):
        pa.logdensity(regression(np.zeros(3), 1.0), backend=FD)


@pa.model
def scalar_coin(heads, n):
    p = pa.sample("p", dist.Beta(1.0, 1.0))
    pa.observe("heads", dist.Binomial(n, p), heads)


@pa.model
def repeated_rows(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0), shape=(3,))
    pa.observe("y", dist.Normal(mu, 1.0), y)


@pa.model
def multivariate(y):
    mu = pa.sample("mu", dist.Normal(0.0, 1.0), shape=(2,))
    pa.observe("y", dist.MvNormal(mu, np.eye(2)), y)


def test_legitimate_shapes_still_compile():
    assert pa.logdensity(scalar_coin(7, 10), backend=FD).dimension == 1
    assert pa.logdensity(regression(np.zeros(4), np.zeros(4)), backend=FD).dimension == 3
    # a value whose shape is the broadcast shape: independent rows against one mean vector
    assert pa.logdensity(repeated_rows(np.zeros((5, 3))), backend=FD).dimension == 3
    assert pa.logdensity(multivariate(np.zeros((6, 2))), backend=FD).dimension == 2
    assert pa.logdensity(multivariate(np.zeros(2)), backend=FD).dimension == 2


def test_multivariate_value_broadcast_up_is_refused():
    with pytest.raises(DataError, match=r"\(6, 1\).*\(2,\).*\(6, 2\)"):
        pa.logdensity(multivariate(np.zeros((6, 1))), backend=FD)


# ---------------------------------------------------------------- non-finite arguments (item 3)
def test_nan_in_a_covariate_names_argument_and_indices():
    x = np.linspace(0.0, 1.0, 10)
    x[[3, 7]] = np.nan
    with pytest.raises(DataError) as info:
        pa.logdensity(regression(x, np.zeros(10)), backend=FD)
    message = str(info.value)
    assert "'regression'" in message and "argument 'x'" in message and "[3, 7]" in message and "NaN" in message


def test_inf_in_a_matrix_names_the_index_tuples():
    X = np.zeros((4, 3))
    X[2, 1] = np.inf
    with pytest.raises(DataError, match=r"argument 'x'.*\(2, 1\)"):
        pa.logdensity(regression(X, np.zeros((4, 3))), backend=FD)


def test_only_the_first_indices_are_listed():
    x = np.full(50, np.nan)
    with pytest.raises(DataError, match=r"50 of 50 entries.*\[0, 1, 2, 3, 4, \.\.\.\]"):
        pa.logdensity(regression(x, np.zeros(50)), backend=FD)


@pa.model
def bounded(y, upper, groups):
    mu = pa.sample("mu", dist.Uniform(0.0, M.minimum(upper, 10.0)))
    pa.observe("y", dist.Normal(mu + 0.0 * groups["offset"], 1.0), y)


def test_infinite_scalar_argument_is_allowed_nan_scalar_is_not():
    groups = {"offset": np.zeros(3)}
    assert pa.logdensity(bounded(np.zeros(3), np.inf, groups), backend=FD).dimension == 1
    with pytest.raises(DataError, match="argument 'upper'.*NaN"):
        pa.logdensity(bounded(np.zeros(3), float("nan"), groups), backend=FD)


def test_arrays_inside_a_dict_argument_are_checked():
    groups = {"offset": np.array([0.0, np.nan, 0.0])}
    with pytest.raises(DataError, match=r"argument 'groups\['offset'\]'.*\[1\]"):
        pa.logdensity(bounded(np.zeros(3), 5.0, groups), backend=FD)


def test_nan_in_a_list_argument_is_reported():
    with pytest.raises(DataError, match=r"argument 'x'.*\[1\]"):
        pa.logdensity(regression([0.0, float("nan"), 1.0], np.zeros(3)), backend=FD)
