"""Shared set-up of the tests of the scripts in ``benchmarks/``: each script as a module."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _load_script(name: str):
    """``benchmarks/<name>.py`` as a module; the environment it sets for its own process
    (thread counts, cache folder) is restored afterwards."""
    saved = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return module


@pytest.fixture(scope="module")
def step_time():
    """``benchmarks/bench_step_time.py``."""
    return _load_script("bench_step_time")


@pytest.fixture(scope="module")
def ess_seeds():
    """``benchmarks/bench_ess_seeds.py``."""
    return _load_script("bench_ess_seeds")


@pytest.fixture(scope="module")
def gaussian_scale():
    """``benchmarks/bench_gaussian_scale.py``."""
    return _load_script("bench_gaussian_scale")
