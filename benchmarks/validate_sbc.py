"""Simulation-based calibration of the four standard models with every supported backend.

SBC (Talts et al. 2018) is ppl_ad's strongest correctness test: if the sampler draws from the
right posterior, the rank of each prior draw among the posterior draws of its own simulated
data is uniform. This script runs :func:`ppl_ad.sbc` on eight schools, logistic regression, the
100-d Gaussian and the hierarchical Poisson model for each supported backend, and writes

* ``<out>/sbc.md`` and ``<out>/sbc.json``: one row per model x backend (smallest p-value over
  the parameters, chi-square and ECDF; divergences; fits per minute; pass/fail at ``--alpha``);
* ``<out>/sbc_ranks.png`` (and a copy in ``<docs>/``): the rank-ECDF plots of the first backend.

A cell that raises is reported as an error, not a crash of the run. Simulations run on a Dask
cluster (``--executor tcp://scheduler:8786``), on a LocalCluster started here (``--workers N``)
or on the local cores (default).

``--scaling 1,2`` instead measures SBC throughput (fits per minute) of eight schools on a
LocalCluster with 1, then 2 workers (``docs/scaling.md``).

Usage::

    python benchmarks/validate_sbc.py                       # full: 100 simulations per cell
    python benchmarks/validate_sbc.py --smoke               # minutes: 10 simulations, short fits
    python benchmarks/validate_sbc.py --scaling 1,2 --simulations 20
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import sys
import time
import traceback

import numpy as np

MODELS = ("eight_schools", "logistic_regression", "gaussian_100d", "hierarchical_poisson")
BACKENDS = ("jax", "jax-forward", "torch", "autograd")


def _parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--simulations", type=int, default=100)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=1)
    parser.add_argument("--thin", type=int, default=10)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--alpha", type=float, default=1e-3, help="a cell fails when a p-value is below it")
    parser.add_argument("--executor", default=None, help="a Dask scheduler address")
    parser.add_argument("--workers", type=int, default=None, help="start a LocalCluster with this many workers")
    parser.add_argument("--smoke", action="store_true", help="10 simulations of 200 + 200 iterations, thin 4")
    parser.add_argument("--scaling", default=None, help="worker counts, e.g. 1,2: measure throughput instead")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--docs", default="docs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.simulations, args.draws, args.tune, args.thin = 10, 200, 200, 4
    return args


@contextlib.contextmanager
def _client(address=None, workers=None):
    """A Dask client (to ``address`` or a LocalCluster of ``workers``), or None."""
    if address is None and workers is None:
        yield None
        return
    import distributed

    if address is not None:
        with distributed.Client(address) as client:
            yield client
        return
    with distributed.LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR,
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def _warm_up():
    import arviz  # noqa: F401

    import ppl_ad.sbc  # noqa: F401

    return os.getpid()


def _machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def run_scaling(args) -> dict:
    """Fits per minute of eight-schools SBC on LocalClusters of each size in ``--scaling``."""
    import ppl_ad as pa
    from ppl_ad.testing.scenarios import get_scenario

    model = get_scenario("eight_schools").model()
    backend = args.backends.split(",")[0]
    rows = []
    for workers in [int(w) for w in args.scaling.split(",")]:
        with _client(workers=workers) as client:
            client.run(_warm_up)
            # one untimed fit per worker: imports and the backend's first compilation
            pa.sbc(model, simulations=workers, draws=50, tune=50, backend=backend, seed=0,
                   executor=client, progressbar=False)
            start = time.perf_counter()
            result = pa.sbc(
                model, simulations=args.simulations, draws=args.draws, tune=args.tune, chains=args.chains,
                thin=args.thin, backend=backend, seed=args.seed, executor=client, progressbar=False,
            )
            wall = time.perf_counter() - start
        rows.append({
            "workers": workers, "simulations": args.simulations, "wall_s": wall,
            "fits_per_minute": 60 * args.simulations / wall,
            "median_fit_s": float(np.median(result.seconds)), "mean_fit_s": float(np.mean(result.seconds)),
            "median_fit_cpu_s": float(np.median(result.cpu_seconds)),
            "divergences": int(result.divergences.sum()),
        })
        print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["fits_per_minute"]
    lines = [
        f"SBC throughput, eight schools, backend `{backend}`, {args.simulations} simulations of "
        f"{args.chains} chain x ({args.tune} + {args.draws}), {datetime.date.today()}, {_machine()}, "
        f"load average before the run {os.getloadavg()[0]:.1f}.",
        "",
        "| workers | wall (s) | fits / min | speed-up | median wall s / fit | median CPU s / fit |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['workers']} | {row['wall_s']:.1f} | {row['fits_per_minute']:.1f} | "
            f"{row['fits_per_minute'] / base:.2f} | {row['median_fit_s']:.2f} | {row['median_fit_cpu_s']:.2f} |"
        )
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "sbc_scaling.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "sbc_scaling.json"), "w") as f:
        json.dump({"machine": _machine(), "backend": backend, "rows": rows}, f, indent=1)
    print("\n".join(lines))
    return {"rows": rows}


def run_validation(args) -> list[dict]:
    """SBC of each model x backend; writes the markdown, JSON and the ranks plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import ppl_ad as pa
    from ppl_ad.testing.scenarios import get_scenario

    models, backends = args.models.split(","), args.backends.split(",")
    rows, results = [], {}
    os.makedirs(args.out, exist_ok=True)
    start_all = time.perf_counter()
    with _client(args.executor, args.workers) as client:
        if client is not None:
            client.run(_warm_up)
        for name in models:
            model = get_scenario(name).model()
            for backend in backends:
                row = {"model": name, "backend": backend}
                try:
                    result = pa.sbc(
                        model, simulations=args.simulations, draws=args.draws, tune=args.tune,
                        chains=args.chains, thin=args.thin, backend=backend, seed=args.seed,
                        executor=client, progressbar=True,
                    )
                except Exception as error:  # noqa: BLE001 - a failing cell is a result
                    row.update(status="error", error=f"{type(error).__name__}: {str(error)[:300]}")
                    traceback.print_exc()
                else:
                    chi, ecdf = result.pvalues, result.ecdf_pvalues
                    row.update(
                        status="pass" if min(min(chi.values()), min(ecdf.values())) >= args.alpha else "FAIL",
                        min_chi_square_p=min(chi.values()), min_ecdf_p=min(ecdf.values()),
                        worst=min(chi, key=chi.get), divergences=int(result.divergences.sum()),
                        fits_with_divergences=int((result.divergences > 0).sum()),
                        fits_per_minute=result.fits_per_minute, wall_s=result.wall_seconds,
                        pvalues=chi, ecdf_pvalues=ecdf,
                    )
                    results[(name, backend)] = result
                rows.append(row)
                print(json.dumps({k: v for k, v in row.items() if "pvalues" not in k}), flush=True)
    total = time.perf_counter() - start_all
    header = (
        f"SBC validation ({datetime.date.today()}, {_machine()}): {args.simulations} simulations per cell, "
        f"1 fit = {args.chains} chain x ({args.tune} warmup + {args.draws} draws), thin {args.thin}, seed "
        f"{args.seed}; a cell passes when every parameter's chi-square and ECDF p-value is >= {args.alpha:g} "
        f"(vector parameters: Bonferroni over the elements). Total {total:.0f} s. "
        f"Command: `python benchmarks/validate_sbc.py {' '.join(sys.argv[1:])}`."
    )
    lines = [
        "# Simulation-based calibration", "", header, "",
        "| model | backend | status | min chi-square p | min ECDF p | worst parameter | divergences (fits) | fits / min |",
        "|---|---|---|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        if row["status"] == "error":
            lines.append(f"| {row['model']} | `{row['backend']}` | error | | | {row['error']} | | |")
        else:
            lines.append(
                f"| {row['model']} | `{row['backend']}` | {row['status']} | {row['min_chi_square_p']:.3g} | "
                f"{row['min_ecdf_p']:.3g} | `{row['worst']}` | {row['divergences']} ({row['fits_with_divergences']}) | "
                f"{row['fits_per_minute']:.1f} |"
            )
    with open(os.path.join(args.out, "sbc.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(args.out, "sbc.json"), "w") as f:
        json.dump({"header": header, "rows": rows}, f, indent=1, default=float)
    _plot(results, models, backends[0], args, plt)
    print("\n".join(lines))
    return rows


def _plot(results, models, backend, args, plt):
    """One row of rank-ECDF panels per model (``backend``), saved to ``out`` and ``docs``."""
    shown = [(m, results[(m, backend)]) for m in models if (m, backend) in results]
    if not shown:
        return
    import io

    from PIL import Image

    images = []
    for _, result in shown:
        fig = result.plot(kind="ecdf")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
        plt.close(fig)
        images.append(Image.open(buffer).convert("RGB"))
    width, height = max(i.width for i in images), sum(i.height for i in images)
    canvas = Image.new("RGB", (width, height), "white")
    y = 0
    for image in images:
        canvas.paste(image, (0, y))
        y += image.height
    path = os.path.join(args.out, "sbc_ranks.png")
    canvas.save(path)
    if args.docs:
        os.makedirs(args.docs, exist_ok=True)
        shutil.copy(path, os.path.join(args.docs, "sbc_ranks.png"))


def main(argv=None) -> int:
    args = _parse(argv)
    if args.scaling:
        run_scaling(args)
        return 0
    rows = run_validation(args)
    return 0 if all(row["status"] == "pass" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
