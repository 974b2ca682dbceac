"""A diagonal metric with a low-rank correction, estimated from draws and their gradients.

This module owns ``metric="low_rank"``: nutpie's *low-rank modified mass matrix* (Seyboldt,
nuts-rs ``transform/adapt/low_rank.rs``), for posteriors whose parameters are correlated, where
a diagonal metric leaves the sampler with a badly conditioned target (the 100-d Gaussian of
the benchmarks: condition number 39 after the best diagonal scaling) and a dense one needs far
more warmup draws than dimensions before its estimate is any good.

From a window of ``n`` draws ``x_i`` and their gradients ``g_i = grad log p(x_i)``:

1. a diagonal scaling ``sigma = (Var x / Var g) ** (1/4)`` per coordinate (nutpie's diagonal,
   :func:`~ppl_ad.infer.adaptation.fisher_diagonal`, is ``sigma ** 2``); the draws become
   ``(x - mean x) / sigma`` and the gradients ``(g - mean g) * sigma``;
2. the subspace spanned by both (at most ``2 n`` dimensions: all of them when ``2 n >= d``);
3. in it, the covariance of the scaled draws ``C_x`` and of the scaled gradients ``C_g``, each
   regularised as ``C + epsilon v I`` with ``v`` its mean variance per coordinate and
   ``epsilon`` fading as the window grows past the dimension (below); for a Gaussian target ``C_x`` estimates the covariance and
   ``C_g`` its inverse, so their geometric mean
   ``C_x # C_g^{-1} = C_g^{-1/2} (C_g^{1/2} C_x C_g^{1/2})^{1/2} C_g^{-1/2}`` estimates the covariance
   from both (Bhatia 2007, ch. 4);
4. its eigenvalues ``lambda`` outside ``[1 / cutoff, cutoff]`` with their eigenvectors ``V``
   are kept (the others become 1: no correction), at most :data:`MAX_RANK` of them, those
   farthest from 1.

Where ppl_ad departs from nuts-rs, and why (measured with 3 seeds, 4 chains of 500 + 500):

* ``epsilon = 0.02`` relative to the mean scaled variance ``v``, where nuts-rs adds
  ``gamma / n`` with ``gamma = 1e-5`` in absolute units. With fewer window draws than
  dimensions (the hierarchical Poisson model: d = 203, about 195 draws), some directions carry
  draws but no gradient variance, or the reverse, and the geometric mean gives them variances
  about ``1 / sqrt(gamma / n)`` times too large or small: one chain in three then accepted
  16 % of its proposals. An absolute ``epsilon`` is no better far from the typical set, where
  the first windows are: a chain that started in the tail of that model, with gradients in
  the thousands, estimated variances of 1e-16 along such directions after 3 draws and never
  left (1023 leapfrog steps per draw to the end). Relative to ``v``, the estimate along a
  direction without draw (or gradient) variance is bounded by ``sqrt(epsilon)`` (or
  ``1 / sqrt(epsilon)``), about 0.14 (7). Such directions exist only while the window holds
  no more draws than dimensions, so ``epsilon`` is scaled by ``min(1, ((d + 1) / n)^4)``: a
  fixed 0.02 hid the correlation of -0.99999 of posteriordb's kilpisjarvi (min ESS 617 in
  7.9 s, against 4980 in 6.6 s with the fading one).
* At most :data:`MAX_RANK` (32) directions, where nuts-rs keeps all: each correction costs two
  ``d x k`` products per evaluation of the kinetic energy or its gradient, and the no-U-turn
  checks evaluate several per leapfrog step. With 128 directions on hierarchical Poisson a
  run took 15 s instead of 4.5 s, for the same effective sample size.
* Estimates are refreshed after each draw while the window holds at most 20 draws, then after
  every 20th draw (nuts-rs: after every draw); a full estimate costs ``O(min(d, 2 n)^3)``. On
  the 100-d Gaussian, every 10th draw made warmup 0.3 s longer for 4 chains, for the same
  effective sample size per gradient; estimating only once, at the end, needed 10 % more
  warmup gradients.

The inverse metric is then ``Sigma = S (I + V diag(lambda - 1) V^T) S`` with ``S = diag(sigma)``:
a diagonal metric where nothing stands out, a covariance estimate along the directions that do.
It costs ``O(d k)`` per leapfrog step for ``k`` kept directions, never a ``d x d`` solve.

The metric itself (:class:`~ppl_ad.infer.metrics.LowRankMetric`, its velocity, kinetic energy
and momentum draws) lives with the other metrics in :mod:`ppl_ad.infer.metrics`; this module
estimates it. The functions take the array module ``xp`` (``numpy`` or ``jax.numpy``) so that both engines
share them; everything is traceable (masks, no data-dependent shapes): the number of
directions ``k`` is fixed by the shapes, unused columns of ``V`` are zero with ``lambda = 1``.

References
----------
Seyboldt, A. et al. nutpie and nuts-rs (https://github.com/pymc-devs/nuts-rs),
``transform/adapt/low_rank.rs`` (``LowRankSettings``: ``gamma = 1e-5``, ``eigval_cutoff = 2``;
the estimator of steps 1-4).

Bhatia, R. (2007). *Positive Definite Matrices*. Princeton University Press, ch. 4 (the
geometric mean of positive definite matrices).

Betancourt, M. (2017). *A Conceptual Introduction to Hamiltonian Monte Carlo*. arXiv:1701.02434
(the metric as the inverse of the posterior covariance).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ppl_ad.infer.adaptation.mass_matrix import FISHER_MAX, FISHER_MIN
from ppl_ad.infer.metrics import LowRankMetric

__all__ = ["LowRankDraws", "EIGENVALUE_CUTOFF", "REGULARIZATION", "MAX_WINDOW", "identity",
           "fit", "directions", "window_draws",
           "window_draws_init", "refits", "MAX_RANK", "newest_rows", "SHORT_WINDOW",
           "NO_REFIT", "SHORT_REFIT", "FULL_REFIT"]

#: eigenvalues within ``[1 / EIGENVALUE_CUTOFF, EIGENVALUE_CUTOFF]`` are not corrected (nutpie's 2)
EIGENVALUE_CUTOFF = 2.0
#: ``epsilon`` of the regularisation ``C + epsilon I`` of both covariances (see the module docstring)
REGULARIZATION = 0.02
#: draws kept for the estimate (the ring's rows; nutpie's foreground window holds at most
#: about 240 with its default schedule, whatever the length of warmup)
MAX_WINDOW = 256
#: draws of the early estimates (nutpie's early windows: at most 2 x 10 draws)
SHORT_WINDOW = 20
#: most directions corrected (those whose variance differs most from the diagonal's)
MAX_RANK = 32


class LowRankDraws(NamedTuple):
    """The draws and gradients the next estimate comes from, in a ring of ``w`` rows.

    Attributes
    ----------
    positions, gradients : array, shape (w, d)
    count : int
        Draws ever entered (the newest is in row ``(count - 1) % w``).
    """

    positions: object
    gradients: object
    count: object


def directions(dim: int, window: int = MAX_WINDOW) -> int:
    """Columns of ``V``: at most the dimension of the subspace ``window`` draws and their
    gradients span, and at most :data:`MAX_RANK`."""
    return max(1, min(int(dim), 2 * int(window), MAX_RANK))


def identity(dim: int, window: int = MAX_WINDOW, xp=np) -> LowRankMetric:
    """The unit metric in the low-rank form (no correction)."""
    k = directions(dim, window)
    return LowRankMetric(xp.ones(dim), xp.zeros((dim, k)), xp.ones(k))


def window_draws_init(dim: int, window: int = MAX_WINDOW, xp=np) -> LowRankDraws:
    """An empty ring of ``window`` draws."""
    return LowRankDraws(xp.zeros((window, dim)), xp.zeros((window, dim)), xp.zeros((), dtype=np.int64))


def window_draws(ring: LowRankDraws, position, gradient, xp=np) -> LowRankDraws:
    """``ring`` with one more draw (the oldest row is overwritten when full)."""
    window = ring.positions.shape[0]
    slot = ring.count % window
    if xp is np:
        positions, gradients = ring.positions.copy(), ring.gradients.copy()
        positions[slot], gradients[slot] = position, gradient
    else:
        positions, gradients = ring.positions.at[slot].set(position), ring.gradients.at[slot].set(gradient)
    return LowRankDraws(positions, gradients, ring.count + 1)


def _recent(ring: LowRankDraws, newest: int, xp=np):
    """Weights (1 or 0) of the rows of ``ring`` that hold its ``newest`` draws (``newest`` is at
    most ``ring.count``, so rows never written, whose age is at least ``count``, are out)."""
    window = ring.positions.shape[0]
    age = (ring.count - 1 - xp.arange(window)) % window  # 0: the newest
    return (age < newest).astype(ring.positions.dtype)


def newest_rows(ring: LowRankDraws, rows: int, xp=np) -> LowRankDraws:
    """A ring of ``rows`` rows with the newest draws of ``ring`` (the early, short windows are
    estimated in a subspace of at most ``2 rows`` dimensions: cheap)."""
    window = ring.positions.shape[0]
    if rows >= window:
        return ring
    index = (ring.count - rows + xp.arange(rows)) % window  # oldest first: row j has age rows - 1 - j
    return LowRankDraws(ring.positions[index], ring.gradients[index], xp.zeros_like(ring.count) + rows)


def _sqrtm_and_inverse(a, xp):
    w, u = xp.linalg.eigh(a)
    w = xp.maximum(w, 1e-300)
    return (u * xp.sqrt(w)) @ u.T, (u / xp.sqrt(w)) @ u.T


def _geometric_mean(a, b_inverse_of, xp):
    """``a # b^{-1} = b^{-1/2} (b^{1/2} a b^{1/2})^{1/2} b^{-1/2}`` for positive definite ``a, b``."""
    b_half, b_half_inv = _sqrtm_and_inverse(b_inverse_of, xp)
    middle, _ = _sqrtm_and_inverse(b_half @ a @ b_half, xp)
    mean = b_half_inv @ middle @ b_half_inv
    return 0.5 * (mean + mean.T)


def fit(ring: LowRankDraws, newest: int, fallback: LowRankMetric, xp=np, cutoff: float = EIGENVALUE_CUTOFF,
        shrink: float = REGULARIZATION) -> LowRankMetric:
    """The low-rank metric from the ``newest`` draws of ``ring`` (see the module docstring).

    Parameters
    ----------
    ring : LowRankDraws
    newest : int
        How many of the newest draws form the window (at least 3; the window is capped by the
        ring's size).
    fallback : LowRankMetric
        The previous metric: returned when the estimate is not finite or no coordinate moved
        in the window; a coordinate that did not move keeps its scale. The result takes its
        shapes.
    xp : module, optional
        ``numpy`` or ``jax.numpy``.
    cutoff, shrink : float, optional
        See :data:`EIGENVALUE_CUTOFF` and :data:`REGULARIZATION`.

    Returns
    -------
    LowRankMetric
    """
    weights = _recent(ring, newest, xp)
    n = xp.maximum(weights.sum(), 1.0)
    # relative to the newest draw: a window whose draws are all equal (a chain that rejected
    # everything) then has exactly zero variance, not rounding noise taken for a scale
    newest_row = (ring.count - 1) % ring.positions.shape[0]
    x = (ring.positions - ring.positions[newest_row]) * weights[:, None]
    g = (ring.gradients - ring.gradients[newest_row]) * weights[:, None]
    mean_x, mean_g = weights @ x / n, weights @ g / n
    var_x = weights @ (x - mean_x) ** 2 / n
    var_g = weights @ (g - mean_g) ** 2 / n
    usable = (var_x > 0) & (var_g > 0) & xp.isfinite(var_x) & xp.isfinite(var_g)
    variance = xp.clip(xp.sqrt(xp.where(usable, var_x, 1.0) / xp.where(usable, var_g, 1.0)), FISHER_MIN, FISHER_MAX)
    scale = xp.where(usable, xp.sqrt(xp.where(usable, variance, 1.0)), fallback.scale)
    xs = (x - mean_x) / scale * weights[:, None]  # (w, d), zero rows outside the window
    gs = (g - mean_g) * scale * weights[:, None]
    (window, dim), rank = x.shape, fallback.values.shape[0]
    # the regularisation is relative to the scaled variances' level (1 for a Gaussian at its
    # typical set, anything far from it, where the first windows are), and fades once the
    # window holds more draws than dimensions (no direction then lacks draws or gradients)
    shrink = shrink * xp.minimum(1.0, ((dim + 1.0) / n) ** 4)
    level_x, level_g = (xp.maximum(xp.sum(a * a) / (n * dim), 1e-300) for a in (xs, gs))
    subspace = min(dim, 2 * window)
    if subspace < dim:  # the subspace the draws and gradients span (orthonormal columns)
        basis, _ = xp.linalg.qr(xp.concatenate([xs, gs], axis=0).T)
        xs, gs = xs @ basis, gs @ basis
    eye = xp.eye(subspace)
    mean = _geometric_mean(xs.T @ xs / n + shrink * level_x * eye, gs.T @ gs / n + shrink * level_g * eye, xp)
    values, vectors = xp.linalg.eigh(mean)
    if subspace < dim:
        vectors = basis @ vectors
    keep = (values > cutoff) | (values < 1.0 / cutoff)
    values = xp.where(keep, values, 1.0)
    if rank < subspace:  # the directions whose variance differs most from the diagonal's
        order = xp.argsort(-xp.abs(xp.log(values)))[:rank]
        values, vectors, keep = values[order], vectors[:, order], keep[order]
    elif rank > subspace:  # unused columns
        values = xp.concatenate([values, xp.ones(rank - subspace)])
        vectors = xp.concatenate([vectors, xp.zeros((dim, rank - subspace))], axis=1)
        keep = xp.concatenate([keep, xp.zeros(rank - subspace, dtype=bool)])
    vectors = xp.where(keep[None, :], vectors, 0.0)
    fine = xp.any(usable) & xp.all(xp.isfinite(values)) & xp.all(values > 0) & xp.all(xp.isfinite(vectors)) & xp.all(
        xp.isfinite(scale))
    return LowRankMetric(*(xp.where(fine, new, old) for new, old in zip((scale, vectors, values), fallback)))


#: refit codes of :func:`refits`
NO_REFIT, SHORT_REFIT, FULL_REFIT = 0, 1, 2


def refits(schedule: list[tuple[bool, bool]], every: int = 20) -> list[int]:
    """When warmup re-estimates the low-rank metric under nutpie's ``schedule``, per iteration:
    :data:`SHORT_REFIT` after each draw while the foreground estimator holds at most
    :data:`SHORT_WINDOW` draws (nutpie's early phase, whose windows switch every 10 draws: the
    estimate is cheap, :func:`newest_rows`), then :data:`FULL_REFIT` after every ``every``-th draw and the last
    one (an estimate then costs ``O(min(d, 2 n)^3)`` for ``n`` draws), else :data:`NO_REFIT`.

    Examples
    --------
    >>> from ppl_ad.infer.adaptation.window import build_nutpie_schedule
    >>> r = refits(build_nutpie_schedule(500))
    >>> r.count(SHORT_REFIT), r.count(FULL_REFIT), r[-1]
    (160, 14, 0)
    """
    entering = [i for i, (enters, _) in enumerate(schedule) if enters]
    refit = [NO_REFIT] * len(schedule)
    foreground = background = 0
    for n, (i, (_, switch)) in enumerate(zip(entering, (schedule[i] for i in entering))):
        foreground, background = foreground + 1, background + 1
        if switch:
            foreground, background = background, 0
        if foreground <= SHORT_WINDOW:
            refit[i] = SHORT_REFIT
        elif n % every == every - 1 or i == entering[-1]:
            refit[i] = FULL_REFIT
    return refit
