"""The JAX namespace for ppl_ad.math (imported only by the JAX backends)."""

from __future__ import annotations



def build():
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import jax.scipy.linalg as jsl
    import jax.scipy.special as jss
    import jax.scipy.stats as jst

    from ppl_ad.math._namespace import Namespace, log1mexp_with

    log1mexp = log1mexp_with(jnp.where, jnp.log, jnp.expm1, jnp.log1p, jnp.exp)

    def asarray(x):
        return x if isinstance(x, (float, int)) else jnp.asarray(x)

    # scipy's conventions (0 * log(0) = 0, 0 * log1p(-1) = 0) with the right derivatives: d/dx is
    # log(y) where x = 0 < y (a Gamma or Beta shape of exactly 1), and no 0/0 = NaN where x = y = 0
    # (jax.scipy.special.xlogy's is NaN there: a Binomial probability of exactly 0). A custom_jvp
    # call, so that ppl_ad.backends._jax_rewrites still finds it in the traced program.
    def plain_xlogy(x, y):
        x = jnp.asarray(x, dtype=float)
        return x * jnp.log(jnp.where((x == 0) & (y <= 0), 1.0, y))

    def plain_xlog1py(x, y):
        x = jnp.asarray(x, dtype=float)
        return x * jnp.log1p(jnp.where((x == 0) & (y <= -1), 0.0, y))

    xlogy = jax.custom_jvp(plain_xlogy)
    xlogy.defjvp(lambda primals, tangents: jax.jvp(plain_xlogy, primals, tangents))
    xlog1py = jax.custom_jvp(plain_xlog1py)
    xlog1py.defjvp(lambda primals, tangents: jax.jvp(plain_xlog1py, primals, tangents))

    return Namespace(
        "jax",
        dict(
            asarray=asarray,
            exp=jnp.exp, log=jnp.log, log1p=jnp.log1p, expm1=jnp.expm1, sqrt=jnp.sqrt,
            square=jnp.square, abs=jnp.abs, sin=jnp.sin, cos=jnp.cos, tanh=jnp.tanh, arctan=jnp.arctan, arctan2=jnp.arctan2,
            floor=jnp.floor, isfinite=jnp.isfinite,
            erf=jss.erf, erfc=jss.erfc, gammaln=jss.gammaln, digamma=jss.digamma, i0e=jss.i0e,
            xlogy=xlogy, xlog1py=xlog1py, sigmoid=jax.nn.sigmoid, logit=jss.logit,
            log_sigmoid=jax.nn.log_sigmoid, softplus=jax.nn.softplus,
            log_ndtr=jst.norm.logcdf, log1mexp=log1mexp,
            sum=lambda x, axis: jnp.sum(x, axis=axis),
            mean=lambda x, axis: jnp.mean(x, axis=axis),
            prod=lambda x, axis: jnp.prod(x, axis=axis),
            cumsum=lambda x, axis: jnp.cumsum(x, axis=axis),
            logsumexp=lambda x, axis: jss.logsumexp(x, axis=axis),
            matmul=jnp.matmul, outer=jnp.outer, where=jnp.where, maximum=jnp.maximum,
            minimum=jnp.minimum, clip=jnp.clip,
            stack=lambda xs, axis: jnp.stack(xs, axis=axis),
            concatenate=lambda xs, axis: jnp.concatenate([jnp.atleast_1d(x) for x in xs], axis=axis),
            reshape=jnp.reshape, broadcast_to=jnp.broadcast_to,
            transpose=lambda x: jnp.swapaxes(x, -1, -2),
            diagonal=lambda x: jnp.diagonal(x, axis1=-2, axis2=-1),
            tril=lambda x, k: jnp.tril(x, k),
            cholesky=jnp.linalg.cholesky,
            solve_triangular=lambda a, b, lower: jsl.solve_triangular(a, b, lower=lower),
            zeros=jnp.zeros, ones=jnp.ones, eye=jnp.eye,
            scan=jax.lax.scan,
        ),
    )
