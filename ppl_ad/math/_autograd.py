"""The HIPS autograd namespace for ppl_ad.math (imported only by the autograd backend)."""

from __future__ import annotations



def build():
    import autograd.numpy as anp
    import autograd.scipy.linalg as asl
    import autograd.scipy.special as ass
    import autograd.scipy.stats.norm as anorm
    import numpy as np
    from autograd.extend import defvjp, primitive
    from autograd.tracer import getval

    from ppl_ad.math._namespace import Namespace, log1mexp_with

    log1mexp = log1mexp_with(anp.where, anp.log, anp.expm1, anp.log1p, anp.exp)

    def asarray(x):
        return x if isinstance(x, (float, int)) else anp.asarray(x) if not hasattr(x, "_value") else x

    def broadcast_to(x, shape):
        # autograd's broadcast_to gradient cannot add leading axes: add them with a reshape.
        extra = len(shape) - anp.ndim(x)
        if extra > 0:
            x = anp.reshape(x, (1,) * extra + tuple(anp.shape(x)))
        return anp.broadcast_to(x, shape)

    def log_sigmoid(x):
        return -anp.logaddexp(0.0, -x)

    # scipy's conventions 0 * log(0) = 0 and 0 * log1p(-1) = 0, with a finite gradient there (a bare
    # x * log(y) is nan at x = y = 0): where x == 0 and y is at (or past) the pole, y becomes 1
    # (0 for log1p), which the factor x then cancels; elsewhere y is left alone, so that d/dx is
    # log(y) where x = 0 < y (a Gamma or Beta shape of exactly 1). Arithmetic, not anp.where:
    # autograd's where does not sum its gradient back to a broadcast operand's shape.
    def xlogy(x, y):
        pole = (np.asarray(getval(x)) == 0) & (np.asarray(getval(y)) <= 0)  # a constant mask
        return x * anp.log(y + pole * (1.0 - y))

    def xlog1py(x, y):
        pole = (np.asarray(getval(x)) == 0) & (np.asarray(getval(y)) <= -1)
        return x * anp.log1p(y - pole * y)

    @primitive
    def prod(x, axis=None):
        return np.prod(x, axis=axis)

    def prod_vjp(ans, x, axis=None):
        # the product of the other factors (exclusive products from both sides), not ans / x,
        # which is 0 / 0 = NaN where a factor is 0 (autograd's own)
        def vjp(g):
            if axis is None:
                return g * _others(np.ravel(x), 0).reshape(np.shape(x))
            return np.expand_dims(g, axis) * _others(x, axis)
        return vjp

    defvjp(prod, prod_vjp)

    def where(condition, x, y):
        # autograd's where does not sum a broadcast operand's gradient back to its shape (a
        # scalar parameter against a vector of data: the changepoint model): broadcast first
        shape = np.broadcast_shapes(*(np.shape(getval(v)) for v in (condition, x, y)))
        x, y = (v if np.shape(getval(v)) == shape else broadcast_to(v, shape) for v in (x, y))
        return anp.where(condition, x, y)

    def diagonal(x):
        # by indexing: autograd's gradient of anp.diagonal assumes a square matrix
        n = min(np.shape(getval(x))[-2:])
        index = np.arange(n)
        return x[..., index, index]

    return Namespace(
        "autograd",
        dict(
            asarray=asarray,
            exp=anp.exp, log=anp.log, log1p=anp.log1p, expm1=anp.expm1, sqrt=anp.sqrt,
            square=anp.square, abs=anp.abs, sin=anp.sin, cos=anp.cos, tanh=anp.tanh, arctan=anp.arctan, arctan2=anp.arctan2,
            floor=anp.floor, isfinite=anp.isfinite,
            erf=ass.erf, erfc=ass.erfc, gammaln=ass.gammaln, digamma=ass.digamma, i0e=lambda x: ass.ive(0.0, x),
            xlogy=xlogy, xlog1py=xlog1py,
            sigmoid=ass.expit, logit=ass.logit, log_sigmoid=log_sigmoid,
            softplus=lambda x: anp.logaddexp(0.0, x),
            log_ndtr=anorm.logcdf, log1mexp=log1mexp,
            sum=lambda x, axis: anp.sum(x, axis=axis),
            mean=lambda x, axis: anp.mean(x, axis=axis),
            prod=lambda x, axis: prod(x, axis) if axis is None or isinstance(axis, (int, np.integer)) else anp.prod(
                x, axis=axis),
            cumsum=lambda x, axis: anp.cumsum(x, axis=axis),
            logsumexp=lambda x, axis: ass.logsumexp(x, axis=axis),
            matmul=anp.matmul, outer=anp.outer, where=where, maximum=anp.maximum,
            minimum=anp.minimum, clip=anp.clip,
            stack=lambda xs, axis: anp.stack(xs, axis=axis),
            concatenate=lambda xs, axis: anp.concatenate([anp.atleast_1d(x) for x in xs], axis=axis),
            reshape=anp.reshape, broadcast_to=broadcast_to,
            transpose=lambda x: anp.swapaxes(x, -1, -2),
            diagonal=diagonal,
            tril=lambda x, k: anp.tril(x, k),
            cholesky=anp.linalg.cholesky,
            solve_triangular=lambda a, b, lower: asl.solve_triangular(a, b, lower=lower),
            zeros=anp.zeros, ones=anp.ones, eye=anp.eye,
        ),
    )


def _others(x, axis: int):
    """Per element of ``x``, the product of the other elements along ``axis`` (NumPy)."""
    import numpy as np

    x = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    ones = np.ones(x.shape[:-1] + (1,))
    left = np.concatenate([ones, np.cumprod(x[..., :-1], axis=-1)], axis=-1)
    right = np.concatenate([np.cumprod(x[..., :0:-1], axis=-1)[..., ::-1], ones], axis=-1)
    return np.moveaxis(left * right, -1, axis)
