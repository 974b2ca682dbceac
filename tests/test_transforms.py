"""Transforms: round trip, shapes and log|J| against a numerical Jacobian, for every case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

from ppl_ad import constraints as C
from ppl_ad.transforms import (
    CorrCholeskyTransform, Identity, Interval, LowerBound, Ordered, PositiveOrdered, StickBreaking, UpperBound,
    biject_to, ordered, positive_ordered, site_transform,
)

FAST = settings(max_examples=30, deadline=None)


def _lower_entries(L):
    return L[np.tril_indices(L.shape[-1], -1)]


# name -> (transform, constrained shape, unconstrained shape, free coordinates of x, support)
CASES = {
    "identity": (biject_to(C.real), (3,), (3,), lambda x: x, C.real),
    "positive": (biject_to(C.positive), (3,), (3,), lambda x: x, C.positive),
    "lower_bound": (biject_to(C.greater_than(1.5)), (2,), (2,), lambda x: x, C.greater_than(1.5)),
    "upper_bound": (biject_to(C.less_than(-2.0)), (2,), (2,), lambda x: x, C.less_than(-2.0)),
    "interval": (biject_to(C.interval(-1.0, 3.0)), (3,), (3,), lambda x: x, C.interval(-1.0, 3.0)),
    "unit_interval": (biject_to(C.unit_interval), (3,), (3,), lambda x: x, C.unit_interval),
    # A bound given by another parameter (Stan's real<lower=0, upper=1 - alpha1>), one per element.
    "dependent_interval": (
        Interval(0.0, 1.0 - np.array([0.3, 0.6])), (2,), (2,), lambda x: x,
        C.interval(0.0, 1.0 - np.array([0.3, 0.6])),
    ),
    "simplex": (biject_to(C.simplex), (4,), (3,), lambda x: x[:-1], C.simplex),
    "corr_cholesky_3": (biject_to(C.corr_cholesky), (3, 3), (3,), _lower_entries, C.corr_cholesky),
    "corr_cholesky_4": (CorrCholeskyTransform(), (4, 4), (6,), _lower_entries, C.corr_cholesky),
    # Stan's ordered[K] and positive_ordered[K], chosen per site with transform=
    "ordered": (ordered, (4,), (4,), lambda x: x, C.ordered_vector),
    "ordered_1": (Ordered(), (1,), (1,), lambda x: x, C.ordered_vector),
    "positive_ordered": (positive_ordered, (3,), (3,), lambda x: x, C.positive_ordered_vector),
}


def test_biject_to_types():
    assert isinstance(biject_to(C.real), Identity)
    assert isinstance(biject_to(C.real_vector), Identity)
    assert isinstance(biject_to(C.positive), LowerBound)
    assert isinstance(biject_to(C.greater_than(1.0)), LowerBound)
    assert isinstance(biject_to(C.less_than(1.0)), UpperBound)
    assert isinstance(biject_to(C.interval(0.0, 2.0)), Interval)
    assert isinstance(biject_to(C.simplex), StickBreaking)
    assert isinstance(biject_to(C.corr_cholesky), CorrCholeskyTransform)


@pytest.mark.parametrize("constraint", [C.boolean, C.nonnegative_integer, C.integer_interval(0, 3)])
def test_biject_to_discrete_raises(constraint):
    with pytest.raises(TypeError, match="discrete"):
        biject_to(constraint)


def _u(ushape):
    return hnp.arrays(np.float64, ushape, elements=hs.floats(-2.5, 2.5))


@pytest.mark.parametrize("name", sorted(CASES))
@FAST
@given(data=hs.data())
def test_round_trip_and_support(name, data):
    transform, shape, ushape, _, support = CASES[name]
    u = data.draw(_u(ushape))
    x = np.asarray(transform.forward(u))
    assert x.shape == shape
    assert transform.unconstrained_shape(shape) == ushape
    assert np.all(support.check(x))
    np.testing.assert_allclose(transform.inverse(x), u, rtol=1e-8, atol=1e-8)


def _numerical_log_det(transform, u, free):
    h = 1e-6
    n = u.size
    jac = np.empty((n, n))
    for i in range(n):
        step = np.zeros(n)
        step[i] = h
        plus = free(np.asarray(transform.forward(u + step)))
        minus = free(np.asarray(transform.forward(u - step)))
        jac[:, i] = (plus - minus) / (2 * h)
    return np.linalg.slogdet(jac)[1]


@pytest.mark.parametrize("name", sorted(CASES))
@FAST
@given(data=hs.data())
def test_log_det_jacobian_matches_numerical(name, data):
    transform, _, ushape, free, _ = CASES[name]
    u = data.draw(_u(ushape))
    x = transform.forward(u)
    analytic = float(np.sum(transform.log_abs_det_jacobian(u, x)))
    np.testing.assert_allclose(analytic, _numerical_log_det(transform, u, free), rtol=1e-6, atol=1e-6)


def test_log_det_is_elementwise_for_scalar_transforms():
    u = np.array([-1.0, 0.0, 2.0])
    t = biject_to(C.interval(-1.0, 3.0))
    assert np.shape(t.log_abs_det_jacobian(u, t.forward(u))) == (3,)


def test_simplex_uniform_point_at_zero():
    """Stan's stick-breaking offset maps u = 0 to the uniform simplex point."""
    np.testing.assert_allclose(StickBreaking().forward(np.zeros(4)), np.full(5, 0.2), atol=1e-12)


def test_corr_cholesky_at_zero_is_identity():
    np.testing.assert_allclose(CorrCholeskyTransform().forward(np.zeros(3)), np.eye(3), atol=1e-12)


@pytest.mark.parametrize("backend", ["jax", "torch", "autograd"])
def test_corr_cholesky_keeps_its_digits_as_the_correlation_nears_one(backend):
    """LKJ(2, 2) on u = atanh(r): log p = 2 log(1 - tanh(u)^2) + const, exact to the last digits even
    where tanh(u) rounds to 1 (from |u| = 19.1, 1 - z^2 was 0 and the density -inf)."""
    import ppl_ad as pa
    from ppl_ad import dist

    @pa.model
    def correlation():
        pa.sample("L", dist.LKJCholesky(2, 2.0))

    ld = pa.logdensity(correlation(), backend=backend)
    base = ld.logdensity(np.zeros(1))
    for u in (0.5, 10.0, 18.0, 19.5, 25.0, -30.0):
        log_sech2 = 2.0 * (np.log(2.0) - abs(u) - np.log1p(np.exp(-2.0 * abs(u))))
        value, grad = ld.logdensity_and_gradient(np.array([u]))
        assert value == pytest.approx(base + 2.0 * log_sech2, rel=1e-13, abs=1e-12)
        assert grad[0] == pytest.approx(-4.0 * np.tanh(u), rel=1e-12)


@pytest.mark.parametrize("transform", [ordered, positive_ordered])
def test_ordered_transforms_work_on_a_batch_of_vectors(transform):
    """A (2, 3) site orders each row; the log-Jacobian has one entry per row."""
    u = np.array([[0.3, -1.0, 2.0], [-4.0, 0.5, 0.0]])
    x = np.asarray(transform.forward(u))
    assert np.all(transform.constraint.check(x))
    np.testing.assert_allclose(transform.inverse(x), u, atol=1e-12)
    rows = [float(transform.log_abs_det_jacobian(r, transform.forward(r))) for r in u]
    np.testing.assert_allclose(transform.log_abs_det_jacobian(u, x), rows)


def test_ordered_inverse_of_an_unordered_vector_is_not_finite():
    assert not np.all(np.isfinite(ordered.inverse(np.array([0.0, 1.0, 1.0]))))
    assert not np.all(np.isfinite(positive_ordered.inverse(np.array([-1.0, 1.0]))))


def test_ordered_constraints_check_rows():
    assert C.ordered_vector.check(np.array([[-1.0, 0.0, 2.0], [0.0, 0.0, 1.0]])).tolist() == [True, False]
    assert C.positive_ordered_vector.check(np.array([[0.1, 2.0], [-0.1, 2.0]])).tolist() == [True, False]


def test_site_transform_names_the_site_and_the_choices():
    assert site_transform("ordered", C.real, "site 'c'") is ordered
    assert site_transform(positive_ordered, C.positive, "site 'c'") is positive_ordered
    assert isinstance(site_transform("positive_ordered", C.real, "site 'c'"), PositiveOrdered)
    with pytest.raises(ValueError, match=r"site 'c': transform='log' is not one of \['ordered', 'positive_ordered'\]"):
        site_transform("log", C.real, "site 'c'")
    with pytest.raises(ValueError, match="outside the distribution's support positive; use transform='positive_ordered'"):
        site_transform("ordered", C.positive, "site 'c'")
    with pytest.raises(ValueError, match="needs a distribution on the real line"):
        site_transform("ordered", C.unit_interval, "site 'c'")
