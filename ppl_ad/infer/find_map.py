"""``find_MAP``: the mode of the log density by quasi-Newton optimisation.

This module owns :func:`find_MAP` (re-exported as ``ppl_ad.find_MAP``). It
optimises over the **unconstrained** vector with ``scipy.optimize.minimize`` and the AD
gradient (no bounds to handle), and returns the optimum mapped to model space (sampled
and deterministic sites).

By default (``jacobian=False``) the objective is the log density of the *model-space*
values, without the log-Jacobians of the constraining transforms: the transforms are a
reparametrisation of the search space only, so the result is the posterior mode in model
space, as PyMC's ``find_MAP`` and Stan's ``optimize`` (``jacobian=false``) return.
``jacobian=True`` maximises the density the sampler uses, Jacobian included: the mode of
the unconstrained density mapped back, which differs for constrained parameters (for a
scale with a log transform it is the model-space mode of ``s * p(s)``; Stan's
``optimize(jacobian=true)``, the Laplace approximation's centre).

References
----------
Stan Development Team. *CmdStan User's Guide*, "Optimization" (the ``jacobian`` argument).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping

import numpy as np

from ppl_ad._keywords import checks_keywords
from ppl_ad.errors import ConfigError, SamplingError
from ppl_ad.infer.integrators import EVALUATION_ERRORS

__all__ = ["find_MAP"]

_GRADIENT_FREE = {"nelder-mead", "powell", "cobyla", "cobyqa"}
#: ``scipy.optimize.minimize`` methods that need no Hessian (the AD backends give gradients only)
METHODS = ("L-BFGS-B", "BFGS", "CG", "Newton-CG", "TNC", "SLSQP", "trust-constr", "Nelder-Mead", "Powell",
           "COBYLA", "COBYQA")
#: An optimum further than this from the origin of the unconstrained space is treated
#: as a run towards infinity (an unbounded log density).
_UNBOUNDED = 1e8
#: relative max |gradient| above which a "converged" optimum is checked (see _past_the_line_search)
_STATIONARY = 1e-3
#: most coordinates for the gradient-free search from a point where the line search stopped
_POLISHED = 20


@checks_keywords
def find_MAP(model, backend=None, method: str = "L-BFGS-B", start=None, seed=None, jacobian: bool = False) -> dict:
    """Maximum a posteriori point estimate: the posterior mode in model space by default.

    Parameters
    ----------
    model : ppl_ad.model.Model or LogDensity
        The model with its data bound, or an already built ``LogDensity`` (a ppl_ad
        ``LogDensity`` is rebuilt with the requested ``jacobian``; any other object with
        ``logdensity_and_gradient`` is optimised as it is).
    backend : str, optional
        AD backend (None: the configured choice).
    method : str or callable, optional
        A ``scipy.optimize.minimize`` method that needs no Hessian (:data:`METHODS`), or a
        callable minimiser as ``minimize`` takes; gradient-based methods get the AD gradient.
    start : dict, optional
        Model-space starting values by site name. Sites left out start at a random
        value, uniform(-2, 2) on the unconstrained space (drawn with ``seed``), as do
        all of them by default; random values are retried until the log density and
        gradient are finite.
    seed : int, optional
        Seed of the random starting point.
    jacobian : bool, optional
        False (default): maximise the log density of the model-space values, without
        the log-Jacobians of the constraining transforms; the result is the posterior
        mode in model space (PyMC's ``find_MAP``, Stan's ``optimize``). True: maximise
        the unconstrained log density the sampler uses, Jacobians included, and map its
        mode back; for a constrained parameter this is not the model-space mode (for
        ``s ~ HalfNormal`` with a log transform it maximises ``s * p(s | y)``). For
        unconstrained parameters both are the same.

    Returns
    -------
    dict of str to numpy.ndarray
        Model-space values of the sampled and deterministic sites at the optimum.

    Raises
    ------
    ppl_ad.errors.ConfigError
        An unknown ``method`` (with the closest known one).
    ppl_ad.errors.SamplingError
        No finite starting point, the optimiser did not converge, or it ran off
        towards infinity (an unconstrained coordinate beyond 1e8: the log density
        is probably unbounded). The message gives the reason, the number of
        iterations and the gradient norm.

    Examples
    --------
    A scale with three observations: the model-space mode of ``s`` solves
    ``s**4 + 3 s**2 - 4 = 0`` (``s = 1``); with ``jacobian=True`` the density has an
    extra factor ``s`` and the mode solves ``s**4 + 2 s**2 - 4 = 0``.

    >>> @pa.model
    ... def scale(y):
    ...     s = pa.sample("s", dist.HalfNormal(1.0))
    ...     pa.observe("y", dist.Normal(0.0, s), y)
    >>> m = scale(np.array([2.0, 0.0, 0.0]))
    >>> round(float(pa.find_MAP(m, seed=0)["s"]), 4)
    1.0
    >>> round(float(pa.find_MAP(m, seed=0, jacobian=True)["s"]), 4)
    1.1118
    """
    from scipy.optimize import minimize

    from ppl_ad.infer.init import initial_position, model_name, resolve_logdensity

    if not callable(method) and (not isinstance(method, str) or method.lower() not in {m.lower() for m in METHODS}):
        lowered = [m.lower() for m in METHODS]
        key = str(method).lower().replace("_", "-")
        close = ["l-bfgs-b"] if key in ("lbfgs", "l-bfgs", "lbfgsb", "lbfgs-b") else difflib.get_close_matches(
            key, lowered, n=1, cutoff=0.5)
        hint = f" (did you mean {METHODS[lowered.index(close[0])]!r}?)" if close else ""
        raise ConfigError(f"find_MAP: unknown method={method!r}{hint}; expected one of {', '.join(METHODS)} "
                          "(scipy.optimize.minimize's methods that need no Hessian), or a callable minimiser")
    ld = resolve_logdensity(model, backend, jacobian=jacobian)
    name = model_name(ld)
    rng = np.random.default_rng(seed)
    if start is not None and not isinstance(start, Mapping):
        raise TypeError(f"find_MAP: start must be None or a dict of site values, got {type(start).__name__}")
    try:
        x0 = initial_position(ld, rng, "jitter" if start is None else start)
    except SamplingError as error:  # the sampler's words (chains, init=) for find_MAP's (start=)
        message = str(error).replace("chain 0: ", "").replace("given in init", "given in start").replace(
            "fixed by init", "fixed by start").replace("pass init=", "pass start=")
        raise SamplingError(f"find_MAP: {message}") from None

    uses_gradient = callable(method) or method.lower() not in _GRADIENT_FREE

    def negative_logp_and_grad(x):
        try:
            logp, grad = ld.logdensity_and_gradient(np.asarray(x, dtype=np.float64))
        except EVALUATION_ERRORS:
            return math.inf, np.zeros_like(x)
        logp = float(logp)
        if not math.isfinite(logp):
            return math.inf, np.zeros_like(x)
        return -logp, -np.asarray(grad, dtype=np.float64)

    def negative_logp(x):
        return negative_logp_and_grad(x)[0]

    with np.errstate(all="ignore"):
        if uses_gradient:
            result = minimize(negative_logp_and_grad, x0, jac=True, method=method)
            result, value, grad = _restarted(minimize, negative_logp_and_grad, result, method)
        else:
            result = minimize(negative_logp, x0, method=method)
            value, grad = negative_logp_and_grad(result.x)

    finite = math.isfinite(value) and bool(np.all(np.isfinite(result.x))) and bool(np.all(np.isfinite(grad)))
    grad_norm = float(np.max(np.abs(grad))) if finite and grad.size else 0.0
    # L-BFGS-B sometimes reports a line-search failure at an optimum that is only
    # limited by floating-point precision: accept it when the gradient vanishes.
    converged = finite and (result.success or (uses_gradient and grad_norm <= 1e-5 * max(1.0, abs(value))))
    on_wall = False
    if converged and uses_gradient and grad_norm > _STATIONARY * max(1.0, abs(value)):
        # "converged" with a gradient that does not vanish: the line search ran into a region
        # where the density is -inf (a support that the data bound, Uniform(0, theta)) or it is
        # unbounded. A gradient-free search from there finds the highest point before the wall.
        result, value, grad, on_wall = _past_the_line_search(negative_logp, negative_logp_and_grad, result)
        grad_norm = float(np.max(np.abs(grad))) if grad.size else 0.0
        if not on_wall:
            converged = False
            result.message = (
                f"the log density still increases from the point where {method} stopped, steepest along "
                f"{_steepest(ld, grad)}{_far_out(ld, result.x)}: it is probably unbounded there")
    if converged and float(np.max(np.abs(result.x), initial=0.0)) > _UNBOUNDED:
        converged = False
        far = np.flatnonzero(np.abs(result.x) > _UNBOUNDED)
        result.message = (
            f"the optimiser stopped at an unconstrained value beyond {_UNBOUNDED:g} ({_named(ld, far)}), so the "
            "log density is probably unbounded in that direction"
        )
    flat = _flat_coordinates(negative_logp_and_grad, result.x, grad, rng) if converged and uses_gradient else []
    if flat:
        raise SamplingError(
            f"find_MAP: the log density of model {name!r} does not change with {_named(ld, flat)} "
            "(its gradient there is exactly 0 at two points): there "
            "is no single mode, the posterior is probably improper (a flat prior the data do not inform)"
        )
    if not converged:
        raise SamplingError(
            f"find_MAP: optimising the log density of model {name!r} with {method} failed after "
            f"{getattr(result, 'nit', '?')} iterations: {result.message} "
            f"(log density {-value:.6g}, max |gradient| {grad_norm:.3g}). The posterior may be "
            "improper or unbounded; try another method or a start=... closer to the mode."
        )
    if on_wall:
        import warnings

        from ppl_ad.errors import SamplingWarning
        from ppl_ad.infer.results import user_stacklevel

        warnings.warn(
            f"find_MAP: the mode of model {name!r} lies on a wall of its support (the log density is -inf just "
            f"beyond it, where its gradient is still {grad_norm:.3g}): typically a bound set by the data, as "
            "max(y) for y ~ Uniform(0, theta). The point returned is the highest found, to about 1e-8.",
            SamplingWarning, stacklevel=user_stacklevel())
    edge = _toward_a_bound(negative_logp, result.x, value) if uses_gradient and not on_wall else []
    if edge:
        import warnings

        from ppl_ad.errors import SamplingWarning
        from ppl_ad.infer.results import user_stacklevel

        warnings.warn(
            f"find_MAP: the log density of model {name!r} keeps rising as {_model_values(ld, result.x, edge)} "
            f"move{'s' if len(edge) == 1 else ''} further towards "
            "the edge of its support: the mode lies on that edge, where a hierarchical scale at 0 typically "
            "puts it. The point returned is where the optimiser stopped, short of it; the MAP summarises such "
            "a posterior poorly: sample it (pa.sample).",
            SamplingWarning, stacklevel=user_stacklevel())
    values = ld.constrain(result.x, deterministics=True)
    return {k: np.asarray(v) for k, v in values.items()}


#: unconstrained coordinates beyond this (a scale below exp(-3) = 0.05 under a log transform) are
#: checked for a mode on the edge of the support
_EDGE_FROM = 3.0
#: how far further out the check looks (a factor exp(5) = 148 under a log transform)
_EDGE_STEP = 5.0


def _toward_a_bound(negative_logp, x, value) -> list[int]:
    """Coordinates far out on the unconstrained scale along which the log density does not fall
    when they move ``_EDGE_STEP`` further out: the supremum is at the edge (eight schools' ``tau``
    at 0), not at the point where the gradient, shrunk by the transform's Jacobian, became small."""
    x = np.asarray(x, dtype=np.float64)
    tolerance = 1e-9 * max(1.0, abs(value))
    edge = []
    for i in np.flatnonzero(np.abs(x) > _EDGE_FROM):
        further = x.copy()
        further[i] += np.sign(x[i]) * _EDGE_STEP
        if negative_logp(further) <= value + tolerance:
            edge.append(int(i))
    return edge


def _model_values(ld, x, indices, most: int = 5) -> str:
    """``"tau (now 0.00192)"``: the coordinates ``indices`` named, with the value of a scalar site."""
    names = _coordinate_names(ld)
    try:
        values = ld.constrain(x)
    except Exception:  # noqa: BLE001 - values only decorate the message
        values = {}
    shown = []
    for i in indices[:most]:
        name = names[i] if i < len(names) else f"theta[{i}]"
        value = np.asarray(values.get(name, np.nan))
        shown.append(f"{name} (now {float(value):.3g})" if value.ndim == 0 and np.isfinite(value) else name)
    return ", ".join(shown) + (f" and {len(indices) - most} others" if len(indices) > most else "")


#: most restarts of a gradient-based optimiser that stopped where the gradient does not vanish
_RESTARTS = 5


def _restarted(minimize, negative_logp_and_grad, result, method):
    """``(result, value, gradient)`` after restarting ``method`` from where it stopped, while it stops
    with a gradient that does not vanish and each restart still improves the value.

    L-BFGS-B stops when one iteration improves the value by less than ``ftol`` (relative); with a
    poor curvature estimate that happens far from the mode (a skew-normal hierarchy stopped after 13
    iterations with a gradient of 1.2). A restart forgets the estimate; at a real optimum, a wall of
    the support or an unbounded direction it gains nothing, and the checks after it decide.
    """
    value, grad = negative_logp_and_grad(result.x)
    iterations = int(getattr(result, "nit", 0) or 0)
    for _ in range(_RESTARTS):
        finite = math.isfinite(value) and bool(np.all(np.isfinite(grad)))
        if not finite or not grad.size or float(np.max(np.abs(grad))) <= _STATIONARY * max(1.0, abs(value)):
            break
        again = minimize(negative_logp_and_grad, result.x, jac=True, method=method)
        new_value, new_grad = negative_logp_and_grad(again.x)
        if not (math.isfinite(new_value) and new_value < value - 1e-12 * max(1.0, abs(value))):
            break
        iterations += int(getattr(again, "nit", 0) or 0)
        result, value, grad = again, new_value, new_grad
    result.nit = iterations
    return result, value, grad


def _flat_coordinates(negative_logp_and_grad, x, grad, rng) -> list[int]:
    """Coordinates whose gradient is exactly 0 at ``x`` and at a random nearby point: the log
    density does not depend on them (an optimum's gradient is small, not exactly 0 twice)."""
    x = np.asarray(x, dtype=np.float64)
    zero = np.flatnonzero(np.asarray(grad) == 0.0)
    if zero.size == 0:
        return []
    nearby = x + 1e-3 * (1.0 + np.abs(x)) * rng.uniform(0.5, 1.0, x.size) * rng.choice([-1.0, 1.0], x.size)
    value, other = negative_logp_and_grad(nearby)
    if not math.isfinite(value):
        return []
    return [int(i) for i in zero if other[i] == 0.0]


def _named(ld, indices, most: int = 5) -> str:
    """The flat names (``'s'``, ``'beta[2]'``) of the unconstrained coordinates ``indices``."""
    names = _coordinate_names(ld)
    indices = [int(i) for i in indices]
    which = ", ".join(names[i] if i < len(names) else f"theta[{i}]" for i in indices[:most])
    return which + (f" and {len(indices) - most} others" if len(indices) > most else "")


def _steepest(ld, grad, most: int = 3) -> str:
    """The coordinates with the largest |gradient|, named, with the gradient."""
    grad = np.asarray(grad, dtype=np.float64)
    order = np.argsort(-np.abs(grad))[:most]
    order = [i for i in order if abs(grad[i]) >= 1e-3 * abs(grad[order[0]])]
    names = _coordinate_names(ld)
    return ", ".join(f"{names[i] if i < len(names) else f'theta[{i}]'} (gradient {grad[i]:.3g})" for i in order)


def _far_out(ld, x, beyond: float = 30.0) -> str:
    """``"; far out on the unconstrained scale: 's' (-92.1)"`` for coordinates past ``beyond`` (a scale
    of exp(-30) under a log transform: a parameter running to its bound), or ``""``."""
    x = np.asarray(x, dtype=np.float64)
    far = np.flatnonzero(np.abs(x) > beyond)
    if far.size == 0:
        return ""
    names = _coordinate_names(ld)
    listed = ", ".join(f"{names[i] if i < len(names) else f'theta[{i}]'} ({x[i]:.3g})" for i in far[:5])
    return f"; far out on the unconstrained scale: {listed}" + (f" and {far.size - 5} others" if far.size > 5 else "")


def _coordinate_names(ld) -> list[str]:
    compiled = getattr(ld, "compiled", None)
    try:
        return list(compiled.flat_names()) if compiled is not None else []
    except Exception:  # noqa: BLE001 - names only decorate the message
        return []


def _past_the_line_search(negative_logp, negative_logp_and_grad, result):
    """``(result, value, gradient, on_wall)`` after a gradient-free search (Nelder-Mead) from where
    a gradient-based optimiser stopped with a gradient that does not vanish.

    ``on_wall`` is True when the point found is a maximum that a wall of -inf bounds: every small
    step along the gradient (uphill) leaves the support or goes down. Where a step goes up
    instead, or the point has run beyond ``1e2`` on the unconstrained scale (a scale of
    ``exp(-100)``: the edge of floating point, not a mode), the density is taken as unbounded.
    """
    from scipy.optimize import minimize

    x = np.asarray(result.x, dtype=np.float64)
    if x.size <= _POLISHED:  # Nelder-Mead is hopeless in many dimensions: only the verdict then
        polish = minimize(negative_logp, x, method="Nelder-Mead",
                          options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 400 * max(1, x.size)})
        if math.isfinite(polish.fun) and polish.fun <= negative_logp(x):
            result.x = polish.x
    value, grad = negative_logp_and_grad(result.x)
    if not (math.isfinite(value) and np.all(np.isfinite(grad))) or np.max(np.abs(result.x), initial=0.0) > 1e2:
        return result, value, grad, False
    uphill = -grad / max(float(np.linalg.norm(grad)), 1e-300)
    steps = (1e-9, 1e-7, 1e-5, 1e-3)
    higher = any(negative_logp(result.x + h * (1.0 + np.abs(result.x)) * uphill) < value for h in steps)
    return result, value, grad, not higher
