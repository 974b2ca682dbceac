"""Tests of ppl_ad.infer.adaptation (dual averaging, Welford, Stan's windows)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from ppl_ad.errors import SamplingError
from ppl_ad.infer import nuts
from ppl_ad.infer.adaptation import (
    build_schedule,
    dual_averaging_final,
    dual_averaging_init,
    dual_averaging_update,
    find_reasonable_step_size,
    regularized_covariance,
    welford_covariance,
    welford_init,
    welford_update,
)
from ppl_ad.infer.chain import ChainSettings, run_chain
from ppl_ad.infer.hmc import HMCState
from ppl_ad.infer.metrics import gaussian_euclidean
from ppl_ad.infer.uniforms import UniformStream

# --------------------------------------------------------------------------- #
# Schedule
# --------------------------------------------------------------------------- #


def _window_ends(schedule):
    return [i for i, (_, end) in enumerate(schedule) if end]


def _slow(schedule):
    slow = [i for i, (s, _) in enumerate(schedule) if s]
    return (slow[0], slow[-1]) if slow else None


def test_stan_default_schedule():
    schedule = build_schedule(1000)
    assert len(schedule) == 1000
    assert _window_ends(schedule) == [99, 149, 249, 449, 949]
    assert _slow(schedule) == (75, 949)


def test_schedule_with_long_warmup_stretches_the_last_window():
    schedule = build_schedule(2000)
    # windows 25, 50, 100, 200, 400, then 800 would leave < 1600 before the terminal
    # buffer at 1950, so the last window runs to 1949.
    assert _window_ends(schedule) == [99, 149, 249, 449, 849, 1949]


def test_short_warmup_uses_stan_percentages():
    schedule = build_schedule(100)  # 75 + 25 + 50 > 100: 15% / 75% / 10%
    assert _slow(schedule) == (15, 89)
    assert _window_ends(schedule) == [89]


def test_very_short_warmup_adapts_no_metric():
    assert build_schedule(19) == [(False, False)] * 19
    assert build_schedule(0) == []


# --------------------------------------------------------------------------- #
# Welford
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("dense", [False, True])
def test_welford_matches_numpy(dense):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 1e3]
    state = welford_init(3, dense=dense)
    for row in x:
        state = welford_update(state, row)
    assert state.count == 500
    np.testing.assert_allclose(state.mean, x.mean(axis=0))
    expected = np.cov(x.T) if dense else x.var(axis=0, ddof=1)
    np.testing.assert_allclose(welford_covariance(state), expected, rtol=1e-10)
    n = 500.0
    reg = (n / (n + 5)) * expected + 1e-3 * (5 / (n + 5)) * (np.eye(3) if dense else 1.0)
    np.testing.assert_allclose(regularized_covariance(state), reg, rtol=1e-10)


@pytest.mark.parametrize("dense", [False, True])
def test_welford_converges_to_known_covariance(dense):
    rng = np.random.default_rng(1)
    cov = np.array([[4.0, 1.2, 0.0], [1.2, 1.0, -0.3], [0.0, -0.3, 0.25]])
    x = rng.multivariate_normal(np.zeros(3), cov, size=20000)
    state = welford_init(3, dense=dense)
    for row in x:
        state = welford_update(state, row)
    sd = np.sqrt(np.diag(cov))
    estimate = regularized_covariance(state)
    if dense:
        # Error relative to the scale of each entry (correlations within 0.05).
        assert np.all(np.abs(estimate - cov) / np.outer(sd, sd) < 0.05)
    else:
        assert np.all(np.abs(estimate / np.diag(cov) - 1.0) < 0.05)


# --------------------------------------------------------------------------- #
# Dual averaging
# --------------------------------------------------------------------------- #


def test_dual_averaging_on_a_known_acceptance_curve():
    # acceptance(eps) = exp(-eps): the target 0.8 is reached at eps = -log(0.8).
    state = dual_averaging_init(1.0)
    assert state.mu == pytest.approx(math.log(10.0))
    for _ in range(2000):
        state = dual_averaging_update(state, math.exp(-math.exp(state.log_step_size)), 0.8)
    assert dual_averaging_final(state) == pytest.approx(-math.log(0.8), rel=0.02)


def test_dual_averaging_clips_acceptance_and_handles_nan():
    state = dual_averaging_init(0.5)
    a = dual_averaging_update(state, 1.7)
    b = dual_averaging_update(state, 1.0)
    assert a == b
    c = dual_averaging_update(state, float("nan"))
    d = dual_averaging_update(state, 0.0)
    assert c == d


def test_dual_averaging_reaches_target_acceptance_with_nuts():
    d = 10
    scales = np.linspace(0.5, 2.0, d)
    prec = 1.0 / scales**2

    def f(x):
        g = -prec * x
        return 0.5 * float(x.dot(g)), g

    rng = np.random.default_rng(3)
    uniform = UniformStream(rng)
    metric = gaussian_euclidean(np.ones(d))
    kernel = nuts.build_kernel(f, metric)
    x = rng.normal(size=d) * scales
    state = HMCState(x, *f(x))
    da = dual_averaging_init(1.0)
    for _ in range(1000):
        state, info = kernel(state, math.exp(da.log_step_size), metric.sample_momentum(rng), uniform)
        da = dual_averaging_update(da, info.acceptance_rate, 0.8)
    step_size = dual_averaging_final(da)
    accept = []
    for _ in range(1000):
        state, info = kernel(state, step_size, metric.sample_momentum(rng), uniform)
        accept.append(info.acceptance_rate)
    assert abs(np.mean(accept) - 0.8) < 0.05


# --------------------------------------------------------------------------- #
# Step-size heuristic
# --------------------------------------------------------------------------- #


def test_step_size_heuristic_scales_with_the_target():
    rng = np.random.default_rng(0)
    found = []
    for scale in (0.01, 1.0, 100.0):
        def f(x, scale=scale):
            g = -x / scale**2
            return 0.5 * float(x.dot(g)), g

        x = np.full(3, scale)
        step = find_reasonable_step_size(f, HMCState(x, *f(x)), gaussian_euclidean(np.ones(3)), 1.0, rng)
        found.append(step / scale)
    # The one-step acceptance depends on eps / scale only: the heuristic finds a
    # step size of the order of the target's scale, over four orders of magnitude.
    assert all(0.1 < ratio < 10.0 for ratio in found)


def test_step_size_heuristic_detects_improper_posterior():
    def flat(x):
        return 0.0, np.zeros_like(x)

    x = np.zeros(2)
    with pytest.raises(SamplingError, match="improper"):
        find_reasonable_step_size(flat, HMCState(x, 0.0, np.zeros(2)), gaussian_euclidean(np.ones(2)), 1.0,
                                  np.random.default_rng(0))


# --------------------------------------------------------------------------- #
# Metric adaptation inside a chain
# --------------------------------------------------------------------------- #


def _target(cov):
    prec = np.linalg.inv(cov)

    def f(x):
        g = -prec.dot(x)
        return 0.5 * float(x.dot(g)), g

    return f


@pytest.mark.parametrize("metric", ["diag", "dense"])
def test_warmup_metric_converges_to_the_covariance(metric):
    scales = np.array([0.1, 1.0, 10.0])
    corr = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.0]])
    cov = corr * np.outer(scales, scales)
    result = run_chain(
        _target(cov), np.ones(3), np.random.default_rng(2),
        ChainSettings(draws=1, tune=1000, metric=metric),
    )
    inv = result.inverse_mass_matrix
    if metric == "diag":
        np.testing.assert_allclose(inv, np.diag(cov), rtol=0.3)
    else:
        # Compare in the target's own scale: L^-1 inv L^-T should be close to I.
        L = np.linalg.cholesky(cov)
        white = np.linalg.solve(L, np.linalg.solve(L, inv).T)
        eig = np.linalg.eigvalsh(0.5 * (white + white.T))
        assert eig.min() > 0.7 and eig.max() < 1.4


def test_fisher_diagonal_recovers_gaussian_variances():
    from ppl_ad.infer.adaptation import fisher_diagonal, welford_init, welford_update

    rng = np.random.default_rng(0)
    variances = np.array([0.01, 1.0, 400.0])
    state = welford_init(6)
    for _ in range(2000):
        x = rng.normal(0.0, np.sqrt(variances))
        state = welford_update(state, np.concatenate([x, -x / variances]))  # the Gaussian's gradient
    np.testing.assert_allclose(fisher_diagonal(state), variances, rtol=1e-10)  # exact: grad is linear in x


def test_fisher_diagonal_keeps_one_where_a_gradient_does_not_vary():
    from ppl_ad.infer.adaptation import fisher_diagonal, welford_init, welford_update

    state = welford_init(4)
    for x in (0.0, 1.0, 2.0):
        state = welford_update(state, np.array([x, x, -x, 5.0]))
    np.testing.assert_array_equal(fisher_diagonal(state), [1.0, 1.0])


@pytest.mark.parametrize("num_warmup", [0, 10, 100, 500, 1000, 1337])
def test_nutpie_schedule_switches_as_nutpie(num_warmup):
    from ppl_ad.infer.adaptation import build_nutpie_schedule

    schedule = build_nutpie_schedule(num_warmup)
    assert len(schedule) == num_warmup
    metric_end = num_warmup - int(0.15 * num_warmup)
    enters = [i for i, (e, _) in enumerate(schedule) if e]
    assert enters == list(range(metric_end))  # every draw before the step-size-only phase
    switches = [i for i, (_, s) in enumerate(schedule) if s]
    early_end = int(0.3 * num_warmup)
    gaps = np.diff([-1] + switches)
    for switch, gap in zip(switches, gaps):
        assert gap == (10 if switch < early_end else 80) or (switch >= early_end and gap <= 80)
        assert switch + (10 if switch < early_end else 80) <= metric_end  # never a switch left unused
    if num_warmup >= 500:
        assert switches[:3] == [9, 19, 29] and gaps[-1] == 80


def test_nutpie_estimators_switch_and_forget_the_first_draws():
    from ppl_ad.infer.adaptation import window_adaptation_init, window_adaptation_update

    rng = np.random.default_rng(1)
    state = window_adaptation_init(0.5, np.ones(2), "nutpie")
    variances = np.array([0.04, 25.0])
    schedule = ([(True, False)] * 9 + [(True, True)]) * 2 + [(True, False)] * 20
    restarts = []
    for i, entry in enumerate(schedule):
        shift = 100.0 if i < 10 else 0.0  # the first window's draws are far off
        x = shift + rng.normal(0.0, np.sqrt(variances))
        state, restart = window_adaptation_update(state, entry, x, 0.8, 0.8, -(x - shift) / variances, "nutpie")
        if restart:
            restarts.append(i)
    assert restarts == [2]  # the step size restarts once: when the first estimate (3 draws) replaces the unit metric
    assert state.metric_stage == 2
    # the second switch made the draws since the first switch the foreground: 30 of them, none far off
    assert list(state.welford.count) == [30, 20]
    assert np.all(np.abs(state.welford.mean[0, :2]) < 5)
    np.testing.assert_allclose(state.inverse_mass_matrix, variances, rtol=1e-8)  # exact for a Gaussian


def test_nutpie_estimators_skip_draws_that_did_not_move_but_keep_the_switches():
    from ppl_ad.infer.adaptation import window_adaptation_init, window_adaptation_update

    rng = np.random.default_rng(2)
    state = window_adaptation_init(0.5, np.ones(2), "nutpie")
    schedule = [(True, False)] * 9 + [(True, True)] + [(True, False)] * 5
    x = rng.normal(size=2)
    restarts = []
    for i, entry in enumerate(schedule):
        good = i % 3 != 1  # every third transition "stuck" (or divergent): its draw is left out
        if good:
            x = rng.normal(size=2)
        state, restart = window_adaptation_update(state, entry, x, 0.8, 0.8, -x, "nutpie", good=good)
        restarts += [i] if restart else []
        if i == 8:
            assert list(state.welford.count) == [6, 6]  # 6 of the first 9 draws entered
    assert restarts == [3]  # the third draw that entered gave the first estimate
    # the switch at i = 9 happened although that draw entered: the background (7 draws) became the foreground
    assert list(state.welford.count) == [7 + 3, 3]


@given(st.integers(20, 3000))
@settings(max_examples=200, deadline=None)
def test_stan_windows_never_shrink_so_none_has_a_single_draw(num_warmup):
    # Stan's rule left tune=151 a last window of 1 draw (a crash: no variance) and 152-159 of 2-9
    schedule = build_schedule(num_warmup)
    ends = [i for i, (_, end) in enumerate(schedule) if end]
    starts = [next(i for i, (slow, _) in enumerate(schedule) if slow)] + [e + 1 for e in ends[:-1]]
    sizes = [e - b + 1 for b, e in zip(starts, ends)]
    assert sizes and all(b >= a for a, b in zip(sizes, sizes[1:])), sizes
    assert min(sizes) >= 2
    assert sum(slow for slow, _ in schedule) == sum(sizes)  # every slow-window draw is in a window


@pytest.mark.parametrize("engine", ["jax", "python"])
@pytest.mark.parametrize("metric_adaptation", ["stan", "fisher"])
def test_a_warmup_of_151_iterations_samples_with_stans_windows(engine, metric_adaptation):
    import ppl_ad as pa
    from ppl_ad import dist

    @pa.model
    def scales():
        pa.sample("a", dist.Normal(0.0, 0.01))
        pa.sample("b", dist.Normal(0.0, 100.0))

    idata = pa.sample(scales(), chains=1, draws=100, tune=151, seed=1, engine=engine, progressbar=False,
                      metric_adaptation=metric_adaptation)
    assert float(idata.sample_stats.n_steps.mean()) < 100  # the scales were learnt (a unit metric: about 670)
