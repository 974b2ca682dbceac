"""One benchmark cell, run in its own process by ``ppl-ad bench``.

``python -m ppl_ad.bench._cell --model NAME --backend NAME [--repeats N]`` benchmarks one
scenario with one backend and prints the row as one JSON line prefixed ``CELL `` (so that
a crash, a hang or a library printing to stdout cannot corrupt the matrix).
``--model regression --dims 2,5,10`` benchmarks the scalable regression family instead,
one row per dimension. ``--model LABEL --model-ref path/to/file.py:NAME`` (or ``module:NAME``)
benchmarks the user's bound model (:func:`ppl_ad.bench.cells.load_model`) under that label.
``--task sampling`` runs NUTS instead
(:func:`ppl_ad.bench.sampling.sampling_cell`); there ``--backend`` may also be ``pymc`` or
``numpyro``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ppl_ad.bench.cells import PREFIX


def regression_model(d: int, n: int = 100):
    """Linear regression with ``d`` coefficients and ``n`` rows (dimension ``d + 1``)."""
    import ppl_ad as pa
    from ppl_ad import dist
    from ppl_ad import math as M

    @pa.model(name=f"regression_{d}")
    def regression(X, y):
        beta = pa.sample("beta", dist.Normal(0.0, 1.0), shape=(X.shape[1],))
        sigma = pa.sample("sigma", dist.HalfNormal(1.0))
        pa.observe("y", dist.Normal(M.matmul(X, beta), sigma), y)

    rng = np.random.RandomState(d)
    X = rng.normal(size=(n, d))
    y = X @ (rng.normal(size=d) / np.sqrt(d)) + 0.5 * rng.normal(size=n)
    return regression(X, y)


def _emit(row: dict) -> None:
    def clean(v):
        return None if isinstance(v, float) and not np.isfinite(v) else v

    print(PREFIX + json.dumps({k: clean(v) for k, v in row.items()}), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ppl_ad.bench._cell")
    parser.add_argument("--model", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--model-ref", default=None, help="the user's model: path/to/file.py:NAME or module:NAME")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--budget", type=float, default=0.3)
    parser.add_argument("--dims", default=None, help="dimensions of the regression family")
    parser.add_argument("--task", choices=("gradient", "sampling"), default="gradient")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--cores", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    if args.task == "sampling":
        from ppl_ad.bench.sampling import sampling_cell

        _emit(sampling_cell(args.model, args.backend, draws=args.draws, tune=args.tune, chains=args.chains,
                            cores=args.cores, seed=args.seed))
        return 0

    from ppl_ad.bench.benchmark import benchmark
    from ppl_ad.testing.scenarios import get_scenario

    if args.dims:
        for d in (int(x) for x in args.dims.split(",")):
            table = benchmark(regression_model(d), backends=[args.backend], repeats=args.repeats, budget=args.budget)
            _emit({**table[0], "model": "regression", "dimension": table.dimension, "d": d})
        return 0
    if args.model_ref:
        from ppl_ad.bench.cells import load_model

        model = load_model(args.model_ref)
    else:
        model = get_scenario(args.model).model()
    table = benchmark(model, backends=[args.backend], repeats=args.repeats, budget=args.budget)
    _emit({**table[0], "model": args.model, "dimension": table.dimension})
    return 0


if __name__ == "__main__":
    sys.exit(main())
