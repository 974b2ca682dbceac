"""Bijections from the unconstrained space to each support, with their log-Jacobians.

:func:`biject_to` is the registry from a :mod:`ppl_ad.constraints` constraint to a transform,
following the Stan Reference Manual, chapter "Constraint Transforms": log for lower bounds,
scaled logit for intervals (bounds may be other parameters), stick-breaking for the simplex,
and canonical partial correlations (tanh) for Cholesky factors of correlation matrices.

``forward`` and ``log_abs_det_jacobian`` run inside every log-density evaluation and use
:mod:`ppl_ad.math`, so they work on NumPy, JAX, PyTorch and autograd arrays. ``inverse`` is
used only to turn user values into unconstrained vectors and works on NumPy arrays.
"""

from __future__ import annotations

import math as _pymath

import numpy as np

from ppl_ad import constraints as C
from ppl_ad import math as M

__all__ = [
    "Transform", "Identity", "Exp", "LowerBound", "UpperBound", "Interval", "StickBreaking",
    "CorrCholeskyTransform", "Ordered", "PositiveOrdered", "ordered", "positive_ordered", "biject_to",
    "site_transform",
]


class Transform:
    """A bijection ``x = forward(u)`` from unconstrained ``u`` to the constrained ``x``.

    ``log_abs_det_jacobian(u, x)`` is summed over the event dimensions, so its shape is the
    batch shape.
    """

    def forward(self, u):
        raise NotImplementedError

    def inverse(self, x):
        raise NotImplementedError

    #: whether a value may have batch axes before the event axes (a stack of independent values)
    batched = True

    def log_abs_det_jacobian(self, u, x):
        raise NotImplementedError

    def unconstrained_shape(self, shape: tuple) -> tuple:
        """Shape of ``u`` for a constrained value of ``shape``."""
        return tuple(shape)

    @property
    def is_logit(self) -> bool:
        """Whether this is ``x = sigmoid(u)`` onto ``(0, 1)`` (distributions on the unit interval
        may then compute their log density from ``u``: ``log_prob_logit``)."""
        return False

    def __repr__(self) -> str:
        return type(self).__name__


class Identity(Transform):
    """The identity, for real-valued sites (log-Jacobian 0)."""

    def forward(self, u):
        return u

    def inverse(self, x):
        return np.asarray(x, dtype=float)

    def log_abs_det_jacobian(self, u, x):
        return 0.0


class LowerBound(Transform):
    """``x = lower + exp(u)``; log-Jacobian ``u``."""

    def __init__(self, lower=0.0):
        self.lower = lower

    def forward(self, u):
        return M.exp(u) if _is_zero(self.lower) else self.lower + M.exp(u)

    def inverse(self, x):
        return np.log(np.asarray(x, dtype=float) - np.asarray(self.lower))

    def log_abs_det_jacobian(self, u, x):
        return u


Exp = LowerBound


class UpperBound(Transform):
    """``x = upper - exp(u)``; log-Jacobian ``u``."""

    def __init__(self, upper):
        self.upper = upper

    def forward(self, u):
        return self.upper - M.exp(u)

    def inverse(self, x):
        return np.log(np.asarray(self.upper) - np.asarray(x, dtype=float))

    def log_abs_det_jacobian(self, u, x):
        return u


class Interval(Transform):
    """``x = lower + (upper - lower) * sigmoid(u)``.

    Log-Jacobian ``log(upper - lower) + log_sigmoid(u) + log_sigmoid(-u)``; the first term
    matters when a bound is another parameter (posteriordb's garch model).
    """

    def __init__(self, lower, upper):
        self.lower = lower
        self.upper = upper

    def forward(self, u):
        s = M.sigmoid(u)
        if _is_zero(self.lower) and _is_one(self.upper):
            return s
        return self.lower + (self.upper - self.lower) * s

    def inverse(self, x):
        lower, upper = np.asarray(self.lower), np.asarray(self.upper)
        s = (np.asarray(x, dtype=float) - lower) / (upper - lower)
        return np.log(s) - np.log1p(-s)

    @property
    def is_logit(self) -> bool:
        return _is_zero(self.lower) and _is_one(self.upper)

    def log_abs_det_jacobian(self, u, x):
        out = M.log_sigmoid(u) + M.log_sigmoid(-u)
        if _is_zero(self.lower) and _is_one(self.upper):
            return out
        return out + M.log(self.upper - self.lower)


class StickBreaking(Transform):
    """Stan's stick-breaking map from ``R^(K-1)`` to the ``K``-simplex (last axis)."""

    def forward(self, u):
        return self._forward_and_log_det(u)[0]

    def _forward_and_log_det(self, u):
        k = u.shape[-1]
        offset = np.log(np.arange(k, 0, -1, dtype=float))  # log(K - k) for k = 1..K-1
        v = u - M.asarray(offset)
        log_z = M.log_sigmoid(v)
        log_1mz = M.log_sigmoid(-v)
        cum = M.cumsum(log_1mz, -1)
        zero = M.zeros(tuple(u.shape[:-1]) + (1,))
        log_rest = M.concatenate([zero, cum], -1)  # log of the remaining stick, K entries
        x = M.exp(M.concatenate([log_z, zero], -1) + log_rest)
        log_det = M.sum(log_z + log_1mz + log_rest[..., :-1], -1)
        return x, log_det

    def inverse(self, x):
        x = np.asarray(x, dtype=float)
        k = x.shape[-1] - 1
        rest = 1.0 - np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x[..., :-1], -1)], -1)
        z = x[..., :-1] / rest[..., :-1]
        return np.log(z) - np.log1p(-z) + np.log(np.arange(k, 0, -1, dtype=float))

    def log_abs_det_jacobian(self, u, x):
        return self._forward_and_log_det(u)[1]

    def unconstrained_shape(self, shape):
        return tuple(shape[:-1]) + (shape[-1] - 1,)


class CorrCholeskyTransform(Transform):
    """Stan's map from ``R^(n(n-1)/2)`` to Cholesky factors of ``n`` x ``n`` correlations.

    ``z = tanh(u)`` are canonical partial correlations; row ``i`` of ``L`` is
    ``L[i, j] = z[i, j] * sqrt(1 - sum_{k<j} L[i, k]^2)`` and ``L[i, i]`` closes the unit norm.
    Only a single matrix (no batch) is supported (``batched = False``: a site asking for a batch is
    refused when the model is compiled).

    The remaining norm ``1 - sum_{k<j} L[i, k]^2 = prod_{k<j} (1 - z[i, k]^2)`` is kept as a log,
    with ``log(1 - tanh(u)^2) = 2 (log 2 - |u| - log1p(exp(-2 |u|)))``: ``1 - z^2`` computed from a
    rounded ``z`` loses every digit as ``|z| -> 1`` (``-inf`` from ``|u| = 19.1``).
    """

    batched = False

    def forward(self, u):
        return self._forward_and_log_det(u)[0]

    def _forward_and_log_det(self, u):
        m = u.shape[-1]
        n = int(round((1 + _pymath.sqrt(1 + 8 * m)) / 2))
        z = M.tanh(u)
        magnitude = M.abs(u)
        log1m_z2 = 2.0 * (_pymath.log(2.0) - magnitude - M.log1p(M.exp(-2.0 * magnitude)))
        log_det = M.sum(log1m_z2)
        rows = [[1.0] + [0.0] * (n - 1)]
        index = 0
        for i in range(1, n):
            row = []
            log_remaining = 0.0
            for _ in range(i):
                row.append(z[index] * M.exp(0.5 * log_remaining))
                log_det = log_det + 0.5 * log_remaining
                log_remaining = log_remaining + log1m_z2[index]
                index += 1
            row.append(M.exp(0.5 * log_remaining))
            rows.append(row + [0.0] * (n - i - 1))
        matrix = M.stack([M.stack(r) for r in rows])
        return matrix, log_det

    def inverse(self, x):
        x = np.asarray(x, dtype=float)
        n = x.shape[-1]
        out = []
        for i in range(1, n):
            remaining = 1.0
            for j in range(i):
                out.append(np.arctanh(x[i, j] / np.sqrt(remaining)))
                remaining -= x[i, j] ** 2
        return np.array(out)

    def log_abs_det_jacobian(self, u, x):
        return self._forward_and_log_det(u)[1]

    def unconstrained_shape(self, shape):
        n = shape[-1]
        return (n * (n - 1) // 2,)


class Ordered(Transform):
    """Stan's ``ordered[K]``: ``x[0] = u[0]``, ``x[k] = x[k-1] + exp(u[k])`` along the last axis.

    Log-Jacobian ``sum(u[1:])``. Chosen with ``pa.sample(name, distribution, shape=K,
    transform="ordered")`` for a distribution on the real line: the site's density is then the
    distribution's density restricted to increasing vectors (Stan Reference Manual, "Ordered
    vector"), e.g. the cutpoints of an ordinal regression or the means of a mixture.
    """

    #: the support of the values this transform produces
    constraint = C.ordered_vector
    #: the distribution supports whose density may be restricted to :attr:`constraint`
    domains = (C._Real, C._RealVector)

    def forward(self, u):
        first = u[..., :1]
        if u.shape[-1] == 1:
            return first
        return M.concatenate([first, first + M.cumsum(M.exp(u[..., 1:]), -1)], -1)

    def inverse(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.concatenate([x[..., :1], np.log(np.diff(x, axis=-1))], -1)

    def log_abs_det_jacobian(self, u, x):
        return M.sum(u[..., 1:], -1) if u.shape[-1] > 1 else M.zeros(tuple(u.shape[:-1]))


class PositiveOrdered(Ordered):
    """Stan's ``positive_ordered[K]``: ``x = cumsum(exp(u))`` along the last axis.

    Log-Jacobian ``sum(u)``. For a distribution on the real line or the positive half-line
    (``transform="positive_ordered"``): ordered rates, scales or change points.
    """

    constraint = C.positive_ordered_vector
    domains = (C._Real, C._RealVector, C._Positive)

    def forward(self, u):
        return M.cumsum(M.exp(u), -1)

    def inverse(self, x):
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(np.diff(x, axis=-1, prepend=0.0))

    def log_abs_det_jacobian(self, u, x):
        return M.sum(u, -1)


ordered = Ordered()
positive_ordered = PositiveOrdered()

#: the transforms a site may ask for with ``transform=``, by name
SITE_TRANSFORMS = {"ordered": ordered, "positive_ordered": positive_ordered}


def site_transform(transform, support, where: str):
    """The transform a site asked for with ``transform=`` (a name or one of this module's instances).

    Parameters
    ----------
    transform : str or Transform
        ``"ordered"`` or ``"positive_ordered"`` (or :data:`ordered`, :data:`positive_ordered`).
    support : ppl_ad.constraints.Constraint
        The distribution's support; the transform's values must lie in it.
    where : str
        ``"model 'm', site 'c'"``, for the error.

    Raises
    ------
    ValueError
        An unknown transform, or one whose values leave the distribution's support; the message
        names the site and the transforms it may use.
    """
    chosen = SITE_TRANSFORMS.get(transform) if isinstance(transform, str) else transform
    if not isinstance(chosen, Ordered):
        foreign = type(transform).__name__.lower()
        hint = (f" (for {type(transform).__name__} from another library, pass transform='ordered')"
                if "ordered" in foreign else "")
        raise ValueError(
            f"{where}: transform={transform!r} is not one of {sorted(SITE_TRANSFORMS)}{hint}; other supports "
            "take their transform from the distribution (a positive distribution is sampled on the log scale)"
        )
    if type(support) not in chosen.domains:
        fits = [name for name, t in SITE_TRANSFORMS.items() if type(support) in t.domains]
        raise ValueError(
            f"{where}: transform={transform!r} gives {chosen.constraint!r} values, outside the "
            f"distribution's support {support!r}"
            + (f"; use transform={fits[0]!r}" if fits else "; it needs a distribution on the real line")
        )
    return chosen


def _is_zero(value) -> bool:
    return isinstance(value, (int, float)) and value == 0


def _is_one(value) -> bool:
    return isinstance(value, (int, float)) and value == 1


def biject_to(constraint: C.Constraint) -> Transform:
    """Return the transform from the unconstrained space onto ``constraint``.

    Raises
    ------
    TypeError
        For a discrete constraint (discrete parameters cannot be sampled with HMC).
    """
    cls = type(constraint)
    if cls in (C._Real, C._RealVector):
        return _IDENTITY
    if cls is C._Positive:
        return _POSITIVE
    if cls is C._UnitInterval:
        return _UNIT
    if cls is C._GreaterThan:
        return LowerBound(constraint.lower)
    if cls is C._LessThan:
        return UpperBound(constraint.upper)
    if cls is C._Interval:
        return Interval(constraint.lower, constraint.upper)
    if cls is C._Simplex:
        return _SIMPLEX
    if cls is C._CorrCholesky:
        return _CORR_CHOLESKY
    raise TypeError(f"no bijection to the support {constraint!r}: discrete parameters cannot be sampled")


_IDENTITY = Identity()
_POSITIVE = LowerBound(0.0)
_UNIT = Interval(0.0, 1.0)
_SIMPLEX = StickBreaking()
_CORR_CHOLESKY = CorrCholeskyTransform()
