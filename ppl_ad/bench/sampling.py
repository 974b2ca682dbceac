"""Sampling efficiency: NUTS with each AD backend (and PyMC / NumPyro) on the standard models.

This module owns ``ppl-ad bench --sampling``. One *cell* is one (model, sampler) pair run in
its own process (``python -m ppl_ad.bench._cell --task sampling``): 4 chains x (1000 warmup +
1000 draws) of NUTS by default, and it reports what a user pays for a posterior:

``min_ess_per_s``
    the smallest bulk effective sample size over every sampled quantity (Vehtari et al.
    2021, *Rank-normalization, folding, and localization: an improved R-hat*, as computed by
    ``arviz.ess``) divided by the **total wall time** of the call: model build, compilation,
    warmup and sampling;
``steps_per_draw``
    leapfrog steps (one gradient evaluation each) per kept draw, and ``evals_per_draw``,
    every gradient evaluation of the run (warmup included) per kept draw;
``sampler_us_per_step``
    ppl_ad only: the sampler's own time per gradient evaluation, outside the backend's
    ``logdensity_and_gradient`` (``(tuning + sampling - gradient time) / evaluations``, from the
    counters of :func:`ppl_ad.infer.chain.run_chain`).

The peers run their default NUTS on the same model and data (:mod:`ppl_ad.bench.peers`):
PyMC 5 ``pm.sample`` (PyTensor C backend, chains in processes) and NumPyro ``MCMC(NUTS)``
with vectorized chains. Both samplers follow Hoffman & Gelman (2014), *The No-U-Turn
Sampler*, JMLR 15, with Stan's warmup, so ESS per second compares implementations, not
algorithms.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

__all__ = ["sampling_cell", "to_markdown", "plot", "SAMPLING_DEFAULTS"]

#: the benchmark protocol of ``benchmark-models.md``
SAMPLING_DEFAULTS = {"draws": 1000, "tune": 1000, "chains": 4}


def _row(model: str, sampler: str) -> dict:
    return {
        "model": model, "sampler": sampler, "dimension": None, "wall_s": None, "tuning_s": None,
        "sampling_s": None, "min_ess_bulk": None, "min_ess_per_s": None, "max_rhat": None,
        "divergences": None, "steps_per_draw": None, "evals_per_draw": None,
        "gradient_us": None, "sampler_us_per_step": None, "draws": None, "tune": None,
        "chains": None, "cores": None, "status": "ok", "note": "",
    }


def _ess_rhat(posterior, names) -> tuple[float, float]:
    """Smallest bulk ESS and largest R-hat over every element of the variables ``names``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        ess = az.ess(posterior, method="bulk", var_names=list(names))
        rhat = az.rhat(posterior, var_names=list(names))
    min_ess = min(float(np.min(ess[n].values)) for n in names)
    max_rhat = max(float(np.max(rhat[n].values)) for n in names)
    return min_ess, max_rhat


def _sampled_sites(model_name: str) -> tuple[list[str], int]:
    from ppl_ad.model.compiled import compile_model
    from ppl_ad.testing.scenarios import get_scenario

    compiled = compile_model(get_scenario(model_name).model())
    return list(compiled.site_shapes), int(compiled.dimension)


def _ppl_ad(row, model_name, backend, draws, tune, chains, cores, seed):
    import ppl_ad as pa
    from ppl_ad.testing.scenarios import get_scenario

    start = time.perf_counter()
    model = get_scenario(model_name).model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pa.SamplingWarning)  # divergences are a column here
        idata = pa.sample(model, backend=backend, draws=draws, tune=tune, chains=chains, cores=cores,
                          seed=seed, progressbar=False)
    row["wall_s"] = time.perf_counter() - start
    attrs, stats = idata.attrs, idata.sample_stats
    row["tuning_s"], row["sampling_s"] = attrs["tuning_time"], attrs["sampling_time"]
    row["cores"] = attrs["processes"]
    evaluations = attrs["gradient_evaluations"]
    row["steps_per_draw"] = float(stats["n_steps"].mean())
    row["evals_per_draw"] = evaluations / (chains * draws)
    row["gradient_us"] = attrs["gradient_time"] / evaluations * 1e6
    own = attrs["tuning_time"] + attrs["sampling_time"] - attrs["gradient_time"]
    row["sampler_us_per_step"] = own / evaluations * 1e6
    row["divergences"] = int(stats["diverging"].sum())
    return idata.posterior


def _pymc(row, model_name, draws, tune, chains, cores, seed):
    import pymc as pm

    from ppl_ad.bench.peers import pymc_model

    start = time.perf_counter()
    with pymc_model(model_name):
        idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                          progressbar=False, compute_convergence_checks=False,
                          discard_tuned_samples=False)
    row["wall_s"] = time.perf_counter() - start
    stats, warm = idata.sample_stats, idata.warmup_sample_stats
    row["cores"] = cores
    row["steps_per_draw"] = float(stats["n_steps"].mean())
    row["evals_per_draw"] = float(stats["n_steps"].sum() + warm["n_steps"].sum()) / (chains * draws)
    row["divergences"] = int(stats["diverging"].sum())
    if "sampling_time" in idata.posterior.attrs:
        row["sampling_s"] = float(idata.posterior.attrs["sampling_time"])
    return idata.posterior


def _numpyro(row, model_name, draws, tune, chains, seed):
    import jax
    from numpyro.infer import MCMC, NUTS

    from ppl_ad.bench.peers import numpyro_model

    start = time.perf_counter()
    mcmc = MCMC(NUTS(numpyro_model(model_name)), num_warmup=tune, num_samples=draws, num_chains=chains,
                chain_method="vectorized", progress_bar=False)
    fields = ("num_steps", "diverging")
    mcmc.warmup(jax.random.PRNGKey(seed), collect_warmup=True, extra_fields=fields)
    warm_steps = float(np.sum(np.asarray(mcmc.get_extra_fields()["num_steps"])))
    tuned = time.perf_counter()
    mcmc.run(mcmc.post_warmup_state.rng_key, extra_fields=fields)
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    extra = mcmc.get_extra_fields(group_by_chain=True)
    end = time.perf_counter()
    row["wall_s"], row["tuning_s"], row["sampling_s"] = end - start, tuned - start, end - tuned
    row["cores"] = 1
    steps = np.asarray(extra["num_steps"], dtype=float)
    row["steps_per_draw"] = float(steps.mean())
    row["evals_per_draw"] = (float(steps.sum()) + warm_steps) / (chains * draws)
    row["divergences"] = int(np.sum(np.asarray(extra["diverging"])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az

        return az.convert_to_dataset(samples)


def sampling_cell(model: str, sampler: str, *, draws: int = 1000, tune: int = 1000, chains: int = 4,
                  cores: int | None = None, seed: int = 1) -> dict:
    """Run NUTS on the standard model ``model`` with ``sampler`` and measure its efficiency.

    Parameters
    ----------
    model : str
        A scenario name (:func:`ppl_ad.testing.scenarios.get_scenario`); peers know the four
        standard models only.
    sampler : str
        A ppl_ad backend name, or ``"pymc"`` / ``"numpyro"``.
    draws, tune, chains : int
    cores : int, optional
        Processes for the chains (ppl_ad, PyMC); default ``min(chains, os.cpu_count())``.
        NumPyro runs its chains vectorized in one process.
    seed : int

    Returns
    -------
    dict
        The row (see the module docstring for the columns); a failure gives ``status`` "error"
        and the exception in ``note`` instead of raising.
    """
    import os

    row = _row(model, sampler)
    row.update(draws=draws, tune=tune, chains=chains)
    cores = max(1, min(chains, cores or os.cpu_count() or 1))
    try:
        names, row["dimension"] = _sampled_sites(model)
        if sampler == "pymc":
            posterior = _pymc(row, model, draws, tune, chains, cores, seed)
        elif sampler == "numpyro":
            posterior = _numpyro(row, model, draws, tune, chains, seed)
        else:
            posterior = _ppl_ad(row, model, sampler, draws, tune, chains, cores, seed)
        row["min_ess_bulk"], row["max_rhat"] = _ess_rhat(posterior, names)
        row["min_ess_per_s"] = row["min_ess_bulk"] / row["wall_s"]
    except Exception as exc:  # a failing cell is a row, never a crash of the matrix
        row["status"] = "error"
        row["note"] = f"{type(exc).__name__}: {str(exc)[:300]}"
    return row


def _fmt(value, digits=1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value).replace("|", "/").replace("\n", " ")


_COLUMNS = (
    ("sampler", "sampler", 0), ("min_ess_per_s", "min ESS-bulk / s", 1), ("ratio", "÷ best", 2),
    ("min_ess_bulk", "min ESS-bulk", 0), ("wall_s", "total wall s", 1),
    ("steps_per_draw", "steps / draw", 1), ("evals_per_draw", "grad evals / draw (incl. warmup)", 1),
    ("gradient_us", "µs / gradient in NUTS", 1), ("sampler_us_per_step", "sampler µs / step", 1),
    ("divergences", "divergences", 0), ("max_rhat", "max R-hat", 3), ("note", "note", 0),
)


def to_markdown(result: dict) -> str:
    """The ``sampling.md`` report: one table per model, best sampler first."""
    info = result["machine"]
    settings = result["settings"]
    lines = [
        "# Sampling efficiency: NUTS per AD backend, with PyMC and NumPyro",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date']}",
        f"- CPU: {info['cpu']} ({info['cores']} cores; shared with other work while measured)",
        f"- Python {info['python']}; " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- protocol: {settings['chains']} chains x ({settings['tune']} warmup + {settings['draws']} draws), "
        "NUTS with default settings (target acceptance 0.8, diagonal metric); one process per cell, "
        f"time limit {settings['timeout']:g} s per cell",
        "",
        "`min ESS-bulk / s` divides the smallest bulk ESS over every sampled quantity by the total wall "
        "time of the call (model build, compilation, warmup, sampling). `steps / draw` is the mean number "
        "of leapfrog steps (gradient evaluations) per kept draw; the next column counts every gradient "
        "evaluation of the run, warmup included. `µs / gradient in NUTS` and `sampler µs / step` split "
        "ppl_ad's time per step between the AD backend and the sampler's own Python (counted inside "
        "the chains). One run on a shared machine: compare ratios within a table.",
        "",
    ]
    cells = result["cells"]
    for model in dict.fromkeys(c["model"] for c in cells):
        rows = [c for c in cells if c["model"] == model]
        dim = next((c["dimension"] for c in rows if c.get("dimension")), "?")
        ok = [c for c in rows if c.get("min_ess_per_s")]
        best = max((c["min_ess_per_s"] for c in ok), default=None)
        rows = sorted(ok, key=lambda c: -c["min_ess_per_s"]) + [c for c in rows if c not in ok]
        lines += [f"## {model} (d = {dim})", "", "| " + " | ".join(h for _, h, _ in _COLUMNS) + " |",
                  "|---|" + "---:|" * (len(_COLUMNS) - 2) + "---|"]
        for c in rows:
            vals = []
            for key, _, digits in _COLUMNS:
                if key == "ratio":
                    v = c["min_ess_per_s"] / best if best and c.get("min_ess_per_s") else None
                elif key == "note":
                    v = c.get("note") or ("" if c.get("status") == "ok" else c.get("status"))
                elif key == "sampler":
                    v = c["sampler"] if c["sampler"] in ("pymc", "numpyro") else f"ppl_ad `{c['sampler']}`"
                else:
                    v = c.get(key)
                vals.append(_fmt(float(v) if isinstance(v, (int, float)) and digits else v, digits))
            lines.append("| " + " | ".join(vals) + " |")
        lines.append("")
    lines += ["![min ESS-bulk per second of total wall time](sampling.png)", ""]
    return "\n".join(lines)


def plot(result: dict, path) -> None:
    """Grouped bar chart (log scale) of min ESS-bulk per second, one group per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = [c for c in result["cells"] if c.get("min_ess_per_s")]
    models = list(dict.fromkeys(c["model"] for c in result["cells"]))
    samplers = list(dict.fromkeys(c["sampler"] for c in result["cells"]))
    width = 0.8 / max(len(samplers), 1)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    for k, sampler in enumerate(samplers):
        xs, ys = [], []
        for i, model in enumerate(models):
            cell = next((c for c in cells if c["model"] == model and c["sampler"] == sampler), None)
            if cell is not None:
                xs.append(i + (k - (len(samplers) - 1) / 2) * width)
                ys.append(cell["min_ess_per_s"])
        label = sampler if sampler in ("pymc", "numpyro") else f"ppl_ad {sampler}"
        ax.bar(xs, ys, width=width, label=label)
    ax.set_xticks(range(len(models)), models)
    ax.set_yscale("log")
    ax.set_ylabel("min ESS-bulk per second of wall time")
    ax.set_title("NUTS efficiency (higher is better; missing bar = error or time limit)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=min(len(samplers), 6), loc="upper center", bbox_to_anchor=(0.5, -0.08),
              frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
