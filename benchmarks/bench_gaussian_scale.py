"""Is PyMC's lead in ESS per gradient on the 100-d Gaussian its unit starting metric?

On the standard 100-d Gaussian (``Sigma = A A^T / 100 + 0.1 I``, marginal variances near 1.1) PyMC's
default NUTS gets about 5 % more min ESS-bulk per gradient evaluation than ppl_ad's default over 20
seeds. PyMC's early metric estimates are pulled towards its starting unit metric (an initial weight
of 10 draws), which on this posterior is close to the truth; ppl_ad (like nutpie) uses its early
estimates as they are. If that is the cause, the lead should vanish when the same posterior is
scaled, ``Sigma -> s^2 Sigma``, while ppl_ad's numbers (whose warmup does not depend on the scale)
stay put.

For each scale ``s`` and seed 1..S this runs both samplers with their defaults on one core,
4 chains x (500 warmup + 500 draws), and reports per scale: the median (smallest-largest) of min
ESS-bulk per 1000 gradient evaluations (warmup included, as ``bench_ess_seeds.py``), the ratio of
the means with a 95 % bootstrap interval, and a two-sided Mann-Whitney p-value.

Run: ``.venv/bin/python benchmarks/bench_gaussian_scale.py [--scales 0.2,1,5] [--seeds 20]
[--out benchmarks/results/ess_seeds_gaussian_scaled]`` (writes ``gaussian_scale.md`` and ``.json``;
about 3 minutes per scale).
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _ppl_ad(L, seed, draws, tune):
    import arviz as az

    import ppl_ad as pa
    from ppl_ad.testing.scenarios import gaussian_100d

    idata = pa.sample(gaussian_100d(L), backend="jax", draws=draws, tune=tune, chains=4, cores=1, seed=seed,
                      progressbar=False)
    ess = float(az.ess(idata, method="bulk")["x"].values.min())
    return ess, int(idata.attrs["gradient_evaluations"])


def _pymc(L, seed, draws, tune):
    import arviz as az
    import pymc as pm

    logging.getLogger("pymc").setLevel(logging.ERROR)
    with pm.Model():
        pm.MvNormal("x", mu=np.zeros(L.shape[0]), chol=L)
        idata = pm.sample(draws=draws, tune=tune, chains=4, cores=1, random_seed=seed, progressbar=False,
                          compute_convergence_checks=False, discard_tuned_samples=False)
    ess = float(az.ess(idata, method="bulk")["x"].values.min())
    grads = int(idata.sample_stats["n_steps"].sum() + idata.warmup_sample_stats["n_steps"].sum())
    return ess, grads


def compare(a, b, rng) -> dict:
    """Medians, ratio of means (``a / b``) with a 95 % bootstrap interval, Mann-Whitney p."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(a, float), np.asarray(b, float)
    boot = [rng.choice(a, a.size).mean() / rng.choice(b, b.size).mean() for _ in range(10000)]
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return {"ratio_of_means": float(a.mean() / b.mean()), "ratio_ci": [float(lo), float(hi)],
            "mann_whitney_p": float(mannwhitneyu(a, b).pvalue)}


def _cell(values) -> str:
    return f"{np.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


def main(argv=None) -> int:
    from ppl_ad.testing.scenarios import standard_data

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="0.2,1,5")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--out", default="benchmarks/results/ess_seeds_gaussian_scaled")
    args = parser.parse_args(argv)
    scales = [float(s) for s in args.scales.split(",") if s]
    cov = standard_data()["gaussian"]["cov"]
    rows, summary = [], []
    rng = np.random.default_rng(0)
    for scale in scales:
        L = np.linalg.cholesky(cov * scale**2)
        per = {"ppl_ad": [], "pymc": []}
        for seed in range(1, args.seeds + 1):
            for name, run in (("ppl_ad", _ppl_ad), ("pymc", _pymc)):
                ess, grads = run(L, seed, args.draws, args.tune)
                per[name].append(1000 * ess / grads)
                rows.append({"scale": scale, "seed": seed, "sampler": name, "min_ess_bulk": ess,
                             "gradient_evaluations": grads, "ess_per_1k_grad": per[name][-1]})
                print(f"scale {scale} seed {seed} {name:7s} min ESS {ess:7.1f} grads {grads} "
                      f"ESS/1k {per[name][-1]:.1f}", flush=True)
        summary.append({"scale": scale, "ppl_ad": per["ppl_ad"], "pymc": per["pymc"]}
                       | compare(per["ppl_ad"], per["pymc"], rng))
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    lines = ["# The 100-d Gaussian, scaled: ESS per gradient of ppl_ad's and PyMC's defaults", "",
             f"- command: `python benchmarks/bench_gaussian_scale.py --scales {args.scales} --seeds {args.seeds} "
             f"--draws {args.draws} --tune {args.tune}`",
             f"- date: {stamp}; {os.cpu_count()} cores, one core per run; 4 chains × ({args.tune} + {args.draws}), "
             f"seeds 1..{args.seeds}", "- min ESS-bulk per 1000 gradient evaluations (warmup included): median "
             "(smallest-largest); ratio of the means ppl_ad / PyMC with a 95 % bootstrap interval", "",
             "| scale s (Sigma × s²) | ppl_ad | PyMC | ratio of means | Mann-Whitney p |", "|---|---:|---:|---:|---:|"]
    for s in summary:
        lo, hi = s["ratio_ci"]
        lines.append(f"| {s['scale']:g} | {_cell(s['ppl_ad'])} | {_cell(s['pymc'])} | "
                     f"{s['ratio_of_means']:.2f} ({lo:.2f}-{hi:.2f}) | {s['mann_whitney_p']:.3f} |")
    md = "\n".join(lines) + "\n"
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gaussian_scale.md"), "w") as handle:
        handle.write(md)
    with open(os.path.join(args.out, "gaussian_scale.json"), "w") as handle:
        json.dump({"settings": vars(args), "summary": summary, "rows": rows}, handle, indent=1)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
