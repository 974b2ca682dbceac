"""Tests of ppl_ad.infer.threads: LAPACK on one thread while the compiled engine runs."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_ad.infer import threads

threadpoolctl = pytest.importorskip("threadpoolctl")


def _blas_threads() -> dict:
    return {info["filepath"]: info["num_threads"] for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"}


def test_inside_every_blas_has_one_thread_and_scipy_s_is_loaded():
    with threads.one_lapack_thread():
        inside = _blas_threads()
        assert any("scipy" in path for path in inside)  # the OpenBLAS JAX's LAPACK calls go to
        assert set(inside.values()) == {1}


def test_the_previous_limits_come_back_after_the_body_and_after_an_error():
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        with threads.one_lapack_thread():
            pass
        assert _blas_threads() == before
        with pytest.raises(RuntimeError):
            with threads.one_lapack_thread():
                raise RuntimeError("a failing chain")
        assert _blas_threads() == before


def test_without_threadpoolctl_the_context_does_nothing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_threadpoolctl(name, *args, **kwargs):
        if name == "threadpoolctl":
            raise ImportError("not installed")
        return real_import(name, *args, **kwargs)

    before = _blas_threads()
    monkeypatch.setattr(builtins, "__import__", no_threadpoolctl)
    with threads.one_lapack_thread():
        assert _blas_threads() == before


def test_the_engine_runs_its_program_on_one_lapack_thread(monkeypatch):
    pytest.importorskip("jax")
    from ppl_ad.infer import jax_engine
    from ppl_ad.infer.sample import sample

    seen = []
    advance = jax_engine._GroupRun.advance

    def recording(self, *args, **kwargs):
        seen.append(set(_blas_threads().values()))
        return advance(self, *args, **kwargs)

    monkeypatch.setattr(jax_engine._GroupRun, "advance", recording)
    import ppl_ad as pa
    from ppl_ad import dist

    @pa.model
    def normal():
        pa.sample("x", dist.Normal(0.0, 1.0), shape=(3,))

    idata = sample(normal(), backend="jax", draws=5, tune=5, chains=2, seed=1, progressbar=False,
                   chain_method="sequential")
    assert seen == [{1}, {1}]
    assert idata.attrs["engine"] == "jax"
    assert np.all(np.isfinite(idata.posterior["x"].values))
