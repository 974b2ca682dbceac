"""``ppl-ad bench``: the backend benchmark matrix, one subprocess per cell.

Runs :func:`ppl_ad.bench.benchmark.benchmark` for every (scenario, backend) cell in its
own Python process (``python -m ppl_ad.bench._cell``), so a crash or a hang is recorded
as an ``"error"`` or ``"timeout"`` cell instead of ending the run, then the crossover
experiment: gradient time against dimension for a linear-regression family, which shows
where forward mode (cost grows with the dimension) stops beating reverse mode and tapes
(Griewank & Walther, *Evaluating Derivatives*, 2nd ed., SIAM 2008). Writes
``backends.json``, ``backends.md`` (with machine information and the command) and
``crossover.png`` in the output folder.

``ppl-ad bench --sampling`` runs the sampling matrix instead (:mod:`ppl_ad.bench.sampling`):
NUTS with every supported backend, and with ``--peers`` PyMC and NumPyro, on the four
standard models; it writes ``sampling.json``, ``sampling.md`` and ``sampling.png``.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from ppl_ad.bench._cell import PREFIX

__all__ = ["main", "run_cell", "machine_info", "CROSSOVER_DIMS", "CROSSOVER_BACKENDS"]

CROSSOVER_DIMS = (2, 5, 10, 20, 50, 100, 200, 500, 1000)
CROSSOVER_BACKENDS = ("jax", "jax-forward", "torch", "autograd")


def _run_subprocess(cmd: list[str], base: dict, status_key: str, timeout: float) -> list[dict]:
    """Rows printed by the cell process ``cmd``; a timeout or crash becomes a row of its own."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [{**base, status_key: "timeout", "note": f"no result within {timeout:g} s"}]
    rows = [json.loads(line[len(PREFIX):]) for line in done.stdout.splitlines() if line.startswith(PREFIX)]
    if done.returncode != 0 or not rows:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        message = lines[-1] if lines else f"exit status {done.returncode}"
        rows.append({**base, status_key: "error", "note": f"cell process failed ({done.returncode}): {message[:300]}"})
    return rows


def run_cell(model: str, backend: str, *, repeats=None, timeout: float = 300.0, dims=None,
             budget: float = 0.3) -> list[dict]:
    """Run one cell in a subprocess; returns its rows (an error/timeout row on failure)."""
    cmd = [sys.executable, "-m", "ppl_ad.bench._cell", "--model", model, "--backend", backend,
           "--budget", str(budget)]
    if repeats is not None:
        cmd += ["--repeats", str(repeats)]
    if dims:
        cmd += ["--dims", ",".join(str(d) for d in dims)]
    base = {"model": model, "name": backend, "mode": None, "status": None, "prepare_s": None,
            "logdensity_us": None, "gradient_us": None, "ratio": None, "max_rel_error": None,
            "repeats": None, "dimension": None}
    return _run_subprocess(cmd, base, "correct", timeout)


def run_sampling_cell(model: str, sampler: str, *, draws: int, tune: int, chains: int,
                      timeout: float = 1800.0, seed: int = 1) -> dict:
    """Run one NUTS cell (:func:`ppl_ad.bench.sampling.sampling_cell`) in a subprocess."""
    from ppl_ad.bench.sampling import _row

    cmd = [sys.executable, "-m", "ppl_ad.bench._cell", "--task", "sampling", "--model", model,
           "--backend", sampler, "--draws", str(draws), "--tune", str(tune), "--chains", str(chains),
           "--seed", str(seed)]
    base = {**_row(model, sampler), "draws": draws, "tune": tune, "chains": chains}
    return _run_subprocess(cmd, base, "status", timeout)[-1]


def machine_info(command: str = "") -> dict:
    """CPU, cores, Python and library versions, date and the command line."""
    import importlib.metadata

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {}
    for dist_name in ("ppl_ad", "numpy", "jax", "jaxlib", "torch", "autograd", "sympy", "pymc", "numpyro"):
        try:
            versions[dist_name] = importlib.metadata.version(dist_name)
        except importlib.metadata.PackageNotFoundError:
            versions[dist_name] = "not installed"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
    }


def _fmt(value, digits=1):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e4 else f"{value:.0f}"
    return str(value).replace("|", "/").replace("\n", " ")


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
        "",
        "Times are medians in µs of `ld.logdensity` and `ld.logdensity_and_gradient`; `ratio` is "
        "gradient ÷ log density; `correct` compares the gradient with 5-point finite differences "
        "at 2 points (norm-wise relative error ≤ 1e-6).",
        "",
    ]
    models = list(dict.fromkeys(c["model"] for c in result["cells"]))
    cols = ("name", "mode", "status", "prepare_s", "logdensity_us", "gradient_us", "ratio", "correct",
            "max_rel_error", "note")
    for model in models:
        cells = [c for c in result["cells"] if c["model"] == model]
        dim = next((c["dimension"] for c in cells if c.get("dimension")), "?")
        lines += [f"## {model} (d = {dim})", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for c in cells:
            vals = []
            for col in cols:
                v = c.get(col)
                if col == "max_rel_error" and v is not None:
                    vals.append(f"{v:.1e}")
                elif col in ("prepare_s", "ratio") and v is not None:
                    vals.append(f"{v:.2f}")
                else:
                    vals.append(_fmt(v))
            lines.append("| " + " | ".join(vals) + " |")
        lines.append("")
    if result.get("crossover"):
        backends = list(dict.fromkeys(c["name"] for c in result["crossover"]))
        dims = sorted({c["d"] for c in result["crossover"] if c.get("d")})
        lines += ["## Crossover: value-and-gradient µs vs number of regression coefficients (n = 100 rows)", "",
                  "| d | " + " | ".join(backends) + " |", "|---|" + "---|" * len(backends)]
        for d in dims:
            row = []
            for b in backends:
                cell = next((c for c in result["crossover"] if c["name"] == b and c.get("d") == d), None)
                row.append(_fmt(cell and cell.get("gradient_us")))
            lines.append(f"| {d} | " + " | ".join(row) + " |")
        lines += ["", "![crossover](crossover.png)", ""]
    if result.get("peers"):
        lines += ["## Peers: value-and-gradient µs side by side", "",
                  "PyMC: `Model.logp_dlogp_function` (PyTensor C backend); NumPyro: "
                  "`jax.jit(jax.value_and_grad(potential_fn))`; ppl_ad: the fastest correct backend above.", "",
                  "| model | ppl_ad best | ppl_ad µs | PyMC µs | NumPyro µs | note |", "|---|---|---|---|---|---|"]
        for model in dict.fromkeys(p["model"] for p in result["peers"]):
            ok = [c for c in result["cells"] if c["model"] == model and c.get("correct") == "ok" and c.get("gradient_us")]
            best = min(ok, key=lambda c: c["gradient_us"]) if ok else None
            peer = {p["name"]: p for p in result["peers"] if p["model"] == model}
            notes = "; ".join(f"{k}: {v['note']}" for k, v in peer.items() if v.get("note"))
            lines.append(
                f"| {model} | {best['name'] if best else '-'} | {_fmt(best and best['gradient_us'])} | "
                f"{_fmt(peer.get('pymc', {}).get('gradient_us'))} | {_fmt(peer.get('numpyro', {}).get('gradient_us'))} | {notes} |"
            )
        lines.append("")
    return "\n".join(lines)


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
    """``ppl-ad bench --sampling``: NUTS per backend (and peers) on the standard models."""
    from tqdm import tqdm

    from ppl_ad.backends import registry
    from ppl_ad.bench import sampling
    from ppl_ad.testing.scenarios import STANDARD

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else list(STANDARD)
    samplers = ([b.strip() for b in args.backends.split(",")] if args.backends
                else [b.name for b in registry.tested() if b.is_available()])
    if args.peers:
        from ppl_ad.bench.peers import available_peers

        missing = [p for p in ("pymc", "numpyro") if p not in available_peers()]
        if missing:
            print(f"peers not installed (skipped): {', '.join(missing)}; pip install 'ppl_ad[bench]'")
        samplers += [p for p in ("pymc", "numpyro") if p not in missing]
    settings = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "timeout": args.timeout}
    command = "ppl-ad " + " ".join(sys.argv[1:]) if sys.argv and "ppl" in sys.argv[0] else "ppl-ad bench --sampling"
    result = {"machine": machine_info(command), "settings": settings, "cells": []}
    jobs = [(m, s) for m in models for s in samplers]  # model by model: a stopped run still compares
    bar = tqdm(jobs, disable=args.no_progress, unit="cell", desc="ppl-ad bench --sampling")
    for model, sampler in bar:
        bar.set_postfix_str(f"{model} × {sampler}")
        result["cells"].append(run_sampling_cell(model, sampler, draws=args.draws, tune=args.tune,
                                                 chains=args.chains, timeout=args.timeout))
        # written after every cell: a long run that is stopped keeps what it measured
        (out / "sampling.json").write_text(json.dumps(result, indent=1))
        (out / "sampling.md").write_text(sampling.to_markdown(result))
    sampling.plot(result, out / "sampling.png")
    print(f"wrote {out / 'sampling.json'}, {out / 'sampling.md'}, {out / 'sampling.png'}")
    return 0


def main(args) -> int:
    """Entry point of ``ppl-ad bench`` (``args`` from :mod:`ppl_ad.cli`)."""
    from tqdm import tqdm

    if getattr(args, "sampling", False):
        return main_sampling(args)

    from ppl_ad.bench.benchmark import default_backends
    from ppl_ad.testing.scenarios import STANDARD, scenarios

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.models:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
    else:
        models = list(STANDARD) + [s.name for s in scenarios("posteriordb")]
    backends = ([b.strip() for b in args.backends.split(",")] if args.backends
                else [b.name for b in default_backends()])
    crossover_backends = [b for b in CROSSOVER_BACKENDS if b in backends]
    command = "ppl-ad " + " ".join(sys.argv[1:]) if sys.argv and "ppl" in sys.argv[0] else "ppl-ad bench"
    result = {"machine": machine_info(command), "cells": [], "crossover": []}
    jobs = [(m, b, None) for m in models for b in backends] + [("regression", b, CROSSOVER_DIMS) for b in crossover_backends]
    bar = tqdm(jobs, disable=args.no_progress, unit="cell", desc="ppl-ad bench")
    for model, backend, dims in bar:
        bar.set_postfix_str(f"{model} × {backend}")
        rows = run_cell(model, backend, repeats=args.repeats, timeout=args.timeout, dims=dims)
        (result["crossover"] if dims else result["cells"]).extend(rows)
    if args.peers:
        from ppl_ad.bench.peers import available_peers, run_peers

        result["peers"] = run_peers([m for m in models if m in STANDARD])
        missing = {"pymc", "numpyro"} - set(available_peers())
        if missing:
            print(f"peers not installed (skipped): {', '.join(sorted(missing))}")
    (out / "backends.json").write_text(json.dumps(result, indent=1))
    (out / "backends.md").write_text(to_markdown(result))
    if result["crossover"]:
        plot_crossover(result["crossover"], out / "crossover.png")
    print(f"wrote {out / 'backends.json'}, {out / 'backends.md'}" + (", crossover.png" if result["crossover"] else ""))
    return 0
