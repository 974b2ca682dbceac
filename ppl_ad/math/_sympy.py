"""The SymPy namespace for ppl_ad.math (imported only by the deprecated ``sympy`` backend).

Arrays are NumPy object arrays whose elements are SymPy expressions (parameters are
``sympy.Symbol`` values, data are numbers); every function works elementwise on them, so the
model's log density becomes one symbolic expression that SymPy can differentiate.

Building the expression costs time and memory proportional to the data, so the namespace
keeps an operation *budget* (see :func:`budget`): each elementwise function charges the
number of elements it creates and raises
:class:`~ppl_ad.errors.BackendCompilationError` as soon as the budget is spent, instead of
building an expression that SymPy would take minutes to differentiate.

Functions this backend cannot express symbolically (``cholesky``, ``solve_triangular``)
raise :class:`~ppl_ad.errors.BackendCompilationError` naming the function.
"""

from __future__ import annotations

import contextlib

import numpy as np

from ppl_ad.errors import BackendCompilationError

__all__ = ["build", "budget"]

# Stack of [remaining operations, limit] entries; the top one is charged.
_BUDGETS: list = []


@contextlib.contextmanager
def budget(max_operations: int):
    """Limit the number of elementwise operations created inside the block."""
    _BUDGETS.append([int(max_operations), int(max_operations)])
    try:
        yield
    finally:
        _BUDGETS.pop()


def _charge(count: int) -> None:
    if not _BUDGETS:
        return
    entry = _BUDGETS[-1]
    entry[0] -= int(count)
    if entry[0] < 0:
        raise BackendCompilationError(
            f"the symbolic log density needs more than {entry[1]} operations "
            f"(SymPy(max_operations={entry[1]})); the 'sympy' backend does not scale with "
            f"the data: use backend=\"jax\" (or backend=\"jax-forward\" for few parameters)"
        )


def build():
    import sympy

    from ppl_ad.math._namespace import Namespace

    def obj(x):
        """``x`` as a NumPy object array (scalars become 0-d arrays)."""
        if isinstance(x, np.ndarray) and x.dtype == object:
            return x
        return np.asarray(x, dtype=object) if not isinstance(x, np.ndarray) else x.astype(object)

    def out(array):
        """0-d object arrays become their single expression."""
        if isinstance(array, np.ndarray) and array.ndim == 0:
            return array[()]
        return array

    def elementwise(name, function, nargs=1):
        vectorized = np.vectorize(function, otypes=[object])

        def apply(*args):
            arrays = [obj(a) for a in args]
            _charge(max(int(np.broadcast(*arrays).size), 1) if nargs > 1 else max(arrays[0].size, 1))
            return out(vectorized(*arrays))

        apply.__name__ = name
        return apply

    def unsupported(name):
        def function(*args, **kwargs):
            raise BackendCompilationError(
                f"the deprecated 'sympy' backend does not support ppl_ad.math.{name}; "
                f"use backend=\"jax\""
            )

        function.__name__ = name
        return function

    def sym(x):
        return sympy.sympify(x) if not isinstance(x, sympy.Basic) else x

    def _log_sigmoid(x):
        # log(sigmoid(x)) = -log(1 + exp(-x))
        return -sympy.log(1 + sympy.exp(-x))

    def _softplus(x):
        return sympy.log(1 + sympy.exp(x))

    def _where(condition, x, y):
        if isinstance(condition, (bool, np.bool_)):
            return x if condition else y
        condition = sym(condition)
        if condition is sympy.true:
            return x
        if condition is sympy.false:
            return y
        return sympy.Piecewise((x, condition), (y, True))

    def _isfinite(x):
        if isinstance(x, sympy.Basic) and not x.is_number:
            return True  # a symbolic value on the unconstrained space
        return bool(np.isfinite(float(x)))

    def _maximum(a, b):
        return sympy.Max(a, b)

    def _minimum(a, b):
        return sympy.Min(a, b)

    def _log1mexp(x):
        return sympy.log(1 - sympy.exp(x))

    def _log_ndtr(x):
        return sympy.log(sympy.erfc(-x / sympy.sqrt(2)) / 2)

    def _xlogy(x, y):
        if x == 0:
            return sympy.Integer(0)
        return x * sympy.log(y)

    def _xlog1py(x, y):
        if x == 0:
            return sympy.Integer(0)
        return x * sympy.log(1 + y)

    def reduce(name, combine):
        def function(x, axis=None):
            x = obj(x)
            if x.ndim == 0:
                return x[()]
            _charge(x.size)
            if axis is None:
                return combine(list(x.ravel()))
            moved = np.moveaxis(x, axis, -1)
            flat = moved.reshape(-1, moved.shape[-1])
            result = np.empty(flat.shape[0], dtype=object)
            for i, row in enumerate(flat):
                result[i] = combine(list(row))
            return out(result.reshape(moved.shape[:-1]))

        function.__name__ = name
        return function

    def _add(items):
        return sympy.Add(*[sym(v) for v in items])

    def _mean(items):
        return _add(items) / len(items)

    def _prod(items):
        return sympy.Mul(*[sym(v) for v in items])

    def _logsumexp(items):
        return sympy.log(sympy.Add(*[sympy.exp(v) for v in items]))

    def cumsum(x, axis=-1):
        x = obj(x)
        _charge(x.size)
        moved = np.moveaxis(x, axis, -1)
        result = np.empty(moved.shape, dtype=object)
        for index in np.ndindex(moved.shape[:-1]):
            running = sympy.Integer(0)
            for j in range(moved.shape[-1]):
                running = running + moved[index + (j,)]
                result[index + (j,)] = running
        return np.moveaxis(result, -1, axis)

    def matmul(a, b):
        a, b = obj(a), obj(b)
        if a.ndim == 1 and b.ndim == 1:
            _charge(a.size)
            return _add(a * b)
        squeeze_a, squeeze_b = a.ndim == 1, b.ndim == 1
        a2 = a[None, :] if squeeze_a else a
        b2 = b[:, None] if squeeze_b else b
        if a2.ndim != 2 or b2.ndim != 2:
            raise BackendCompilationError(
                "the deprecated 'sympy' backend supports ppl_ad.math.matmul only for vectors and "
                "matrices; use backend=\"jax\""
            )
        _charge(a2.shape[0] * b2.shape[1] * a2.shape[1])
        result = np.empty((a2.shape[0], b2.shape[1]), dtype=object)
        for i in range(a2.shape[0]):
            for j in range(b2.shape[1]):
                result[i, j] = _add(a2[i, :] * b2[:, j])
        if squeeze_a:
            result = result[0]
        if squeeze_b:
            result = result[..., 0]
        return out(result)

    def outer(a, b):
        a, b = obj(a).ravel(), obj(b).ravel()
        _charge(a.size * b.size)
        return np.multiply.outer(a, b)

    def asarray(x):
        if isinstance(x, (float, int, sympy.Basic)):
            return x
        return obj(x)

    def clip(x, lower, upper):
        return _minimum_v(_maximum_v(x, lower), upper)

    _maximum_v = elementwise("maximum", _maximum, 2)
    _minimum_v = elementwise("minimum", _minimum, 2)

    def zeros(shape):
        return np.full(shape, sympy.Integer(0), dtype=object)

    def ones(shape):
        return np.full(shape, sympy.Integer(1), dtype=object)

    def eye(n):
        result = zeros((n, n))
        for i in range(n):
            result[i, i] = sympy.Integer(1)
        return result

    return Namespace(
        "sympy",
        dict(
            asarray=asarray,
            exp=elementwise("exp", sympy.exp),
            log=elementwise("log", sympy.log),
            log1p=elementwise("log1p", lambda x: sympy.log(1 + x)),
            expm1=elementwise("expm1", lambda x: sympy.exp(x) - 1),
            sqrt=elementwise("sqrt", sympy.sqrt),
            square=elementwise("square", lambda x: x**2),
            abs=elementwise("abs", sympy.Abs),
            sin=elementwise("sin", sympy.sin),
            cos=elementwise("cos", sympy.cos),
            tanh=elementwise("tanh", sympy.tanh),
            arctan=elementwise("arctan", sympy.atan),
            arctan2=elementwise("arctan2", sympy.atan2, 2),
            floor=elementwise("floor", sympy.floor),
            isfinite=elementwise("isfinite", _isfinite),
            erf=elementwise("erf", sympy.erf),
            erfc=elementwise("erfc", sympy.erfc),
            gammaln=elementwise("gammaln", sympy.loggamma),
            i0e=elementwise("i0e", lambda x: sympy.besseli(0, x) * sympy.exp(-sympy.Abs(x))),
            digamma=elementwise("digamma", sympy.digamma),
            xlogy=elementwise("xlogy", _xlogy, 2),
            xlog1py=elementwise("xlog1py", _xlog1py, 2),
            sigmoid=elementwise("sigmoid", lambda x: 1 / (1 + sympy.exp(-x))),
            logit=elementwise("logit", lambda x: sympy.log(x) - sympy.log(1 - x)),
            log_sigmoid=elementwise("log_sigmoid", _log_sigmoid),
            softplus=elementwise("softplus", _softplus),
            log_ndtr=elementwise("log_ndtr", _log_ndtr),
            log1mexp=elementwise("log1mexp", _log1mexp),
            sum=reduce("sum", _add),
            mean=reduce("mean", _mean),
            prod=reduce("prod", _prod),
            cumsum=cumsum,
            logsumexp=reduce("logsumexp", _logsumexp),
            matmul=matmul, outer=outer,
            where=elementwise("where", _where, 3),
            maximum=_maximum_v, minimum=_minimum_v, clip=clip,
            stack=lambda xs, axis: np.stack([obj(x) for x in xs], axis=axis),
            concatenate=lambda xs, axis: np.concatenate([np.atleast_1d(obj(x)) for x in xs], axis=axis),
            reshape=lambda x, shape: np.reshape(obj(x), shape),
            broadcast_to=lambda x, shape: np.broadcast_to(obj(x), shape),
            transpose=lambda x: np.swapaxes(obj(x), -1, -2),
            diagonal=lambda x: np.diagonal(obj(x), axis1=-2, axis2=-1),
            tril=lambda x, k: np.tril(obj(x), k),
            cholesky=unsupported("cholesky"),
            solve_triangular=unsupported("solve_triangular"),
            zeros=zeros, ones=ones, eye=eye,
        ),
    )

