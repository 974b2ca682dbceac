"""Constraints: elementwise membership checks, event dimensions and names."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_ad import constraints as C

CASES = [
    (C.real, [0.0, -1e300, 3.0], [np.inf, np.nan]),
    (C.positive, [1e-300, 2.0], [0.0, -1.0]),
    (C.unit_interval, [0.5, 1e-9], [0.0, 1.0, 1.5]),
    (C.greater_than(2.0), [2.5], [2.0, 1.0]),
    (C.less_than(2.0), [1.5, -10.0], [2.0, 3.0]),
    (C.interval(-1.0, 1.0), [0.0, 0.99], [-1.0, 1.0]),
    (C.boolean, [0, 1], [2, -1, 0.5]),
    (C.nonnegative_integer, [0, 7], [-1, 1.5]),
    (C.integer_interval(0, 3), [0, 3], [4, -1, 2.5]),
]


@pytest.mark.parametrize(("constraint", "inside", "outside"), CASES, ids=[repr(c[0]) for c in CASES])
def test_scalar_constraints(constraint, inside, outside):
    assert np.all(constraint.check(np.array(inside)))
    assert not np.any(constraint.check(np.array(outside)))
    assert constraint.check(np.array(inside + outside)).shape == (len(inside) + len(outside),)


def test_vector_constraints_reduce_last_axis():
    values = np.array([[0.2, 0.8], [0.5, 0.6], [-0.1, 1.1]])
    np.testing.assert_array_equal(C.simplex.check(values), [True, False, False])
    np.testing.assert_array_equal(C.real_vector.check(np.array([[1.0, 2.0], [np.nan, 0.0]])), [True, False])
    assert C.simplex.event_dim == 1 and C.real_vector.event_dim == 1


def test_corr_cholesky():
    r = 0.6
    good = np.array([[1.0, 0.0], [r, np.sqrt(1 - r * r)]])
    assert C.corr_cholesky.check(good)
    assert not C.corr_cholesky.check(np.array([[1.0, 0.1], [r, np.sqrt(1 - r * r)]]))
    assert not C.corr_cholesky.check(np.array([[1.0, 0.0], [r, 0.5]]))
    assert not C.corr_cholesky.check(np.array([[1.0, 0.0], [r, -np.sqrt(1 - r * r)]]))
    assert C.corr_cholesky.event_dim == 2


def test_dependent_bounds_broadcast():
    upper = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(C.interval(0.0, upper).check(np.array([1.5, 1.5, 1.5])), [False, True, True])


def test_discreteness_and_names():
    assert C.boolean.is_discrete and C.nonnegative_integer.is_discrete
    assert not C.positive.is_discrete and not C.simplex.is_discrete
    assert repr(C.positive) == "positive"
    assert repr(C.interval(0.0, 1.5)) == "interval(0.0, 1.5)"
    assert repr(C.greater_than(1.0)) == "greater_than(1.0)"
