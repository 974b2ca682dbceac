"""Time per leapfrog step: ppl_ad's compiled engine against BlackJAX, interleaved in one process.

For each standard model, rounds alternate ppl_ad's default sampler (``pa.sample(backend="jax")``,
engine ``"jax"``, 4 chains one after another on one core) and BlackJAX's NUTS with
``window_adaptation`` on a hand-written JAX density (:func:`ppl_ad.bench.peers.jax_logdensity`),
both through :func:`ppl_ad.bench.sampling.sampling_cell`. Round 0 compiles (both reuse their
programs in later rounds of the same process), so the medians are over rounds 1..R:

- ``µs / step``: sampling-phase time divided by the sampling-phase leapfrog steps;
- ``µs / gradient, whole run``: (warmup + sampling time) divided by every gradient evaluation;
- ``min ESS / s (sampling+warmup)``: min ESS-bulk over warmup + sampling time (no compile).

The one-thread settings are set before JAX starts; the load average is printed and written. A
shared machine is noisy: the interleaving makes the ratio, not the times, the result.

Run: ``.venv/bin/python benchmarks/bench_step_time.py [--rounds 3] [--draws 1000] [--tune 1000]
[--out benchmarks/results]`` (writes ``step_time.md`` and ``step_time.json``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PPL_AD_CACHE_DIR", tempfile.mkdtemp(prefix="ppl-ad-step-time-"))

from ppl_ad.bench.sampling import sampling_cell  # noqa: E402
from ppl_ad.testing.scenarios import STANDARD  # noqa: E402

SAMPLERS = {"jax": "ppl_ad `jax` (engine jax)", "blackjax": "BlackJAX"}


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
    args = parser.parse_args(argv)
    loads = [_loads()]
    rows = []
    for model in [m for m in args.models.split(",") if m]:
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
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "step_time.md"), "w") as handle:
        handle.write(md)
    with open(os.path.join(args.out, "step_time.json"), "w") as handle:
        json.dump({"load_average": loads, "rows": rows}, handle, indent=1)
    print(md)
    return 0


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


if __name__ == "__main__":
    raise SystemExit(main())
