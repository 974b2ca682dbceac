"""ESS per gradient evaluation over seeds: is a difference between two samplers real, or one seed's luck?

One run's min ESS-bulk per 1000 gradients moves by 10-20 % from seed to seed on the standard
models (the smallest of d bulk ESS of 4 x 500 draws). This script runs each configuration with
seeds 1..S and reports, per model, the median and range over seeds of

- ``ESS / 1000 grads``: min ESS-bulk over every sampled quantity per 1000 gradient evaluations,
  warmup included (the sampling benchmark's ``ess_per_1k_grad``);
- ``min ESS``, ``warmup grads`` (gradient evaluations of warmup), ``steps / draw`` (leapfrog
  steps per kept draw);
- ``step size`` and ``acceptance``: the sampling phase's step size and mean acceptance
  statistic, where the sampler reports them (ppl_ad, PyMC).

A configuration is ``LABEL=SAMPLER`` with optional ``;KEY=VALUE`` keyword arguments of
``pa.sample`` (ppl_ad samplers only; values are Python literals):

    default=jax
    target 0.85=jax;target_accept=0.85
    Stan's windows=jax;metric_adaptation='fisher'
    low rank=jax:low_rank
    PyMC=pymc

Every run is :func:`ppl_ad.bench.sampling.sampling_cell` in this process, on one core (chains one
after another), so ppl_ad compiles once per configuration and model; times are not the point
here (see ``ppl-ad bench --sampling`` for ESS per second).

Run: ``.venv/bin/python benchmarks/bench_ess_seeds.py [--models gaussian_100d,...] [--seeds 6]
[--draws 500] [--tune 500] [--config LABEL=SAMPLER[;KEY=VALUE...]]... [--out benchmarks/results/ess_seeds]``
(writes ``ess_seeds.md`` and ``ess_seeds.json``).
"""

from __future__ import annotations

import argparse
import ast
import datetime
import json
import os
import platform
import statistics
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("PPL_AD_CACHE_DIR", tempfile.mkdtemp(prefix="ppl-ad-ess-seeds-"))

from ppl_ad.bench.sampling import sampling_cell  # noqa: E402
from ppl_ad.testing.scenarios import STANDARD  # noqa: E402

DEFAULT_CONFIGS = ("default=jax", "PyMC=pymc")
#: (row key, column title, digits) of the per-model tables
COLUMNS = (
    ("ess_per_1k_grad", "ESS / 1000 grads", 1),
    ("min_ess_bulk", "min ESS", 0),
    ("warmup_gradients", "warmup grads", 0),
    ("steps_per_draw", "steps / draw", 1),
    ("step_size", "step size", 3),
    ("acceptance_rate", "acceptance", 3),
)


def parse_config(text: str) -> tuple[str, str, dict]:
    """``(label, sampler, options)`` of ``LABEL=SAMPLER[;KEY=VALUE...]``.

    Examples
    --------
    >>> parse_config("target 0.85=jax;target_accept=0.85")
    ('target 0.85', 'jax', {'target_accept': 0.85})
    >>> parse_config("Stan's windows=jax;metric_adaptation='fisher'")
    ("Stan's windows", 'jax', {'metric_adaptation': 'fisher'})
    """
    label, sep, rest = text.partition("=")
    if not sep or not label.strip() or not rest.strip():
        raise ValueError(f"configuration {text!r}: expected LABEL=SAMPLER[;KEY=VALUE...]")
    sampler, *pairs = rest.split(";")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"configuration {text!r}: option {pair!r} is not KEY=VALUE")
        try:
            options[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"configuration {text!r}: the value of {key.strip()!r} is not a Python literal "
                             f"(quote strings: {key.strip()}='...')") from exc
    return label.strip(), sampler.strip(), options


def run(models, configs, seeds: int, draws: int, tune: int, chains: int) -> list[dict]:
    """One :func:`~ppl_ad.bench.sampling.sampling_cell` row per model, configuration and seed
    (seeds 1..``seeds``), with ``label``, ``seed`` and ``warmup_gradients`` added."""
    rows = []
    for model in models:
        for seed in range(1, seeds + 1):
            for label, sampler, options in configs:
                row = sampling_cell(model, sampler, draws=draws, tune=tune, chains=chains, cores=1, seed=seed,
                                    options=options)
                row.update(label=label, seed=seed, options=options)
                if row["gradient_evaluations"] is not None and row["sampling_steps"] is not None:
                    row["warmup_gradients"] = row["gradient_evaluations"] - row["sampling_steps"]
                rows.append(row)
                print(f"{model:22s} seed {seed} {label:20s} {row['status']} ESS/1k grads {row['ess_per_1k_grad']} "
                      f"steps/draw {row['steps_per_draw']} step size {row['step_size']} {row['note']}", flush=True)
    return rows


def _cell(values, digits: int) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    if len(values) == 1:
        return f"{med:.{digits}f}"
    return f"{med:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def to_markdown(rows, args, configs, command: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    models = list(dict.fromkeys(r["model"] for r in rows))
    lines = [
        "# ESS per gradient evaluation over seeds",
        "",
        f"- command: `{command}`",
        f"- date: {stamp}; {platform.processor() or platform.machine()}, {os.cpu_count()} cores, one core per run",
        f"- {args.chains} chains × ({args.tune} warmup + {args.draws} draws), seeds 1..{args.seeds}; each cell: "
        "median over seeds (smallest-largest); step size and acceptance of the sampling phase",
        "- configurations: " + "; ".join(f"{label} = `{sampler}`" + (f" with `{options}`" if options else "")
                                         for label, sampler, options in configs),
    ]
    for model in models:
        lines += ["", f"## {model}", "", "| configuration | " + " | ".join(t for _, t, _ in COLUMNS) + " | failed |",
                  "|---|" + "---:|" * (len(COLUMNS) + 1)]
        for label, _, _ in configs:
            sel = [r for r in rows if r["model"] == model and r["label"] == label]
            ok = [r for r in sel if r["status"] == "ok"]
            cells = [_cell([r[k] for r in ok if r.get(k) is not None], d) for k, _, d in COLUMNS]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {len(sel) - len(ok)} |")
    errors = [r for r in rows if r["status"] != "ok"]
    if errors:
        lines += ["", "Failed runs:", ""] + [f"- {r['model']}, {r['label']}, seed {r['seed']}: {r['note']}"
                                             for r in errors]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(STANDARD))
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--tune", type=int, default=500)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--config", action="append", default=None,
                        help="LABEL=SAMPLER[;KEY=VALUE...] (repeatable; default: ppl_ad's jax and PyMC)")
    parser.add_argument("--out", default="benchmarks/results/ess_seeds")
    args = parser.parse_args(argv)
    if args.seeds < 1:
        parser.error("--seeds must be at least 1")
    try:
        configs = [parse_config(c) for c in (args.config or DEFAULT_CONFIGS)]
    except ValueError as exc:
        parser.error(str(exc))
    labels = [label for label, _, _ in configs]
    if len(set(labels)) != len(labels):
        parser.error(f"configuration labels must differ: {labels}")
    models = [m for m in args.models.split(",") if m]
    rows = run(models, configs, args.seeds, args.draws, args.tune, args.chains)
    command = "python benchmarks/bench_ess_seeds.py " + " ".join(
        [f"--models {','.join(models)}", f"--seeds {args.seeds}", f"--draws {args.draws}", f"--tune {args.tune}"]
        + [f'--config "{c}"' for c in (args.config or DEFAULT_CONFIGS)])
    md = to_markdown(rows, args, configs, command)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "ess_seeds.md"), "w") as handle:
        handle.write(md)
    with open(os.path.join(args.out, "ess_seeds.json"), "w") as handle:
        json.dump({"settings": vars(args) | {"configs": [list(c) for c in configs]}, "rows": rows}, handle, indent=1)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
