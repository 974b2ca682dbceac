"""Prior and posterior predictive sampling, returned as ArviZ ``InferenceData`` groups.

Uses the model's NumPy path: parameters are drawn from their priors (or taken from the
posterior draws) and observed sites are drawn from their likelihoods with each
distribution's NumPy sampler.

Out-of-sample prediction follows PyMC 5: bind the model to the new data, with the observed
sites bound to ``None`` (``my_model(x=x_new, y=None)``; they are simulated with the shape of
their distribution), and call :func:`sample_posterior_predictive` with ``predictions=True``.
What is returned and what is changed is explicit:

* ``extend_inferencedata=False`` (the default, as in PyMC): ``idata`` is not modified; a new
  InferenceData holds the new groups.
* ``extend_inferencedata=True``: the new groups are added to ``idata`` and **replace** the
  groups of the same name it already has (a second call never leaves the first call's draws
  behind); ``idata`` is returned.
* ``predictions=False``: the group is ``posterior_predictive`` (with ``observed_data``).
  Extending ``idata`` this way with a model bound to other observed data than
  ``idata.observed_data`` raises :class:`~ppl_ad.errors.DataError`: draws for other data
  would sit beside observations they do not match.
* ``predictions=True``: the groups are ``predictions`` and ``predictions_constant_data`` (the
  model's numeric arguments), as in PyMC.
"""

from __future__ import annotations

import difflib
import functools
import warnings
from collections.abc import Mapping

import numpy as np

from ppl_ad import math as M
from ppl_ad._keywords import checks_keywords
from ppl_ad.errors import ConfigError, DataError, PplAdDeprecationWarning
from ppl_ad.model.handlers import CompileHandler, PredictiveHandler, draw_prior, run_model

__all__ = ["sample_prior_predictive", "sample_posterior_predictive", "model_sites", "posterior_arrays"]


def model_sites(model) -> dict:
    """The site records of ``model`` (as compiled), allowing observed sites bound to None."""
    handler = CompileHandler(model.name)
    with np.errstate(all="ignore"), M.using("numpy"):
        run_model(model, handler)
    return handler.sites


def warn_unsimulated_factors(model, where: str, sites: Mapping | None = None) -> None:
    """Warn that ``pa.factor`` terms take no part in simulating from the prior (as PyMC warns for
    Potentials): draws follow the ``sample`` and ``observe`` sites alone."""
    from ppl_ad.errors import SamplingWarning
    from ppl_ad.infer.results import user_stacklevel

    sites = model_sites(model) if sites is None else sites
    factors = [name for name, site in sites.items() if site.kind == "factor"]
    if factors:
        warnings.warn(
            f"{where}: model '{model.name}' has pa.factor terms ({', '.join(factors)}), which simulating from the "
            "prior leaves out: the draws follow its sample and observe sites only"
            + (", so its ranks are not uniform unless the factors are constant" if where == "pa.sbc" else ""),
            SamplingWarning, stacklevel=user_stacklevel())


def posterior_arrays(model, sites: Mapping, posterior) -> dict[str, np.ndarray]:
    """The ``(chain, draw, *shape)`` draws of every sampled site of ``model`` from ``posterior``.

    Raises
    ------
    ppl_ad.errors.DataError
        A parameter is missing from ``posterior`` or has another shape than the model's.
    """
    arrays = {}
    for site in sites.values():
        if site.kind != "sample":
            continue
        if site.name not in posterior:
            raise DataError(
                f"model '{model.name}', site '{site.name}': no draws of this parameter in the posterior "
                f"(it has {sorted(map(str, getattr(posterior, 'data_vars', posterior)))}); was idata "
                "sampled from another model?"
            )
        value = posterior[site.name]
        array = np.asarray(getattr(value, "values", value))
        if array.ndim < 2 or array.shape[2:] != tuple(site.shape):
            raise DataError(
                f"model '{model.name}', site '{site.name}': posterior draws of shape {array.shape}, "
                f"expected (chain, draw) + {tuple(site.shape)}"
            )
        arrays[site.name] = array
    return arrays


def _observed(sites: Mapping) -> dict:
    return {s.name: np.asarray(s.value) for s in sites.values() if s.kind == "observe" and s.value is not None}


def _constant_data(model) -> dict:
    out = {}
    for name, value in model.data.items():
        if value is None or isinstance(value, (str, bytes)):
            continue
        try:
            array = np.asarray(value)
        except Exception:  # noqa: BLE001 - not array-like: not constant data
            continue
        if array.dtype.kind in "biuf":
            out[name] = array
    return out


def _labels(groups: dict, leading: dict, sites: Mapping, coords, idata, where: str):
    from ppl_ad.infer.results import dims_for, inherited_coords, merge_coords, site_dims

    named = site_dims(sites)
    known = {dim for names in named.values() for dim in names if dim is not None}
    inherited = inherited_coords(idata)
    dims, used = {}, {}
    for group, arrays in groups.items():
        n = leading[group]
        dims[group] = dims_for(arrays, n, named)
        shapes = {name: np.shape(value)[n:] for name, value in arrays.items()}
        used.update(merge_coords(coords, inherited, dims[group], shapes, known, where))
    return dims, used


@checks_keywords
def sample_prior_predictive(model, draws: int = 500, seed=None, *, coords=None, var_names=None):
    """Draw parameters from their priors and data from the likelihood.

    Parameters
    ----------
    model : ppl_ad.model.Model
        Observed sites may be bound to None (they are simulated with their distribution's shape).
    draws : int, optional
    seed : int, optional
    coords : dict, optional
        Labels of the dimensions that sites name with ``dims=``.
    var_names : str or list of str, optional
        The sites to return (PyMC's ``var_names``): parameters and deterministics go to ``prior``,
        observed sites to ``prior_predictive``. Every site is still drawn (later ones depend on
        earlier ones), so the draws are those of the full call. Default: every site.

    Returns
    -------
    arviz.InferenceData
        Groups ``prior`` (parameters and deterministics) and ``prior_predictive``
        (observed sites), with one chain of ``draws`` draws, plus ``observed_data``.

    Raises
    ------
    ppl_ad.errors.ConfigError
        ``draws`` is not an integer of at least 1.
    ppl_ad.errors.DataError
        A name in ``var_names`` that is not a site of the model (with the closest one).
    """
    from ppl_ad.infer.results import make_groups

    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ConfigError(f"sample_prior_predictive: invalid draws={draws!r}; expected an integer >= 1")
    rng = np.random.default_rng(seed)
    sites = model_sites(model)
    wanted = None if var_names is None else set(_checked_var_names("sample_prior_predictive", model, sites, var_names))
    warn_unsimulated_factors(model, "sample_prior_predictive", sites)
    params, observed = [], []
    for _ in range(draws):
        handler = draw_prior(model, rng)
        params.append(handler.values)
        observed.append(handler.observed)
    groups = {"prior": _stack(params), "prior_predictive": _stack(observed), "observed_data": _observed(sites)}
    if wanted is not None:
        for group in ("prior", "prior_predictive"):
            groups[group] = {name: value for name, value in groups[group].items() if name in wanted}
    leading = {"prior": 2, "prior_predictive": 2, "observed_data": 0}
    dims, used = _labels(groups, leading, sites, coords, None, "sample_prior_predictive")
    return make_groups(groups, dims, used, attrs={"model": model.name})


def _stack(draws: list[dict]) -> dict:
    names = draws[0].keys() if draws else []
    return {name: np.stack([np.asarray(d[name]) for d in draws])[None, ...] for name in names}


def _changed_sites(sites: Mapping, idata) -> list[str]:
    """Observed sites bound to None or to other values than ``idata.observed_data``'s."""
    recorded = getattr(idata, "observed_data", None)
    changed = []
    for site in sites.values():
        if site.kind != "observe":
            continue
        if site.value is None:
            changed.append(f"'{site.name}' (bound to None)")
        elif recorded is not None and site.name in recorded:
            old, new = np.asarray(recorded[site.name].values), np.asarray(site.value)
            if old.shape != new.shape:
                changed.append(f"'{site.name}' (shape {new.shape}, observed_data has {old.shape})")
            elif not np.array_equal(old, new):
                changed.append(f"'{site.name}' (other values than observed_data)")
    return changed


def _is_inference_data(value) -> bool:
    return type(value).__name__ == "InferenceData"


def _pymc_argument_order(function):
    """``function(model, idata, ...)`` that also takes PyMC's order, ``(idata, model)`` or
    ``(idata, model=model)``: the two cannot be mistaken for each other."""

    @functools.wraps(function)
    def ordered(*args, **kwargs):
        if len(args) == 1 and "model" in kwargs and "idata" not in kwargs and _is_inference_data(args[0]):
            return function(kwargs.pop("model"), args[0], **kwargs)
        if len(args) >= 2 and _is_inference_data(args[0]) and not _is_inference_data(args[1]):
            return function(args[1], args[0], *args[2:], **kwargs)
        return function(*args, **kwargs)

    return ordered


@_pymc_argument_order
@checks_keywords
def sample_posterior_predictive(model, idata, seed=None, *, var_names=None, extend_inferencedata: bool = False,
                                predictions: bool = False, coords=None, extend=None):
    """Draw the observed sites of ``model`` given each posterior draw in ``idata.posterior``.

    The draws are always for the data ``model`` is bound to now: bind new covariates (and
    ``None`` for the observed sites) to predict out of sample. Deterministic sites named in
    ``var_names`` are recomputed from the new data (``mu = a + b * x_new``).

    Parameters
    ----------
    model : ppl_ad.model.Model
        The model with its data bound; observed sites may be bound to None (simulated with
        their distribution's shape).
    idata : arviz.InferenceData
        Holds the ``posterior`` (e.g. the output of :func:`ppl_ad.sample`). PyMC's order,
        ``sample_posterior_predictive(idata, model=model)`` or ``(idata, model)``, works too.
    seed : int, optional
    var_names : list of str, optional
        The sites to return, as PyMC's ``var_names``: observed sites (drawn), deterministic
        sites (recomputed for each posterior draw, on the data bound now) and parameters
        (their posterior draws). Default: every observed site.
    extend_inferencedata : bool, optional
        False (default, as in PyMC 5): leave ``idata`` unchanged and return a new InferenceData
        with the new groups. True: add the new groups to ``idata``, replacing any group of the
        same name (never keeping an earlier call's draws), and return ``idata``.
    predictions : bool, optional
        False: the draws go to ``posterior_predictive`` (and the observed values to
        ``observed_data``). True: out-of-sample predictions, in ``predictions``, with the
        model's numeric arguments in ``predictions_constant_data`` (PyMC's layout).
    coords : dict, optional
        Labels of the dimensions named with ``dims=``. Labels already in ``idata`` are reused
        where the dimension keeps its length (new data of another length get ``0..n-1``
        unless given here).
    extend : bool, optional
        Deprecated name of ``extend_inferencedata``.

    Returns
    -------
    arviz.InferenceData
        ``idata`` itself when ``extend_inferencedata`` is True, otherwise a new one.

    Raises
    ------
    ppl_ad.errors.DataError
        A parameter of ``model`` is missing from the posterior or has another shape; or
        ``extend_inferencedata=True, predictions=False`` with a model bound to other observed
        data than ``idata.observed_data`` (use ``predictions=True``).

    Examples
    --------
    >>> idata = pa.sample(regression(x, y))                                    # doctest: +SKIP
    >>> preds = pa.sample_posterior_predictive(regression(x_new, None), idata,
    ...                                        predictions=True)               # doctest: +SKIP
    >>> preds.predictions["y"].shape  # (chain, draw, len(x_new))              # doctest: +SKIP
    """
    from ppl_ad.infer.results import make_groups, replace_groups, sample_labels, user_stacklevel

    if extend is not None:
        warnings.warn(
            "sample_posterior_predictive(extend=...) is deprecated: use extend_inferencedata= (PyMC's "
            "name; its default is now False: idata is left unchanged unless you ask)",
            PplAdDeprecationWarning, stacklevel=user_stacklevel(),
        )
        extend_inferencedata = bool(extend)
    if getattr(idata, "posterior", None) is None:
        raise DataError("sample_posterior_predictive: idata has no posterior group (pass the output of pa.sample)")
    sites = model_sites(model)
    wanted = _wanted_sites(model, sites, var_names)
    arrays = posterior_arrays(model, sites, idata.posterior)
    if not predictions and extend_inferencedata:
        changed = _changed_sites(sites, idata)
        if changed:
            raise DataError(
                f"sample_posterior_predictive: model '{model.name}' is bound to new data at "
                f"{', '.join(changed)}, so its draws cannot extend idata's posterior_predictive "
                "beside the old observed_data; pass predictions=True (a 'predictions' group) or "
                "extend_inferencedata=False"
            )
    chains, draws = _sample_dims(idata.posterior, arrays)
    rng = np.random.default_rng(seed)
    drawn: dict[str, np.ndarray] = {}
    for c in range(chains):
        for d in range(draws):
            substitutions = {name: array[c, d] for name, array in arrays.items()}
            handler = run_model(model, PredictiveHandler(rng, substitutions, model.name))
            found = {**handler.values, **handler.observed}
            values = {name: found[name] for name in wanted}
            if not drawn:
                drawn = {name: np.empty((chains, draws) + np.shape(v), dtype=np.result_type(v)) for name, v in values.items()}
            for name, value in values.items():
                drawn[name][c, d] = value
    if predictions:
        groups = {"predictions": drawn, "predictions_constant_data": _constant_data(model)}
        leading = {"predictions": 2, "predictions_constant_data": 0}
    else:
        observed_data = _observed(sites)
        if extend_inferencedata and getattr(idata, "observed_data", None) is not None:
            observed_data = {}  # the same values (checked above): keep idata's group
        groups = {"posterior_predictive": drawn, "observed_data": observed_data}
        leading = {"posterior_predictive": 2, "observed_data": 0}
    dims, used = _labels(groups, leading, sites, coords, idata, "sample_posterior_predictive")
    used.update(sample_labels(idata.posterior))  # each predictive draw keeps its posterior draw's label
    new = make_groups(groups, dims, used, attrs={"model": model.name})
    if not extend_inferencedata:
        return new
    replace_groups(idata, new)
    for group, arrays in groups.items():
        if not arrays and group != "observed_data" and hasattr(idata, group):
            delattr(idata, group)  # an earlier call's group that this call has nothing for
    return idata


def _wanted_sites(model, sites: Mapping, var_names) -> list[str]:
    """The names ``sample_posterior_predictive`` returns: ``var_names`` checked against the
    model's sites, or every observed site."""
    if var_names is None:
        observed = [name for name, site in sites.items() if site.kind == "observe"]
        if not observed:
            from ppl_ad.errors import SamplingWarning
            from ppl_ad.infer.results import user_stacklevel

            factors = [name for name, site in sites.items() if site.kind == "factor"]
            warnings.warn(
                f"sample_posterior_predictive: model '{model.name}' has no observed sites to simulate"
                + (f" (its likelihood is in pa.factor terms, {', '.join(factors)}, which cannot be simulated)"
                   if factors else "")
                + "; name deterministic or sampled sites in var_names to recompute them for each posterior draw",
                SamplingWarning, stacklevel=user_stacklevel())
        return observed
    return _checked_var_names("sample_posterior_predictive", model, sites, var_names)


def _checked_var_names(function: str, model, sites: Mapping, var_names) -> list[str]:
    """``var_names`` (a name or a list) as a list without repeats; a name that is not an observed,
    deterministic or sampled site raises :class:`DataError` with the closest one."""
    if isinstance(var_names, str):
        var_names = [var_names]
    known = {name: site.kind for name, site in sites.items() if site.kind in ("observe", "deterministic", "sample")}
    for name in var_names:
        if name not in known:
            close = difflib.get_close_matches(str(name), list(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise DataError(
                f"{function}: model '{model.name}' has no observed, deterministic or "
                f"sampled site '{name}'{hint}; its sites: {', '.join(known)}")
    return list(dict.fromkeys(var_names))


def _sample_dims(posterior, arrays) -> tuple[int, int]:
    if arrays:
        return next(iter(arrays.values())).shape[:2]
    return int(posterior.sizes["chain"]), int(posterior.sizes["draw"])
