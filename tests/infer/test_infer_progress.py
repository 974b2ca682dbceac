"""Tests of ppl_ad.infer.progress and the progress bars of sample()."""

from __future__ import annotations

import io

import numpy as np

from ppl_ad.infer import progress as progress_module
from ppl_ad.infer import sample as sample_module
from ppl_ad.infer.gaussian import GaussianLogDensity
from ppl_ad.infer.progress import ChainProgress, ProgressBars, progress_enabled


def test_progress_disabled_without_terminal(monkeypatch):
    assert not progress_enabled(False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress_enabled(True)

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", Tty())
    assert progress_enabled(True)
    assert not progress_enabled(False)


def test_chain_progress_throttles_but_reports_phase_ends():
    calls = []
    reporter = ChainProgress(3, lambda *a: calls.append(a), tune=100, draws=50, min_interval=3600.0)
    for i in range(1, 101):
        reporter(i, True, i // 10)
    for i in range(1, 51):
        reporter(i, False, 0)
    # First report, end of warmup, first sampling report (phase change), end of sampling.
    assert calls == [(3, 1, True, 0), (3, 100, True, 10), (3, 1, False, 0), (3, 50, False, 0)]


def test_progress_bars_show_phase_and_divergences(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    bars = ProgressBars(2, tune=10, draws=5)
    bars.update(0, 10, True, 2)
    bars.update(1, 3, False, 1)
    bars.close()
    text = stream.getvalue()
    assert "Chain 0 warmup" in text and "2 divergences" in text
    assert "Chain 1 sampling" in text and "1 divergences" in text


def _force_bars(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(sample_module, "progress_enabled", lambda requested: requested)
    return stream


def test_sample_draws_bars_in_process(monkeypatch):
    stream = _force_bars(monkeypatch)
    ld = GaussianLogDensity(np.zeros(2), [1.0, 1.0])
    sample_module.sample(ld, draws=30, tune=40, chains=2, cores=1, seed=0)
    text = stream.getvalue()
    assert "Chain 0 sampling" in text and "Chain 1 sampling" in text
    assert "70/70" in text


def test_sample_draws_bars_from_worker_processes(monkeypatch):
    stream = _force_bars(monkeypatch)
    ld = GaussianLogDensity(np.zeros(2), [1.0, 1.0])
    idata = sample_module.sample(ld, draws=30, tune=40, chains=2, cores=2, seed=0)
    assert idata.attrs["processes"] == 2
    text = stream.getvalue()
    assert "Chain 0 sampling" in text and "Chain 1 sampling" in text
    assert "70/70" in text


def test_no_bars_when_progressbar_false(monkeypatch):
    stream = _force_bars(monkeypatch)
    sample_module.sample(GaussianLogDensity(np.zeros(2), [1.0, 1.0]), draws=10, tune=100, chains=1, seed=0, progressbar=False)
    assert stream.getvalue() == ""
    assert progress_module.progress_enabled(False) is False
