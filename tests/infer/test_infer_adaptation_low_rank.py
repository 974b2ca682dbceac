"""Tests of the low-rank metric (ppl_ad.infer.adaptation.low_rank) and of ``metric="low_rank"``
in both engines."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import ConfigError
from ppl_ad.infer.adaptation import low_rank
from ppl_ad.infer.adaptation.window import build_nutpie_schedule, window_adaptation_init
from ppl_ad.infer.metrics import (
    LowRankMetric,
    low_rank_kinetic_energy,
    low_rank_momentum,
    low_rank_to_dense,
    low_rank_velocity,
)
from ppl_ad.infer.state import ChainState, from_jsonable, to_jsonable


def _correlated(dim, seed=0):
    """A covariance with strong correlations and unequal scales."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(dim, dim))
    cov = a @ a.T / dim + 0.05 * np.eye(dim)
    scales = np.exp(rng.uniform(-1.5, 1.5, size=dim))
    return cov * np.outer(scales, scales)


def _ring(cov, n, seed=1, window=low_rank.MAX_WINDOW):
    """A ring holding ``n`` exact draws of N(0, cov) and their gradients."""
    rng = np.random.default_rng(seed)
    dim = cov.shape[0]
    x = rng.multivariate_normal(np.zeros(dim), cov, size=n)
    g = -np.linalg.solve(cov, x.T).T
    ring = low_rank.window_draws_init(dim, window)
    for xi, gi in zip(x, g):
        ring = low_rank.window_draws(ring, xi, gi)
    return ring


def _spread(metric_inverse, cov):
    """Extreme eigenvalues of the target covariance seen through the metric."""
    w = np.linalg.eigvals(np.linalg.solve(metric_inverse, cov)).real
    return w.min(), w.max()


def _random_metric(rng, dim, rank):
    q, _ = np.linalg.qr(rng.normal(size=(dim, rank)))
    return LowRankMetric(np.exp(rng.normal(size=dim)), q, np.exp(rng.normal(size=rank)))


# --- the estimator -------------------------------------------------------------------------

def test_the_estimate_conditions_a_correlated_gaussian_far_better_than_the_diagonal():
    cov = _correlated(12)
    diagonal = np.diag(np.sqrt(np.diag(cov) / np.diag(np.linalg.inv(cov))))
    low, high = _spread(diagonal, cov)
    assert high / low > 30  # the diagonal leaves the posterior badly conditioned
    fitted = low_rank.fit(_ring(cov, 400), 400, low_rank.identity(12))
    low, high = _spread(low_rank_to_dense(fitted), cov)
    assert 0.3 < low and high < 3.0  # within the cutoff band (2), up to the noise of 400 draws
    assert np.count_nonzero(fitted.values != 1.0) > 0


def test_an_independent_posterior_gets_no_correction_only_its_scales():
    scales = np.array([0.1, 1.0, 10.0, 3.0])
    fitted = low_rank.fit(_ring(np.diag(scales**2), 300), 300, low_rank.identity(4))
    np.testing.assert_array_equal(fitted.values, 1.0)
    np.testing.assert_array_equal(fitted.vectors, 0.0)
    np.testing.assert_allclose(fitted.scale, scales, rtol=0.15)


def test_the_window_is_the_newest_draws_of_the_ring():
    cov = np.diag([1.0, 4.0])
    ring = _ring(cov, 40, window=8)  # the ring keeps the last 8
    rng_ring = _ring(cov, 40, window=low_rank.MAX_WINDOW)
    a = low_rank.fit(ring, 5, low_rank.identity(2, 8))
    b = low_rank.fit(rng_ring, 5, low_rank.identity(2))
    np.testing.assert_allclose(a.scale, b.scale, rtol=1e-12)
    short = low_rank.newest_rows(rng_ring, 8)
    np.testing.assert_array_equal(short.positions, rng_ring.positions[32:40])
    np.testing.assert_allclose(low_rank.fit(short, 5, low_rank.identity(2, 8)).scale, a.scale, rtol=1e-12)


def test_a_window_that_never_moved_keeps_the_previous_metric():
    previous = _random_metric(np.random.default_rng(0), 3, 3)
    ring = low_rank.window_draws_init(3, 10)
    for _ in range(7):  # a chain that rejected everything: equal draws, whose mean rounds
        ring = low_rank.window_draws(ring, np.array([0.7732297612345, -1.03166944, 3.1e-7]), np.full(3, 0.1))
    fitted = low_rank.fit(ring, 7, previous)
    for new, old in zip(fitted, previous):
        np.testing.assert_array_equal(new, old)


def test_the_numpy_and_jax_estimates_agree():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)  # as ppl_ad's JAX backends do
    jnp = jax.numpy
    cov = _correlated(40, seed=3)
    ring = _ring(cov, 150)
    for rows in (low_rank.SHORT_WINDOW, low_rank.MAX_WINDOW):  # the subspace path, then the full one
        small = low_rank.newest_rows(ring, rows)
        a = low_rank.fit(small, 18, low_rank.identity(40))
        b = low_rank.fit(low_rank.LowRankDraws(*(jnp.asarray(x) for x in small)), 18, low_rank.identity(40), jnp)
        np.testing.assert_allclose(low_rank_to_dense(a), low_rank_to_dense(b), rtol=1e-8, atol=1e-10)


def test_at_most_max_rank_directions_those_farthest_from_one():
    cov = _correlated(80, seed=5)
    fitted = low_rank.fit(_ring(cov, 250), 250, low_rank.identity(80))
    assert fitted.vectors.shape == (80, low_rank.MAX_RANK)
    kept = fitted.values != 1.0
    assert kept.sum() == low_rank.MAX_RANK  # this posterior has more than MAX_RANK directions to correct
    np.testing.assert_allclose(fitted.vectors.T @ fitted.vectors, np.eye(low_rank.MAX_RANK), atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_the_geometric_mean_solves_x_b_x_equals_a(dim, seed):
    """``X = A # B^{-1}`` is the positive definite solution of ``X B X = A``."""
    rng = np.random.default_rng(seed)
    a, b = (m @ m.T + 0.1 * np.eye(dim) for m in rng.normal(size=(2, dim, dim)))
    x = low_rank._geometric_mean(a, b, np)
    np.testing.assert_allclose(x @ b @ x, a, rtol=1e-7, atol=1e-8 * np.abs(a).max())
    assert np.all(np.linalg.eigvalsh(x) > 0)
    np.testing.assert_allclose(low_rank._geometric_mean(np.diag([1.0, 4.0, 8.0]), np.diag([1.0, 1.0, 0.5]), np),
                               np.diag([1.0, 2.0, 4.0]), rtol=1e-12)


# --- the metric's operations -----------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(st.integers(1, 7), st.integers(0, 2**31 - 1))
def test_velocity_kinetic_energy_and_momentum_match_the_dense_matrix(dim, seed):
    rng = np.random.default_rng(seed)
    m = _random_metric(rng, dim, rng.integers(1, dim + 1))
    dense = low_rank_to_dense(m)
    p = rng.normal(size=dim)
    np.testing.assert_allclose(low_rank_velocity(m, p), dense @ p, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(low_rank_kinetic_energy(m, p), 0.5 * p @ dense @ p, rtol=1e-10)
    # p = R z with R R^T = Sigma^{-1}: momenta have the metric's covariance
    r = np.stack([low_rank_momentum(m, e) for e in np.eye(dim)], axis=1)
    np.testing.assert_allclose(r @ r.T @ dense, np.eye(dim), atol=1e-8)


def test_unused_directions_change_nothing():
    m = low_rank.identity(5)
    p = np.arange(5.0)
    np.testing.assert_array_equal(low_rank_velocity(m, p), p)
    np.testing.assert_array_equal(low_rank_momentum(m, p), p)
    np.testing.assert_array_equal(low_rank_to_dense(m), np.eye(5))


# --- the schedule ----------------------------------------------------------------------------

@pytest.mark.parametrize("tune", [20, 100, 500, 1000, 3000])
def test_refits_follow_nutpie_schedule(tune):
    schedule = build_nutpie_schedule(tune)
    codes = low_rank.refits(schedule)
    entering = [i for i, (enters, _) in enumerate(schedule) if enters]
    assert all(code == low_rank.NO_REFIT for i, code in enumerate(codes) if i not in entering)
    assert codes[entering[-1]] == low_rank.FULL_REFIT or tune <= low_rank.SHORT_WINDOW
    short = [i for i, code in enumerate(codes) if code == low_rank.SHORT_REFIT]
    assert short[:3] == entering[:3]  # the first estimates are cheap, and come after every draw
    full = [i for i, code in enumerate(codes) if code == low_rank.FULL_REFIT]
    assert len(full) <= len(entering) // 20 + 1


# --- checkpoints -----------------------------------------------------------------------------

def test_a_low_rank_state_round_trips_exactly_through_json():
    rng = np.random.default_rng(2)
    metric = _random_metric(rng, 3, 2)
    ring = _ring(np.eye(3), 4, window=6)
    adaptation = window_adaptation_init(0.3, np.ones(3), "nutpie")._replace(inverse_mass_matrix=metric, draws=ring)
    state = ChainState(rng.normal(size=3), -2.5, rng.normal(size=3), adaptation, np.array([1, 2], np.uint32))
    back = from_jsonable(json.loads(json.dumps(to_jsonable(state))))
    assert isinstance(back.adaptation.inverse_mass_matrix, LowRankMetric)
    for new, old in zip(back.adaptation.inverse_mass_matrix + back.adaptation.draws, metric + ring):
        np.testing.assert_array_equal(new, old)


# --- pa.sample(metric="low_rank") --------------------------------------------------------------

@pa.model
def correlated_gaussian(chol):
    pa.sample("x", dist.MvNormalCholesky(np.zeros(chol.shape[0]), chol))


def test_sample_with_a_low_rank_metric_gets_a_correlated_posterior_right_with_shorter_trajectories():
    pytest.importorskip("jax")
    cov = _correlated(20, seed=7)
    model = correlated_gaussian(chol=np.linalg.cholesky(cov))
    kw = dict(backend="jax", draws=500, tune=400, chains=2, cores=1, seed=11, progressbar=False)
    idata = pa.sample(model, metric="low_rank", **kw)
    assert idata.attrs["metric"] == "low_rank"
    x = idata.posterior["x"].to_numpy().reshape(-1, 20)
    sd = np.sqrt(np.diag(cov))
    ess = __import__("arviz").ess(idata, method="bulk")["x"].to_numpy()
    # the mean within 5 Monte Carlo standard errors, the covariance within sampling error
    assert np.all(np.abs(x.mean(axis=0)) < 5 * sd / np.sqrt(ess))
    corr = np.corrcoef(x.T) - cov / np.outer(sd, sd)
    assert np.abs(corr).max() < 0.2
    diag = pa.sample(model, **kw)
    steps_low_rank = float(idata.sample_stats["n_steps"].mean())
    steps_diag = float(diag.sample_stats["n_steps"].mean())
    assert steps_low_rank < 0.6 * steps_diag
    again = pa.sample(model, metric="low_rank", **kw)
    np.testing.assert_array_equal(idata.posterior["x"].to_numpy(), again.posterior["x"].to_numpy())


def test_vectorized_low_rank_chains_agree_with_sequential_ones():
    pytest.importorskip("jax")
    model = correlated_gaussian(chol=np.linalg.cholesky(_correlated(6, seed=2)))
    kw = dict(backend="jax", metric="low_rank", draws=30, tune=60, chains=2, cores=1, seed=5, progressbar=False)
    a = pa.sample(model, chain_method="sequential", **kw).posterior["x"].to_numpy()
    b = pa.sample(model, chain_method="vectorized", **kw).posterior["x"].to_numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", ["autograd", "jax"])
def test_both_engines_adapt_the_same_low_rank_metric(backend):
    """The Python engine (autograd) shares the estimator and the schedule with the JAX engine."""
    pytest.importorskip("jax")
    cov = _correlated(8, seed=4)
    model = correlated_gaussian(chol=np.linalg.cholesky(cov))
    kw = dict(draws=300, tune=300, chains=1, cores=1, seed=3, progressbar=False)
    low = pa.sample(model, backend=backend, metric="low_rank", **kw)
    diag = pa.sample(model, backend=backend, **kw)
    assert low.attrs["engine"] == ("python" if backend == "autograd" else "jax")
    assert float(low.sample_stats["n_steps"].mean()) < 0.7 * float(diag.sample_stats["n_steps"].mean())
    x = low.posterior["x"].to_numpy().reshape(-1, 8)
    sd = np.sqrt(np.diag(cov))
    assert np.abs(np.corrcoef(x.T) - cov / np.outer(sd, sd)).max() < 0.3


def test_low_rank_needs_nutpie_warmup():
    model = correlated_gaussian(chol=np.eye(3))
    with pytest.raises(ConfigError, match="metric_adaptation='stan' works with metric='diag' only"):
        pa.sample(model, backend="jax", metric="low_rank", metric_adaptation="stan", draws=5, tune=5, chains=1,
                  progressbar=False)
    with pytest.raises(ConfigError, match="'diag', 'dense' or 'low_rank'"):
        pa.sample(model, backend="jax", metric="lowrank", draws=5, tune=5, chains=1, progressbar=False)
