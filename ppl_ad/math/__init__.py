"""Array math for models and distributions, dispatched on the array library in use.

``ppl_ad.math`` owns the small set of numerical functions that model code and the
distributions use (``exp``, ``log``, ``logsumexp``, ``gammaln``, ``matmul``, ...). Each call
is routed to the namespace of its arguments' array library: NumPy/SciPy, JAX, PyTorch,
HIPS autograd or (for the deprecated source-transform backend) SymPy object arrays. Python
numbers and NumPy arrays follow the namespace of the evaluation in progress (set by the AD
backend with :func:`using`), so constants mix freely with traced parameters.

The heavy libraries are imported only when an array of theirs is seen or an evaluation asks
for them; ``import ppl_ad`` imports none of them.
"""

from __future__ import annotations

import contextlib
import math as _pymath

import numpy as np

from ppl_ad._threads import ThreadStack
from ppl_ad.math._namespace import NUMPY, Namespace, namespace_for_type, namespace_named

__all__ = [
    "Namespace", "using", "active", "namespace_of", "pi", "inf",
    "asarray", "exp", "log", "log1p", "expm1", "sqrt", "square", "abs", "sin", "cos", "tanh", "arctan", "arctan2",
    "erf", "erfc", "gammaln", "digamma", "i0e", "xlogy", "xlog1py", "sigmoid", "log_sigmoid",
    "softplus", "logit", "log1mexp", "sum", "mean", "prod", "cumsum", "dot", "matmul",
    "logsumexp", "softmax", "log_softmax", "where", "maximum", "minimum", "clip", "stack", "concatenate", "reshape",
    "broadcast_to", "transpose", "diagonal", "cholesky", "solve_triangular", "zeros", "ones",
    "isfinite", "floor", "log_ndtr", "eye", "tril", "inv_logit", "outer", "scan",
]

pi = _pymath.pi
inf = _pymath.inf

#: namespaces of the evaluations in progress, innermost last (one stack per thread)
_state = ThreadStack(NUMPY)


def active() -> Namespace:
    """Return the namespace of the evaluation in progress (NumPy when none)."""
    return _state[-1]


@contextlib.contextmanager
def using(namespace: Namespace | str):
    """Run a block with ``namespace`` as the namespace for Python numbers and NumPy arrays.

    Parameters
    ----------
    namespace : Namespace or str
        A namespace, or its name (``"numpy"``, ``"jax"``, ``"torch"``, ``"autograd"``,
        ``"sympy"``).
    """
    if isinstance(namespace, str):
        namespace = namespace_named(namespace)
    _state.append(namespace)
    _links.append({})
    try:
        yield namespace
    finally:
        _links.pop()
        _state.pop()


def namespace_of(*values) -> Namespace:
    """Return the namespace that handles ``values``.

    The first value whose type belongs to a non-NumPy array library decides; otherwise the
    active namespace (see :func:`using`) does.
    """
    for value in values:
        ns = _BY_TYPE.get(type(value))
        if ns is None:
            ns = namespace_for_type(type(value))
            _BY_TYPE[type(value)] = ns
        if ns is not NUMPY:
            return ns
    return _state[-1]


_BY_TYPE: dict[type, Namespace] = {}


def _unary(name: str):
    numpy_function = getattr(NUMPY, name)

    def function(x):
        # Python-number constants are computed once in NumPy and stay Python floats, so
        # they cost no operation on a tape (torch, autograd) and no node in a JAX trace.
        if type(x) is float or type(x) is int:
            return float(numpy_function(x))
        return namespace_of(x).__getattribute__(name)(x)

    function.__name__ = name
    function.__qualname__ = name
    function.__doc__ = f"Elementwise ``{name}``, dispatched on the array library of ``x``."
    return function


#: per evaluation in progress, innermost last: ``id(result) -> (result, kind, argument)`` of the
#: link functions (:func:`_linked`); pushed and popped with the namespace (:func:`using` and the
#: compiled log density), so that nothing outlives the evaluation
_links = ThreadStack()


def _linked(function, kind: str):
    """``function`` that, inside an evaluation, records which argument each of its results came from."""

    def linked(x):
        out = function(x)
        if _links and type(out) is not float:
            _links[-1][id(out)] = (out, kind, x)
        return out

    linked.__name__ = linked.__qualname__ = function.__name__
    linked.__doc__ = function.__doc__
    return linked


def link_argument(value, kind: str):
    """``a`` when ``value`` is the very result of ``sigmoid(a)`` (``kind="sigmoid"``), ``exp(a)``
    (``kind="exp"``) or ``softmax(a)`` along its last axis (``kind="softmax"``) computed in the
    evaluation in progress; else None.

    The distributions use it to take the logarithm of a link function's result without forming
    it: ``Bernoulli(M.sigmoid(a))`` is evaluated as ``BernoulliLogit(a)``, ``Poisson(M.exp(a))``
    as ``PoissonLog(a)``. Where ``sigmoid(a)`` rounds to exactly 1 (``a`` past 37), ``log(1 - p)``
    would be ``-inf`` and its gradient NaN; the logit form stays finite. (The JAX backends also
    rewrite such patterns in the traced program, :mod:`ppl_ad.backends._jax_rewrites`; this works
    on every backend, for a link function's result passed to the distribution as it is.)
    """
    if not _links:
        return None
    entry = _links[-1].get(id(value))
    if entry is None or entry[0] is not value or entry[1] != kind:
        return None
    return entry[2]


exp = _linked(_unary("exp"), "exp")
log = _unary("log")
log1p = _unary("log1p")
expm1 = _unary("expm1")
sqrt = _unary("sqrt")
square = _unary("square")
abs = _unary("abs")  # noqa: A001 - mirrors numpy
sin = _unary("sin")
cos = _unary("cos")
tanh = _unary("tanh")
arctan = _unary("arctan")
erf = _unary("erf")
erfc = _unary("erfc")
gammaln = _unary("gammaln")
digamma = _unary("digamma")
i0e = _unary("i0e")
i0e.__doc__ = ("``exp(-|x|) I0(x)``, the exponentially scaled modified Bessel function of order 0 (SciPy's "
               "``i0e``): ``log I0(x) = log(i0e(x)) + |x|`` without overflow (the von Mises normaliser).")
sigmoid = _linked(_unary("sigmoid"), "sigmoid")
inv_logit = sigmoid
log_sigmoid = _unary("log_sigmoid")
softplus = _unary("softplus")
logit = _unary("logit")
log1mexp = _unary("log1mexp")


def isfinite(x):
    """Elementwise ``isfinite``, dispatched on the array library of ``x``."""
    return namespace_of(x).isfinite(x)


floor = _unary("floor")
log_ndtr = _unary("log_ndtr")
cholesky = _unary("cholesky")


def asarray(x):
    """Convert ``x`` to an array of the active namespace (Python numbers pass through)."""
    return namespace_of(x).asarray(x)


def xlogy(x, y):
    """``x * log(y)`` with the convention ``0 * log(0) = 0``."""
    return namespace_of(x, y).xlogy(x, y)


def xlog1py(x, y):
    """``x * log1p(y)`` with the convention ``0 * log1p(-1) = 0``."""
    return namespace_of(x, y).xlog1py(x, y)


def sum(x, axis=None):  # noqa: A001 - mirrors numpy
    """Sum over ``axis`` (all axes when ``None``)."""
    return namespace_of(x).sum(x, axis)


def mean(x, axis=None):
    """Mean over ``axis`` (all axes when ``None``)."""
    return namespace_of(x).mean(x, axis)


def prod(x, axis=None):
    """Product over ``axis`` (all axes when ``None``)."""
    return namespace_of(x).prod(x, axis)


def cumsum(x, axis=-1):
    """Cumulative sum along ``axis``."""
    return namespace_of(x).cumsum(x, axis)


def logsumexp(x, axis=None, keepdims: bool = False):
    """``log(sum(exp(x)))`` over ``axis`` (an int or None: every axis), computed stably;
    ``keepdims=True`` keeps the reduced axis with length 1, as NumPy's (for ``x - logsumexp(x,
    axis=-1, keepdims=True)``, a log-softmax)."""
    out = namespace_of(x).logsumexp(x, axis)
    if not keepdims:
        return out
    shape = list(np.shape(x))
    for a in range(len(shape)) if axis is None else [axis % len(shape)]:
        shape[a] = 1
    return reshape(out, shape)


def log_softmax(x, axis: int = -1):
    """``x - logsumexp(x, axis, keepdims=True)``: log-probabilities from logits along ``axis``."""
    return x - logsumexp(x, axis, keepdims=True)


def softmax(x, axis: int = -1):
    """``exp(log_softmax(x, axis))``: probabilities from logits along ``axis`` (a multinomial logit's
    ``p``); each slice sums to 1 to rounding. ``Categorical(M.softmax(eta))`` and
    ``Multinomial(n, M.softmax(eta))`` take their logarithm as ``log_softmax(eta)`` (see
    :func:`link_argument`, ``kind="softmax"``, for the last axis)."""
    out = exp(log_softmax(x, axis))
    if _links and type(out) is not float and axis % max(np.ndim(x), 1) == np.ndim(x) - 1:
        _links[-1][id(out)] = (out, "softmax", x)
    return out


def dot(a, b):
    """Dot product / matrix product of ``a`` and ``b`` (as ``numpy.dot`` for 1-D/2-D)."""
    return namespace_of(a, b).matmul(a, b)


def matmul(a, b):
    """Matrix product ``a @ b``."""
    return namespace_of(a, b).matmul(a, b)


def outer(a, b):
    """Outer product of two vectors."""
    return namespace_of(a, b).outer(a, b)


def where(condition, x, y):
    """Elementwise ``x if condition else y``."""
    return namespace_of(x, y, condition).where(condition, x, y)


def arctan2(y, x):
    """Elementwise angle of the point ``(x, y)`` in ``(-pi, pi]`` (NumPy's ``arctan2``): a direction from a
    2-vector, as in a von Mises mean direction that wraps around (see ``docs/distributions.md``)."""
    return namespace_of(y, x).arctan2(y, x)


def maximum(a, b):
    """Elementwise maximum."""
    return namespace_of(a, b).maximum(a, b)


def minimum(a, b):
    """Elementwise minimum."""
    return namespace_of(a, b).minimum(a, b)


def clip(x, lower, upper):
    """Clip ``x`` to ``[lower, upper]``; the bounds may be parameters too (then the gradient
    reaches them: ``minimum(maximum(x, lower), upper)``)."""
    if _is_number(lower) and _is_number(upper):
        return namespace_of(x).clip(x, lower, upper)
    return minimum(maximum(x, lower), upper)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.generic)) or type(value) is np.ndarray


def stack(values, axis=0):
    """Stack a sequence of arrays along a new axis."""
    return namespace_of(*values).stack(list(values), axis)


def concatenate(values, axis=0):
    """Join a sequence of arrays along an existing axis."""
    return namespace_of(*values).concatenate(list(values), axis)


def reshape(x, shape):
    """Reshape ``x`` to ``shape``."""
    return namespace_of(x).reshape(x, tuple(shape))


def broadcast_to(x, shape):
    """Broadcast ``x`` to ``shape``."""
    return namespace_of(x).broadcast_to(x, tuple(shape))


def transpose(x):
    """Swap the last two axes of ``x``."""
    return namespace_of(x).transpose(x)


def diagonal(x):
    """The diagonal of the last two axes of ``x``."""
    return namespace_of(x).diagonal(x)


def tril(x, k=0):
    """Lower triangle of a matrix."""
    return namespace_of(x).tril(x, k)


def solve_triangular(a, b, lower=True):
    """Solve ``a @ x = b`` for a triangular ``a``."""
    return namespace_of(a, b).solve_triangular(a, b, lower)


def _shape_tuple(shape) -> tuple:
    """``shape`` as a tuple of ints: an int (``zeros(3)``, as in NumPy) or a sequence of them."""
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    try:
        return tuple(int(n) for n in shape)
    except TypeError:
        raise TypeError(f"shape must be an int or a tuple of ints, got {shape!r}") from None


def zeros(shape):
    """An array of zeros in the active namespace (``shape``: an int or a tuple of ints)."""
    return active().zeros(_shape_tuple(shape))


def ones(shape):
    """An array of ones in the active namespace (``shape``: an int or a tuple of ints)."""
    return active().ones(_shape_tuple(shape))


def eye(n):
    """The ``n`` x ``n`` identity in the active namespace."""
    return active().eye(n)


def scan(f, init, xs):
    """Run ``carry, y = f(carry, x)`` over the leading axis of ``xs``, as ``jax.lax.scan``.

    For recursions in a model (time series: AR, GARCH, state-space filters). Under the JAX
    backends the loop is traced once and compiled as a loop, so compilation time does not grow
    with the length of the series (a Python ``for`` loop is unrolled into one operation per
    step); the other libraries run the loop in Python.

    Parameters
    ----------
    f : callable
        ``f(carry, x) -> (carry, y)``; pure array math (no ``pa.sample``/``pa.observe`` inside).
        The carry keeps its shape and dtype from step to step. ``carry`` and ``y`` may be tuples
        (or lists) of arrays.
    init
        The initial carry (a number, an array, or a tuple of them).
    xs : array or tuple of arrays
        The sequence; ``xs[t]`` is passed at step ``t`` (with a tuple, the tuple of every
        array's row ``t``; the arrays share their leading length).

    Returns
    -------
    (carry, ys)
        The final carry and the ``y`` of every step stacked along a new leading axis (a tuple
        of stacked arrays when ``y`` is a tuple; ``None`` when ``f`` returns ``None`` for ``y``).

    Examples
    --------
    >>> import numpy as np
    >>> from ppl_ad import math as M
    >>> M.scan(lambda c, x: (c + x, c * x), 0.0, np.array([1.0, 2.0, 3.0]))
    (np.float64(6.0), array([0., 2., 9.]))
    >>> M.scan(lambda c, xy: (c + xy[0] * xy[1], (c, -c)), 0.0, (np.ones(2), np.arange(2.0)))
    (np.float64(1.0), (array([0., 0.]), array([-0., -0.])))
    """
    namespace = namespace_of(*_leaves(init), *_leaves(xs))
    native = getattr(namespace, "scan", None)
    if native is not None:
        return native(f, init, xs)
    sequences = _leaves(xs)
    lengths = {len(x) for x in sequences}
    if len(lengths) > 1:
        raise ValueError(f"scan: the arrays of xs have different leading lengths {sorted(lengths)}")
    carry, ys = init, []
    for t in range(lengths.pop() if lengths else 0):
        carry, y = f(carry, _row(xs, t))
        ys.append(y)
    if not ys or ys[0] is None:
        return carry, None
    return carry, _stacked(namespace, ys)


def _leaves(tree) -> list:
    """The arrays of a tuple or list (nested), or ``[tree]``."""
    if isinstance(tree, (tuple, list)):
        return [leaf for item in tree for leaf in _leaves(item)]
    return [tree]


def _row(tree, t):
    if isinstance(tree, (tuple, list)):
        return type(tree)(_row(item, t) for item in tree)
    return tree[t]


def _stacked(namespace, ys):
    if isinstance(ys[0], (tuple, list)):
        return type(ys[0])(_stacked(namespace, [y[k] for y in ys]) for k in range(len(ys[0])))
    return namespace.stack(ys, 0)
