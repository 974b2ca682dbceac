"""Large data: time to the first gradient and peak memory of ``pa.logdensity`` per backend.

A logistic regression with 10^6 rows x 100 columns (X is 0.8 GB of float64, generated with
NumPy from ``RandomState(0)``), ``pa.logdensity(model, backend=B)`` for ``B`` in jax and
torch, each in a fresh subprocess. Per backend it reports:

- ``first gradient s``: from the call of ``pa.logdensity`` (tracing, compiling, the warm-up call)
  to the end of the first ``logdensity_and_gradient`` (targets of issue 10: < 5 s);
- the time of a later gradient call (the median of 5);
- ``peak RSS``: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the subprocess at the end, and
  relative to the data size (target < 2.5x); the RSS after the data were generated and the
  backend library imported (before ``pa.logdensity``) is reported too, so the increment the
  log density itself costs is visible.

Run: ``.venv/bin/python benchmarks/bench_large_data.py [--rows 1000000] [--cols 100]
[--backends jax,torch] [--out benchmarks/results]``; needs a few GB of free memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

PREFIX = "LARGE "
TARGET_FIRST_GRADIENT_S = 5.0
TARGET_RSS_RATIO = 2.5


def _rss_bytes() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(backend: str, rows: int, cols: int) -> dict:
    """Measure one backend in this process (run by :func:`main` in a fresh subprocess)."""
    import time

    import numpy as np

    import ppl_ad as pa
    from ppl_ad.testing.scenarios import logistic_regression

    rng = np.random.RandomState(0)
    X = rng.normal(size=(rows, cols))
    beta = rng.normal(size=cols) / np.sqrt(cols)
    y = (rng.uniform(size=rows) < 1.0 / (1.0 + np.exp(-(0.5 + X @ beta)))).astype(np.int64)
    data_bytes = X.nbytes + y.nbytes
    __import__({"jax": "jax", "jax-forward": "jax", "torch": "torch"}.get(backend, "numpy"))
    model = logistic_regression(X, y)
    rss_before = _current_rss_bytes()
    theta = np.full(cols + 1, 0.01)
    start = time.perf_counter()
    ld = pa.logdensity(model, backend=backend)
    prepared = time.perf_counter()
    value, grad = ld.logdensity_and_gradient(theta)
    first = time.perf_counter()
    later = []
    for _ in range(5):
        t = time.perf_counter()
        ld.logdensity_and_gradient(theta)
        later.append(time.perf_counter() - t)
    peak = _rss_bytes()
    return {
        "backend": backend, "rows": rows, "cols": cols, "data_bytes": data_bytes,
        "prepare_s": prepared - start, "first_gradient_s": first - start,
        "gradient_s": float(np.median(later)), "rss_before_bytes": rss_before, "peak_rss_bytes": peak,
        "peak_rss_ratio": peak / data_bytes, "increment_ratio": (peak - rss_before) / data_bytes,
        "data_mode": getattr(ld, "data_mode", None), "value_finite": bool(np.isfinite(value)),
        "gradient_finite": bool(np.all(np.isfinite(grad))),
    }


def run(backend: str, rows: int, cols: int, timeout: float) -> dict:
    """One backend in a fresh subprocess; a crash or a timeout is a row with a note."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", backend, "--rows", str(rows), "--cols", str(cols)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"backend": backend, "note": f"no result within {timeout:g} s"}
    for line in done.stdout.splitlines():
        if line.startswith(PREFIX):
            return json.loads(line[len(PREFIX):])
    tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
    return {"backend": backend, "note": f"failed ({done.returncode}): {tail[:300]}"}


def to_markdown(rows: list[dict], command: str, load: str) -> str:
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    gb = lambda b: f"{b / 1e9:.2f}"  # noqa: E731
    first = next((r for r in rows if "data_bytes" in r), None)
    size = f"{first['rows']} x {first['cols']}, {gb(first['data_bytes'])} GB of data (X float64 and y int64)" if first else "?"
    lines = [
        "# Large data: time to the first gradient and peak memory",
        "",
        f"- command: `{command}`",
        f"- date: {stamp}; machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores "
        f"(shared with other work), Python {platform.python_version()}; load average at start: {load}",
        f"- model: logistic regression (`ppl_ad.testing.scenarios.logistic_regression`), {size}, "
        "generated with NumPy `RandomState(0)`; one fresh process per backend, one thread per library",
        f"- targets (issue 10): first gradient < {TARGET_FIRST_GRADIENT_S:g} s; peak RSS < "
        f"{TARGET_RSS_RATIO:g}x the data",
        "",
        "`first gradient s` runs from the call of `pa.logdensity` (trace, compile, warm-up call) to the end "
        "of the first `logdensity_and_gradient`. `peak RSS` is `ru_maxrss` of the process (interpreter, "
        "libraries, the data and everything the backend made); `RSS before` is the resident memory after "
        "the data were generated and the library imported, just before `pa.logdensity`.",
        "",
        "| backend | data mode | first gradient s | later gradient s | RSS before GB | peak RSS GB | "
        "peak RSS ÷ data | (peak - before) ÷ data | targets met | note |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in rows:
        if "data_bytes" not in r:
            lines.append(f"| {r['backend']} | - | - | - | - | - | - | - | - | {r.get('note', '')} |")
            continue
        met = (r["first_gradient_s"] < TARGET_FIRST_GRADIENT_S, r["peak_rss_ratio"] < TARGET_RSS_RATIO)
        lines.append(
            f"| {r['backend']} | {r.get('data_mode') or '-'} | {r['first_gradient_s']:.2f} | {r['gradient_s']:.3f} | "
            f"{gb(r['rss_before_bytes'])} | {gb(r['peak_rss_bytes'])} | {r['peak_rss_ratio']:.2f} | "
            f"{r['increment_ratio']:.2f} | time {'yes' if met[0] else 'NO'}, memory {'yes' if met[1] else 'NO'} | "
            f"{'' if r['value_finite'] and r['gradient_finite'] else 'non-finite result'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=100)
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--out", default="benchmarks/results")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(PREFIX + json.dumps(child(args.child, args.rows, args.cols)), flush=True)
        return 0
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        row = run(backend, args.rows, args.cols, args.timeout)
        rows.append(row)
        print(json.dumps(row), flush=True)
    command = "python benchmarks/bench_large_data.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "large_data.md"), "w") as handle:
        handle.write(to_markdown(rows, command, load))
    with open(os.path.join(args.out, "large_data.json"), "w") as handle:
        json.dump({"load_average": load, "rows": rows}, handle, indent=1)
    print(to_markdown(rows, command, load))
    return 0


if __name__ == "__main__":
    sys.exit(main())
