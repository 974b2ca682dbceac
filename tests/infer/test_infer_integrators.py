"""Tests of ppl_ad.infer.integrators (velocity Verlet)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppl_ad.infer.integrators import velocity_verlet
from ppl_ad.infer.metrics import gaussian_euclidean

COV = np.array([[1.0, 0.6], [0.6, 2.0]])
PREC = np.linalg.inv(COV)


def gaussian(x):
    g = -PREC.dot(x)
    return 0.5 * float(x.dot(g)), g


def energy(metric, p, logp):
    return metric.kinetic_energy(p) - logp


def integrate(step, q, p, g, step_size, n):
    logp = None
    for _ in range(n):
        q, p, logp, g = step(q, p, g, step_size)
    return q, p, logp, g


@pytest.mark.parametrize("inv_mass", [np.array([1.0, 0.5]), np.array([[1.0, 0.2], [0.2, 0.7]])])
def test_energy_error_is_second_order(inv_mass):
    metric = gaussian_euclidean(inv_mass)
    step = velocity_verlet(gaussian, metric.velocity)
    q0, p0 = np.array([1.0, -0.5]), np.array([0.3, 0.8])
    logp0, g0 = gaussian(q0)
    H0 = energy(metric, p0, logp0)
    errors = []
    for eps in (0.1, 0.05, 0.025):
        n = int(round(1.0 / eps))
        max_err = 0.0
        q, p, g = q0, p0, g0
        for _ in range(n):
            q, p, logp, g = step(q, p, g, eps)
            max_err = max(max_err, abs(energy(metric, p, logp) - H0))
        errors.append(max_err)
    # Halving the step size divides the energy error by ~4.
    for coarse, fine in zip(errors, errors[1:]):
        assert 3.5 < coarse / fine < 4.5
    assert errors[-1] < 1e-2


def test_leapfrog_is_reversible():
    metric = gaussian_euclidean(np.array([1.0, 0.5]))
    step = velocity_verlet(gaussian, metric.velocity)
    q0, p0 = np.array([1.0, -0.5]), np.array([0.3, 0.8])
    logp0, g0 = gaussian(q0)
    q, p, logp, g = integrate(step, q0, p0, g0, 0.2, 25)
    # Backwards in time from the end point...
    qb, pb, logpb, gb = integrate(step, q, p, g, -0.2, 25)
    np.testing.assert_allclose(qb, q0, atol=1e-12)
    np.testing.assert_allclose(pb, p0, atol=1e-12)
    # ...and forwards with the momentum flipped.
    qf, pf, _, _ = integrate(step, q, -p, g, 0.2, 25)
    np.testing.assert_allclose(qf, q0, atol=1e-12)
    np.testing.assert_allclose(-pf, p0, atol=1e-12)
    assert logpb == pytest.approx(logp0)


def test_inputs_are_not_modified():
    metric = gaussian_euclidean(np.ones(2))
    step = velocity_verlet(gaussian, metric.velocity)
    q, p = np.array([1.0, 2.0]), np.array([0.5, -0.5])
    logp, g = gaussian(q)
    copies = q.copy(), p.copy(), g.copy()
    step(q, p, g, 0.1)
    for a, b in zip((q, p, g), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("error", [FloatingPointError, OverflowError, ValueError, ZeroDivisionError])
def test_evaluation_errors_give_minus_infinity(error):
    def failing(x):
        raise error("boom")

    step = velocity_verlet(failing, gaussian_euclidean(np.ones(2)).velocity)
    _, _, logp, _ = step(np.zeros(2), np.ones(2), np.zeros(2), 0.1)
    assert logp == -math.inf


def test_other_errors_propagate():
    def failing(x):
        raise KeyError("a bug, not a numerical problem")

    step = velocity_verlet(failing, gaussian_euclidean(np.ones(2)).velocity)
    with pytest.raises(KeyError):
        step(np.zeros(2), np.ones(2), np.zeros(2), 0.1)
