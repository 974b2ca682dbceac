"""Euclidean metrics: kinetic energy, momentum draws and velocities.

This module owns the Gaussian kinetic energy ``K(p) = p^T M^{-1} p / 2`` of
Euclidean HMC, for a diagonal, a dense or a low-rank-corrected diagonal
(:class:`LowRankMetric`, estimated by :mod:`ppl_ad.infer.adaptation.low_rank`) inverse mass matrix ``M^{-1}`` (the
quantity that warmup estimates as the posterior (co)variance). It provides

* ``sample_momentum(rng)``: a draw ``p ~ N(0, M)``;
* ``velocity(p)``: ``M^{-1} p`` (Stan's ``dtau_dp``, Betancourt's ``p^#``);
* ``kinetic_energy(p)``.

References
----------
Betancourt, M. (2017). *A Conceptual Introduction to Hamiltonian Monte Carlo*,
section 4.2 (Euclidean-Gaussian kinetic energies). arXiv:1701.02434.

Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters"
(Euclidean metric).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

__all__ = ["EuclideanMetric", "gaussian_euclidean", "diagonal_metric", "dense_metric", "low_rank_metric",
           "LowRankMetric", "dense_inverse_metric", "low_rank_velocity", "low_rank_kinetic_energy", "low_rank_momentum", "low_rank_to_dense"]


class EuclideanMetric(NamedTuple):
    """A Euclidean metric and the functions the integrator needs from it.

    Attributes
    ----------
    kind : {"diag", "dense", "low_rank"}
        The structure of ``inverse_mass_matrix``.
    inverse_mass_matrix : numpy.ndarray or LowRankMetric
        1-D (diagonal) or 2-D (dense) inverse mass matrix ``M^{-1}``, or its low-rank form.
    sample_momentum : callable
        ``sample_momentum(rng) -> p`` with ``p ~ N(0, M)``; one call to
        ``rng.standard_normal`` per draw.
    velocity : callable
        ``velocity(p) -> M^{-1} p``.
    kinetic_energy : callable
        ``kinetic_energy(p) -> float``, ``p^T M^{-1} p / 2``.
    """

    kind: str
    inverse_mass_matrix: np.ndarray
    sample_momentum: Callable[[np.random.Generator], np.ndarray]
    velocity: Callable[[np.ndarray], np.ndarray]
    kinetic_energy: Callable[[np.ndarray], float]


def diagonal_metric(inverse_mass_matrix) -> EuclideanMetric:
    """Build a diagonal Euclidean metric.

    Parameters
    ----------
    inverse_mass_matrix : array_like
        Positive 1-D array, the diagonal of ``M^{-1}``.

    Returns
    -------
    EuclideanMetric
    """
    inv = np.array(inverse_mass_matrix, dtype=np.float64, copy=True)
    if inv.ndim != 1:
        raise ValueError(f"a diagonal metric needs a 1-D inverse mass matrix, got shape {inv.shape}")
    if not (np.all(np.isfinite(inv)) and np.all(inv > 0)):
        raise ValueError("the inverse mass matrix must be finite and positive")
    inv.flags.writeable = False
    mass_sqrt = np.sqrt(1.0 / inv)
    dim = inv.shape[0]
    velocity = inv.__mul__  # elementwise M^{-1} p, no Python-level wrapper

    def sample_momentum(rng):
        return rng.standard_normal(dim) * mass_sqrt

    def kinetic_energy(p):
        return 0.5 * float(p.dot(inv * p))

    return EuclideanMetric("diag", inv, sample_momentum, velocity, kinetic_energy)


def dense_metric(inverse_mass_matrix) -> EuclideanMetric:
    """Build a dense Euclidean metric.

    With ``M^{-1} = L L^T`` (Cholesky), momenta are drawn as ``p = L^{-T} z`` with
    ``z ~ N(0, I)``, so that ``Cov(p) = (L L^T)^{-1} = M``.

    Parameters
    ----------
    inverse_mass_matrix : array_like
        Symmetric positive-definite 2-D array ``M^{-1}``.

    Returns
    -------
    EuclideanMetric
    """
    inv = np.array(inverse_mass_matrix, dtype=np.float64, copy=True)
    if inv.ndim != 2 or inv.shape[0] != inv.shape[1]:
        raise ValueError(f"a dense metric needs a square 2-D inverse mass matrix, got shape {inv.shape}")
    if not np.all(np.isfinite(inv)):
        raise ValueError("the inverse mass matrix must be finite")
    inv = 0.5 * (inv + inv.T)
    try:
        chol = np.linalg.cholesky(inv)
    except np.linalg.LinAlgError as exc:
        raise ValueError("the inverse mass matrix must be positive definite") from exc
    inv.flags.writeable = False
    chol_inv_t = np.ascontiguousarray(np.linalg.inv(chol).T)
    dim = inv.shape[0]
    velocity = inv.dot

    def sample_momentum(rng):
        return chol_inv_t.dot(rng.standard_normal(dim))

    def kinetic_energy(p):
        return 0.5 * float(p.dot(inv.dot(p)))

    return EuclideanMetric("dense", inv, sample_momentum, velocity, kinetic_energy)


class LowRankMetric(NamedTuple):
    """The inverse metric ``S (I + V diag(values - 1) V^T) S``, ``S = diag(scale)``: a diagonal
    metric with a low-rank correction (estimated by :mod:`ppl_ad.infer.adaptation.low_rank`).

    Attributes
    ----------
    scale : array, shape (d,)
        The diagonal part's standard deviations ``sigma``.
    vectors : array, shape (d, k)
        Orthonormal directions of the correction (zero columns are unused).
    values : array, shape (k,)
        The variance along each direction, relative to the diagonal scaling (1: none).
    """

    scale: object
    vectors: object
    values: object


def low_rank_velocity(metric: LowRankMetric, momentum):
    """``Sigma p``: the derivative of the kinetic energy (NumPy or JAX arrays)."""
    s, v, lam = metric
    q = s * momentum
    # ``q @ v``, not ``v.T @ q``: the same numbers, and XLA:CPU's loop code for the transposed
    # product took 1.3-1.6x as long per leapfrog step (the 100-d Gaussian, 32 directions)
    return s * (q + v @ ((lam - 1.0) * (q @ v)))


def low_rank_kinetic_energy(metric: LowRankMetric, momentum):
    """``p^T Sigma p / 2``."""
    s, v, lam = metric
    q = s * momentum
    c = q @ v
    return 0.5 * (q @ q + ((lam - 1.0) * c) @ c)


def low_rank_momentum(metric: LowRankMetric, z, xp=np):
    """A momentum ``p ~ N(0, Sigma^{-1})`` from a standard normal ``z``:
    ``S^{-1} (z + V diag(lambda^{-1/2} - 1) V^T z)``."""
    s, v, lam = metric
    return (z + v @ ((1.0 / xp.sqrt(lam) - 1.0) * (v.T @ z))) / s


def low_rank_to_dense(metric: LowRankMetric) -> np.ndarray:
    """The inverse metric as a ``d x d`` NumPy array (for results and checks)."""
    s, v, lam = (np.asarray(a, dtype=np.float64) for a in metric)
    inner = np.eye(s.shape[0]) + (v * (lam - 1.0)) @ v.T
    return s[:, None] * inner * s[None, :]


def dense_inverse_metric(inverse_mass_matrix) -> np.ndarray:
    """Any inverse metric as a NumPy array: a diagonal or dense one as it is, a
    :class:`LowRankMetric` as its ``d x d`` matrix (what results report)."""
    if isinstance(inverse_mass_matrix, LowRankMetric):
        return low_rank_to_dense(inverse_mass_matrix)
    return np.array(inverse_mass_matrix, dtype=np.float64)


def low_rank_metric(inverse_mass_matrix) -> EuclideanMetric:
    """Build the Euclidean metric of a :class:`LowRankMetric`
    (``O(d k)`` per call for ``k`` directions).

    Parameters
    ----------
    inverse_mass_matrix : LowRankMetric

    Returns
    -------
    EuclideanMetric
    """
    m = LowRankMetric(*(np.array(a, dtype=np.float64, copy=True) for a in inverse_mass_matrix))
    if not all(np.all(np.isfinite(a)) for a in m) or not (np.all(m.scale > 0) and np.all(m.values > 0)):
        raise ValueError("the low-rank metric must be finite, with positive scales and values")
    for a in m:
        a.flags.writeable = False
    dim = m.scale.shape[0]

    def sample_momentum(rng):
        return low_rank_momentum(m, rng.standard_normal(dim))

    def kinetic_energy(p):
        return float(low_rank_kinetic_energy(m, p))

    return EuclideanMetric("low_rank", m, sample_momentum, lambda p: low_rank_velocity(m, p), kinetic_energy)


def gaussian_euclidean(inverse_mass_matrix) -> EuclideanMetric:
    """Build a diagonal (1-D input), dense (2-D input) or low-rank
    (:class:`LowRankMetric`) Euclidean metric.

    Parameters
    ----------
    inverse_mass_matrix : array_like or LowRankMetric
        1-D diagonal or 2-D dense inverse mass matrix, or a low-rank one.

    Returns
    -------
    EuclideanMetric
    """
    if isinstance(inverse_mass_matrix, tuple):  # a LowRankMetric (a NamedTuple of arrays)
        return low_rank_metric(inverse_mass_matrix)
    if np.ndim(inverse_mass_matrix) == 1:
        return diagonal_metric(inverse_mass_matrix)
    return dense_metric(inverse_mass_matrix)
