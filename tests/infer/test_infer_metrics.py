"""Tests of ppl_ad.infer.metrics."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_ad.infer.metrics import dense_metric, diagonal_metric, gaussian_euclidean


def test_diagonal_metric():
    inv = np.array([0.25, 1.0, 4.0])
    metric = gaussian_euclidean(inv)
    assert metric.kind == "diag"
    p = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(metric.velocity(p), inv * p)
    assert metric.kinetic_energy(p) == pytest.approx(0.5 * p @ (inv * p))
    rng = np.random.default_rng(0)
    draws = np.array([metric.sample_momentum(rng) for _ in range(20000)])
    np.testing.assert_allclose(draws.var(axis=0), 1.0 / inv, rtol=0.05)
    assert np.all(np.abs(draws.mean(axis=0)) < 0.05 / np.sqrt(inv))


def test_dense_metric():
    inv = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, -0.3], [0.0, -0.3, 0.5]])
    metric = gaussian_euclidean(inv)
    assert metric.kind == "dense"
    p = np.array([1.0, -2.0, 0.5])
    np.testing.assert_allclose(metric.velocity(p), inv @ p)
    assert metric.kinetic_energy(p) == pytest.approx(0.5 * p @ inv @ p)
    rng = np.random.default_rng(1)
    draws = np.array([metric.sample_momentum(rng) for _ in range(20000)])
    mass = np.linalg.inv(inv)
    np.testing.assert_allclose(np.cov(draws.T), mass, atol=0.05 * np.max(np.abs(mass)))


def test_metric_copies_and_freezes_its_matrix():
    inv = np.ones(2)
    metric = diagonal_metric(inv)
    inv[0] = 5.0
    assert metric.inverse_mass_matrix[0] == 1.0
    with pytest.raises(ValueError):
        metric.inverse_mass_matrix[0] = 2.0


@pytest.mark.parametrize(
    "build,value",
    [
        (diagonal_metric, np.array([1.0, -1.0])),
        (diagonal_metric, np.array([1.0, np.nan])),
        (diagonal_metric, np.eye(2)),
        (dense_metric, np.array([[1.0, 2.0], [2.0, 1.0]])),
        (dense_metric, np.ones(3)),
    ],
)
def test_invalid_metrics_are_rejected(build, value):
    with pytest.raises(ValueError):
        build(value)
