"""Tests of ppl_ad.infer.nuts: the iterative tree against a recursive reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppl_ad.infer import nuts
from ppl_ad.infer.hmc import HMCState
from ppl_ad.infer.integrators import velocity_verlet
from ppl_ad.infer.metrics import gaussian_euclidean
from ppl_ad.infer.uniforms import UniformStream

# --------------------------------------------------------------------------- #
# Slow recursive reference: a transliteration of Stan's base_nuts::transition and
# base_nuts::build_tree (multinomial, biased progressive sampling, extra sub-tree
# checks), consuming uniforms in the same places.
# --------------------------------------------------------------------------- #


def _criterion(ps_minus, ps_plus, rho):
    return ps_plus.dot(rho) > 0 and ps_minus.dot(rho) > 0


def reference_nuts(state, step_size, momentum, uniform, f, metric, max_depth=10, max_delta_h=1000.0):
    leapfrog = velocity_verlet(f, metric.velocity)
    vel = metric.velocity

    def hamiltonian(p, logp):
        return 0.5 * float(p.dot(vel(p))) - logp

    H0 = hamiltonian(momentum, state.logdensity)
    acc = {"n": 0, "metro": 0.0, "divergent": False}

    def build_tree(depth, z, sign):
        """Returns (valid, z_end, proposal, log_sum_weight, rho, p_beg, p_end, ps_beg, ps_end)."""
        if depth == 0:
            q, p, logp, g = leapfrog(z[0], z[1], z[3], sign * step_size)
            z = (q, p, logp, g)
            acc["n"] += 1
            h = hamiltonian(p, logp)
            if math.isnan(h):
                h = math.inf
            if h - H0 > max_delta_h:
                acc["divergent"] = True
            lsw = nuts.logaddexp(-math.inf, H0 - h)
            acc["metro"] += 1.0 if H0 - h > 0 else math.exp(H0 - h)
            v = vel(p)
            return (not acc["divergent"], z, (q, logp, g, h), lsw, np.zeros_like(p) + p, p, p, v, v)
        init = build_tree(depth - 1, z, sign)
        if not init[0]:
            return init
        final = build_tree(depth - 1, init[1], sign)
        if not final[0]:
            return final
        _, _, prop_i, lsw_i, rho_i, pb_i, pe_i, psb_i, pse_i = init
        _, z_end, prop_f, lsw_f, rho_f, pb_f, pe_f, psb_f, pse_f = final
        lsw = nuts.logaddexp(lsw_i, lsw_f)
        if lsw_f > lsw:
            prop = prop_f
        else:
            prop = prop_f if uniform() < math.exp(lsw_f - lsw) else prop_i
        rho = rho_i + rho_f
        persist = _criterion(psb_i, pse_f, rho)
        persist &= _criterion(psb_i, psb_f, rho_i + pb_f)
        persist &= _criterion(pse_i, pse_f, rho_f + pe_i)
        return (persist, z_end, prop, lsw, rho, pb_i, pe_f, psb_i, pse_f)

    z0 = (state.position, momentum, state.logdensity, state.logdensity_grad)
    v0 = vel(momentum)
    z_fwd = z_bck = z0
    p_fwd_fwd = p_fwd_bck = p_bck_fwd = p_bck_bck = momentum
    ps_fwd_fwd = ps_fwd_bck = ps_bck_fwd = ps_bck_bck = v0
    rho = momentum
    sample = (state.position, state.logdensity, state.logdensity_grad, H0)
    lsw = 0.0
    depth = 0
    while depth < max_depth:
        if uniform() > 0.5:
            rho_bck, p_bck_fwd, ps_bck_fwd = rho, p_fwd_fwd, ps_fwd_fwd
            valid, z_fwd, prop, lsw_sub, rho_fwd, p_fwd_bck, p_fwd_fwd, ps_fwd_bck, ps_fwd_fwd = build_tree(
                depth, z_fwd, 1.0
            )
        else:
            rho_fwd, p_fwd_bck, ps_fwd_bck = rho, p_bck_bck, ps_bck_bck
            valid, z_bck, prop, lsw_sub, rho_bck, p_bck_fwd, p_bck_bck, ps_bck_fwd, ps_bck_bck = build_tree(
                depth, z_bck, -1.0
            )
        if not valid:
            break
        depth += 1
        if lsw_sub > lsw:
            sample = prop
        elif uniform() < math.exp(lsw_sub - lsw):
            sample = prop
        lsw = nuts.logaddexp(lsw, lsw_sub)
        rho = rho_bck + rho_fwd
        persist = _criterion(ps_bck_bck, ps_fwd_fwd, rho)
        persist &= _criterion(ps_bck_bck, ps_fwd_bck, rho_bck + p_fwd_bck)
        persist &= _criterion(ps_bck_fwd, ps_fwd_fwd, rho_fwd + p_bck_fwd)
        if not persist:
            break
    q, logp, g, h = sample
    return {
        "position": q,
        "logdensity": logp,
        "acceptance_rate": acc["metro"] / acc["n"],
        "is_divergent": acc["divergent"],
        "energy": h,
        "n_steps": acc["n"],
        "tree_depth": depth,
    }


# --------------------------------------------------------------------------- #
# Targets
# --------------------------------------------------------------------------- #


def _gaussian(scales, rho=0.0):
    d = len(scales)
    corr = np.full((d, d), rho) + (1 - rho) * np.eye(d)
    cov = corr * np.outer(scales, scales)
    prec = np.linalg.inv(cov)

    def f(x):
        g = -prec.dot(x)
        return 0.5 * float(x.dot(g)), g

    return f, cov


def _walled(x):
    """Standard normal restricted to x[0] < 1.5 (NaN outside): divergences at the wall."""
    if x[0] > 1.5:
        return math.nan, np.full_like(x, np.nan)
    return -0.5 * float(x.dot(x)), -x


def _state(f, x):
    logp, g = f(x)
    return HMCState(x, logp, g)


CASES = [
    # (target name, metric kind, step sizes, transitions per step size)
    ("iso", "diag", (0.05, 0.3, 1.2), 3),
    ("corr", "diag", (0.02, 0.2, 0.9), 3),
    ("corr", "dense", (0.1, 0.5, 2.5), 3),
    ("walled", "diag", (0.4, 1.0), 3),
    # Unit metric on scales (0.1, 1): the extra sub-tree checks often decide here.
    ("stiff", "unit", (0.05, 0.1, 0.15), 10),
]


@pytest.mark.parametrize("target,metric_kind,step_sizes,repeats", CASES)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_iterative_tree_matches_recursive_reference(target, metric_kind, step_sizes, repeats, seed):
    rng = np.random.default_rng(100 + seed)
    d = 4
    if target == "stiff":
        d = 2
        f, cov = _gaussian(np.array([0.1, 1.0]))
    elif target == "iso":
        f, cov = _gaussian(np.ones(d))
    elif target == "corr":
        f, cov = _gaussian(np.array([0.3, 1.0, 2.0, 5.0]), rho=0.7)
    else:
        f, cov = _walled, np.eye(d)
    if metric_kind == "unit":
        metric = gaussian_euclidean(np.ones(d))
    elif metric_kind == "diag":
        metric = gaussian_euclidean(np.diag(cov) * rng.uniform(0.5, 1.5, d))
    else:
        metric = gaussian_euclidean(cov + 0.1 * np.eye(d))
    x0 = rng.normal(size=d) * np.sqrt(np.diag(cov))
    if target == "walled":
        x0[0] = min(x0[0], 1.0)
    state = _state(f, x0)
    kernel = nuts.build_kernel(f, metric, max_treedepth=6)
    seen_divergence = seen_turn = False
    for step_size in step_sizes:
        for _ in range(repeats):
            momentum = metric.sample_momentum(rng)
            stream_seed = int(rng.integers(2**32))
            new, info = kernel(state, step_size, momentum, UniformStream(np.random.default_rng(stream_seed)))
            ref = reference_nuts(
                state, step_size, momentum, UniformStream(np.random.default_rng(stream_seed)), f, metric, max_depth=6
            )
            np.testing.assert_array_equal(new.position, ref["position"])
            assert new.logdensity == ref["logdensity"]
            assert info.num_integration_steps == ref["n_steps"]
            assert info.tree_depth == ref["tree_depth"]
            assert info.is_divergent == ref["is_divergent"]
            assert info.acceptance_rate == pytest.approx(ref["acceptance_rate"], rel=1e-12)
            assert info.energy == pytest.approx(ref["energy"], rel=1e-12, abs=1e-12)
            assert info.reached_max_treedepth == (ref["tree_depth"] == 6)
            seen_divergence |= info.is_divergent
            seen_turn |= (not info.is_divergent) and info.tree_depth < 6
            state = new
    assert seen_turn
    if target == "walled":
        assert seen_divergence


def test_nuts_non_finite_gradient_is_divergence_not_crash():
    def f(x):
        if x[0] > 0.5:
            raise FloatingPointError("overflow in model")
        if x[0] < -0.5:
            return -0.5 * float(x.dot(x)), np.array([np.inf, 0.0])
        return -0.5 * float(x.dot(x)), -x

    metric = gaussian_euclidean(np.ones(2))
    kernel = nuts.build_kernel(f, metric)
    rng = np.random.default_rng(0)
    uniform = UniformStream(rng)
    state = _state(f, np.zeros(2))
    n_div = 0
    with np.errstate(all="ignore"):
        for _ in range(200):
            state, info = kernel(state, 0.3, metric.sample_momentum(rng), uniform)
            n_div += info.is_divergent
            assert np.all(np.isfinite(state.position)) and -0.5 <= state.position[0] <= 0.5
    assert n_div > 0


def test_max_treedepth_reached_with_tiny_step():
    f, _ = _gaussian(np.ones(3))
    metric = gaussian_euclidean(np.ones(3))
    kernel = nuts.build_kernel(f, metric, max_treedepth=4)
    rng = np.random.default_rng(1)
    state, info = kernel(_state(f, np.ones(3)), 1e-3, metric.sample_momentum(rng), UniformStream(rng))
    assert info.tree_depth == 4 and info.reached_max_treedepth
    assert info.num_integration_steps == 2**4 - 1
    assert not info.is_divergent


def test_logaddexp():
    assert nuts.logaddexp(-math.inf, 1.5) == 1.5
    assert nuts.logaddexp(2.0, -math.inf) == 2.0
    assert nuts.logaddexp(0.0, 0.0) == pytest.approx(math.log(2.0))
    assert nuts.logaddexp(1000.0, 999.0) == pytest.approx(np.logaddexp(1000.0, 999.0))
