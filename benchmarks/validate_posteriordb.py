"""Validate the ppl_ad NUTS sampler against the posteriordb reference posteriors.

Samples every posteriordb scenario with the JAX backend (4 chains x 1000 draws after 1000
warmup by default; longer warmup where posteriordb itself ran longer) and compares each
reference quantity with :func:`ppl_ad.testing.validation.compare_to_reference`. Writes
``posteriordb_validation.md`` and ``posteriordb_validation.json`` to ``--out``.

``kilpisjarvi`` (corr(alpha, beta) = -0.99999) and ``diamonds`` (condition number 3e5) are
sampled with ``metric="dense"``: a diagonal metric cannot undo their correlations, so NUTS needs
trees of depth 12-15 there (posteriordb's Stan runs used ``max_treedepth`` 15 and 20), which
takes hours in a Python sampler; the dense metric of Stan's windowed adaptation makes them
routine (see ``docs/sampling.md``, "Choosing the metric").

Usage::

    python benchmarks/validate_posteriordb.py --out benchmarks/results [--only a,b] [--merge]
        [--draws N] [--tune N] [--executor tcp://scheduler:8786]

``--executor ADDRESS`` runs each posterior as one task on that Dask scheduler, where it is
validated in a process of its own (this script, sent with the task, run as ``python -`` with
``--cell NAME``); the workers need ppl_ad and JAX installed, not this checkout. Without it the
posteriors are validated one after another in this process.

``--merge`` keeps the posteriors of an earlier ``posteriordb_validation.json`` in ``--out``
that this run does not redo, so a long validation can be completed in parts.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

#: per-posterior sampler settings (merged over the defaults)
SETTINGS = {
    "diamonds-diamonds": {"metric": "dense", "target_accept": 0.9},
    "kilpisjarvi_mod-kilpisjarvi": {"metric": "dense"},
    "eight_schools-eight_schools_noncentered": {"target_accept": 0.95},
    "eight_schools-eight_schools_centered": {"target_accept": 0.95},
    # posteriordb ran 30 000 iterations (20 000 warmup) for these
    "garch-garch11": {"tune_factor": 2},
}
#: posteriors judged on divergence reporting, not on moments
DIVERGENCE_CHECK = {"eight_schools-eight_schools_centered"}


def machine_info() -> dict:
    from ppl_ad.bench.cli import machine_info as info

    return info()


def _posterior_names() -> list[str]:
    from ppl_ad.testing.posteriordb import POSTERIORS

    return list(POSTERIORS)


POSTERIOR_NAMES = _posterior_names()


def validate_one(scenario, draws, tune, chains, seed, metric=None):
    """Sample ``scenario`` with its :data:`SETTINGS` (``metric``, when given, replaces theirs) and
    compare the draws to posteriordb's reference."""
    from ppl_ad.infer.sample import sample
    from ppl_ad.testing.validation import compare_to_reference, summarise

    extra = dict(SETTINGS.get(scenario.name, {}))
    tune = tune * extra.pop("tune_factor", 1)
    options = {"target_accept": 0.8, "max_treedepth": 10, "metric": "diag", **extra}
    if metric is not None:
        options["metric"] = metric
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        idata = sample(scenario.model(), backend="jax", draws=draws, tune=tune, chains=chains,
                       seed=seed, progressbar=False, **options)
    elapsed = time.perf_counter() - start
    rows = compare_to_reference(idata, scenario)
    summary = summarise(rows, idata)
    summary.update({
        "posterior": scenario.name, "time_s": elapsed, "date": datetime.date.today().isoformat(), "draws": draws, "tune": tune,
        "chains": chains, **options, "warnings": [str(w.message) for w in caught],
    })
    if scenario.name in DIVERGENCE_CHECK:
        summary["verdict"] = "divergences reported" if summary.get("divergences", 0) > 0 else "no divergences"
        summary["moments_passed"] = summary.pop("passed")
    else:
        summary["verdict"] = "pass" if summary["passed"] else "FAIL"
    return summary, rows


#: prefix of the result line that a ``--cell`` process prints
CELL = "CELL "


def _cell_arguments(name: str, args) -> list[str]:
    return ["--cell", name, "--draws", str(args.draws), "--tune", str(args.tune), "--chains", str(args.chains),
            "--seed", str(args.seed)] + (["--metric", args.metric] if args.metric else [])


def _error_result(name: str, args, note: str) -> dict:
    """The row of a posterior whose cell process failed (a crash becomes a row, not a dead run)."""
    nan = math.nan
    summary = {"posterior": name, "verdict": "error", "worst_abs_z": nan, "worst_sd_ratio": nan,
               "min_ess_bulk": nan, "chains": args.chains, "draws": args.draws, "tune": args.tune,
               "target_accept": "-", "max_treedepth": "-", "time_s": nan,
               "date": datetime.date.today().isoformat(), "note": note}
    return {"summary": summary, "rows": []}


def _from_process(name: str, args, done: subprocess.CompletedProcess) -> dict:
    lines = [line for line in done.stdout.splitlines() if line.startswith(CELL)]
    if done.returncode == 0 and lines:
        return json.loads(lines[-1][len(CELL):])
    tail = [line for line in done.stderr.strip().splitlines() if line.strip()]
    return _error_result(name, args, f"cell process failed ({done.returncode}): {tail[-1] if tail else ''}"[:300])


def run_on_executor(names: list[str], args, on_result) -> None:
    """Validate ``names`` as Dask tasks on ``args.executor``, one process per posterior on a worker.

    ``on_result(name, result)`` is called in this process as each posterior finishes.
    """
    from ppl_ad.infer.distributed import connect, map_tasks

    source = Path(__file__).read_text(encoding="utf-8")
    run = functools.partial(subprocess.run, input=source, capture_output=True, text=True)
    calls = [([sys.executable, "-", *_cell_arguments(name, args)],) for name in names]
    with connect(args.executor) as client:
        map_tasks(client, run, calls, name="ppl_ad-validate",
                  on_done=lambda i, done: on_result(names[i], _from_process(names[i], args, done)))


def write_report(out_dir: Path, results: list) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "posteriordb_validation.json", "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=1)
    lines = [
        "# posteriordb validation of the ppl_ad NUTS sampler (JAX backend)",
        "",
        f"Command: `make validate` (`python benchmarks/validate_posteriordb.py --out benchmarks/results`; "
        f"parts rerun with `--only NAMES --merge`). Machine of the latest run: {machine_info()['cpu']}, "
        f"{os.cpu_count()} cores shared with other work; the `run on` column dates each row. Covered: "
        f"{len(results)} of {len(POSTERIOR_NAMES)} posteriors: "
        f"{sum(r['summary']['verdict'] == 'pass' for r in results)} pass, "
        f"{sum(r['summary']['verdict'] == 'divergences reported' for r in results)} reports its divergences "
        f"(the centred eight schools), {sum(r['summary']['verdict'] not in ('pass', 'divergences reported') for r in results)} "
        "fail.",
        "",
        "Pass: every reference quantity has |z| < 4, z = (mean - ref mean) / sqrt(ref mcse^2 + "
        "(sd / sqrt(ess_bulk))^2), and |sd / ref sd - 1| < 0.10. The centred eight schools is "
        "judged on whether divergences are reported (its funnel), not on moments.",
        "",
        "| posterior | verdict | worst abs z | worst sd ratio | divergences | min ESS bulk | "
        "chains x draws (+tune) | metric | target_accept | max_treedepth | time (s) | run on |",
        "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|---|",
    ]
    for r in results:
        s = r["summary"]
        lines.append(
            f"| {s['posterior']} | {s['verdict']} | {s['worst_abs_z']:.2f} | {s['worst_sd_ratio']:.3f} "
            f"| {s.get('divergences', 'n/a')} | {s['min_ess_bulk']:.0f} | {s['chains']} x {s['draws']} "
            f"(+{s['tune']}) | {s.get('metric', 'diag')} | {s['target_accept']} | {s['max_treedepth']} "
            f"| {s['time_s']:.1f} | {s.get('date', '-')} |"
        )
    lines += ["", "## Per quantity", ""]
    for r in results:
        lines += [f"### {r['summary']['posterior']}", "",
                  "| name | ref mean | mean | z | ref sd | sd | sd ratio | ESS bulk | pass |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for q in r["rows"]:
            lines.append(
                f"| {q['name']} | {q['ref_mean']:.5g} | {q['mean']:.5g} | {q['z']:.2f} | {q['ref_sd']:.4g} "
                f"| {q['sd']:.4g} | {q['sd_ratio']:.3f} | {q['ess_bulk']:.0f} | {'yes' if q['passed'] else 'NO'} |"
            )
        lines.append("")
    (out_dir / "posteriordb_validation.md").write_text("\n".join(lines), encoding="utf-8")


def _earlier_results(out_dir: Path) -> dict:
    path = out_dir / "posteriordb_validation.json"
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as handle:
        return {r["summary"]["posterior"]: r for r in json.load(handle)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--only", default=None, help="comma-separated posteriordb names")
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--metric", default=None, choices=["diag", "dense", "low_rank"],
                        help="sample every posterior with this metric (default: each posterior's own setting)")
    parser.add_argument("--merge", action="store_true",
                        help="keep earlier results in --out for the posteriors this run does not redo")
    parser.add_argument("--executor", default=None, metavar="ADDRESS",
                        help="run each posterior as a task on this Dask scheduler (tcp://host:8786)")
    parser.add_argument("--cell", default=None, metavar="NAME",
                        help="validate one posterior and print its result as one JSON line (what a task runs)")
    args = parser.parse_args(argv)

    from ppl_ad.testing.scenarios import scenarios

    if args.cell:
        scenario = next((s for s in scenarios("posteriordb") if s.name == args.cell), None)
        if scenario is None:
            parser.error(f"unknown posterior: {args.cell}")
        summary, rows = validate_one(scenario, args.draws, args.tune, args.chains, args.seed, args.metric)
        print(CELL + json.dumps({"summary": summary, "rows": rows}), flush=True)
        return 0

    chosen = scenarios("posteriordb")
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - {s.name for s in chosen})
        if unknown:
            parser.error(f"unknown posteriors: {unknown}")
        chosen = [s for s in chosen if s.name in wanted]
    earlier = _earlier_results(Path(args.out)) if args.merge else {}
    order = [s.name for s in scenarios("posteriordb")]
    fresh = {}
    results = [earlier[name] for name in order if name in earlier]

    def record(name: str, result: dict) -> None:
        nonlocal results
        summary = result["summary"]
        print(f"{name}: {summary['verdict']} worst|z|={summary['worst_abs_z']:.2f} "
              f"worst sd ratio={summary['worst_sd_ratio']:.3f} divergences={summary.get('divergences')} "
              f"time={summary['time_s']:.1f}s" + (f" ({summary['note']})" if summary.get("note") else ""), flush=True)
        fresh[name] = result
        merged = {**earlier, **fresh}
        results = [merged[n] for n in order if n in merged]
        write_report(Path(args.out), results)  # keep partial results of a long run

    if args.executor:
        run_on_executor([s.name for s in chosen], args, record)
    else:
        for scenario in chosen:
            summary, rows = validate_one(scenario, args.draws, args.tune, args.chains, args.seed, args.metric)
            record(scenario.name, {"summary": summary, "rows": rows})
    failed = [r["summary"]["posterior"] for r in results if r["summary"]["verdict"] in ("FAIL", "error")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
