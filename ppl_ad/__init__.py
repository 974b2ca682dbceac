"""ppl_ad: probabilistic programming with a per-model choice of AD backend.

Write a model once with :func:`model`, :func:`sample`, :func:`observe`,
:func:`deterministic` and :func:`factor`; compile it to a log density on the unconstrained
space with :func:`logdensity`; differentiate it with a backend from :mod:`ppl_ad.backends`.
"""

from __future__ import annotations

from ppl_ad._version import __version__
from ppl_ad import backends, constraints, distributions, math, transforms
from ppl_ad import distributions as dist
from ppl_ad.errors import (
    BackendRemovedError, BackendUnavailableError, CheckpointError, ConfigError, DataError, ModelDefinitionError,
    ModelError, ModelEvaluationError, PplAdDeprecationWarning, PplAdError, SamplingError,
    SamplingWarning, UnknownBackendError,
)
from ppl_ad.logdensity import LogDensity, logdensity, register_backend_resolver
from ppl_ad.model import Model, ModelFunction, deterministic, factor, model, observe
from ppl_ad.model.primitives import sample_site

__all__ = [
    "__version__", "model", "Model", "ModelFunction", "sample", "observe", "deterministic",
    "factor", "logdensity", "LogDensity", "dist", "distributions", "math", "backends",
    "constraints", "transforms", "check_gradients", "find_MAP", "sample_prior_predictive",
    "sample_posterior_predictive", "read_checkpoint", "benchmark", "PplAdError", "ModelError",
    "ModelDefinitionError", "ModelEvaluationError", "DataError", "ConfigError",
    "UnknownBackendError", "BackendUnavailableError", "BackendRemovedError", "SamplingError",
    "SamplingWarning", "CheckpointError", "PplAdDeprecationWarning", "condition", "sbc", "SBCResult",
    "compute_log_likelihood",
]


# backend="auto" measures the candidates: the benchmark layer decides (imported on first use)
register_backend_resolver("auto", "ppl_ad.bench.auto:choose_backend")


def _register_log_likelihood():
    # pa.sample(..., log_likelihood=True): the results layer computes it (imported on first use)
    from ppl_ad.infer.results import register_log_likelihood

    register_log_likelihood("ppl_ad.loglik:pointwise_log_likelihood")


_register_log_likelihood()


def sample(name_or_model=None, *args, **kwargs):
    """Two uses, told apart by the first argument.

    * Inside a model, ``pa.sample(name, distribution, shape=None, dims=None, transform=None)`` declares a parameter
      (see :func:`ppl_ad.model.sample_site`).
    * On a model, ``pa.sample(model, backend=None, draws=1000, tune=1000, chains=4, cores=None,
      seed=None, sampler="nuts", target_accept=0.8, max_treedepth=10, metric="diag",
      init="jitter", progressbar=True, *, engine=None, chain_method=None, path_length=2.0,
      coords=None, log_likelihood=False, ..., discard_tuned_samples=True)``
      runs NUTS and returns an ``arviz.InferenceData`` (see :func:`ppl_ad.infer.sample.sample`,
      whose signature ``help`` and IDEs show for this function).
    """
    if name_or_model is None and "model" in kwargs:  # pa.sample(model=m, ...)
        name_or_model = kwargs.pop("model")
    if name_or_model is None:
        raise TypeError("sample() needs a model (pa.sample(model, ...)), or inside a model a site name "
                        "(pa.sample('x', distribution))")
    if isinstance(name_or_model, str):
        return sample_site(name_or_model, *args, **kwargs)
    from ppl_ad._keywords import check_keywords
    from ppl_ad.infer.sample import sample as run_sampler

    check_keywords(run_sampler, kwargs)
    return run_sampler(name_or_model, *args, **kwargs)


def _sample_signature():
    # help(pa.sample) and IDEs that ask inspect.signature show the sampler's arguments (draws,
    # tune, chains, ...); built without importing the sampler, from a mirror of its parameters.
    import inspect

    P = inspect.Parameter
    positional = [("backend", None), ("draws", 1000), ("tune", 1000), ("chains", 4), ("cores", None),
                  ("seed", None), ("sampler", "nuts"), ("target_accept", 0.8), ("max_treedepth", 10),
                  ("metric", "diag"), ("init", "jitter"), ("progressbar", True)]
    keyword = [("engine", None), ("chain_method", None), ("path_length", 2.0), ("coords", None),
               ("log_likelihood", False), ("checkpoint", None), ("checkpoint_every", None), ("overwrite", False),
               ("metric_adaptation", "nutpie"),
               ("executor", None), ("discard_tuned_samples", True)]
    parameters = [P("model", P.POSITIONAL_OR_KEYWORD)]
    parameters += [P(n, P.POSITIONAL_OR_KEYWORD, default=d) for n, d in positional]
    parameters += [P(n, P.KEYWORD_ONLY, default=d) for n, d in keyword]
    return inspect.Signature(parameters)


sample.__signature__ = _sample_signature()


def __getattr__(name):
    # Heavier entry points are imported on first use so that `import ppl_ad` stays cheap.
    lazy = {
        "check_gradients": ("ppl_ad.testing.gradients", "check_gradients"),
        "find_MAP": ("ppl_ad.infer.find_map", "find_MAP"),
        "sample_prior_predictive": ("ppl_ad.predictive", "sample_prior_predictive"),
        "sample_posterior_predictive": ("ppl_ad.predictive", "sample_posterior_predictive"),
        "read_checkpoint": ("ppl_ad.infer.checkpoint", "read_checkpoint"),
        "compute_log_likelihood": ("ppl_ad.loglik", "compute_log_likelihood"),
        "benchmark": ("ppl_ad.bench.benchmark", "benchmark"),
        "testing": ("ppl_ad.testing", None),
        "condition": ("ppl_ad.model.condition", "condition"),
        "sbc": ("ppl_ad.sbc", "sbc"),
        "SBCResult": ("ppl_ad.sbc", "SBCResult"),
    }
    if name in lazy:
        import importlib

        module_name, attribute = lazy[name]
        module = importlib.import_module(module_name)
        value = module if attribute is None else getattr(module, attribute)
        if name == "sbc":  # the function, not its module ppl_ad.sbc that the import bound here
            globals()[name] = value
        return value
    raise AttributeError(f"module 'ppl_ad' has no attribute {name!r}")
