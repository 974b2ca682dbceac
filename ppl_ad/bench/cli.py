"""``ppl-ad bench``: the backend benchmark matrix, one subprocess per cell.

Runs :func:`ppl_ad.bench.benchmark.benchmark` for every (scenario, backend) cell in its
own Python process (``python -m ppl_ad.bench._cell``), so a crash or a hang is recorded
as an ``"error"`` or ``"timeout"`` cell instead of ending the run, then the crossover
experiment: gradient time against dimension for a linear-regression family, which shows
where forward mode (cost grows with the dimension) stops beating reverse mode and tapes
(Griewank & Walther, *Evaluating Derivatives*, 2nd ed., SIAM 2008). Writes
``backends.json``, ``backends.md`` (with machine information and the command) and
``crossover.png`` in the output folder (``./ppl-ad-bench`` unless ``--out`` says otherwise),
and prints the tables. ``--model path/to/file.py:NAME`` (or ``module:NAME``) benchmarks the
user's own bound model instead of the scenarios. Every cell runs under the thread limits of
the sampler's worker processes. Unknown backend or model names are errors, with the closest
known name.

``ppl-ad bench --executor tcp://scheduler:8786`` runs the cells as tasks on a Dask cluster, each
still in its own process on a worker (:func:`ppl_ad.infer.distributed.map_tasks`); the workers need
ppl_ad and the backends installed, and a ``--model`` file on a path they can read.

``ppl-ad bench --sampling`` runs the sampling matrix instead (:mod:`ppl_ad.bench.sampling`):
ppl_ad's NUTS (default engine and ``engine="python"``), and with ``--peers`` PyMC, NumPyro,
BlackJAX and nutpie, on the four standard models, each cold and warm; it writes ``sampling.json``, ``sampling.md`` and ``sampling.png``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ppl_ad.bench.cells import check_names, command_line, load_model, machine_info, run_subprocess, split_names
from ppl_ad.table import Table, format_microseconds

__all__ = [
    "main", "run_cell", "machine_info", "load_model", "check_names", "report_tables", "to_markdown",
    "CROSSOVER_DIMS", "CROSSOVER_BACKENDS", "DEFAULT_OUT",
]

CROSSOVER_DIMS = (2, 5, 10, 20, 50, 100, 200, 500, 1000)
CROSSOVER_BACKENDS = ("jax", "jax-forward", "torch", "autograd")
#: where ``ppl-ad bench`` writes unless told ``--out``
DEFAULT_OUT = "ppl-ad-bench"


def run_cell(model: str, backend: str, *, repeats=None, timeout: float = 300.0, dims=None,
             budget: float = 0.3, model_ref: str | None = None) -> list[dict]:
    """Run one gradient cell in a subprocess; returns its rows (an error/timeout row on failure).

    ``model`` is a scenario name, or the label of the user's model ``model_ref``
    (``file.py:NAME`` or ``module:NAME``, see :func:`load_model`). The subprocess runs under
    the thread limits of the sampler's worker processes
    (:func:`ppl_ad.bench.measure.measurement_environment`).
    """
    from ppl_ad.bench.measure import measurement_environment

    cmd = [sys.executable, "-m", "ppl_ad.bench._cell", "--model", model, "--backend", backend,
           "--budget", str(budget)]
    if model_ref is not None:
        cmd += ["--model-ref", model_ref]
    if repeats is not None:
        cmd += ["--repeats", str(repeats)]
    if dims:
        cmd += ["--dims", ",".join(str(d) for d in dims)]
    base = {"model": model, "name": backend, "mode": None, "status": None, "prepare_s": None,
            "logdensity_us": None, "gradient_us": None, "ratio": None, "gradient_rel_error": None,
            "value_rel_error": None, "repeats": None, "dimension": None}
    return run_subprocess(cmd, base, "correct", timeout, env=measurement_environment())


def _cell_task(model: str, backend: str, dims, model_ref, repeats, timeout: float) -> list[dict]:
    """:func:`run_cell` as one executor task (``ppl-ad bench --executor``): a subprocess on the worker."""
    return run_cell(model, backend, repeats=repeats, timeout=timeout, dims=dims, model_ref=model_ref)


def _run_cells(jobs, args, bar) -> list[list[dict]]:
    """The rows of every ``(model, backend, dims, model_ref)`` job, here or on ``args.executor``."""
    address = getattr(args, "executor", None)
    if not address:
        outputs = []
        for model, backend, dims, ref in jobs:
            bar.set_postfix_str(f"{model} × {backend}")
            outputs.append(run_cell(model, backend, repeats=args.repeats, timeout=args.timeout, dims=dims,
                                    model_ref=ref))
            bar.update(1)
        return outputs
    from ppl_ad.infer.distributed import connect, map_tasks

    with connect(address) as client:
        calls = [(model, backend, dims, ref, args.repeats, args.timeout) for model, backend, dims, ref in jobs]
        return map_tasks(client, _cell_task, calls, name="ppl_ad-bench-cell", on_done=lambda i, rows: bar.update(1))


def run_sampling_cell(model: str, sampler: str, **kw) -> dict:
    """Run one NUTS cell in a subprocess (:func:`ppl_ad.bench.sampling.run_sampling_cell`)."""
    from ppl_ad.bench.sampling import run_sampling_cell as run

    return run(model, sampler, **kw)


def _cell_table(cells) -> Table:
    from ppl_ad.bench.benchmark import BenchmarkTable

    dim = next((c["dimension"] for c in cells if c.get("dimension")), "?")
    return BenchmarkTable(cells, model=cells[0]["model"] if cells else "", dimension=dim)


class CrossoverTable(Table):
    """Value-and-gradient µs per backend (columns) against the regression dimension ``d`` (rows)."""

    def __init__(self, rows=(), backends=()):
        super().__init__(rows, columns=("d", *backends), formats=dict.fromkeys(backends, format_microseconds))


class PeersTable(Table):
    """ppl_ad's fastest correct backend beside PyMC's and NumPyro's own gradients, per model."""

    columns = ("model", "ppl_ad best", "ppl_ad µs", "PyMC µs", "NumPyro µs", "note")
    formats = {"ppl_ad µs": format_microseconds, "PyMC µs": format_microseconds, "NumPyro µs": format_microseconds}


def report_tables(result: dict) -> list[tuple[str, Table]]:
    """The tables of a ``ppl-ad bench`` result, each with its heading, in report order."""
    tables = []
    for model in dict.fromkeys(c["model"] for c in result["cells"]):
        table = _cell_table([c for c in result["cells"] if c["model"] == model])
        tables.append((f"{model} (d = {table.dimension})", table))
    if result.get("crossover"):
        backends = list(dict.fromkeys(c["name"] for c in result["crossover"]))
        rows = []
        for d in sorted({c["d"] for c in result["crossover"] if c.get("d")}):
            row = {"d": d}
            for b in backends:
                cell = next((c for c in result["crossover"] if c["name"] == b and c.get("d") == d), None)
                row[b] = cell and cell.get("gradient_us")
            rows.append(row)
        tables.append(("Crossover: value-and-gradient µs vs number of regression coefficients (n = 100 rows)",
                       CrossoverTable(rows, backends)))
    if result.get("peers"):
        rows = []
        for model in dict.fromkeys(p["model"] for p in result["peers"]):
            ok = [c for c in result["cells"] if c["model"] == model and c.get("correct") == "ok" and c.get("gradient_us")]
            best = min(ok, key=lambda c: c["gradient_us"]) if ok else None
            peer = {p["name"]: p for p in result["peers"] if p["model"] == model}
            rows.append({
                "model": model, "ppl_ad best": best["name"] if best else None,
                "ppl_ad µs": best["gradient_us"] if best else None,
                "PyMC µs": peer.get("pymc", {}).get("gradient_us"),
                "NumPyro µs": peer.get("numpyro", {}).get("gradient_us"),
                "note": "; ".join(f"{k}: {v['note']}" for k, v in peer.items() if v.get("note")),
            })
        tables.append(("Peers: value-and-gradient µs side by side", PeersTable(rows)))
    return tables


def to_markdown(result: dict) -> str:
    """The ``backends.md`` report."""
    info = result["machine"]
    lines = [
        "# Backend benchmark",
        "",
        f"- command: `{info['command']}`",
        f"- date: {info['date']}",
        f"- CPU: {info['cpu']} ({info['cores']} cores; shared with other work while measured)",
        f"- Python {info['python']} on {info['platform']}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- thread limits (as the sampler's worker processes): {_describe_limits(result.get('environment'))}",
        *([f"- cells ran as Dask tasks on {result['executor']} (on the workers' machines)"] if result.get("executor")
          else []),
        "",
        "Times are medians in µs of `ld.logdensity` and `ld.logdensity_and_gradient`; `ratio` is "
        "gradient ÷ log density; `correct` compares the value and the gradient with 5-point finite "
        "differences at 2 points: `gradient_rel_error` and `value_rel_error` are the largest "
        "`max|x - x_ref| / max|x_ref|` over the points, and `ok` means both are ≤ 1e-6.",
        "",
    ]
    for heading, table in report_tables(result):
        lines += [f"## {heading}", ""]
        if isinstance(table, PeersTable):
            lines += ["PyMC: `Model.logp_dlogp_function` (PyTensor C backend); NumPyro: "
                      "`jax.jit(jax.value_and_grad(potential_fn))`; ppl_ad: the fastest correct backend above.", ""]
        lines += [table.to_markdown(), ""]
        if isinstance(table, CrossoverTable):
            lines += ["![crossover](crossover.png)", ""]
    return "\n".join(lines)


def _describe_limits(environment) -> str:
    if not environment:
        return "none needed"
    return ", ".join(f"{k}={v}" for k, v in sorted(environment.items()))


def plot_crossover(rows: list[dict], path: Path) -> None:
    """Log-log plot of gradient time against dimension, one line per backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for backend in dict.fromkeys(r["name"] for r in rows):
        pts = sorted((r["d"], r["gradient_us"]) for r in rows if r["name"] == backend and r.get("gradient_us") and r.get("d"))
        if pts:
            ax.plot(*zip(*pts), marker="o", label=backend)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("regression coefficients d (unconstrained dimension d + 1)")
    ax.set_ylabel("value and gradient, median µs")
    ax.set_title("Forward vs reverse mode: where they cross")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main_sampling(args) -> int:
    """``ppl-ad bench --sampling``: NUTS per sampler and peers (:func:`ppl_ad.bench.sampling.main`)."""
    from ppl_ad.bench import sampling

    return sampling.main(args)


def main(args) -> int:
    """Entry point of ``ppl-ad bench`` (``args`` from :mod:`ppl_ad.cli`).

    Unknown backend or model names raise (:class:`~ppl_ad.errors.UnknownBackendError`,
    :class:`~ppl_ad.errors.ModelError`) before anything runs; ``ppl-ad`` turns them into an
    error message and exit status 2.
    """
    from tqdm import tqdm

    if getattr(args, "sampling", False):
        if getattr(args, "executor", None):
            from ppl_ad.errors import ConfigError

            raise ConfigError("ppl-ad bench --executor runs the gradient cells; --sampling runs on this machine only")
        return main_sampling(args)

    from ppl_ad.backends import registry
    from ppl_ad.bench.benchmark import default_backends
    from ppl_ad.bench.measure import measurement_environment, thread_limits
    from ppl_ad.testing.scenarios import STANDARD, scenarios

    refs = list(getattr(args, "model", None) or [])
    user_models = {}  # label -> reference
    for ref in refs:
        model = load_model(ref)  # raises with a clear message before any cell runs
        source, _, name = ref.rpartition(":")
        if source.endswith(".py") or os.sep in source or "/" in source:
            ref = f"{Path(source).expanduser().resolve()}:{name}"
        label = model.name if model.name not in user_models else f"{model.name} ({ref})"
        user_models[label] = ref
    known_models = [s.name for s in scenarios()]
    if args.models:
        models = check_names(split_names(args.models), known_models, "model")
    else:
        models = [] if user_models else list(STANDARD) + [s.name for s in scenarios("posteriordb")]
    backends = (check_names(split_names(args.backends), registry.names(), "backend") if args.backends
                else [b.name for b in default_backends()])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    crossover_backends = [] if user_models else [b for b in CROSSOVER_BACKENDS if b in backends]
    result = {"machine": machine_info(command_line("ppl-ad bench")), "environment": measurement_environment(),
              "cells": [], "crossover": []}
    jobs = ([(m, b, None, user_models.get(m)) for m in [*models, *user_models] for b in backends]
            + [("regression", b, CROSSOVER_DIMS, None) for b in crossover_backends])
    if getattr(args, "executor", None):
        result["executor"] = args.executor
    with tqdm(total=len(jobs), disable=args.no_progress, unit="cell", desc="ppl-ad bench") as bar:
        for (model, backend, dims, ref), rows in zip(jobs, _run_cells(jobs, args, bar)):
            (result["crossover"] if dims else result["cells"]).extend(rows)
    if args.peers:
        from ppl_ad.bench.peers import available_peers, run_peers

        with thread_limits():
            result["peers"] = run_peers([m for m in models if m in STANDARD])
        missing = {"pymc", "numpyro"} - set(available_peers())
        if missing:
            print(f"peers not installed (skipped): {', '.join(sorted(missing))}")
    (out / "backends.json").write_text(json.dumps(result, indent=1))
    (out / "backends.md").write_text(to_markdown(result))
    if result["crossover"]:
        plot_crossover(result["crossover"], out / "crossover.png")
    for heading, table in report_tables(result):
        print(f"\n{table}" if table.title else f"\n{heading}\n{table}")
    print(f"\nwrote {out / 'backends.json'}, {out / 'backends.md'}"
          + (f", {out / 'crossover.png'}" if result["crossover"] else ""))
    return 0
