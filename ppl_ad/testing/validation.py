"""Compare a ``ppl_ad`` posterior sample with a posteriordb reference posterior.

This module owns :func:`compare_to_reference` (one row per reference quantity) and
:func:`summarise` (one verdict per posterior). The test on the mean follows the posteriordb
folder's README ("Suggested test tolerances"):

    z = (mean_ppl - mean_ref) / sqrt(mcse_ref**2 + (sd_ppl / sqrt(ess_bulk))**2)

with the bulk effective sample size of Vehtari et al. (2021), *Rank-normalization, folding,
and localization: an improved R-hat*, as computed by ``arviz.ess``. A quantity passes when
``|z| < 4`` and the sd ratio ``sd_ppl / sd_ref`` is within 10 % of 1.
"""

from __future__ import annotations

import numpy as np

__all__ = ["Z_THRESHOLD", "SD_RATIO_TOLERANCE", "compare_to_reference", "summarise"]

Z_THRESHOLD = 4.0
SD_RATIO_TOLERANCE = 0.10


def _draws(posterior, site, index):
    values = np.asarray(posterior[site].values, dtype=float)  # (chain, draw, *shape)
    return values[(slice(None), slice(None)) + tuple(index)]


def compare_to_reference(idata, scenario, z_threshold=Z_THRESHOLD, sd_tolerance=SD_RATIO_TOLERANCE) -> list[dict]:
    """One row per reference quantity of ``scenario`` (a posteriordb scenario).

    Parameters
    ----------
    idata : arviz.InferenceData
        From :func:`ppl_ad.infer.sample.sample`; its ``posterior`` holds the sites by name.
    scenario : ppl_ad.testing.scenarios.Scenario
        ``scenario.reference`` is :func:`ppl_ad.testing.posteriordb.load_reference`.

    Returns
    -------
    list of dict
        Keys ``name``, ``site``, ``index``, ``ref_mean``, ``ref_sd``, ``ref_mcse``, ``mean``,
        ``sd``, ``ess_bulk``, ``z``, ``sd_ratio``, ``passed``.
    """
    import arviz as az

    reference = scenario.reference
    rows = []
    for name in reference["parameter_names"]:
        site, index = reference["sites"][name]
        summary = reference["summaries"][name]
        x = _draws(idata.posterior, site, index)
        mean, sd = float(np.mean(x)), float(np.std(x, ddof=1))
        ess = float(az.ess(x, method="bulk")) if x.size > 3 else float("nan")
        mcse = float(np.sqrt(summary["mcse_mean"] ** 2 + sd**2 / max(ess, 1.0)))
        z = (mean - summary["mean"]) / mcse if mcse > 0 else float("inf")
        ratio = sd / summary["sd"]
        passed = bool(np.isfinite(z) and abs(z) < z_threshold and abs(ratio - 1.0) < sd_tolerance)
        rows.append({
            "name": name, "site": site, "index": list(index), "ref_mean": summary["mean"],
            "ref_sd": summary["sd"], "ref_mcse": summary["mcse_mean"], "mean": mean, "sd": sd,
            "ess_bulk": ess, "z": float(z), "sd_ratio": float(ratio), "passed": passed,
        })
    return rows


def summarise(rows, idata=None) -> dict:
    """A one-line verdict: pass/fail, worst |z|, worst sd ratio, divergences, min ESS."""
    worst_z = max(abs(r["z"]) for r in rows)
    worst_ratio = max(rows, key=lambda r: abs(r["sd_ratio"] - 1.0))["sd_ratio"]
    out = {
        "passed": all(r["passed"] for r in rows),
        "worst_abs_z": float(worst_z),
        "worst_sd_ratio": float(worst_ratio),
        "min_ess_bulk": float(min(r["ess_bulk"] for r in rows)),
        "failed": [r["name"] for r in rows if not r["passed"]],
    }
    if idata is not None and "diverging" in idata.sample_stats:
        out["divergences"] = int(np.asarray(idata.sample_stats["diverging"]).sum())
    return out
