"""The modelling primitives ``sample``, ``observe``, ``deterministic`` and ``factor``.

A model is an ordinary Python function that calls these primitives. Each call is handed to
the handler on top of a small stack (the NumPyro "effect handler" design): compiling,
evaluating the log density, recording values and predictive sampling are all handlers
(:mod:`ppl_ad.model.handlers`). Outside a handler the primitives raise.
"""

from __future__ import annotations

from ppl_ad.errors import ModelError

__all__ = ["sample_site", "observe", "deterministic", "factor", "HANDLERS"]

HANDLERS: list = []


def _handler(primitive: str, name):
    if not HANDLERS:
        raise ModelError(
            f"pa.{primitive}({name!r}, ...) was called outside a model evaluation: decorate the "
            "function with @pa.model, bind its data by calling it, and pass the result to "
            "pa.logdensity / pa.sample"
        )
    return HANDLERS[-1]


def _check_name(primitive, name):
    if not isinstance(name, str) or not name:
        raise ModelError(f"pa.{primitive}: the site name must be a non-empty string, got {name!r}")


def sample_site(name: str, distribution, shape=None):
    """Declare a latent parameter ``name`` with prior ``distribution``; return its value.

    Parameters
    ----------
    name : str
        Site name, unique within the model.
    distribution : ppl_ad.distributions.Distribution
        The prior.
    shape : tuple, optional
        Shape of the parameter; defaults to the distribution's batch + event shape.
    """
    handler = HANDLERS[-1] if HANDLERS else _handler("sample", name)
    return handler.sample(name, distribution, shape)


def observe(name: str, distribution, value):
    """Condition on data: add ``distribution.logpdf(value)`` to the log density.

    Returns ``value``.
    """
    handler = HANDLERS[-1] if HANDLERS else _handler("observe", name)
    return handler.observe(name, distribution, value)


def deterministic(name: str, value):
    """Record a derived quantity ``name`` (reported with the draws); returns ``value``."""
    handler = HANDLERS[-1] if HANDLERS else _handler("deterministic", name)
    return handler.deterministic(name, value)


def factor(name: str, log_weight):
    """Add an arbitrary term to the log density (Stan's ``target +=``, PyMC's ``Potential``)."""
    handler = HANDLERS[-1] if HANDLERS else _handler("factor", name)
    return handler.factor(name, log_weight)
