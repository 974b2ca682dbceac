"""Sampler overhead per leapfrog step, excluding the gradient evaluation.

The NUTS/HMC samplers of ``ppl_ad.infer`` run in Python between gradient calls.
This benchmark measures their own cost: it runs a chain on a d-dimensional
standard Gaussian whose gradient is trivial (``-x``), times the time spent inside
the ``logdensity_and_gradient`` callable, and reports

    (total time - time inside the callable) / number of callable calls

i.e. the sampler's time per leapfrog step (each step makes one call). Two
measurements per dimension:

``kernel``
    NUTS transitions only, at a fixed step size (no adaptation, no bookkeeping);
``chain``
    ``ppl_ad.infer.chain.run_chain`` (warmup with adaptation, then draws,
    statistics recorded), for NUTS and static HMC.

The median over ``--repeats`` runs is reported. On a shared machine wall-clock
time is inflated by other processes, so a second figure uses CPU time: the
process's CPU time for the run minus the number of calls times the CPU cost of
one gradient call (calibrated in a tight loop), per call. Usage::

    python benchmarks/bench_sampler_overhead.py [--dims 10 100] [--repeats 7] [--output FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

from ppl_ad.infer import nuts
from ppl_ad.infer.chain import ChainSettings, run_chain
from ppl_ad.infer.hmc import HMCState
from ppl_ad.infer.metrics import gaussian_euclidean
from ppl_ad.infer.uniforms import UniformStream


class TimedGaussian:
    """Standard Gaussian log density that records the time spent inside it."""

    def __init__(self):
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, x):
        start = time.perf_counter()
        result = (-0.5 * float(x.dot(x)), -x)
        self.seconds += time.perf_counter() - start
        self.calls += 1
        return result


def overhead_kernel(dim: int, transitions: int, seed: int) -> float:
    f = TimedGaussian()
    rng = np.random.default_rng(seed)
    metric = gaussian_euclidean(np.ones(dim))
    kernel = nuts.build_kernel(f, metric)
    uniform = UniformStream(rng)
    x = rng.normal(size=dim)
    logp, grad = f(x)
    state = HMCState(x, logp, grad)
    step_size = 1.2 * dim ** (-0.25)  # acceptance ~0.8-0.9 on a standard Gaussian
    f.calls, f.seconds = 0, 0.0
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(transitions):
        state, _ = kernel(state, step_size, metric.sample_momentum(rng), uniform)
    total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return (total - f.seconds) / f.calls, total_cpu / f.calls - gradient_cpu_seconds(dim)


def overhead_chain(dim: int, sampler: str, draws: int, tune: int, seed: int) -> float:
    f = TimedGaussian()
    rng = np.random.default_rng(seed)
    x0 = rng.uniform(-2, 2, size=dim)
    settings = ChainSettings(draws=draws, tune=tune, sampler=sampler)
    start, start_cpu = time.perf_counter(), time.process_time()
    run_chain(f, x0, rng, settings)
    total, total_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    return (total - f.seconds) / f.calls, total_cpu / f.calls - gradient_cpu_seconds(dim)


_GRADIENT_CPU: dict[int, float] = {}


def gradient_cpu_seconds(dim: int, calls: int = 20000) -> float:
    """CPU seconds of one call of :class:`TimedGaussian` (timers included)."""
    if dim not in _GRADIENT_CPU:
        f = TimedGaussian()
        x = np.ones(dim)
        start = time.process_time()
        for _ in range(calls):
            f(x)
        _GRADIENT_CPU[dim] = (time.process_time() - start) / calls
    return _GRADIENT_CPU[dim]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--transitions", type=int, default=300)
    parser.add_argument("--draws", type=int, default=300)
    parser.add_argument("--tune", type=int, default=300)
    parser.add_argument("--output", help="write the results as JSON to this file")
    args = parser.parse_args(argv)

    results = {
        "unit": "microseconds of sampler time per leapfrog step (gradient time excluded)",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": platform.machine(),
        "repeats": args.repeats,
        "results": [],
    }
    print(f"{'dim':>5} {'measurement':<12} {'wall: median':>13} {'min':>7} {'max':>7} {'cpu: median':>12} {'min':>7}")
    for dim in args.dims:
        cases = {
            "nuts kernel": lambda s: overhead_kernel(dim, args.transitions, s),
            "nuts chain": lambda s: overhead_chain(dim, "nuts", args.draws, args.tune, s),
            "hmc chain": lambda s: overhead_chain(dim, "hmc", args.draws, args.tune, s),
        }
        for name, run in cases.items():
            run(1000)  # warm-up run, not timed
            pairs = [run(seed) for seed in range(args.repeats)]
            wall = [1e6 * w for w, _ in pairs]
            cpu = [1e6 * c for _, c in pairs]
            median, cpu_median = statistics.median(wall), statistics.median(cpu)
            print(
                f"{dim:>5} {name:<12} {median:>13.2f} {min(wall):>7.2f} {max(wall):>7.2f} "
                f"{cpu_median:>12.2f} {min(cpu):>7.2f}"
            )
            results["results"].append(
                {
                    "dim": dim, "measurement": name, "median_us": median, "min_us": min(wall),
                    "max_us": max(wall), "cpu_median_us": cpu_median, "cpu_min_us": min(cpu),
                }
            )
    if args.output:
        with open(args.output, "w") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
