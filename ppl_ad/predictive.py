"""Prior and posterior predictive sampling, returned as ArviZ ``InferenceData`` groups.

Uses the model's NumPy path: parameters are drawn from their priors (or taken from the
posterior draws) and observed sites are drawn from their likelihoods with each
distribution's NumPy sampler.
"""

from __future__ import annotations

import numpy as np

from ppl_ad.model.handlers import PredictiveHandler, run_model

__all__ = ["sample_prior_predictive", "sample_posterior_predictive"]


def _stack(draws: list[dict]) -> dict:
    names = draws[0].keys() if draws else []
    return {name: np.stack([np.asarray(d[name]) for d in draws])[None, ...] for name in names}


def _dims(values: dict) -> dict:
    return {name: [f"{name}_dim_{i}" for i in range(np.ndim(v) - 2)] for name, v in values.items()}


def sample_prior_predictive(model, draws: int = 500, seed=None):
    """Draw parameters from their priors and data from the likelihood.

    Returns
    -------
    arviz.InferenceData
        Groups ``prior`` (parameters and deterministics) and ``prior_predictive``
        (observed sites), with one chain of ``draws`` draws, plus ``observed_data``.
    """
    import arviz as az

    rng = np.random.default_rng(seed)
    params, observed = [], []
    for _ in range(draws):
        handler = run_model(model, PredictiveHandler(rng, model_name=model.name))
        params.append(handler.values)
        observed.append(handler.observed)
    observed_data = _observed(model)
    prior, predictive = _stack(params), _stack(observed)
    return az.from_dict(
        prior=prior, prior_predictive=predictive, observed_data=observed_data,
        dims={**_dims(prior), **_dims(predictive), **{k: [f"{k}_dim_{i}" for i in range(np.ndim(v))] for k, v in observed_data.items()}},
        attrs={"model": model.name},
    )


def _observed(model) -> dict:
    from ppl_ad.model.compiled import compile_model

    compiled = compile_model(model)
    return {s.name: np.asarray(s.value) for s in compiled.sites.values() if s.kind == "observe"}


def sample_posterior_predictive(model, idata, seed=None, extend: bool = True):
    """Draw observed sites given each posterior draw in ``idata.posterior``.

    Parameters
    ----------
    model : ppl_ad.model.Model
    idata : arviz.InferenceData
        Output of ``pa.sample``.
    extend : bool
        Add the ``posterior_predictive`` group to ``idata`` (and return it); otherwise return
        a new InferenceData with only that group.
    """
    import arviz as az

    from ppl_ad.model.compiled import compile_model

    rng = np.random.default_rng(seed)
    compiled = compile_model(model)
    names = [s.name for s in compiled.parameters]
    posterior = idata.posterior
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    arrays = {name: posterior[name].values for name in names}
    out = []
    for c in range(chains):
        row = []
        for d in range(draws):
            substitutions = {name: arrays[name][c, d] for name in names}
            handler = run_model(model, PredictiveHandler(rng, substitutions, model.name))
            row.append(handler.observed)
        out.append(row)
    predictive = {
        name: np.stack([np.stack([np.asarray(r[name]) for r in row]) for row in out]) for name in out[0][0]
    }
    group = az.from_dict(posterior_predictive=predictive, dims=_dims(predictive))
    if extend:
        idata.extend(group)
        return idata
    return group
