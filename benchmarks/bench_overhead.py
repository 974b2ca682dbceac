"""ppl_ad's value-and-gradient vs the same log density written by hand in each library.

For every supported backend and the four standard models, reports the median µs per
call of ``ld.logdensity_and_gradient`` and of a hand-written equivalent (jitted where the
library jits, called the same way: float64 NumPy in, (float, NumPy) out), their ratio
(target <= 1.10), and the NumPy value-only floor. Calls of the two are interleaved in
rounds so machine noise hits both alike (:func:`ppl_ad.bench.measure.time_calls`, the one
call timer), under the sampler's thread limits (:func:`ppl_ad.bench.measure.thread_limits`).

Run: ``.venv/bin/python benchmarks/bench_overhead.py [--out benchmarks/results]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform

import numpy as np

import ppl_ad as pa
from ppl_ad.bench.measure import thread_limits, time_call, time_calls
from ppl_ad.table import Table
from ppl_ad.testing.scenarios import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, get_scenario, standard_data

LOG2PI = np.log(2 * np.pi)


def hand_written(library, model):
    """Return f(theta) -> scalar for ``model`` written directly in ``library``'s array API."""
    data = standard_data()
    if library == "numpy":
        import scipy.special as sp
        xp, gammaln, softplus, log = np, sp.gammaln, lambda x: np.logaddexp(0, x), np.log
        conv = lambda a: a  # noqa: E731
    elif library in ("jax", "jax-forward"):
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as xp
        from jax.scipy.special import gammaln
        softplus, log, conv = jax.nn.softplus, xp.log, xp.asarray
    elif library == "autograd":
        import autograd.numpy as xp
        from autograd.scipy.special import gammaln
        softplus, log, conv = (lambda x: xp.logaddexp(0, x)), xp.log, (lambda a: a)
    elif library == "torch":
        import torch as xp
        gammaln, softplus, log = xp.special.gammaln, xp.nn.functional.softplus, xp.log
        conv = lambda a: xp.as_tensor(a)  # noqa: E731
    if model == "eight_schools":
        y, s = conv(EIGHT_SCHOOLS_Y), conv(EIGHT_SCHOOLS_SIGMA)

        def f(t):
            mu, ltau, tt = t[0], t[1], t[2:]
            tau = xp.exp(ltau)
            lp = -0.5 * (mu / 5.0) ** 2 - np.log(5.0) - 0.5 * LOG2PI
            lp = lp + np.log(2.0) - np.log(np.pi) - np.log(5.0) - xp.log1p((tau / 5.0) ** 2) + ltau
            lp = lp + xp.sum(-0.5 * tt**2 - 0.5 * LOG2PI)
            z = (y - (mu + tau * tt)) / s
            return lp + xp.sum(-0.5 * z**2 - log(s) - 0.5 * LOG2PI)
    elif model == "logistic_regression":
        X, y = conv(data["logistic"]["X"]), conv(data["logistic"]["y"].astype(float))

        def f(t):
            a, b = t[0], t[1:]
            eta = a + X @ b
            lp = -0.5 * (a / 2.0) ** 2 - np.log(2.0) - 0.5 * LOG2PI + xp.sum(-0.5 * b**2 - 0.5 * LOG2PI)
            return lp + xp.sum(y * eta - softplus(eta))
    elif model == "gaussian_100d":
        L = data["gaussian"]["L"]
        if library in ("jax", "jax-forward"):
            from jax.scipy.linalg import solve_triangular
            solve = lambda v: solve_triangular(conv(L), v, lower=True)  # noqa: E731
        elif library == "torch":
            Lt = conv(L)
            solve = lambda v: xp.linalg.solve_triangular(Lt, v[:, None], upper=False)[:, 0]  # noqa: E731
        else:
            from autograd.scipy.linalg import solve_triangular
            solve = lambda v: solve_triangular(L, v, lower=True)  # noqa: E731
        half_logdet = float(np.sum(np.log(np.diag(L))))

        def f(t):
            z = solve(t)
            return -0.5 * xp.sum(z * z) - half_logdet - 50.0 * LOG2PI
    elif model == "hierarchical_poisson":
        d = data["poisson"]
        g, x, y = conv(d["g"]), conv(d["x"]), conv(d["y"].astype(float))
        lfy = conv(np.asarray(__import__("scipy.special").special.gammaln(d["y"] + 1.0)))

        def f(t):
            mu, ls, z, b = t[0], t[1], t[2:202], t[202]
            sigma = xp.exp(ls)
            lp = -0.5 * mu**2 - 0.5 * LOG2PI + np.log(2.0) - 0.5 * sigma**2 - 0.5 * LOG2PI + ls
            lp = lp + xp.sum(-0.5 * z**2 - 0.5 * LOG2PI) - 0.5 * b**2 - 0.5 * LOG2PI
            eta = mu + sigma * z[g] + b * x
            return lp + xp.sum(y * eta - xp.exp(eta) - lfy)
    return f


def hand_value_and_grad(library, model):
    f = hand_written(library, model)
    if library in ("jax", "jax-forward"):
        import jax
        if library == "jax":
            vg = jax.jit(jax.value_and_grad(f))
        else:
            vg = jax.jit(lambda t: (f(t), jax.jacfwd(f)(t)))

        def call(theta):
            v, g = jax.device_get(vg(theta))
            return float(v), g
        return call
    if library == "autograd":
        import autograd
        vg = autograd.value_and_grad(f)
        return lambda theta: (lambda v, g: (float(v), np.asarray(g)))(*vg(theta))
    if library == "torch":
        import torch
        torch.set_num_threads(1)

        def call(theta):
            t = torch.from_numpy(theta).requires_grad_(True)
            out = f(t)
            out.backward()
            return out.item(), t.grad.numpy()
        return call
    raise ValueError(library)


def median_us(fn, theta, seconds=0.4):
    """Median µs per call of ``fn(theta)`` (the one call timer, :func:`ppl_ad.bench.measure.time_call`)."""
    return time_call(fn, theta, budget=seconds).median * 1e6


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with thread_limits():  # the sampler's worker settings, as for every ppl_ad measurement
        rows = _measure(args)
    _write(args, rows)


def _measure(args):
    rows = []
    for name in ("eight_schools", "logistic_regression", "gaussian_100d", "hierarchical_poisson"):
        model = get_scenario(name).model()
        numpy_ld = pa.logdensity(model, backend="finite-difference")
        theta = np.random.default_rng(0).uniform(-1, 1, numpy_ld.dimension)
        floor_fn = hand_written("numpy", name)
        floor = median_us(floor_fn, theta)
        ppl_floor = median_us(numpy_ld.compiled.logdensity, theta)
        for backend in ("jax", "jax-forward", "torch", "autograd"):
            ld = pa.logdensity(model, backend=backend, compiled=numpy_ld.compiled)
            hand = hand_value_and_grad(backend, name)
            v1, g1 = ld.logdensity_and_gradient(theta)
            v2, g2 = hand(theta)
            assert abs(v1 - v2) < 1e-8 * max(1, abs(v2)), (name, backend, v1, v2)
            assert np.allclose(g1, g2, rtol=1e-8, atol=1e-8), (name, backend)
            timings = time_calls({"ours": ld.logdensity_and_gradient, "theirs": hand}, theta,
                                 budget=0.4 * args.rounds, rounds=args.rounds)
            ours_us, theirs_us = timings["ours"].median * 1e6, timings["theirs"].median * 1e6
            rows.append(dict(model=name, backend=backend, ppl_ad_us=ours_us, hand_us=theirs_us,
                             ratio=ours_us / theirs_us, numpy_floor_us=floor, ppl_ad_numpy_value_us=ppl_floor))
            print(f"{name:22s} {backend:12s} ppl_ad {ours_us:9.1f} us  hand {theirs_us:9.1f} us  ratio {ours_us / theirs_us:5.2f}", flush=True)
    return rows


def _write(args, rows):
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    header = (f"# ppl_ad overhead vs hand-written log densities\n\n- command: `python benchmarks/bench_overhead.py`\n"
              f"- date: {stamp}; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared, noisy), "
              f"Python {platform.python_version()}, one thread per library\n- medians of per-call medians over {args.rounds} interleaved rounds; "
              "ratio = ppl_ad ÷ hand-written (target ≤ 1.10)\n\n")
    table = Table([{
        "model": r["model"], "backend": r["backend"], "ppl_ad µs": r["ppl_ad_us"], "hand-written µs": r["hand_us"],
        "ratio": r["ratio"], "NumPy value floor µs (hand / ppl_ad)": f"{r['numpy_floor_us']:.1f} / {r['ppl_ad_numpy_value_us']:.1f}",
    } for r in rows], columns=("model", "backend", "ppl_ad µs", "hand-written µs", "ratio", "NumPy value floor µs (hand / ppl_ad)"),
        formats={"ppl_ad µs": "{:.1f}", "hand-written µs": "{:.1f}", "ratio": "{:.2f}"})
    with open(os.path.join(args.out, "overhead.md"), "w") as handle:
        handle.write(header + table.to_markdown() + "\n")
    with open(os.path.join(args.out, "overhead.json"), "w") as handle:
        json.dump({"date": stamp, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
