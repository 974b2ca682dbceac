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


# ---------------------------------------------------------------- data types a user binds
def _regression_reference(x, y, alpha, beta, sigma):
    import scipy.stats as st

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    return (st.norm(0, 10).logpdf(alpha) + st.norm(0, 10).logpdf(beta) + st.halfnorm(scale=5).logpdf(sigma)
            + np.log(sigma) + st.norm(alpha + beta * x, sigma).logpdf(y).sum())


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_pandas_objects_and_nested_lists_bind_as_arrays_on_every_backend(backend):
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"x": [0.1, 0.4, 0.7, 1.0], "y": [1.1, 0.3, -0.4, -1.2]})
    theta = np.array([0.9, -2.0, np.log(0.5)])
    expected = _regression_reference(frame["x"], frame["y"], 0.9, -2.0, 0.5)
    for x, y in [(frame["x"], frame["y"]), (frame["x"].tolist(), frame[["y"]].to_numpy().ravel().tolist()),
                 (pd.Index(frame["x"]), frame["y"].to_numpy())]:
        model = regression(x, y)
        assert type(model.data["x"]) is np.ndarray and type(model.data["y"]) is np.ndarray
        assert pa.logdensity(model, backend=backend).logdensity(theta) == pytest.approx(expected, rel=1e-12)


@pa.model
def matrix_mean(Y):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0), shape=(2,))
    pa.observe("Y", dist.Normal(mu, 1.0), Y)


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_a_list_of_rows_is_a_matrix_and_a_data_frame_is_its_values(backend):
    pd = pytest.importorskip("pandas")
    rows = [[1.0, 2.0], [3.0, 4.0], [0.5, 1.5]]
    reference = pa.logdensity(matrix_mean(np.array(rows)), backend=backend).logdensity(np.array([0.3, -0.2]))
    for data in (rows, pd.DataFrame(rows, columns=["a", "b"])):
        model = matrix_mean(data)
        assert model.data["Y"].shape == (3, 2)
        assert pa.logdensity(model, backend=backend).logdensity(np.array([0.3, -0.2])) == reference


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_float32_data_are_computed_in_float64(backend):
    x32, y32 = np.linspace(0.0, 1.0, 50, dtype=np.float32), np.linspace(1.0, -1.0, 50, dtype=np.float32)
    model = regression(x32, y32)
    assert model.data["x"].dtype == np.float64
    theta = np.array([0.1, -1.9, np.log(np.float32(0.3))])
    expected = _regression_reference(x32.astype(np.float64), y32.astype(np.float64), 0.1, -1.9, np.exp(theta[2]))
    assert pa.logdensity(model, backend=backend).logdensity(theta) == pytest.approx(expected, rel=1e-13)
    scale = normal_scale(np.float32(0.3), y32)
    assert type(scale.data["s"]) is np.float64 and scale.data["s"] == np.float64(np.float32(0.3))


@pa.model
def normal_scale(s, y):
    mu = pa.sample("mu", dist.Normal(0.0, 10.0))
    pa.observe("y", dist.Normal(mu, s), y)


def test_data_that_are_not_numeric_arrays_are_bound_as_given():
    ragged, labels = [[1.0, 2.0], [3.0]], ["a", "b", "a"]
    model = regression(ragged, labels)
    assert model.data["x"] is ragged and model.data["y"] is labels


@pa.model
def coin(y):
    p = pa.sample("p", dist.Beta(1.0, 1.0))
    pa.observe("y", dist.Bernoulli(p), y)


@pytest.mark.parametrize("backend", ["jax", "torch", "torch-forward", "autograd"])
def test_boolean_observations_count_as_zeros_and_ones(backend):
    reference = pa.logdensity(coin(np.array([1, 0, 1, 1])), backend=FD).logdensity_and_gradient(np.array([0.3]))
    value, grad = pa.logdensity(coin(np.array([True, False, True, True])), backend=backend).logdensity_and_gradient(
        np.array([0.3]))
    assert value == pytest.approx(reference[0], rel=1e-12)
    np.testing.assert_allclose(grad, reference[1], rtol=1e-7)


# ------------------------------------------------- data containers of other libraries (session 20)
@pa.model
def scaled_mean(x, y):
    a = pa.sample("a", dist.Normal(0.0, 1.0))
    pa.observe("y", dist.Normal(a * x, 1.0), y)


def _reference(x, y, a=0.2):
    from scipy import stats

    return stats.norm.logpdf(a) + stats.norm.logpdf(y, a * np.asarray(x, float), 1.0).sum()


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_xarray_and_jax_data_are_arrays_and_their_nan_is_refused(backend):
    xr = pytest.importorskip("xarray")
    jnp = pytest.importorskip("jax.numpy")
    y = np.array([0.5, 0.1, 0.3])
    for x in (xr.DataArray([1.0, 2.0, 3.0], dims="obs"), jnp.array([1.0, 2.0, 3.0])):
        value = pa.logdensity(scaled_mean(x, y), backend=backend).logdensity(np.array([0.2]))
        np.testing.assert_allclose(value, _reference([1.0, 2.0, 3.0], y))
    for x in (xr.DataArray([1.0, np.nan, 3.0], dims="obs"), jnp.array([1.0, np.nan, 3.0])):
        with pytest.raises(DataError, match=r"argument 'x'.*NaN.*\[1\]"):  # xarray's sum skipped the NaN row
            pa.logdensity(scaled_mean(x, y), backend=backend)


def test_torch_tensor_data_are_arrays():
    torch = pytest.importorskip("torch")
    y = np.array([0.5, 0.1, 0.3])
    x = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
    model = scaled_mean(x, y)
    assert type(model.data["x"]) is np.ndarray and model.data["x"].dtype == np.float64
    np.testing.assert_allclose(pa.logdensity(model, backend="jax").logdensity(np.array([0.2])), _reference([1, 2, 3], y))


def test_masked_arrays_are_refused_unless_nothing_is_masked():
    y = np.array([0.5, 0.1, 0.3])
    with pytest.raises(DataError, match=r"argument 'x'.*masked array with 1 masked.*not y.filled\(\)"):
        scaled_mean(np.ma.masked_array([1.0, 99.0, 3.0], mask=[0, 1, 0]), y)
    model = scaled_mean(np.ma.masked_array([1.0, 2.0, 3.0]), y)
    assert type(model.data["x"]) is np.ndarray


def test_dataframes_with_text_columns_and_datasets_are_refused_by_name():
    pd = pytest.importorskip("pandas")
    xr = pytest.importorskip("xarray")

    @pa.model
    def frame(df):
        a = pa.sample("a", dist.Normal(0.0, 1.0))
        pa.observe("y", dist.Normal(a * df["x"], 1.0), df["y"])

    mixed = pd.DataFrame({"name": ["ann", "bob", "cy"], "x": [1.0, np.nan, 3.0], "y": [0.5, 0.1, 0.3]})
    with pytest.raises(DataError, match=r"argument 'df'.*non-numeric columns \['name'\]"):
        frame(mixed)
    with pytest.raises(DataError, match=r"argument 'x'.*xarray Dataset"):
        scaled_mean(xr.Dataset({"x": ("obs", [1.0, 2.0])}), np.zeros(2))


def test_a_column_vector_covariate_gets_the_hint_to_ravel_it():
    with pytest.raises(DataError, match=r"column vector of shape \(5, 1\).*ravel it.*\(5,\)"):
        pa.logdensity(scaled_mean(np.ones((5, 1)), np.ones(5)), backend=FD)


@pytest.mark.parametrize("shape", [2.0, (2.0, 3), "3", (-1,), True])
def test_shape_must_be_ints(shape):
    @pa.model
    def shaped():
        pa.sample("a", dist.Normal(0.0, 1.0), shape=shape)

    with pytest.raises(pa.errors.ModelDefinitionError, match=r"model 'shaped', site 'a': shape=.*non-negative ints"):
        pa.logdensity(shaped(), backend=FD)


# ---------------------------------------------------------------- object arrays
def test_an_object_array_of_numbers_is_bound_as_numbers():
    # df.values of a mixed frame: a JAX-internal error ("Error interpreting argument to matmul")
    x = np.linspace(0.0, 1.0, 4).astype(object)
    model = regression(x, np.zeros(4))
    assert model.data["x"].dtype == np.float64
    assert pa.logdensity(model, backend="jax").dimension == 3
    codes = pa.logdensity(regression(np.array([[1, 2], [3, 4]], dtype=object), np.zeros((2, 2))), backend=FD)
    assert codes.model.data["x"].dtype.kind == "i"


def test_an_object_array_with_none_is_a_missing_value_error():
    with pytest.raises(DataError, match=r"argument 'x'.*1 None entries \(first at flat index 2\).*impute"):
        regression(np.array([0.1, 0.2, None, 0.4], dtype=object), np.zeros(4))


def test_other_object_arrays_are_bound_as_given():
    labels = np.array(["a", 1], dtype=object)
    assert regression(labels, np.zeros(2)).data["x"] is labels


@pytest.mark.parametrize("y, message", [
    (np.array([1, -1, 2]), r"site 'y': 1 observed value outside the support nonnegative_integer of Poisson: -1 at 1; "
                           r"the log density would be -inf whatever the parameters$"),
    (np.array([1.0, 1.5, 2.5]), r"2 observed values outside .*: 1.5 at 1, 2.5 at 2; .*must be a whole number"),
])
def test_observed_data_outside_the_support_are_refused_when_the_model_is_built(y, message):
    # before, the log density was -inf everywhere and sampling failed after 100 initial points
    @pa.model(name="counts")
    def counts(y):
        lam = pa.sample("lam", dist.Exponential(1.0))
        pa.observe("y", dist.Poisson(lam), y)

    with pytest.raises(DataError, match=message):
        pa.logdensity(counts(y))


def test_a_vector_observation_outside_the_support_is_named_by_its_row():
    @pa.model(name="shares")
    def shares(y):
        pa.observe("y", dist.Dirichlet(np.ones(3)), y)

    with pytest.raises(DataError, match=r"site 'y': 1 observed value outside the support simplex of Dirichlet: row 1;"):
        pa.logdensity(shares(np.array([[0.2, 0.3, 0.5], [0.5, 0.6, -0.1]])))
