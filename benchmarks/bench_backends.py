"""Benchmark every installed AD backend on the standard and posteriordb models.

The same as ``ppl-ad bench`` (see :mod:`ppl_ad.bench.cli`): one subprocess per cell,
results in ``benchmarks/results/backends.{json,md}`` and ``crossover.png`` (unless ``--out``
is given).

Run: ``python benchmarks/bench_backends.py [ppl-ad bench options]``, e.g.
``python benchmarks/bench_backends.py --models eight_schools,gaussian_100d``.
"""

import sys

from ppl_ad.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in args):
        args = ["--out", "benchmarks/results", *args]
    sys.exit(main(["bench", *args]))
