"""Algebraic rewrites of a traced JAX log density: ``log(exp(x)) -> x`` and its relatives.

This module owns :func:`simplify`, which the JAX backends apply to the log density they trace
(:func:`ppl_ad.backends.jax_reverse.traceable`). Users write likelihoods the way PyMC and
NumPyro examples do, ``Poisson(M.exp(eta))`` or ``Bernoulli(M.sigmoid(eta))``; the distribution
then takes the logarithm of what the link function just exponentiated. XLA simplifies
``log(exp(x))`` in the value but not in the gradient that JAX derives from it: the gradient of
``xlogy(y, exp(eta))`` divides by ``exp(eta)`` and multiplies by it again, for every
observation. Stan users avoid this by hand with ``poisson_log`` and ``bernoulli_logit``; PyTensor
(PyMC) rewrites the graph. This module rewrites the traced program (the jaxpr) before JAX
differentiates it:

=====================================  =======================================
traced                                 rewritten
=====================================  =======================================
``log(exp(a))``                        ``a``
``log(logistic(a))``                   ``log_sigmoid(a)``
``log1p(-logistic(a))``                ``log_sigmoid(-a)``
``xlogy(x, exp(a))``                   ``x * a`` (0 where ``x == 0``)
``xlogy(x, logistic(a))``              ``x * log_sigmoid(a)`` (idem)
``xlog1py(x, -logistic(a))``           ``x * log_sigmoid(-a)`` (idem)
=====================================  =======================================

Each rewrite is exact in real arithmetic and more accurate in floating point: ``exp(a)`` that
overflows, or ``logistic(a)`` that rounds to 0 or 1, no longer turns a finite log density into
``inf - inf`` or ``log(0)``. ``xlogy``'s convention (``0 * log(y) = 0`` unless ``y`` is NaN) is
kept. Only equations of the top-level program are rewritten (not inside a nested ``jit``), and
an equation is left as traced whenever the rewrite would not reproduce its shape and dtype.
Measured on the hierarchical Poisson benchmark model (4000 observations, d = 203), one gradient
in a compiled loop: 22.4 µs before, 17.0 µs after, the same as the hand-written
``y * eta - exp(eta)``.

Set ``PPL_AD_JAX_REWRITES=0`` to trace the log density as written.

References
----------
Stan Development Team. *Stan Functions Reference*, "Poisson-log distribution" and
"Bernoulli distribution, logit parameterization".

PyTensor developers. *Graph rewriting* (``local_log_exp`` and the stabilising rewrites of
``log(sigmoid(x))``).
"""

from __future__ import annotations

import os

__all__ = ["simplify", "ENV_VAR"]

#: ``0`` (or ``false``/``no``/``off``) turns the rewrites off
ENV_VAR = "PPL_AD_JAX_REWRITES"


def enabled() -> bool:
    """Whether :func:`simplify` rewrites (the ``PPL_AD_JAX_REWRITES`` environment variable)."""
    return os.environ.get(ENV_VAR, "1").strip().lower() not in ("0", "false", "no", "off")


def simplify(fn):
    """``fn(theta, data)`` with the rewrites of the module docstring applied to its trace.

    Parameters
    ----------
    fn : callable
        ``fn(theta, data) -> scalar``, pure JAX.

    Returns
    -------
    callable
        Same signature and value (up to rounding); ``fn`` itself when the rewrites are off.
    """
    if not enabled():
        return fn
    import jax

    def simplified(theta, data):
        closed = jax.make_jaxpr(fn)(theta, data)
        (out,) = _evaluate(closed.jaxpr, closed.consts, jax.tree.leaves((theta, data)))
        return out

    simplified.__wrapped__ = fn
    return simplified


def _evaluate(jaxpr, consts, args):
    """Evaluate ``jaxpr`` by binding its primitives (as ``jax.core.eval_jaxpr``), rewriting the
    equations :func:`_rewrite` knows."""
    from jax.extend.core import Literal

    env = {}
    producers = {}  # var -> the equation that computed it (single-output equations only)

    def read(v):
        return v.val if isinstance(v, Literal) else env[v]

    def source(v, name):
        """The equation named ``name`` that produced ``v``, if any."""
        if isinstance(v, Literal):
            return None
        eqn = producers.get(v)
        return eqn if eqn is not None and eqn.primitive.name == name else None

    env.update(zip(jaxpr.constvars, consts))
    env.update(zip(jaxpr.invars, args))
    for eqn in jaxpr.eqns:
        out = _rewrite(eqn, read, source)
        if out is not None and eqn.primitive.multiple_results:  # a custom_jvp_call's one output
            out = [out]
        if out is None:
            with eqn.ctx.manager:
                out = eqn.primitive.bind(*map(read, eqn.invars), **eqn.primitive.get_bind_params(eqn.params))
        if eqn.primitive.multiple_results:
            env.update(zip(eqn.outvars, out, strict=True))
        else:
            env[eqn.outvars[0]] = out
            producers[eqn.outvars[0]] = eqn
    return [read(v) for v in jaxpr.outvars]


def _log_of(v, read, source):
    """``log(v)`` without a ``log`` when ``v`` is ``exp(a)`` (``a``) or ``logistic(a)``
    (``log_sigmoid(a)``); None otherwise."""
    import jax

    exp = source(v, "exp")
    if exp is not None:
        return read(exp.invars[0])
    logistic = source(v, "logistic")
    if logistic is not None:
        return jax.nn.log_sigmoid(read(logistic.invars[0]))
    return None


def _log1p_of(v, read, source):
    """``log1p(v)`` when ``v`` is ``-logistic(a)``: ``log_sigmoid(-a)``; None otherwise."""
    import jax

    neg = source(v, "neg")
    logistic = source(neg.invars[0], "logistic") if neg is not None else None
    if logistic is None:
        return None
    return jax.nn.log_sigmoid(-read(logistic.invars[0]))


def _special(eqn) -> str | None:
    """``"xlogy"`` or ``"xlog1py"`` for a call of ppl_ad's (:mod:`ppl_ad.math._jax`, what ``M.xlogy``
    and the distributions call) or of JAX's own ``jax.scipy.special`` function."""
    if eqn.primitive.name != "custom_jvp_call":
        return None
    info = getattr(getattr(eqn.params.get("call_jaxpr"), "jaxpr", None), "debug_info", None)
    where = str(getattr(info, "func_src_info", "") or "").replace("\\", "/")
    name = where.split(" ", 1)[0].replace("plain_", "")
    if name in ("xlogy", "xlog1py") and (("scipy" in where and "special" in where) or "ppl_ad/math/_jax" in where):
        return name
    return None


def _rewrite(eqn, read, source):
    """The rewritten output of ``eqn``, or None to bind it as traced."""
    import jax.numpy as jnp

    name = eqn.primitive.name
    if name == "log":
        out = _log_of(eqn.invars[0], read, source)
    elif name == "log1p":
        out = _log1p_of(eqn.invars[0], read, source)
    else:
        special = _special(eqn)
        if special is None or len(eqn.invars) != 2 or eqn.params.get("num_consts", 0):
            return None
        x, y = eqn.invars
        log_y = (_log_of if special == "xlogy" else _log1p_of)(y, read, source)
        if log_y is None:
            return None
        x = read(x)
        # xlogy's convention: 0 where x == 0, unless log(y) is NaN; d/dx stays log(y) there
        out = x * jnp.where((x == 0) & jnp.isneginf(log_y), jnp.zeros((), jnp.result_type(x, log_y)), log_y)
    if out is None:
        return None
    aval = eqn.outvars[0].aval
    if jnp.shape(out) != tuple(aval.shape) or jnp.result_type(out) != aval.dtype:
        try:
            out = jnp.broadcast_to(jnp.asarray(out, aval.dtype), aval.shape)
        except (TypeError, ValueError):
            return None
    return out
