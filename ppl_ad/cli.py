"""The ``ppl-ad`` command line: ``backends``, ``demo``, ``bench``, ``migrate``, ``cache``.

Each subcommand lives in its own module and is imported only when it runs.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _backends(args) -> int:
    from ppl_ad.backends import registry

    table = registry.list()
    print(table.to_markdown() if args.markdown else table)
    return 0


def _demo(args) -> int:
    from ppl_ad.demo import main as demo_main

    return demo_main(quick=args.quick)


def _bench(args) -> int:
    from ppl_ad.bench.cli import main as bench_main

    if args.timeout is None:
        args.timeout = 1800.0 if args.sampling else 300.0
    return bench_main(args)


def _migrate(args) -> int:
    from ppl_ad.migrate import main as migrate_main

    return migrate_main(args)


def _cache(args) -> int:
    import shutil

    from ppl_ad.bench.auto import cache_dir, clear_cache
    from ppl_ad.config import cache_root
    from ppl_ad.infer import program_cache

    folder, xla, engine = cache_dir(), cache_root() / "xla", program_cache.folder()

    def count(path):
        return len(list(path.iterdir())) if path.is_dir() else 0

    if args.clear:
        compiled = count(xla)
        shutil.rmtree(xla, ignore_errors=True)
        print(f"deleted {clear_cache()} cached backend='auto' decisions from {folder}, {compiled} compiled "
              f"programs from {xla} and {program_cache.clear()} sampler programs from {engine}")
        return 0
    decisions = sorted(folder.glob("*.json")) if folder.is_dir() else []
    print(f"{len(decisions)} cached backend='auto' decisions in {folder}, {count(xla)} compiled programs in {xla}, "
          f"{count(engine)} sampler programs in {engine} (ppl-ad cache --clear deletes them)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ppl-ad", description="ppl_ad: per-model AD backends for Bayesian inference")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("backends", help="list AD backends: mode, library, installed version, status")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.set_defaults(func=_backends)

    p = sub.add_parser("demo", help="sample the eight-schools model and compare backend gradients")
    p.add_argument("--quick", action="store_true", help="fewer draws")
    p.set_defaults(func=_demo)

    p = sub.add_parser("bench", help="benchmark the installed backends on the standard models or your own")
    p.add_argument("--out", default="ppl-ad-bench", help="output folder (default: ./ppl-ad-bench)")
    p.add_argument("--models", default=None, help="comma-separated scenario names (default: standard + posteriordb)")
    p.add_argument("--model", action="append", default=None, metavar="FILE.py:NAME|MODULE:NAME",
                   help="your own bound model (a @pa.model function called with its data); repeatable")
    p.add_argument("--backends", default=None,
                   help="comma-separated backend names (default: all installed; with --sampling, samplers such "
                        "as jax, jax:python, jax:low_rank or a peer, default jax,jax:python)")
    p.add_argument("--repeats", type=_positive_int, default=None,
                   help="timed calls per cell (with --sampling: how many times every cold/warm pair runs)")
    p.add_argument("--timeout", type=_positive_float, default=None,
                   help="seconds per cell (default 300, or 1800 with --sampling)")
    p.add_argument("--peers", action="store_true", help="also run PyMC and NumPyro (needs ppl_ad[bench])")
    p.add_argument("--sampling", action="store_true",
                   help="NUTS efficiency (min ESS-bulk per second of wall time) instead of gradient timings")
    p.add_argument("--draws", type=_positive_int, default=1000, help="--sampling: draws per chain")
    p.add_argument("--tune", type=_non_negative_int, default=1000, help="--sampling: warmup iterations per chain")
    p.add_argument("--chains", type=_positive_int, default=4, help="--sampling: chains")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--executor", default=None, metavar="SCHEDULER_ADDRESS",
                   help="run the cells as tasks on this Dask scheduler (tcp://host:8786), each in its own process")
    p.set_defaults(func=_bench)

    p = sub.add_parser("migrate", help="find uses of deprecated/removed backends (exit 1 if any)")
    p.add_argument("paths", nargs="*", default=["."], help="files or folders to scan")
    p.add_argument("--fix", action="store_true", help="rewrite the simple cases in place and print a diff")
    p.set_defaults(func=_migrate)
    p = sub.add_parser("cache", help="where ppl_ad caches: backend='auto' decisions, compiled XLA programs and "
                                     "sampler programs; --clear deletes them")
    p.add_argument("--clear", action="store_true",
                   help="delete the cached auto decisions, compiled programs and sampler programs")
    p.set_defaults(func=_cache)
    return parser


def _positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _positive_float(text: str) -> float:
    """An argparse type: a number above 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def main(argv=None) -> int:
    """Run ``ppl-ad``; a ppl_ad error (unknown backend or model, bad configuration) is printed
    on stderr and gives exit status 2."""
    from ppl_ad.errors import PplAdError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PplAdError as error:
        print(f"ppl-ad {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
