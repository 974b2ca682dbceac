"""Where a chain starts: the log density to sample and a finite initial point.

This module owns :func:`resolve_logdensity` (a ``Model`` or an already built ``LogDensity``)
and :func:`initial_position` (uniform jitter on the unconstrained space, retried until the log
density and gradient are finite, with the sites the user gave fixed at their values). Both engines and
:func:`ppl_ad.infer.find_map.find_MAP` start here.

References
----------
Stan Development Team. *Stan Reference Manual*, "Initialization" (uniform(-2, 2) on the
unconstrained scale).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ppl_ad.errors import ConfigError, DataError, SamplingError
from ppl_ad.infer.integrators import EVALUATION_ERRORS

__all__ = ["MAX_INIT_ATTEMPTS", "resolve_logdensity", "initial_position", "initial_spec", "no_initial_point",
           "model_name"]

#: Attempts at a finite initial point with ``init="jitter"``.
MAX_INIT_ATTEMPTS = 100


# --------------------------------------------------------------------------- #
# Log density and initial points
# --------------------------------------------------------------------------- #


def _is_logdensity(obj) -> bool:
    return hasattr(obj, "logdensity_and_gradient") and hasattr(obj, "dimension")


def resolve_logdensity(model, backend=None, prepare: bool = True, jacobian: bool = True):
    """The ``LogDensity`` of ``model`` (returned as is if it already is one).

    Parameters
    ----------
    model : ppl_ad.model.Model or LogDensity
    backend : str, optional
        AD backend name; must be None when ``model`` is a ``LogDensity``.
    prepare : bool, optional
        False defers the backend's preparation to the first evaluation
        (see :func:`ppl_ad.logdensity.logdensity`).
    jacobian : bool, optional
        Whether the log density includes the log-Jacobians of the transforms (see
        :func:`ppl_ad.logdensity.logdensity`). A ``LogDensity`` built otherwise is rebuilt
        when it can be (``with_jacobian``); other objects are returned as they are.

    Returns
    -------
    LogDensity
    """
    if _is_logdensity(model):
        if backend is not None:
            raise ConfigError(
                "backend=... cannot be combined with an already built LogDensity; "
                "pass the model instead, or build the LogDensity with the backend you want"
            )
        if hasattr(model, "with_jacobian"):
            return model.with_jacobian(jacobian)
        return model
    from ppl_ad.logdensity import logdensity

    return logdensity(model, backend=backend, prepare=prepare, jacobian=jacobian)


def model_name(ld) -> str:
    model = getattr(ld, "model", None)
    return str(getattr(model, "name", None) or type(ld).__name__)


def _is_finite_point(ld, theta) -> tuple[bool, BaseException | None]:
    """Whether log density and gradient are finite at ``theta``, and the error raised if any."""
    try:
        logp, grad = ld.logdensity_and_gradient(theta)
    except EVALUATION_ERRORS as error:
        return False, error
    return bool(math.isfinite(float(logp)) and np.all(np.isfinite(grad))), None


def _failure_detail(ld, theta, error) -> str:
    sites = _non_finite_sites(ld, theta)
    detail = f"sites {sites}" if sites else "no site's value or log-density term (so: the gradient)"
    if error is not None:
        backend = getattr(getattr(ld, "backend", None), "name", "the backend")
        detail += f"; backend '{backend}' raised {type(error).__name__}: {str(error)[:300]}"
    return detail


def _non_finite_sites(ld, theta) -> list[str]:
    try:
        return list(ld.non_finite_sites(theta))
    except EVALUATION_ERRORS:
        return ["<could not be determined>"]


def _init_values(init, chain: int):
    """The model-space values ``init`` gives chain ``chain`` (None for ``"jitter"``)."""
    if isinstance(init, str):
        return None
    return init if isinstance(init, Mapping) else init[chain]


def _unconstrain(ld, init, chain: int, values, fill=None) -> np.ndarray:
    """``ld.unconstrain(values)``; with one dict per chain, an error names the chain's entry."""
    try:
        return np.asarray(ld.unconstrain(values) if fill is None else ld.unconstrain(values, fill=fill),
                          dtype=np.float64)
    except DataError as error:
        if isinstance(init, Mapping) or isinstance(init, str):
            raise
        raise DataError(f"init[{chain}] (the initial values of chain {chain}): {error}") from None


def _fixes_everything(ld, values) -> bool:
    site_shapes = getattr(ld, "site_shapes", None)
    return site_shapes is None or all(site in values for site in site_shapes)


def initial_position(ld, rng: np.random.Generator, init, chain: int = 0) -> np.ndarray:
    """A finite starting point on the unconstrained space.

    Parameters
    ----------
    ld : LogDensity
    rng : numpy.random.Generator
    init : "jitter" or dict or sequence of dicts
        ``"jitter"``: ``ld.initial_point(rng)`` (uniform(-2, 2) on the
        unconstrained space), retried up to :data:`MAX_INIT_ATTEMPTS` times until
        the log density and gradient are finite. A dict of model-space values by
        site name: those sites start there and the others are jittered as with
        ``"jitter"`` (PyMC's ``initvals``); a dict that gives every parameter is that
        point. A sequence of dicts: one per chain.
    chain : int, optional
        Chain index (for the per-chain list and error messages).

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ppl_ad.errors.DataError
        A value for an unknown site (with the closest name), of the wrong shape, or
        outside its site's support (naming the site and the support).
    SamplingError
        No finite point; the message names the model and the offending sites.
    """
    values = _init_values(init, chain)
    with np.errstate(all="ignore"):
        if values is None or not _fixes_everything(ld, values):
            return _jittered(ld, rng, chain, values, init)
        theta = _unconstrain(ld, init, chain, values)
        finite, error = _is_finite_point(ld, theta)
        if not finite:
            raise no_initial_point(ld, init, chain, theta, error)
        return theta


def initial_spec(ld, rng: np.random.Generator, init, chain: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """What ``init`` fixes of chain ``chain``'s starting point, for an engine that searches itself.

    The compiled engine draws the jitter and checks the log density inside its program (no
    separate compile of the backend's gradient): a coordinate with ``mask`` True starts at
    ``base``, the others uniform(-2, 2), retried up to :data:`MAX_INIT_ATTEMPTS` times. Partial
    initial values are the exception: a given site's unconstrained value can depend on a
    jittered one (a support that depends on another parameter), so that start is found here,
    with the backend, by :func:`initial_position`.

    Returns
    -------
    base : numpy.ndarray
        Unconstrained values of the sites ``init`` gives (0 elsewhere).
    mask : numpy.ndarray of bool
        Which coordinates are fixed (all True: a full point, tried once).

    Raises
    ------
    ppl_ad.errors.DataError, SamplingError
        As :func:`initial_position`.
    """
    dim = int(ld.dimension)
    values = _init_values(init, chain)
    if values is None:
        return np.zeros(dim), np.zeros(dim, dtype=bool)
    if _fixes_everything(ld, values):
        return _unconstrain(ld, init, chain, values), np.ones(dim, dtype=bool)
    return initial_position(ld, rng, init, chain), np.ones(dim, dtype=bool)


def no_initial_point(ld, init, chain: int, theta, error=None) -> SamplingError:
    """The error for a chain that found no finite initial point; ``theta`` is the last point tried."""
    name = model_name(ld)
    values = _init_values(init, chain)
    if values is not None and _fixes_everything(ld, values):
        return SamplingError(
            f"chain {chain}: the log density of model {name!r} or its gradient is not finite at "
            f"the initial values given in init: {_failure_detail(ld, theta, error)}."
        )
    fixed = f" with {sorted(values)} fixed by init" if values is not None else ""
    return SamplingError(
        f"chain {chain}: could not find an initial point of model {name!r} with a finite "
        f"log density and gradient after {MAX_INIT_ATTEMPTS} attempts (uniform(-2, 2) on the "
        f"unconstrained space{fixed}). Non-finite at the last attempt: {_failure_detail(ld, theta, error)}. "
        "Check the priors, supports and data of these sites, or pass init={site: value, ...}."
    )


def _jittered(ld, rng, chain, values=None, init=None) -> np.ndarray:
    """uniform(-2, 2) on the unconstrained space, the sites in ``values`` fixed, retried until finite."""
    theta, error = None, None
    for _ in range(MAX_INIT_ATTEMPTS):
        theta = np.asarray(ld.initial_point(rng), dtype=np.float64)
        if values is not None:
            theta = _unconstrain(ld, init, chain, values, fill=theta)
        finite, error = _is_finite_point(ld, theta)
        if finite:
            return theta
    raise no_initial_point(ld, values if values is not None else "jitter", chain, theta, error)
