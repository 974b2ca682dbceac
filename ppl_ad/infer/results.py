"""From chain results to ``arviz.InferenceData``: model-space draws, statistics, attrs, warnings.

This module owns the results code shared by both engines: the unconstrained draws of every
chain are converted to model space in this process (``ld.constrain(theta,
deterministics=True)``), the per-draw statistics keep ArviZ's names, ``attrs`` record the
model, backend, engine, settings, seed and timings, and one :class:`SamplingWarning` reports
divergences and maximum-tree-depth hits after warmup.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from ppl_ad._version import __version__
from ppl_ad.errors import SamplingWarning
from ppl_ad.infer.chain import ChainResult
from ppl_ad.infer.init import model_name

__all__ = ["to_inference_data", "import_arviz", "preload_arviz", "user_stacklevel"]


def import_arviz():
    with warnings.catch_warnings():
        # arviz 0.23 announces its refactor with a FutureWarning at import time.
        warnings.simplefilter("ignore", FutureWarning)
        import arviz

    return arviz


def preload_arviz() -> None:
    """Import ArviZ in a background thread; a failure is left for the real import to report."""
    try:
        import_arviz()
    except Exception:  # noqa: BLE001 - _to_inference_data imports it again and raises there
        pass


def _dims_for(values: Mapping[str, np.ndarray], leading: int) -> dict[str, list[str]]:
    return {
        name: [f"{name}_dim_{k}" for k in range(np.ndim(value) - leading)]
        for name, value in values.items()
        if np.ndim(value) > leading
    }


def _posterior_arrays(ld, results: Sequence[ChainResult]) -> dict[str, np.ndarray]:
    chains, draws = len(results), results[0].draws.shape[0]
    arrays: dict[str, np.ndarray] = {}
    if draws == 0:
        return {
            name: np.empty((chains, 0) + tuple(shape))
            for name, shape in {**ld.site_shapes, **getattr(ld, "deterministic_shapes", {})}.items()
        }
    for c, result in enumerate(results):
        for i in range(draws):
            values = ld.constrain(result.draws[i], deterministics=True)
            if not arrays:
                for name, value in values.items():
                    value = np.asarray(value)
                    arrays[name] = np.empty((chains, draws) + value.shape, dtype=np.result_type(value, np.float64))
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



def to_inference_data(ld, results, settings, chains, processes, seed_seq, init, wall_start, extra_attrs=None):
    az = import_arviz()
    name = model_name(ld)
    posterior = _posterior_arrays(ld, results)
    stats = {key: np.stack([r.stats[key] for r in results]) for key in results[0].stats}
    observed = {k: np.asarray(v) for k, v in (ld.observed_data() or {}).items()}
    dims = {**_dims_for(posterior, 2), **_dims_for(observed, 0)}
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
        "init": init if isinstance(init, str) else "user",
        "seed": str(seed_seq.entropy),
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        # The arrays are (chain, draw, ...) by construction; arviz's shape guess
        # would warn whenever chains > draws.
        warnings.filterwarnings("ignore", message="More chains", category=UserWarning)
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=stats,
            observed_data=observed or None,
            dims=dims,
            attrs=attrs,
        )
    if message is not None:
        warnings.warn(message, SamplingWarning, stacklevel=user_stacklevel())
    return idata


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
