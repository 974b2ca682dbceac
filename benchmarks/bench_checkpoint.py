"""What checkpointing costs: sampling wall time with and without ``checkpoint=``.

For each of the four standard models and each engine, runs ``pa.sample`` with and without a
checkpoint (default: a save every 2 seconds of work, at the end of warmup and at the end),
interleaved, ``--repeats`` times, and reports the median wall times and their ratio. The
issue's target: checkpointing costs at most 5 % of sampling wall time.

Usage::

    python benchmarks/bench_checkpoint.py --out benchmarks/results [--repeats 3] [--draws 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import ppl_ad as pa
from ppl_ad.testing import get_scenario
from ppl_ad.testing.scenarios import STANDARD

CELLS = [("jax", "jax"), ("torch", "python")]


def _run(model, backend, engine, args, checkpoint=None) -> float:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pa.sample(model, backend=backend, engine=engine, draws=args.draws, tune=args.tune, chains=args.chains,
                  cores=1, seed=1, progressbar=False, checkpoint=checkpoint)
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--tune", type=int, default=1000)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--models", default=",".join(STANDARD))
    parser.add_argument("--cells", default=",".join(f"{b}:{e}" for b, e in CELLS),
                        help="backend:engine pairs, comma-separated")
    args = parser.parse_args(argv)
    rows = []
    for name in args.models.split(","):
        model = get_scenario(name).model()
        for cell in args.cells.split(","):
            backend, engine = cell.split(":")
            _run(model, backend, engine, args)  # warm: compile, caches
            plain, saved = [], []
            for _ in range(args.repeats):
                plain.append(_run(model, backend, engine, args))
                folder = tempfile.mkdtemp(prefix="ppl_ad-ckpt-")
                try:
                    saved.append(_run(model, backend, engine, args, checkpoint=os.path.join(folder, "run")))
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            row = {"model": name, "backend": backend, "engine": engine, "plain_s": statistics.median(plain),
                   "checkpoint_s": statistics.median(saved)}
            row["ratio"] = row["checkpoint_s"] / row["plain_s"]
            rows.append(row)
            print(f"{name:22s} {backend:6s} {engine:6s} {row['plain_s']:8.2f} s {row['checkpoint_s']:8.2f} s "
                  f"{row['ratio']:.3f}", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "checkpoint_overhead.json").write_text(json.dumps(rows, indent=2))
    load = os.getloadavg()
    lines = [
        "# Checkpoint overhead",
        "",
        f"`python benchmarks/bench_checkpoint.py --repeats {args.repeats} --draws {args.draws} --tune {args.tune} "
        f"--chains {args.chains}`, {time.strftime('%Y-%m-%d')}; chains sequential in one process; median wall "
        f"time of {args.repeats} interleaved runs each, after a warm-up run; load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores. The checkpoint saves every "
        "2 seconds of work (the default), at the end of warmup and at the end.",
        "",
        "| model | backend | engine | without (s) | with checkpoint (s) | ratio |",
        "|---|---|---|---:|---:|---:|",
    ]
    lines += [f"| {r['model']} | {r['backend']} | {r['engine']} | {r['plain_s']:.2f} | {r['checkpoint_s']:.2f} | "
              f"{r['ratio']:.3f} |" for r in rows]
    (out / "checkpoint_overhead.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
