"""Metric adaptation: Welford (co)variance and Stan's regularisation.

This module owns the streaming estimate of the posterior variance (diagonal
metric) or covariance (dense metric) over a warmup window, with Welford's
numerically stable update, and the regularisation Stan applies before using it as
the inverse mass matrix::

    diag:   (n / (n + 5)) * var + 1e-3 * (5 / (n + 5))
    dense:  (n / (n + 5)) * cov + 1e-3 * (5 / (n + 5)) * I

which shrinks the estimate towards a small multiple of the identity when the
window holds few draws.

References
----------
Welford, B. P. (1962). Note on a method for calculating corrected sums of
squares and products. *Technometrics* 4, 419-420.

Stan Development Team. *Stan Reference Manual*, "Adaptation" (metric
estimation); ``stan::math::welford_var_estimator``, ``welford_covar_estimator``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["WelfordState", "welford_init", "welford_update", "welford_covariance", "regularized_covariance",
           "fisher_diagonal"]


class WelfordState(NamedTuple):
    """Running moments of a stream of vectors.

    Attributes
    ----------
    count : int
        Number of vectors seen.
    mean : numpy.ndarray
        Running mean (updated in place).
    m2 : numpy.ndarray
        Running sum of squared deviations: 1-D for a variance, 2-D for a
        covariance (updated in place).
    """

    count: int
    mean: np.ndarray
    m2: np.ndarray


def welford_init(dimension: int, dense: bool = False) -> WelfordState:
    """Empty estimator for vectors of length ``dimension``.

    Parameters
    ----------
    dimension : int
    dense : bool, optional
        Estimate the full covariance instead of the variances.

    Returns
    -------
    WelfordState
    """
    m2 = np.zeros((dimension, dimension) if dense else dimension)
    return WelfordState(0, np.zeros(dimension), m2)


def welford_update(state: WelfordState, x: np.ndarray) -> WelfordState:
    """Add one vector to the estimator.

    The arrays of ``state`` are updated in place; use the returned state.

    Parameters
    ----------
    state : WelfordState
    x : numpy.ndarray

    Returns
    -------
    WelfordState
    """
    count = state.count + 1
    mean, m2 = state.mean, state.m2
    delta = x - mean
    mean += delta / count
    if m2.ndim == 1:
        m2 += delta * (x - mean)
    else:
        m2 += np.outer(x - mean, delta)
    return WelfordState(count, mean, m2)


def welford_covariance(state: WelfordState) -> np.ndarray:
    """Sample variance or covariance (denominator ``n - 1``).

    Parameters
    ----------
    state : WelfordState
        With at least two vectors.

    Returns
    -------
    numpy.ndarray
    """
    if state.count < 2:
        raise ValueError("the variance needs at least two draws")
    cov = state.m2 / (state.count - 1)
    if cov.ndim == 2:
        cov = 0.5 * (cov + cov.T)
    return cov


def regularized_covariance(state: WelfordState) -> np.ndarray:
    """Stan's regularised inverse mass matrix from a window's draws.

    Parameters
    ----------
    state : WelfordState
        With at least two vectors.

    Returns
    -------
    numpy.ndarray
        ``(n/(n+5)) * cov + 1e-3 * (5/(n+5))`` times ones (diag) or the identity
        (dense).
    """
    n = float(state.count)
    cov = welford_covariance(state)
    shrink = 1e-3 * (5.0 / (n + 5.0))
    cov = (n / (n + 5.0)) * cov
    if cov.ndim == 1:
        return cov + shrink
    return cov + shrink * np.eye(cov.shape[0])


def fisher_diagonal(state: WelfordState, fallback=1.0) -> np.ndarray:
    """Diagonal inverse metric from the draws *and* their gradients (nutpie's estimator).

    ``state`` holds the moments of ``[x, grad log p(x)]`` (length ``2 d``). The inverse metric
    ``sqrt(Var(x_i) / Var(d_i log p))`` minimises the Fisher divergence between the posterior and
    a Gaussian with that diagonal covariance; for a Gaussian posterior it is the variance itself,
    and it uses the gradients the sampler computes anyway, so it converges with fewer draws than
    the sample variance. A coordinate whose ratio is not a positive finite number gets
    ``fallback``; the others are clipped to ``[1e-20, 1e20]``.

    Parameters
    ----------
    state : WelfordState
        Moments of the stacked draws and gradients, with at least two of them.
    fallback : float or numpy.ndarray, optional
        The value of a coordinate without a valid ratio (the current metric, for nutpie's
        schedule).

    Returns
    -------
    numpy.ndarray

    References
    ----------
    Seyboldt, A. et al., nutpie: "diagonal mass matrix adaptation based on draws and gradients"
    (https://github.com/pymc-devs/nutpie).
    """
    variance = welford_covariance(state)
    d = variance.shape[0] // 2
    with np.errstate(all="ignore"):
        ratio = np.sqrt(variance[:d] / variance[d:])
    return np.where(np.isfinite(ratio) & (ratio > 0), np.clip(ratio, FISHER_MIN, FISHER_MAX), fallback)


#: bounds of a :func:`fisher_diagonal` entry (nutpie's)
FISHER_MIN, FISHER_MAX = 1e-20, 1e20
