"""Time per leapfrog step: ppl_ad's compiled engine against BlackJAX, interleaved in one process.

Two measurements, each written as its own table of ``step_time.md`` (and part of ``step_time.json``).

**End to end** (what a user sees). For each standard model, rounds alternate ppl_ad's default
sampler (``pa.sample(backend="jax")``, engine ``"jax"``, 4 chains one after another on one core)
and BlackJAX's NUTS with ``window_adaptation`` on a hand-written JAX density
(:func:`ppl_ad.bench.peers.jax_logdensity`), both through
:func:`ppl_ad.bench.sampling.sampling_cell`. Round 0 compiles (both reuse their programs in later
rounds of the same process), so the medians are over rounds 1..R:

- ``µs / step``: sampling-phase time divided by the sampling-phase leapfrog steps;
- ``µs / gradient, whole run``: (warmup + sampling time) divided by every gradient evaluation;
- ``min ESS / s (sampling+warmup)``: min ESS-bulk over warmup + sampling time (no compile).

That comparison mixes the two NUTS implementations with everything around them: each warmup
adapts its own step size and metric, so the trajectories differ in length (on eight schools about
6.8 leapfrog steps per draw for ppl_ad against 9.6 for BlackJAX) and each transition's fixed
cost is divided by different step counts; and BlackJAX runs a hand-written density while ppl_ad
runs the density compiled from its DSL.

**Controlled** (the cost per leapfrog step of the two NUTS implementations alone). For each model,
ppl_ad's JAX log density ``fn(theta, data)`` (:meth:`~ppl_ad.LogDensity.traceable`) is warmed up
once with ppl_ad's own chunk program (:mod:`ppl_ad.infer.jax_engine`, ``--tune`` iterations of its
default warmup); then the sampling phase of ``--controlled-draws`` transitions is timed for

- ``ppl_ad``: the engine's compiled chunk program (``_build_chunk``: NUTS of
  :mod:`ppl_ad.infer.jax_nuts`, the per-iteration bookkeeping and the draws' buffers, as
  ``pa.sample`` runs it after warmup);
- ``BlackJAX``: ``blackjax.nuts.build_kernel()``'s kernel driven by ``jax.lax.scan``, jitted as
  a BlackJAX user would;
- ``BlackJAX, lowered and compiled as ppl_ad's``: the same program lowered and compiled as
  ppl_ad's own (:mod:`ppl_ad.infer.lowering`: the random-number hash without a loop, XLA:CPU
  compiling small loops as one function, and LLVM at -O1), which separates the part of the difference due to
  lowering and compiling from the part due to the two samplers' code,

with the SAME density, the SAME adapted step size and inverse metric (passed as arguments to
both programs) and the same starting state (the warmup's last draw), each program compiled once.
The pair is timed on two densities: ppl_ad's (``density = ppl_ad``) and the hand-written one
(``density = hand-written``, :func:`~ppl_ad.bench.peers.jax_logdensity`, on the same unconstrained
space and layout: checked, up to its dropped constant, before timing), so the table separates the
part of the gap due to the density from the part due to the sampler. Round 0 compiles and is left
out; rounds 1..R interleave the six programs of a model:

- ``µs / step, min`` and ``median``: time of one call divided by its leapfrog steps, the smallest
  and the median over rounds;
- ``steps / draw``: leapfrog steps per transition (median). With equal step size and metric the
  samplers still differ a little: ppl_ad's U-turn check is Stan's (with its extra sub-tree
  checks), BlackJAX's is its own;
- ``µs / draw``: median time of one call divided by the draws;
- the ratios ppl_ad ÷ BlackJAX of the median µs / step, of the smallest µs / step, and of the
  median µs / draw; and ppl_ad's density ÷ hand-written density of the median µs / step, per sampler.

The one-thread settings are set before JAX starts; the load average is printed and written. A
shared machine is noisy: the interleaving makes the ratio, not the times, the result.

Run: ``.venv/bin/python benchmarks/bench_step_time.py [--rounds 3] [--draws 1000] [--tune 1000]
[--controlled-draws 1000] [--no-controlled] [--out benchmarks/results]`` (writes ``step_time.md``
and ``step_time.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PPL_AD_CACHE_DIR", tempfile.mkdtemp(prefix="ppl-ad-step-time-"))

import numpy as np  # noqa: E402

from ppl_ad.bench.sampling import sampling_cell  # noqa: E402
from ppl_ad.testing.scenarios import STANDARD  # noqa: E402

SAMPLERS = {"jax": "ppl_ad `jax` (engine jax)", "blackjax": "BlackJAX"}
#: samplers of the controlled measurement: ppl_ad's compiled chunk program, BlackJAX's NUTS kernel
CONTROLLED_SAMPLERS = {"ppl_ad": "ppl_ad chunk program", "blackjax": "BlackJAX `nuts.build_kernel` + `lax.scan`",
                       "blackjax_unrolled": "BlackJAX, lowered and compiled as ppl_ad's"}
#: densities of the controlled measurement: ppl_ad's (from the DSL), the hand-written JAX one
DENSITIES = {"ppl_ad": "ppl_ad", "hand": "hand-written"}


def _loads() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--models", default=",".join(STANDARD))
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--controlled-draws", type=int, default=1000,
                        help="transitions per timed call of the controlled measurement")
    parser.add_argument("--no-controlled", action="store_true",
                        help="only the end-to-end table (skip the controlled measurement)")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    loads = [_loads()]
    rows = []
    for model in models:
        for r in range(args.rounds + 1):
            for sampler in SAMPLERS:
                row = sampling_cell(model, sampler, draws=args.draws, tune=args.tune, chains=args.chains, cores=1,
                                    seed=1 + r)
                row["round"] = r
                busy = (row["tuning_s"] or 0.0) + (row["sampling_s"] or 0.0)
                row["us_per_gradient"] = busy / row["gradient_evaluations"] * 1e6 if row["gradient_evaluations"] else None
                row["ess_per_busy_s"] = row["min_ess_bulk"] / busy if busy and row["min_ess_bulk"] else None
                rows.append(row)
                print(f"{model:22s} round {r} {sampler:9s} {row['status']} µs/step {row['us_per_step']} "
                      f"µs/grad {row['us_per_gradient']} {row['note']}", flush=True)
            loads.append(_loads())
    md = to_markdown(rows, args, loads)
    result = {"load_average": loads, "rows": rows}
    if not args.no_controlled:
        controlled = run_controlled(models, draws=args.controlled_draws, tune=args.tune, rounds=args.rounds)
        md += "\n" + controlled_markdown(controlled)
        result["controlled"] = controlled
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "step_time.md"), "w") as handle:
        handle.write(md)
    with open(os.path.join(args.out, "step_time.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    print(md)
    return 0


def controlled_programs(model: str, draws: int, tune: int) -> tuple[dict, dict]:
    """The four timed programs of the controlled measurement of ``model``, ready to run.

    ppl_ad's JAX log density of the scenario is warmed up once by ppl_ad's own chunk program
    (:func:`ppl_ad.infer.jax_engine._build_chunk`, default settings, ``tune`` iterations run in
    chunks of ``draws``, as ``pa.sample`` does in chunks of its capacity); its last state gives the
    step size, the diagonal inverse metric and the start of every program. Each program then runs
    the ``draws`` transitions of the sampling phase from that start.

    Parameters
    ----------
    model : str
        A standard model (:data:`ppl_ad.testing.scenarios.STANDARD`): the hand-written density
        of :func:`ppl_ad.bench.peers.jax_logdensity` exists for these only.
    draws : int
        Transitions of one timed call.
    tune : int
        Warmup iterations of ppl_ad's warmup.

    Returns
    -------
    programs : dict
        ``(density, sampler) -> run``, ``density`` in :data:`DENSITIES`, ``sampler`` in
        :data:`CONTROLLED_SAMPLERS`; ``run(round)`` runs the ``draws`` transitions (chain key from
        ``round``), waits for them and returns the number of leapfrog steps. Each program is jitted
        and compiles at its first call.
    setup : dict
        ``model``, ``dimension``, the adapted ``step_size`` and the warmup's ``tune``.

    Raises
    ------
    RuntimeError
        Warmup ended with a non-finite step size or metric, or the hand-written density is not
        ppl_ad's up to a constant at the start (another space or layout: the metric would not fit).
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import blackjax
    from blackjax.mcmc.hmc import HMCState

    import ppl_ad as pa
    from ppl_ad.bench.peers import jax_logdensity
    from ppl_ad.infer import jax_engine
    from ppl_ad.infer.chain import ChainSettings
    from ppl_ad.infer.lowering import SMALL_LOOP_BYTES, compile_options, hoisted_small_loops, unrolled_threefry
    from ppl_ad.testing.scenarios import get_scenario

    options = compile_options(jax.default_backend())  # as the engine compiles its program (LLVM at -O1 on the CPU)

    ld = pa.logdensity(get_scenario(model).model(), backend="jax")
    fn, data = ld.traceable()
    data = jax.device_put(data)
    dim = int(ld.dimension)
    settings = ChainSettings(draws=draws, tune=tune, engine="jax")
    # warmup rows, then sampling rows, then `draws` rows of padding so that every window is whole
    flags = jax_engine._flags(tune, draws, draws, settings.metric_adaptation, settings.metric == "dense")
    init = (np.zeros(dim), np.zeros(dim, bool), np.array([0, 7], np.uint32))  # all jittered, as pa.sample
    n = np.asarray(draws, np.int64)

    # ppl_ad's warmup with the program that then samples (the same shapes: compiled once, lowered
    # as the engine lowers it)
    state = jax_engine._initial_state(dim, np.array([0, 1], np.uint32), settings)

    def ppl_ad_compiled(density):
        with unrolled_threefry():
            lowered = jax.jit(jax_engine._build_chunk(density, settings, dim)).lower(state, data, init, flags[:draws], n)
        with hoisted_small_loops(SMALL_LOOP_BYTES):
            return lowered.compile(compiler_options=options)

    chunk = ppl_ad_compiled(fn)
    for begin in range(0, tune, draws):
        state, _ = chunk(state, data, init, flags[begin:begin + draws], np.asarray(min(draws, tune - begin), np.int64))
    state = jax.device_get(state)
    step_size, inverse_mass_matrix = state.adaptation.step_size, state.adaptation.inverse_mass_matrix
    if not (np.isfinite(step_size) and step_size > 0 and np.all(np.isfinite(inverse_mass_matrix))):
        raise RuntimeError(f"{model}: warmup ended with step size {step_size} and a non-finite metric")
    sampling = flags[tune:tune + draws]  # phase flags of the sampling phase: no adaptation

    hand_logdensity, _ = jax_logdensity(model)
    densities = {"ppl_ad": fn, "hand": lambda theta, data: hand_logdensity(theta)}
    kernel = blackjax.nuts.build_kernel(divergence_threshold=float(settings.max_energy_error))
    max_depth = int(settings.max_treedepth)

    def ppl_ad_program(density, start):
        program = chunk if density is fn else ppl_ad_compiled(density)

        def run(r):
            _, out = program(start._replace(rng=np.array([r, 1], np.uint32)), data, init, sampling, n)
            return int(out["n_steps"].sum())

        return run

    def blackjax_program(density, start, unrolled=False):
        def sample(hmc_state, key, data, step_size, inverse_mass_matrix):
            logdensity = lambda x: density(x, data)  # noqa: E731

            def one(s, k):
                s, info = kernel(k, s, logdensity, step_size, inverse_mass_matrix, max_depth)
                return s, (s.position, info.num_integration_steps, info.is_divergent)

            return jax.lax.scan(one, hmc_state, jax.random.split(key, draws))[1]

        hmc_state = HMCState(start.position, start.logdensity, start.logdensity_grad)
        with unrolled_threefry() if unrolled else contextlib.nullcontext():
            lowered = jax.jit(sample).lower(hmc_state, np.array([0, 1], np.uint32), data, step_size, inverse_mass_matrix)
        with hoisted_small_loops(SMALL_LOOP_BYTES) if unrolled else contextlib.nullcontext():
            program = lowered.compile(compiler_options=options if unrolled else None)

        def run(r):
            _, steps, _ = program(hmc_state, np.array([r, 1], np.uint32), data, step_size, inverse_mass_matrix)
            return int(steps.sum())

        return run

    programs = {}
    reference = None
    for density, density_fn in densities.items():
        value, grad = jax.device_get(jax.value_and_grad(density_fn)(state.position, data))
        if reference is None:
            reference = value, grad
        elif not np.allclose(grad, reference[1], rtol=1e-6, atol=1e-6):
            raise RuntimeError(f"{model}: the {DENSITIES[density]} density's gradient differs from ppl_ad's at the "
                               "start: not the same unconstrained space or layout")
        start = state._replace(logdensity=np.asarray(value), logdensity_grad=np.asarray(grad))
        programs[density, "ppl_ad"] = ppl_ad_program(density_fn, start)
        programs[density, "blackjax"] = blackjax_program(density_fn, start)
        programs[density, "blackjax_unrolled"] = blackjax_program(density_fn, start, unrolled=True)
    setup = {"model": model, "dimension": dim, "step_size": float(step_size), "tune": tune}
    return programs, setup


def run_controlled(models, *, draws: int, tune: int, rounds: int) -> dict:
    """Time the controlled measurement: per model, rounds 0..``rounds`` of the six programs of
    :func:`controlled_programs`, interleaved (round 0 compiles; :func:`controlled_markdown`
    leaves it out).

    Parameters
    ----------
    models : list of str
    draws : int
        Transitions of one timed call.
    tune : int
        Warmup iterations of ppl_ad's warmup, once per model.
    rounds : int

    Returns
    -------
    dict
        ``draws``, ``tune``, ``rounds``, ``load_average`` (at the start and after each round),
        ``models`` (the :func:`controlled_programs` setups) and ``rows``: one per model, density,
        sampler and round, with ``seconds``, ``n_steps``, ``us_per_step``, ``us_per_draw`` and
        ``steps_per_draw``.
    """
    loads = [_loads()]
    rows, setups = [], []
    for model in models:
        programs, setup = controlled_programs(model, draws, tune)
        setups.append(setup)
        for r in range(rounds + 1):
            for (density, sampler), run in programs.items():
                start = time.perf_counter()
                steps = run(r)
                seconds = time.perf_counter() - start
                row = {"model": model, "density": density, "sampler": sampler, "round": r, "draws": draws,
                       "seconds": seconds, "n_steps": steps, "us_per_step": seconds / steps * 1e6 if steps else None,
                       "us_per_draw": seconds / draws * 1e6, "steps_per_draw": steps / draws}
                rows.append(row)
                print(f"{model:22s} round {r} controlled {density:6s} density {sampler:9s} "
                      f"µs/step {row['us_per_step']} steps/draw {row['steps_per_draw']:.2f}", flush=True)
            loads.append(_loads())
    return {"draws": draws, "tune": tune, "rounds": rounds, "load_average": loads, "models": setups, "rows": rows}


def _median(rows, key):
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else None


def to_markdown(rows, args, loads) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = [
        "# Time per leapfrog step: ppl_ad's compiled engine against BlackJAX",
        "",
        f"- command: `python benchmarks/bench_step_time.py --rounds {args.rounds} --draws {args.draws} "
        f"--tune {args.tune}`",
        f"- date: {stamp}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores shared with other "
        f"work, one thread, one core; load average (1, 5, 15 min) at start {loads[0]}, at the end {loads[-1]}, "
        f"highest 1-min {max(float(x.split()[0]) for x in loads):.2f}",
        f"- {args.chains} chains × ({args.tune} warmup + {args.draws} draws) one after another, both samplers "
        f"in one process, interleaved; medians over rounds 1..{args.rounds} (round 0 compiles and is left out)",
        "",
        "| model | sampler | µs / step (sampling) | µs / gradient (warmup + sampling) | steps / draw | "
        "ESS / 1000 grads | min ESS / s of warmup + sampling |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for model in models:
        med = {}
        for sampler, name in SAMPLERS.items():
            sel = [r for r in rows if r["model"] == model and r["sampler"] == sampler and r["round"] > 0
                   and r["status"] == "ok"]
            med[sampler] = {k: _median(sel, k) for k in ("us_per_step", "us_per_gradient", "steps_per_draw",
                                                        "ess_per_1k_grad", "ess_per_busy_s")}
            m = med[sampler]
            fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
            lines.append(f"| {model} | {name} | {fmt(m['us_per_step'], 2)} | {fmt(m['us_per_gradient'], 2)} | "
                         f"{fmt(m['steps_per_draw'])} | {fmt(m['ess_per_1k_grad'])} | {fmt(m['ess_per_busy_s'])} |")
        a, b = med["jax"], med["blackjax"]
        ratios.append((model, *(a[k] / b[k] if a[k] and b[k] else None for k in ("us_per_step", "us_per_gradient"))))
    lines += ["", "| model | ppl_ad ÷ BlackJAX, µs / step (sampling) | ppl_ad ÷ BlackJAX, µs / gradient "
              "(warmup + sampling) |", "|---|---:|---:|"]
    for model, step, grad in ratios:
        lines.append(f"| {model} | {'-' if step is None else f'{step:.2f}'} | {'-' if grad is None else f'{grad:.2f}'} |")
    return "\n".join(lines) + "\n"


def _ratio(a, b):
    return a / b if a and b else None


def _fmt(value, digits=2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def controlled_markdown(controlled: dict) -> str:
    """The controlled section of ``step_time.md``: per model, density and sampler the smallest
    and median µs / step, steps / draw and µs / draw over rounds 1..R; then the ratios
    ppl_ad ÷ BlackJAX and ppl_ad's density ÷ hand-written density.

    Parameters
    ----------
    controlled : dict
        :func:`run_controlled`'s result.

    Returns
    -------
    str
    """
    loads = controlled["load_average"]
    lines = [
        "## Controlled: the same density, step size, inverse metric and start",
        "",
        f"- command: `python benchmarks/bench_step_time.py --rounds {controlled['rounds']} --tune {controlled['tune']} "
        f"--controlled-draws {controlled['draws']}`; load average at start {loads[0]}, at the end {loads[-1]}, "
        f"highest 1-min {max(float(x.split()[0]) for x in loads):.2f}",
        f"- per model, ppl_ad's warmup ({controlled['tune']} iterations) adapts the step size and diagonal inverse "
        f"metric once; then each call runs {controlled['draws']} sampling transitions from the warmup's last draw "
        "with them: ppl_ad's compiled chunk program against `blackjax.nuts.build_kernel()` under `jax.lax.scan` "
        "(jitted as a BlackJAX user would, and lowered and compiled as ppl_ad does its program: the Threefry hash "
        "without a loop, small loops compiled as one function and LLVM at -O1 on the CPU, `ppl_ad.infer.lowering`), on ppl_ad's density and on the hand-written one; the six "
        "programs interleaved, median and min over "
        f"rounds 1..{controlled['rounds']} (round 0 compiles and is left out)",
        "",
        "| model | d | step size | density | sampler | µs / step, min | µs / step, median | steps / draw | "
        "µs / draw, median |",
        "|---|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    stats = {}
    for setup in controlled["models"]:
        model = setup["model"]
        for density, density_name in DENSITIES.items():
            for sampler, sampler_name in CONTROLLED_SAMPLERS.items():
                sel = [r for r in controlled["rows"] if r["model"] == model and r["density"] == density
                       and r["sampler"] == sampler and r["round"] > 0]
                steps = [r["us_per_step"] for r in sel if r["us_per_step"] is not None]
                m = stats[model, density, sampler] = {
                    "min": min(steps) if steps else None, "median": _median(sel, "us_per_step"),
                    "steps_per_draw": _median(sel, "steps_per_draw"), "us_per_draw": _median(sel, "us_per_draw")}
                lines.append(f"| {model} | {setup['dimension']} | {setup['step_size']:.3g} | {density_name} | "
                             f"{sampler_name} | {_fmt(m['min'])} | {_fmt(m['median'])} | "
                             f"{_fmt(m['steps_per_draw'])} | {_fmt(m['us_per_draw'], 1)} |")
    lines += ["", "| model | density | ppl_ad ÷ BlackJAX, µs / step (median) | "
              "ppl_ad ÷ BlackJAX, µs / step (min) | ppl_ad ÷ BlackJAX, µs / draw (median) | "
              "ppl_ad ÷ BlackJAX lowered and compiled as ppl_ad's, µs / step (median) |",
              "|---|---|---:|---:|---:|---:|"]
    for setup in controlled["models"]:
        for density, density_name in DENSITIES.items():
            a, b = stats[setup["model"], density, "ppl_ad"], stats[setup["model"], density, "blackjax"]
            c = stats[setup["model"], density, "blackjax_unrolled"]
            lines.append(f"| {setup['model']} | {density_name} | {_fmt(_ratio(a['median'], b['median']))} | "
                         f"{_fmt(_ratio(a['min'], b['min']))} | {_fmt(_ratio(a['us_per_draw'], b['us_per_draw']))} | "
                         f"{_fmt(_ratio(a['median'], c['median']))} |")
    lines += ["", "| model | ppl_ad's density ÷ hand-written, µs / step (median), ppl_ad sampler | "
              "ppl_ad's density ÷ hand-written, µs / step (median), BlackJAX sampler |", "|---|---:|---:|"]
    for setup in controlled["models"]:
        ratios = [_ratio(stats[setup["model"], "ppl_ad", s]["median"], stats[setup["model"], "hand", s]["median"])
                  for s in ("ppl_ad", "blackjax")]
        lines.append(f"| {setup['model']} | " + " | ".join(_fmt(r) for r in ratios) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
