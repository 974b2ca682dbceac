"""Array namespaces: one object per array library with the functions ppl_ad.math needs.

The NumPy namespace is built eagerly (SciPy is imported on first use); the JAX, PyTorch,
autograd and SymPy namespaces are built the first time they are asked for, so importing
this module imports none of those libraries.
"""

from __future__ import annotations

import functools
import importlib
import math as _pymath

import numpy as np

__all__ = ["Namespace", "NUMPY", "namespace_for_type", "namespace_named"]


class Namespace:
    """A named bundle of array functions (``exp``, ``sum``, ``matmul``, ...).

    Parameters
    ----------
    name : str
        Library name: ``"numpy"``, ``"jax"``, ``"torch"``, ``"autograd"`` or ``"sympy"``.
    functions : dict
        Function name -> callable.
    """

    def __init__(self, name: str, functions: dict):
        self.name = name
        self.__dict__.update(functions)

    def __repr__(self) -> str:
        return f"Namespace({self.name!r})"


def _scipy_special():
    import scipy.special

    return scipy.special


def log1mexp_with(where, log, expm1, log1p, exp):
    """``log1mexp(x) = log(1 - exp(x))`` for ``x < 0`` from one library's functions (Maechler 2012,
    *Accurately Computing log(1 - exp(-|a|))*): ``log(-expm1(x))`` above ``-log 2``,
    ``log1p(-exp(x))`` below. Each branch gets a harmless argument where the other is taken, so
    the unused one's derivative (infinite as ``x -> 0`` for the second) cannot make the gradient NaN."""
    cut = -_pymath.log(2.0)

    def log1mexp(x):
        near = x > cut
        return where(near, log(-expm1(where(near, x, -1.0))), log1p(-exp(where(near, -1.0, x))))

    return log1mexp


def _numpy_namespace() -> Namespace:
    def asarray(x):
        return x if isinstance(x, (float, int, np.ndarray)) else np.asarray(x)

    stable_log1mexp = log1mexp_with(np.where, np.log, np.expm1, np.log1p, np.exp)

    def log1mexp(x):
        with np.errstate(divide="ignore"):
            return stable_log1mexp(np.asarray(x, dtype=float))

    def solve_triangular(a, b, lower):
        import scipy.linalg

        return scipy.linalg.solve_triangular(a, b, lower=lower)

    def logsumexp(x, axis):
        return _scipy_special().logsumexp(x, axis=axis)

    return Namespace("numpy", {name: _keeping_subclass(fn) for name, fn in dict(
            asarray=asarray,
            exp=np.exp, log=np.log, log1p=np.log1p, expm1=np.expm1, sqrt=np.sqrt,
            square=np.square, abs=np.abs, sin=np.sin, cos=np.cos, tanh=np.tanh, arctan=np.arctan,
            floor=np.floor, isfinite=np.isfinite,
            erf=lambda x: _scipy_special().erf(x),
            erfc=lambda x: _scipy_special().erfc(x),
            gammaln=lambda x: _scipy_special().gammaln(x),
            digamma=lambda x: _scipy_special().digamma(x),
            i0e=lambda x: _scipy_special().i0e(x),
            xlogy=lambda x, y: _scipy_special().xlogy(x, y),
            xlog1py=lambda x, y: _scipy_special().xlog1py(x, y),
            sigmoid=lambda x: _scipy_special().expit(x),
            logit=lambda x: _scipy_special().logit(x),
            log_sigmoid=lambda x: -np.logaddexp(0.0, -np.asarray(x)),
            softplus=lambda x: np.logaddexp(0.0, x),
            log_ndtr=lambda x: _scipy_special().log_ndtr(x),
            log1mexp=log1mexp,
            sum=lambda x, axis: np.sum(x, axis=axis),
            mean=lambda x, axis: np.mean(x, axis=axis),
            prod=lambda x, axis: np.prod(x, axis=axis),
            cumsum=lambda x, axis: np.cumsum(x, axis=axis),
            logsumexp=logsumexp,
            matmul=np.matmul, outer=np.outer, where=np.where, maximum=np.maximum, arctan2=np.arctan2,
            minimum=np.minimum, clip=np.clip,
            stack=lambda xs, axis: np.stack(xs, axis=axis),
            concatenate=lambda xs, axis: np.concatenate([np.atleast_1d(x) for x in xs], axis=axis),
            reshape=np.reshape, broadcast_to=np.broadcast_to,
            transpose=lambda x: np.swapaxes(x, -1, -2),
            diagonal=lambda x: np.diagonal(x, axis1=-2, axis2=-1),
            tril=lambda x, k: np.tril(x, k),
            cholesky=np.linalg.cholesky, solve_triangular=solve_triangular,
            zeros=np.zeros, ones=np.ones, eye=np.eye,
        ).items()})


def _subclass_in(args):
    """The ndarray subclass of the first argument (or element of a list or tuple argument) that
    is one, else None."""
    for arg in args:
        for item in (arg if isinstance(arg, (list, tuple)) else (arg,)):
            if isinstance(item, np.ndarray) and type(item) is not np.ndarray:
                return type(item)
    return None


def _keeping_subclass(function):
    """``function`` whose result keeps the ndarray subclass of its inputs. Compiling a model marks
    the values that depend on parameters with one (``ppl_ad.model.handlers._Traced``), so that they
    are not validated as constants; ``np.where``, ``np.stack``, ``np.asarray`` or SciPy's functions
    return plain arrays, and ``Poisson(M.where(b > 5, 1.0, b * b))`` was refused at the
    compilation's parameter values (``lam = 0``)."""

    @functools.wraps(function)
    def keeping(*args, **kwargs):
        out = function(*args, **kwargs)
        subclass = _subclass_in(args)
        if subclass is None or isinstance(out, subclass):
            return out
        return np.asarray(out).view(subclass)

    return keeping


NUMPY = _numpy_namespace()

# Library top-level module -> module that builds its namespace (``build()``).
_BUILDERS = {
    "jax": "ppl_ad.math._jax",
    "jaxlib": "ppl_ad.math._jax",
    "torch": "ppl_ad.math._torch",
    "torch-numpy": "ppl_ad.math._torch:build_numpy_interop",
    "autograd": "ppl_ad.math._autograd",
    "sympy": "ppl_ad.math._sympy",
}
_CACHE: dict[str, Namespace] = {"numpy": NUMPY}


def namespace_named(name: str) -> Namespace:
    """Return the namespace of library ``name`` (building it, and importing it, if needed)."""
    namespace = _CACHE.get(name)
    if namespace is None:
        if name not in _BUILDERS:
            raise ValueError(
                f"ppl_ad.math has no namespace {name!r}; known: "
                f"{sorted(set(_BUILDERS) - {'jaxlib', 'torch-numpy'} | {'numpy'})}"
            )
        module, _, builder = _BUILDERS[name].partition(":")
        namespace = getattr(importlib.import_module(module), builder or "build")()
        _CACHE[name] = namespace
        if name == "jax":
            _CACHE["jaxlib"] = namespace
    return namespace


def namespace_for_type(cls: type) -> Namespace:
    """Return the namespace for values of type ``cls`` (NumPy for unknown types).

    A class may name its namespace in a ``_ppl_ad_namespace`` attribute (ppl_ad's own array
    subclasses); otherwise the top-level module of the class decides.
    """
    named = getattr(cls, "_ppl_ad_namespace", None)
    if isinstance(named, str):
        return namespace_named(named)
    top = (cls.__module__ or "").partition(".")[0]
    if top in _BUILDERS:
        return namespace_named(top)
    return NUMPY
