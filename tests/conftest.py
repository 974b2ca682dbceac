"""Shared pytest fixtures. Tests mirror the package tree (tests/<subpackage>/test_<module>.py)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

# Workers and subprocesses started by tests must not pick up a user's backend choice.
os.environ.pop("PPL_AD_BACKEND", None)
# Compiled programs and auto decisions go to a cache of this test session, not the user's.
os.environ.setdefault("PPL_AD_CACHE_DIR", tempfile.mkdtemp(prefix="ppl_ad-test-cache-"))


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    """Run every test in an empty directory so no stray ppl_ad config is picked up."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PPL_AD_BACKEND", raising=False)


def _warm_up_worker():
    import arviz  # noqa: F401
    import jax  # noqa: F401

    import ppl_ad.infer.distributed  # noqa: F401
    import ppl_ad.sbc  # noqa: F401

    return os.getpid()


@pytest.fixture(scope="module")
def client():
    """A real two-process Dask LocalCluster (one thread per worker, imports done), closed at the end."""
    import logging

    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    ) as cluster, distributed.Client(cluster) as client:
        client.run(_warm_up_worker)
        yield client


@pytest.fixture
def wait_until_replaced():
    """``wait(client, pid)``: see :func:`_wait_until_replaced`."""
    return _wait_until_replaced


def _wait_until_replaced(client, victim: int, timeout: float = 60.0) -> None:
    """Wait until the Dask worker process ``victim`` (a pid) is gone and a new worker took its place.

    Right after a kill the scheduler may still list the dead worker for a moment, so workers that
    cannot answer are skipped rather than failing the call.
    """
    import time

    deadline = time.monotonic() + timeout
    while True:
        pids = client.run(os.getpid, on_error="ignore")
        if len(pids) >= 2 and victim not in pids.values():
            return
        assert time.monotonic() < deadline, f"worker {victim} was not replaced within {timeout} s: {pids}"
        time.sleep(0.2)
