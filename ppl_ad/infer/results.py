"""From chain results to ``arviz.InferenceData``: model-space draws, statistics, attrs, warnings.

This module owns the results code shared by both engines: the unconstrained draws of every
chain are converted to model space in this process (``ld.constrain(theta,
deterministics=True)``), the per-draw statistics keep ArviZ's names, ``attrs`` record the
model, backend, engine, settings, seed and timings, and one :class:`SamplingWarning` reports
divergences and maximum-tree-depth hits after warmup.

It also owns the labelling shared by every function that returns InferenceData groups
(:func:`ppl_ad.sample`, :mod:`ppl_ad.predictive`, :mod:`ppl_ad.loglik`): the ``dims=`` of a
site name its axes (:func:`dims_for`; ``<site>_dim_<k>`` for unnamed axes), and ``coords``
label them (:func:`check_coords`), as in PyMC. Coordinates already in an InferenceData are
reused by the functions that extend it (:func:`inherited_coords`).
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from ppl_ad._version import __version__
from ppl_ad.errors import ConfigError, DataError, SamplingWarning
from ppl_ad.infer.chain import ChainResult
from ppl_ad.infer.init import model_name
from ppl_ad.infer.state import seed_label

__all__ = [
    "to_inference_data", "import_arviz", "preload_arviz", "user_stacklevel", "site_dims", "dims_for",
    "check_coords", "merge_coords", "inherited_coords", "make_groups", "replace_groups", "check_sample_coords",
    "group_labels",
]


def import_arviz():
    with warnings.catch_warnings():
        # arviz 0.23 announces its refactor with a FutureWarning at import time.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def preload_arviz() -> None:
    """Import ArviZ, and build one tiny InferenceData, in a background thread while chains run.

    The first dataset of a process costs more than the import (xarray then imports the array
    libraries it can wrap, dask among them: 0.3 s); doing it while XLA compiles or runs the
    chains (which release the GIL) takes it off the critical path. A failure is left for the
    real call to report.

    ``warnings.catch_warnings`` is not thread-safe: it saves the process's filter list on entry
    and puts it back on exit. If the caller's thread enters or leaves its own block meanwhile,
    one of the two lists wins; with "ignore every warning" here, the divergence warning of that
    and every later ``pa.sample`` was lost. So this thread only ignores FutureWarning (ArviZ's
    import announces its refactor with one) and ``pa.sample`` joins it before it builds its
    results (see :func:`ppl_ad.infer.sample.sample`): its own warning filters are then never
    changed while this thread runs.
    """
    try:
        if "arviz" in sys.modules:  # imported already (and its first dataset is cheap then)
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            az = import_arviz()
            az.from_dict(posterior={"x": np.zeros((1, 1))})
    except Exception:  # noqa: BLE001 - to_inference_data imports it again and raises there
        pass


def site_dims(sites: Mapping) -> dict[str, tuple]:
    """The ``dims=`` given to each site of a compiled model (sites without dims left out)."""
    return {name: site.dims for name, site in sites.items() if getattr(site, "dims", None)}


def dims_for(values: Mapping[str, np.ndarray], leading: int, named: Mapping | None = None) -> dict[str, list[str]]:
    """Axis names of each array after its ``leading`` axes (chain, draw).

    Parameters
    ----------
    values : mapping
        Variable name -> array.
    leading : int
        Number of leading axes that are not the variable's own (2 for chain and draw).
    named : mapping, optional
        Variable name -> the site's ``dims``. Only the first axes are used when the array has
        fewer (the pointwise log-likelihood of a multivariate site has no event axes); an
        unnamed axis is ``<name>_dim_<k>``.

    Returns
    -------
    dict
        Variable name -> list of axis names (scalars left out), ArviZ's ``dims`` argument.
    """
    named = named or {}
    out = {}
    for name, value in values.items():
        ndim = np.ndim(value) - leading
        if ndim <= 0:
            continue
        given = tuple(named.get(name) or ())[:ndim]
        given += (None,) * (ndim - len(given))
        out[name] = [dim if dim is not None else f"{name}_dim_{k}" for k, dim in enumerate(given)]
    return out


def _shapes(values: Mapping, leading: int) -> dict[str, tuple]:
    return {name: tuple(np.shape(value))[leading:] for name, value in values.items()}


def check_coords(coords, dims: Mapping[str, Sequence[str]], shapes: Mapping[str, tuple], known=None,
                 where: str = "sample") -> dict:
    """Validate ``coords`` against the axes they label; return the coordinates in use.

    Parameters
    ----------
    coords : mapping or None
        Dimension name -> labels (a sequence), as in PyMC.
    dims : mapping
        Variable name -> axis names (:func:`dims_for`).
    shapes : mapping
        Variable name -> its shape without the leading (chain, draw) axes.
    known : iterable of str, optional
        Every dimension name the model declares; a coordinate for another name is an error
        (a misspelled dimension would otherwise label nothing). Defaults to the names in ``dims``.
    where : str
        The calling function, for the messages.

    Returns
    -------
    dict
        Dimension name -> labels (NumPy arrays), for the dimensions present in ``dims``.

    Raises
    ------
    ppl_ad.errors.ConfigError
        ``coords`` is not a mapping, or names a dimension that no site declares.
    ppl_ad.errors.DataError
        The number of labels differs from the length of the dimension (naming the site).
    """
    if coords is None:
        return {}
    if not isinstance(coords, Mapping):
        raise ConfigError(f"{where}: coords must be a dict of dimension name -> labels, got {type(coords).__name__}")
    known = set(known) if known is not None else {d for names in dims.values() for d in names if d is not None}
    unknown = sorted(str(d) for d in coords if d not in known and d not in ("chain", "draw"))
    if unknown:
        import difflib

        hints = []
        for dim in unknown:
            close = difflib.get_close_matches(dim, sorted(known), n=1, cutoff=0.6)
            hints.append(f"'{dim}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise ConfigError(
            f"{where}: coords for dimensions no site declares: {', '.join(hints)}; the model's dims "
            f"are {sorted(known) or 'none (give sites dims=...)'}"
        )
    used = {}
    for name, names in dims.items():
        for dim, length in zip(names, shapes[name]):
            if dim is None or dim not in coords:  # dims=("row", None): an axis without a name
                continue
            labels = np.asarray(coords[dim])
            if labels.ndim != 1 or len(labels) != length:
                raise DataError(
                    f"{where}: coords['{dim}'] has {len(labels) if labels.ndim == 1 else labels.shape} "
                    f"labels, but dimension '{dim}' of site '{name}' has length {length}"
                )
            used[dim] = labels
    return used


def inherited_coords(idata, groups=("posterior", "observed_data", "constant_data")) -> dict:
    """Coordinates of the named (non-default) dimensions already in ``idata``'s ``groups``."""
    out = {}
    for group in groups:
        dataset = getattr(idata, group, None) if idata is not None else None
        if dataset is None:
            continue
        for dim in dataset.dims:
            if dim in ("chain", "draw") or "_dim_" in str(dim) or dim in out:
                continue
            out[dim] = np.asarray(dataset[dim].values)
    return out


def sample_labels(posterior) -> dict:
    """The ``chain`` and ``draw`` labels of ``posterior``, for groups computed from its draws: a
    thinned or selected posterior (``idata.sel(draw=slice(None, None, 10))``) keeps its labels,
    so xarray pairs each derived draw with the draw it came from."""
    return {dim: np.asarray(posterior[dim].values) for dim in ("chain", "draw") if dim in posterior.coords}


def merge_coords(user, inherited: Mapping, dims: Mapping, shapes: Mapping, known, where: str) -> dict:
    """``user`` coords (checked) over ``inherited`` ones; inherited labels that no longer fit
    (a dimension whose length changed with new data) are dropped, not reused."""
    used = check_coords(user, dims, shapes, known, where)
    lengths = {dim: length for name, names in dims.items() for dim, length in zip(names, shapes[name])}
    for dim, labels in inherited.items():
        if dim not in used and dim in lengths and len(labels) == lengths[dim]:
            used[dim] = labels
    return used


def make_groups(groups: Mapping[str, Mapping], dims: Mapping, coords: Mapping, attrs=None):
    """One InferenceData holding ``groups`` (group name -> arrays) with the given labels.

    Each group's arrays keep only the dims of their own variables, so a variable may have
    different axes in two groups (a multivariate site in ``observed_data`` and in
    ``log_likelihood``): ``dims`` maps group name -> variable name -> axis names.
    """
    az = import_arviz()
    idata = None
    for group, arrays in groups.items():
        if not arrays:
            continue
        group_dims = dims.get(group, {})
        kwargs = {group: dict(arrays), "dims": group_dims, "coords": coords, "attrs": attrs}
        if group.startswith("warmup_"):
            kwargs["save_warmup"] = True
        if group.startswith("predictions"):
            kwargs.update(pred_dims=group_dims, pred_coords=coords)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
            part = az.from_dict(**kwargs)
        if idata is None:
            idata = part
        else:
            idata.extend(part, join="right")
    return idata if idata is not None else az.InferenceData()


def replace_groups(idata, other) -> None:
    """Add every group of ``other`` to ``idata`` in place; a group ``idata`` has is replaced."""
    idata.extend(other, join="right")


def model_space_draws(ld, results: Sequence[ChainResult], warmup: bool = False) -> dict[str, np.ndarray]:
    """The chains' unconstrained draws (``warmup``: their warmup draws) as model-space arrays
    ``(chain, draw, *shape)`` per site (sampled and deterministic); used for ``pa.sample``'s result
    and ``pa.read_checkpoint``."""
    unconstrained = [r.warmup_draws if warmup else r.draws for r in results]
    chains, draws = len(results), unconstrained[0].shape[0]
    arrays: dict[str, np.ndarray] = {}
    if draws == 0:
        return {
            name: np.empty((chains, 0) + tuple(shape))
            for name, shape in {**ld.site_shapes, **getattr(ld, "deterministic_shapes", {})}.items()
        }
    for c, chain_draws in enumerate(unconstrained):
        for i in range(draws):
            values = ld.constrain(chain_draws[i], deterministics=True)
            if not arrays:
                for name, value in values.items():
                    value = np.asarray(value)
                    # a boolean or integer deterministic keeps its type (as in PyMC and the predictive groups)
                    dtype = value.dtype if value.dtype.kind in "biu" else np.result_type(value, np.float64)
                    arrays[name] = np.empty((chains, draws) + value.shape, dtype=dtype)
            for name, value in values.items():
                arrays[name][c, i] = value
    return arrays


def _sampling_warning(name, stats, settings) -> str | None:
    div = stats["diverging"].sum(axis=1)
    parts = []
    if div.sum():
        parts.append(
            f"{int(div.sum())} divergent transitions after warmup (per chain: {div.tolist()}). "
            "Divergences mean the sampler could not follow the posterior's geometry and the draws "
            f"may be biased: increase target_accept (now {settings.target_accept}, e.g. 0.95) or "
            "reparameterise the model (e.g. a non-centred parameterisation of hierarchical effects)."
        )
    if "reached_max_treedepth" in stats:
        hit = stats["reached_max_treedepth"].sum(axis=1)
        if hit.sum():
            parts.append(
                f"{int(hit.sum())} transitions hit the maximum tree depth of {settings.max_treedepth} "
                f"(per chain: {hit.tolist()}); this costs efficiency, not validity: increase "
                "max_treedepth or reparameterise the model (strong posterior correlations or "
                "very different scales)."
            )
    if not parts:
        return None
    return f"Sampling model {name!r}: " + " ".join(parts)



def check_sample_coords(ld, coords, log_likelihood: bool = False) -> None:
    """Check ``pa.sample``'s ``coords`` and ``log_likelihood`` against the model before sampling."""
    if log_likelihood and getattr(ld, "model", None) is None:
        raise ConfigError("sample: log_likelihood=True needs a ppl_ad model (this log density has no observed sites)")
    if coords is None:
        return
    sites = getattr(getattr(ld, "compiled", None), "sites", None) or {}
    named = site_dims(sites)
    shapes = {name: tuple(site.shape) for name, site in sites.items()}
    dims = {name: list(names) for name, names in named.items()}
    check_coords(coords, dims, shapes, where="sample")


#: ``"module:function"`` or the function that computes the pointwise log-likelihood group
#: (``ppl_ad.loglik.pointwise_log_likelihood``, a layer above this one: ``ppl_ad``'s ``__init__``
#: registers it with :func:`register_log_likelihood`, as it registers ``backend="auto"``)
_LOG_LIKELIHOOD = {"function": None}


def register_log_likelihood(function) -> None:
    """Set the function behind ``pa.sample(..., log_likelihood=True)``.

    Parameters
    ----------
    function : callable or str
        ``function(model, posterior) -> dict`` of pointwise log-likelihood arrays, or
        ``"module:function"`` naming it (imported on first use).
    """
    _LOG_LIKELIHOOD["function"] = function


def _log_likelihood_function():
    function = _LOG_LIKELIHOOD["function"]
    if function is None:
        raise ConfigError("log_likelihood=True: no log-likelihood function is registered (import ppl_ad)")
    if isinstance(function, str):
        import importlib

        module, _, name = function.partition(":")
        function = _LOG_LIKELIHOOD["function"] = getattr(importlib.import_module(module), name)
    return function


def to_inference_data(ld, results, settings, chains, processes, seed_seq, init, wall_start, extra_attrs=None,
                      *, coords=None, log_likelihood: bool = False):
    """The InferenceData of a run: posterior, sample_stats, observed_data, attrs.

    ``coords`` labels the axes that sites name with ``dims=``; ``log_likelihood=True`` adds
    the pointwise ``log_likelihood`` group (:func:`ppl_ad.loglik.pointwise_log_likelihood`).
    """
    name = model_name(ld)
    posterior = model_space_draws(ld, results)
    stats = {key: np.stack([r.stats[key] for r in results]) for key in results[0].stats}
    observed = {k: np.asarray(v) for k, v in (ld.observed_data() or {}).items()}
    named = site_dims(getattr(getattr(ld, "compiled", None), "sites", None) or {})
    groups = {"posterior": posterior, "sample_stats": stats, "observed_data": observed}
    if log_likelihood:
        groups["log_likelihood"] = _log_likelihood_function()(ld.model, posterior)
    if results[0].warmup_draws is not None:  # discard_tuned_samples=False
        groups["warmup_posterior"] = model_space_draws(ld, results, warmup=True)
        groups["warmup_sample_stats"] = {key: np.stack([r.warmup_stats[key] for r in results])
                                         for key in results[0].warmup_stats}
    dims, used = group_labels(groups, named, coords, where="sample")
    backend = getattr(ld, "backend", None)
    attrs = {
        "model": name,
        "backend": str(getattr(backend, "name", backend)),
        "backend_source": str(getattr(ld, "backend_source", "")),
        "ppl_ad_version": __version__,
        "inference_library": "ppl_ad",
        "inference_library_version": __version__,
        "sampler": settings.sampler,
        "draws": settings.draws,
        "tune": settings.tune,
        "chains": chains,
        "processes": processes,
        "target_accept": settings.target_accept,
        "max_treedepth": settings.max_treedepth,
        "metric": settings.metric,
        "metric_adaptation": settings.metric_adaptation,
        "init": init if isinstance(init, str) else "user",
        "seed": seed_label(seed_seq),
        "tuning_time": float(sum(r.tuning_time for r in results)),
        "sampling_time": float(sum(r.sampling_time for r in results)),
        "warmup_divergences": int(sum(r.warmup_divergences for r in results)),
        "gradient_evaluations": int(sum(r.gradient_evaluations for r in results)),
        "gradient_time": float(sum(r.gradient_time for r in results)),
    }
    if settings.sampler == "hmc":
        attrs["path_length"] = settings.path_length
    attrs.update(extra_attrs or {})
    message = _sampling_warning(name, stats, settings)
    attrs["wall_time"] = float(time.perf_counter() - wall_start)
    # The arrays are (chain, draw, ...) by construction; make_groups silences arviz's shape
    # guess, which would warn whenever chains > draws.
    idata = make_groups(groups, dims, used, attrs=attrs)
    if message is not None:
        warnings.warn(message, SamplingWarning, stacklevel=user_stacklevel())
    disagreement = _convergence_warning(name, idata, list(getattr(ld, "site_shapes", {}) or {}))
    if disagreement is not None:
        warnings.warn(disagreement, SamplingWarning, stacklevel=user_stacklevel())
    return idata


#: the largest rank-normalised R-hat (Vehtari et al. 2021) a run passes without a warning: above it
#: the chains disagree (one stuck in another mode gave 1.5); Vehtari et al. ask for 1.01 before
#: the draws are used, which short runs miss by noise alone, so the warning counts those too
RHAT_WARNING = 1.05
RHAT_RECOMMENDED = 1.01


def _convergence_warning(name, idata, sites) -> str | None:
    """A message when the chains disagree (rank-normalised split R-hat above :data:`RHAT_WARNING` for
    a sampled site), naming the worst sites; None otherwise or with one chain. PyMC checks the same
    after sampling."""
    posterior = getattr(idata, "posterior", None)
    sites = [s for s in sites if posterior is not None and s in posterior.data_vars]
    if not sites or posterior.sizes.get("chain", 1) < 2 or posterior.sizes.get("draw", 0) < 4:
        return None
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # arviz's own notes on short or constant chains
        rhat = az.rhat(posterior[sites])
    worst = {}
    above = 0
    for site in sites:
        values = np.asarray(rhat[site].values, dtype=float).ravel()
        values = values[np.isfinite(values)]
        if values.size:
            worst[site] = float(values.max())
            above += int(np.sum(values > RHAT_RECOMMENDED))
    bad = sorted(((r, s) for s, r in worst.items() if r > RHAT_WARNING), reverse=True)
    if not bad:
        return None
    listed = ", ".join(f"{s} {r:.3g}" for r, s in bad[:5]) + (", ..." if len(bad) > 5 else "")
    return (f"Sampling model {name!r}: the chains disagree: R-hat above {RHAT_WARNING} ({listed}; {above} values above "
            f"the recommended {RHAT_RECOMMENDED}). A chain may be stuck in another mode or still far from the "
            "posterior: do not use these draws as they are. Compare the chains (az.plot_trace), run longer, "
            "start from init=..., or reparameterise (multimodal posteriors need an identifying constraint).")


#: the groups whose arrays are labelled by the sites' dims, with their number of leading axes
_LABELLED = {"posterior": 2, "warmup_posterior": 2, "log_likelihood": 2, "observed_data": 0}


def group_labels(groups: Mapping, named: Mapping, coords, where: str) -> tuple[dict, dict]:
    """``(dims, coords in use)`` for :func:`make_groups`: each group's axis names from the sites'
    ``dims=`` (``named``), and ``coords`` checked against them."""
    dims = {group: dims_for(groups[group], n, named) for group, n in _LABELLED.items() if group in groups}
    used = {}
    for group, n in _LABELLED.items():
        if group in groups:
            used.update(check_coords(coords, dims[group], _shapes(groups[group], n), known=_all_dims(named),
                                     where=where))
    return dims, used


def _all_dims(named: Mapping) -> set:
    return {dim for names in named.values() for dim in names if dim is not None}


def user_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first caller outside ppl_ad."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name != "ppl_ad" and not name.startswith("ppl_ad."):
            return level
        frame = frame.f_back
        level += 1
    return 1
