"""Pointwise log-likelihood: the ``log_likelihood`` group that ``az.loo``, ``az.waic`` and ``az.compare`` read.

For every posterior draw the model runs once with NumPy, its parameters set to the draw, and
each observed site records ``distribution.logpdf(value)`` element by element (``-inf`` outside
the support) instead of summing it. A site with a multivariate distribution gives one value per
event (an observed matrix of ``n`` rows of an ``MvNormal`` gives ``n`` values), as in PyMC 5:
the variable of site ``y`` has shape ``(chain, draw, *y.shape[:ndim - event_dim])``. Factor
sites (``pa.factor``) are not part of the likelihood, as PyMC leaves ``Potential`` terms out.

References
----------
Vehtari, Gelman & Gabry (2017), *Practical Bayesian model evaluation using leave-one-out
cross-validation and WAIC*, Statistics and Computing 27: the pointwise log-likelihood
``log p(y_i | theta_s)`` that PSIS-LOO and WAIC need.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ppl_ad import math as M
from ppl_ad._keywords import checks_keywords
from ppl_ad.errors import DataError
from ppl_ad.model.handlers import _Handler, run_model

__all__ = ["compute_log_likelihood", "pointwise_log_likelihood"]


class LogLikelihoodHandler(_Handler):
    """Set each parameter to a given model-space value; record each observed site's pointwise log density."""

    def __init__(self, model_name: str, names=None):
        super().__init__()
        self.model_name = model_name
        self.names = names
        self.values: dict = {}
        self.pointwise: dict = {}

    def sample(self, name, distribution, shape, transform=None):
        self.current = name
        return self.values[name]

    def observe(self, name, distribution, value):
        self.current = name
        if self.names is not None and name not in self.names:
            return value
        if value is None:
            raise DataError(
                f"model '{self.model_name}', site '{name}': the observed value is None; the "
                "log-likelihood needs the observed data bound to the model"
            )
        array = np.asarray(value)
        event_dim = int(getattr(distribution, "event_dim", 0))
        target = array.shape[: max(array.ndim - event_dim, 0)]
        log_prob = np.asarray(distribution.logpdf(array), dtype=float)
        try:
            self.pointwise[name] = np.broadcast_to(log_prob, target)
        except ValueError:
            raise DataError(
                f"model '{self.model_name}', site '{name}': the pointwise log density has shape "
                f"{log_prob.shape}, which does not fit the observed value's shape {array.shape} "
                f"(event dimensions: {event_dim})"
            ) from None
        return value

    def deterministic(self, name, value):
        self.current = name
        return value

    def factor(self, name, log_weight):
        self.current = name
        return log_weight


def pointwise_log_likelihood(model, posterior: Mapping, var_names=None) -> dict[str, np.ndarray]:
    """``log p(y_i | theta)`` for each draw and each observed element (one value per event).

    Parameters
    ----------
    model : ppl_ad.model.Model
        The model with its observed data bound.
    posterior : mapping
        Site name -> array of shape ``(chain, draw, *site shape)`` (e.g. ``idata.posterior``);
        every sampled site of ``model`` must be there. Other names are ignored.
    var_names : list of str, optional
        Observed sites to evaluate (default: all).

    Returns
    -------
    dict
        Observed site name -> array ``(chain, draw, *observed shape without event axes)``.

    Raises
    ------
    ppl_ad.errors.DataError
        A parameter missing from ``posterior`` or of the wrong shape, an observed site bound
        to None, or an unknown name in ``var_names``.
    """
    from ppl_ad.model.compiled import compile_model
    from ppl_ad.predictive import posterior_arrays

    compiled = compile_model(model)  # refuses unobserved sites and invalid data
    observed = [name for name, site in compiled.sites.items() if site.kind == "observe"]
    if var_names is not None:
        var_names = [var_names] if isinstance(var_names, str) else list(var_names)
        unknown = [name for name in var_names if name not in observed]
        if unknown:
            raise DataError(f"model '{model.name}': {unknown} are not observed sites; the observed sites are {observed}")
        observed = var_names
    arrays = posterior_arrays(model, compiled.sites, posterior)
    if not observed:
        _warn_no_observed_sites(model, compiled.sites)
        return {}
    first = next(iter(arrays.values()), None)
    chains, draws = first.shape[:2] if first is not None else _sample_dims(posterior)
    out: dict[str, np.ndarray] = {}
    handler = LogLikelihoodHandler(model.name, set(observed))
    with np.errstate(all="ignore"), M.using("numpy"):
        for c in range(chains):
            for d in range(draws):
                handler.values = {name: array[c, d] for name, array in arrays.items()}
                handler.pointwise = {}
                run_model(model, handler)
                if not out:
                    out = {name: np.empty((chains, draws) + v.shape) for name, v in handler.pointwise.items()}
                for name, value in handler.pointwise.items():
                    out[name][c, d] = value
    return {name: out[name] for name in observed}


def _warn_no_observed_sites(model, sites) -> None:
    """A model without observed sites has no pointwise log-likelihood: say so (naming its factors,
    where a likelihood written as ``pa.factor`` lives) rather than return nothing silently."""
    import warnings

    from ppl_ad.errors import SamplingWarning
    from ppl_ad.infer.results import user_stacklevel

    factors = [name for name, site in sites.items() if site.kind == "factor"]
    where = (f"its likelihood is in pa.factor terms ({', '.join(factors)}), which cannot be split into one "
             "value per observation" if factors else "it has no likelihood")
    warnings.warn(
        f"log_likelihood: model '{model.name}' has no observed sites, so there is no pointwise log-likelihood "
        f"(az.loo and az.waic need one): {where}. Write the likelihood with pa.observe, or record the pointwise "
        "values yourself with pa.deterministic", SamplingWarning, stacklevel=user_stacklevel())


def _sample_dims(posterior) -> tuple[int, int]:
    sizes = getattr(posterior, "sizes", None)
    if sizes is not None and "chain" in sizes:
        return int(sizes["chain"]), int(sizes["draw"])
    raise DataError("the posterior has no parameters: cannot tell its numbers of chains and draws")


@checks_keywords
def compute_log_likelihood(model, idata, *, var_names=None, extend_inferencedata: bool = True, coords=None):
    """Add the pointwise ``log_likelihood`` group to ``idata``, as PyMC 5's ``compute_log_likelihood``.

    Parameters
    ----------
    model : ppl_ad.model.Model
        The model that produced ``idata``, with its observed data bound.
    idata : arviz.InferenceData
        Holds the ``posterior`` (e.g. the output of :func:`ppl_ad.sample`).
    var_names : list of str, optional
        Observed sites to include (default: all).
    extend_inferencedata : bool, optional
        True (default, as in PyMC): add the group to ``idata`` (replacing a ``log_likelihood``
        group it already has) and return ``idata``; refused for a model bound to other observed
        data than ``idata.observed_data`` (held-out data would replace the training
        log-likelihood that ``az.loo`` reads). False: return a new InferenceData holding only
        the ``log_likelihood`` group (the way to score held-out data).
    coords : dict, optional
        Labels of the dimensions named with ``dims=``; by default those already in ``idata``.

    Returns
    -------
    arviz.InferenceData
        With ``log_likelihood``: one variable per observed site, shape
        ``(chain, draw, *observed shape)`` (one value per event for a multivariate site), axes
        named by the site's ``dims``. ``az.loo(idata)``, ``az.waic(idata)`` and
        ``az.compare({"a": idata_a, "b": idata_b})`` read it.

    Raises
    ------
    ppl_ad.errors.DataError
        As :func:`pointwise_log_likelihood`; or ``extend_inferencedata=True`` with a model bound
        to other observed data than ``idata.observed_data``.

    Examples
    --------
    >>> idata = pa.sample(model)                        # doctest: +SKIP
    >>> pa.compute_log_likelihood(model, idata)         # doctest: +SKIP
    >>> az.loo(idata)                                   # doctest: +SKIP
    """
    from ppl_ad.infer.results import (
        dims_for, inherited_coords, make_groups, merge_coords, replace_groups, sample_labels, site_dims,
    )
    from ppl_ad.predictive import _changed_sites, model_sites

    if getattr(idata, "posterior", None) is None:
        raise DataError("compute_log_likelihood: idata has no posterior group (pass the output of pa.sample)")
    if extend_inferencedata:
        changed = [site for site in _changed_sites(model_sites(model), idata) if "bound to None" not in site]
        if changed:  # (a site bound to None is refused below, naming it)
            raise DataError(
                f"compute_log_likelihood: model '{model.name}' is bound to other data than idata.observed_data "
                f"at {', '.join(changed)}; its log-likelihood would replace the one of the data the posterior was "
                "fitted to (az.loo(idata) would then score these points instead): pass extend_inferencedata=False "
                "for held-out data")
    values = pointwise_log_likelihood(model, idata.posterior, var_names)
    named = site_dims(model_sites(model))
    dims = dims_for(values, 2, named)
    shapes = {name: value.shape[2:] for name, value in values.items()}
    known = {dim for names in named.values() for dim in names if dim is not None}
    used = merge_coords(coords, inherited_coords(idata), dims, shapes, known, "compute_log_likelihood")
    used.update(sample_labels(idata.posterior))
    group = make_groups({"log_likelihood": values}, {"log_likelihood": dims}, used)
    if not extend_inferencedata:
        return group
    replace_groups(idata, group)
    return idata
