"""The No-U-Turn Sampler transition, built iteratively.

This module owns one NUTS transition as Stan performs it:

* the trajectory is doubled in a random direction until the generalised no-U-turn
  criterion fails (with Stan's extra sub-tree checks, see
  :mod:`ppl_ad.infer.termination`), a subtree diverges, or ``max_treedepth``
  doublings are done;
* states are sampled **multinomially** with weights ``exp(-H)``: uniformly
  ("progressive sampling") when two halves of a subtree are merged, and with a
  **bias** towards the new subtree when it is merged into the trajectory (the
  proposal moves to the new subtree with probability
  ``min(1, w_new / w_old)``);
* a leapfrog step whose energy error ``H - H0`` exceeds ``max_energy_error``
  (default 1000, as in Stan) or is not finite is a divergence and ends the
  transition; the subtree that contains it is discarded;
* the acceptance statistic (for step-size adaptation) is the mean over every
  leapfrog step taken of ``min(1, exp(H0 - H))``.

Stan builds each subtree recursively. Here a subtree of depth ``j`` is built by a
loop over its ``2**j`` leaves with an explicit stack of completed sub-subtrees,
merged like a binary counter. The merges happen in exactly the order of the
recursion (post-order), so the iterative and recursive algorithms consume the same
random numbers and return the same state (the test-suite keeps a recursive
reference implementation and checks this).

References
----------
Hoffman, M. D. & Gelman, A. (2014). The No-U-Turn Sampler: adaptively setting
path lengths in Hamiltonian Monte Carlo. *JMLR* 15, 1593-1623.

Betancourt, M. (2017). *A Conceptual Introduction to Hamiltonian Monte Carlo*,
appendix A. arXiv:1701.02434.

Stan Development Team. *Stan Reference Manual*, "HMC algorithm parameters"
(NUTS, ``max_depth``, divergences).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np

from ppl_ad.infer.hmc import HMCState
from ppl_ad.infer.integrators import EVALUATION_ERRORS
from ppl_ad.infer.metrics import EuclideanMetric
from ppl_ad.infer.termination import merged_is_turning

__all__ = ["HMCState", "NUTSInfo", "build_kernel", "logaddexp"]

_NEG_INF = -math.inf


class NUTSInfo(NamedTuple):
    """Diagnostics of one NUTS transition.

    Attributes
    ----------
    acceptance_rate : float
        Mean of ``min(1, exp(H0 - H))`` over all leapfrog steps taken.
    is_divergent : bool
        A leapfrog step had an energy error above ``max_energy_error`` or a
        non-finite energy.
    energy : float
        Hamiltonian at the sampled state.
    energy_error : float
        Hamiltonian at the sampled state minus the initial Hamiltonian.
    num_integration_steps : int
        Leapfrog steps taken (gradient evaluations).
    tree_depth : int
        Number of completed doublings.
    reached_max_treedepth : bool
        ``tree_depth == max_treedepth``.
    """

    acceptance_rate: float
    is_divergent: bool
    energy: float
    energy_error: float
    num_integration_steps: int
    tree_depth: int
    reached_max_treedepth: bool


def logaddexp(a: float, b: float) -> float:
    """``log(exp(a) + exp(b))`` on Python floats (exact when one side is ``-inf``)."""
    if a == _NEG_INF:
        return b
    if b == _NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


def build_kernel(
    logdensity_and_gradient: Callable[[np.ndarray], tuple[float, np.ndarray]],
    metric: EuclideanMetric,
    *,
    max_treedepth: int = 10,
    max_energy_error: float = 1000.0,
):
    """Build a NUTS transition.

    Parameters
    ----------
    logdensity_and_gradient : callable
        ``theta -> (log density, gradient)``.
    metric : EuclideanMetric
        Kinetic energy (see :mod:`ppl_ad.infer.metrics`).
    max_treedepth : int, optional
        Maximum number of trajectory doublings (at most ``2**max_treedepth - 1``
        leapfrog steps).
    max_energy_error : float, optional
        Energy error above which a step is divergent.

    Returns
    -------
    callable
        ``kernel(state, step_size, momentum, uniform) -> (HMCState, NUTSInfo)``.
        ``momentum`` is the momentum drawn for this transition and ``uniform`` a
        callable returning uniform(0, 1) floats (see
        :class:`ppl_ad.infer.uniforms.UniformStream`). Random numbers are consumed
        in this order: one for each direction choice, then the ones of the
        subtree (one per merge of two sub-subtrees, in post-order), then one for
        the biased choice between the old sample and the new subtree's proposal
        (only when the new subtree's weight is smaller than the old one's).
    """
    velocity = metric.velocity
    f = logdensity_and_gradient
    max_treedepth = int(max_treedepth)
    max_energy_error = float(max_energy_error)
    exp = math.exp
    log1p = math.log1p

    def build_subtree(q, p, logp, g, depth, step_size, H0, uniform):
        """Build a subtree of ``2**depth`` leaves from (q, p, logp, g).

        Returns ``(status, end, tree, n_leapfrog, sum_metro_prob)`` where status is
        0 (valid), 1 (turning) or 2 (divergent), ``end = (q, p, logp, g)`` is the
        last state integrated (where the trajectory continues from) and ``tree`` is
        ``(depth, log_sum_weight, proposal, rho, p_begin, p_end, p_sharp_begin,
        p_sharp_end)`` with ``proposal = (q, logp, g, h)``; ``tree`` is None unless
        status is 0.

        This is the hot loop of the sampler: the leapfrog step of
        :func:`ppl_ad.infer.integrators.velocity_verlet` is inlined here (same
        operations in the same order, so results are bit-identical), and merges
        of two single leaves skip the extra checks, which coincide with the main
        one for them.
        """
        stack = []
        n_leapfrog = 0
        sum_metro_prob = 0.0
        half = 0.5 * step_size
        for i in range(1 << depth):
            # Leapfrog step (velocity Verlet).
            p = p + half * g
            q = q + step_size * velocity(p)
            n_leapfrog += 1
            try:
                logp, g = f(q)
            except EVALUATION_ERRORS:
                return 2, (q, p, logp, g), None, n_leapfrog, sum_metro_prob
            logp = float(logp)
            p = p + half * g
            v = velocity(p)
            h = 0.5 * float(p.dot(v)) - logp
            energy_error = h - H0
            if not (energy_error <= max_energy_error):  # divergent, or NaN
                return 2, (q, p, logp, g), None, n_leapfrog, sum_metro_prob
            sum_metro_prob += 1.0 if energy_error < 0.0 else exp(-energy_error)
            lw_r = -energy_error
            if not i & 1:
                stack.append((0, lw_r, (q, logp, g, h), p, p, p, v, v))
                continue
            # Merge with the previous leaf: uniform progressive sampling, then the
            # no-U-turn check on the pair.
            _, lw_l, prop_l, p_l, _, _, v_l, _ = stack.pop()
            if lw_l > lw_r:
                lw = lw_l + log1p(exp(lw_r - lw_l))
            else:
                lw = lw_r + log1p(exp(lw_l - lw_r))
            if lw_r > lw or uniform() < exp(lw_r - lw):
                prop = (q, logp, g, h)
            else:
                prop = prop_l
            rho = p_l + p
            if not (v.dot(rho) > 0 and v_l.dot(rho) > 0):
                return 1, (q, p, logp, g), None, n_leapfrog, sum_metro_prob
            tree = (1, lw, prop, rho, p_l, p, v_l, v)
            # Merge completed subtrees of equal depth (a binary counter).
            while stack and stack[-1][0] == tree[0]:
                d, lw_l, prop_l, rho_l, pb_l, pe_l, vb_l, ve_l = stack.pop()
                _, lw_r, prop_r, rho_r, pb_r, pe_r, vb_r, ve_r = tree
                lw = logaddexp(lw_l, lw_r)
                if lw_r > lw or uniform() < exp(lw_r - lw):
                    prop = prop_r
                else:
                    prop = prop_l
                rho = rho_l + rho_r
                if merged_is_turning(rho, rho_l, rho_r, pe_l, pb_r, vb_l, ve_l, vb_r, ve_r):
                    return 1, (q, p, logp, g), None, n_leapfrog, sum_metro_prob
                tree = (d + 1, lw, prop, rho, pb_l, pe_r, vb_l, ve_r)
            stack.append(tree)
        return 0, (q, p, logp, g), stack[0], n_leapfrog, sum_metro_prob

    def kernel(state: HMCState, step_size: float, momentum: np.ndarray, uniform):
        q0, logp0, g0 = state
        v0 = velocity(momentum)
        H0 = 0.5 * float(momentum.dot(v0)) - logp0
        # Ends of the trajectory: state to continue from, momentum, velocity.
        fwd = bck = (q0, momentum, logp0, g0)
        p_fwd = p_bck = momentum
        v_fwd = v_bck = v0
        rho = momentum
        sample = (q0, logp0, g0, H0)
        log_sum_weight = 0.0
        n_leapfrog = 0
        sum_metro_prob = 0.0
        divergent = False
        depth = 0
        while depth < max_treedepth:
            if uniform() > 0.5:
                status, fwd, tree, n, m = build_subtree(*fwd, depth, step_size, H0, uniform)
                forward = True
            else:
                status, bck, tree, n, m = build_subtree(*bck, depth, -step_size, H0, uniform)
                forward = False
            n_leapfrog += n
            sum_metro_prob += m
            if status:
                divergent = status == 2
                break
            depth += 1
            _, lw_sub, proposal, rho_sub, pb, pe, vb, ve = tree
            # Biased progressive sampling: favour the new subtree.
            if lw_sub > log_sum_weight:
                sample = proposal
            elif uniform() < exp(lw_sub - log_sum_weight):
                sample = proposal
            log_sum_weight = logaddexp(log_sum_weight, lw_sub)
            if forward:
                # Old trajectory is the backward half, the new subtree the forward one.
                rho_total = rho + rho_sub
                turning = merged_is_turning(rho_total, rho, rho_sub, p_fwd, pb, v_bck, v_fwd, vb, ve)
                p_fwd, v_fwd = pe, ve
            else:
                rho_total = rho_sub + rho
                # The new subtree was integrated backwards: in time order its first point
                # is its integration end (pe, ve) and its last point its beginning (pb, vb).
                turning = merged_is_turning(rho_total, rho_sub, rho, pb, p_bck, ve, vb, v_bck, v_fwd)
                p_bck, v_bck = pe, ve
            rho = rho_total
            if turning:
                break
        q, logp, g, h = sample
        info = NUTSInfo(
            sum_metro_prob / n_leapfrog,
            divergent,
            h,
            h - H0,
            n_leapfrog,
            depth,
            depth >= max_treedepth,
        )
        return HMCState(q, logp, g), info

    return kernel
