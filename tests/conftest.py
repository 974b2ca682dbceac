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
