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
