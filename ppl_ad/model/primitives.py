"""The modelling primitives ``sample``, ``observe``, ``deterministic`` and ``factor``.

A model is an ordinary Python function that calls these primitives. Each call is handed to
the handler on top of a small stack (the NumPyro "effect handler" design): compiling,
evaluating the log density, recording values and predictive sampling are all handlers
(:mod:`ppl_ad.model.handlers`). Outside a handler the primitives raise.
"""

from __future__ import annotations

import numpy as np

from ppl_ad._threads import ThreadStack
from ppl_ad.errors import DataError, ModelDefinitionError, ModelError

__all__ = ["sample_site", "observe", "deterministic", "factor", "HANDLERS"]

#: the handlers of the evaluations in progress, innermost last (one stack per thread)
HANDLERS = ThreadStack()


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


def _record_dims(handler, name, dims):
    # Only the compile handler keeps dims (a forwarding handler passes the call down).
    record = getattr(handler, "record_dims", None)
    if record is not None:
        record(name, dims)


def sample_site(name: str, distribution, shape=None, dims=None, transform=None):
    """Declare a latent parameter ``name`` with prior ``distribution``; return its value.

    Parameters
    ----------
    name : str
        Site name, unique within the model.
    distribution : ppl_ad.distributions.Distribution
        The prior.
    shape : tuple, optional
        Shape of the parameter; defaults to the distribution's batch + event shape.
    dims : str or tuple of str, optional
        A name per axis (``dims="school"``, ``dims=("group", "school")``; None for an
        unnamed axis). The InferenceData uses them for the axes of this site, and
        ``coords={"school": names}`` of :func:`ppl_ad.sample` labels them. Their number must
        match the site's number of axes; dims never set the shape.
    transform : {None, "ordered", "positive_ordered"}, optional
        Restrict the site to vectors that increase along the last axis (Stan's ``ordered[K]`` and
        ``positive_ordered[K]``, PyMC's ``transform=ordered``): the prior's density is kept on
        those vectors and the sampler works on ``x[0]`` and the logs of the gaps. ``"ordered"``
        needs a distribution on the real line, ``"positive_ordered"`` one on the real line or the
        positive half-line. None: the distribution's support decides (log for positive values,
        logit for intervals, ...). Prior predictive draws are sorted when the prior is the same for
        every element (exactly the restricted distribution), and drawn by rejection otherwise.

    Raises
    ------
    ppl_ad.errors.DataError
        ``dims`` of the wrong length, or a dimension name whose length differs between sites
        (at compile time).
    ppl_ad.errors.ModelDefinitionError
        An unknown ``transform``, or one whose values leave the distribution's support.
    """
    handler = HANDLERS[-1] if HANDLERS else _handler("sample", name)
    if shape is not None:
        shape = _checked_shape(handler, name, shape)
    value = handler.sample(name, distribution, shape, transform=transform)
    if dims is not None:
        _record_dims(handler, name, dims)
    return value


def _observed_with_shape(handler, name, distribution, value, shape):
    """``distribution`` with its batch axes widened so that its values have ``shape``."""
    shape = (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(n) for n in shape)
    model = getattr(handler, "model_name", "?")
    event = tuple(distribution.event_shape)
    batch = shape[: len(shape) - len(event)]
    natural = tuple(distribution.batch_shape) + event
    try:
        if shape[len(batch):] != event or np.broadcast_shapes(natural, shape) != shape:
            raise ValueError
        # data broadcast against the distribution in the log density; only a value to simulate
        # (prediction, NumPy parameters) needs the widened distribution
        widened = distribution.expand(batch) if value is None else distribution
    except ValueError:
        raise ModelDefinitionError(
            f"model '{model}', site '{name}': the distribution's shape {natural} does not broadcast to shape={shape} "
            f"({distribution!r}); shape may only add leading axes or widen axes of size 1") from None
    if value is not None and tuple(np.shape(value)) != shape:
        raise DataError(f"model '{model}', site '{name}': observed value of shape {tuple(np.shape(value))}, but "
                        f"shape={shape}")
    return widened


def _checked_shape(handler, name, shape):
    """``shape=`` as an int or a tuple of non-negative ints (``len(x) / 2`` is a float)."""
    items = (shape,) if isinstance(shape, (int, np.integer)) else shape
    try:
        items = tuple(items)
        valid = all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in items)
    except TypeError:
        valid = False
    if not valid:
        raise ModelDefinitionError(
            f"model '{getattr(handler, 'model_name', '?')}', site '{name}': shape={shape!r} must be an int or a "
            "tuple of non-negative ints (len(x) // 2, not len(x) / 2)")
    return shape


def observe(name: str, distribution, value, dims=None, shape=None):
    """Condition on data: add ``distribution.logpdf(value)`` to the log density.

    Parameters
    ----------
    name : str
        Site name, unique within the model.
    distribution : ppl_ad.distributions.Distribution
        The likelihood.
    value : array_like or None
        The observed data. None leaves the site unobserved: the model then serves prediction
        only (:func:`ppl_ad.sample_posterior_predictive` and
        :func:`ppl_ad.sample_prior_predictive` simulate the site with the distribution's
        shape), and :func:`ppl_ad.logdensity` / :func:`ppl_ad.sample` raise
        :class:`~ppl_ad.errors.DataError` naming the site.
    dims : str or tuple of str, optional
        A name per axis of the observed value (see :func:`sample_site`).
    shape : int or tuple of int, optional
        The shape of the site's value (PyMC's ``shape=`` of an observed variable): the
        distribution's batch axes are widened to it, as ``pa.sample``'s ``shape=`` does. For
        prediction with ``value=None`` it sets how many rows are simulated
        (``pa.observe("y", dist.MvNormal(mu, cov), None, shape=(n_new, d))``); with data it must
        be their shape.

    Returns
    -------
    The observed value (a simulated value under the predictive functions).

    Raises
    ------
    ppl_ad.errors.DataError
        Data whose shape is not ``shape``.
    ppl_ad.errors.ModelDefinitionError
        A ``shape`` the distribution's shape does not broadcast to.
    """
    handler = HANDLERS[-1] if HANDLERS else _handler("observe", name)
    if shape is not None:
        distribution = _observed_with_shape(handler, name, distribution, value, _checked_shape(handler, name, shape))
    result = handler.observe(name, distribution, value)
    if dims is not None:
        _record_dims(handler, name, dims)
    return result


def deterministic(name: str, value, dims=None):
    """Record a derived quantity ``name`` (reported with the draws); returns ``value``.

    ``dims`` names its axes, as for :func:`sample_site`.
    """
    handler = HANDLERS[-1] if HANDLERS else _handler("deterministic", name)
    result = handler.deterministic(name, value)
    if dims is not None:
        _record_dims(handler, name, dims)
    return result


def factor(name: str, log_weight):
    """Add an arbitrary term to the log density (Stan's ``target +=``, PyMC's ``Potential``)."""
    handler = HANDLERS[-1] if HANDLERS else _handler("factor", name)
    return handler.factor(name, log_weight)
