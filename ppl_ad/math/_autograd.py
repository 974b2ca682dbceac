"""The HIPS autograd namespace for ppl_ad.math (imported only by the autograd backend)."""

from __future__ import annotations



def build():
    import autograd.numpy as anp
    import autograd.scipy.linalg as asl
    import autograd.scipy.special as ass
    import autograd.scipy.stats.norm as anorm

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
    # x * log(y) is nan at x = y = 0): shift y by 1 where x == 0, which the factor x then cancels.
    # An addition, not anp.where: autograd's where does not sum its gradient back to a broadcast
    # operand's shape (a scalar probability against a vector of data).
    def xlogy(x, y):
        return x * anp.log(y + (x == 0))

    def xlog1py(x, y):
        return x * anp.log1p(y + (x == 0))

    return Namespace(
        "autograd",
        dict(
            asarray=asarray,
            exp=anp.exp, log=anp.log, log1p=anp.log1p, expm1=anp.expm1, sqrt=anp.sqrt,
            square=anp.square, abs=anp.abs, sin=anp.sin, cos=anp.cos, tanh=anp.tanh,
            floor=anp.floor, isfinite=anp.isfinite,
            erf=ass.erf, erfc=ass.erfc, gammaln=ass.gammaln, digamma=ass.digamma,
            xlogy=xlogy, xlog1py=xlog1py,
            sigmoid=ass.expit, logit=ass.logit, log_sigmoid=log_sigmoid,
            softplus=lambda x: anp.logaddexp(0.0, x),
            log_ndtr=anorm.logcdf, log1mexp=log1mexp,
            sum=lambda x, axis: anp.sum(x, axis=axis),
            mean=lambda x, axis: anp.mean(x, axis=axis),
            prod=lambda x, axis: anp.prod(x, axis=axis),
            cumsum=lambda x, axis: anp.cumsum(x, axis=axis),
            logsumexp=lambda x, axis: ass.logsumexp(x, axis=axis),
            matmul=anp.matmul, outer=anp.outer, where=anp.where, maximum=anp.maximum,
            minimum=anp.minimum, clip=anp.clip,
            stack=lambda xs, axis: anp.stack(xs, axis=axis),
            concatenate=lambda xs, axis: anp.concatenate([anp.atleast_1d(x) for x in xs], axis=axis),
            reshape=anp.reshape, broadcast_to=broadcast_to,
            transpose=lambda x: anp.swapaxes(x, -1, -2),
            # the same diagonal; autograd's gradient supports only axis1=-1, axis2=-2
            diagonal=lambda x: anp.diagonal(x, axis1=-1, axis2=-2),
            tril=lambda x, k: anp.tril(x, k),
            cholesky=anp.linalg.cholesky,
            solve_triangular=lambda a, b, lower: asl.solve_triangular(a, b, lower=lower),
            zeros=anp.zeros, ones=anp.ones, eye=anp.eye,
        ),
    )
