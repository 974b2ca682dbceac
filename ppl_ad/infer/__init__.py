"""MCMC inference for ppl_ad: NUTS and static HMC with Stan-style warmup.

The package is split one concept per module, in the style of BlackJAX:

``integrators``
    The velocity-Verlet (leapfrog) integrator.
``metrics``
    Diagonal and dense Euclidean metrics (kinetic energy, momentum, velocity).
``termination``
    The generalised no-U-turn criterion.
``nuts``
    The iterative No-U-Turn Sampler transition.
``hmc``
    Static HMC with a jittered number of integration steps.
``adaptation``
    Dual-averaging step size, Welford (co)variance and Stan's windowed warmup.
``chain``
    One chain: warmup then draws, from a ``logdensity_and_gradient`` callable.
``progress``
    Progress bars, in-process or fed from worker processes.
``run``
    The user-facing :func:`sample` (chains, processes, ``InferenceData``).
``find_map``
    :func:`find_MAP`, the posterior mode by quasi-Newton optimisation.

Only numpy (and scipy/arviz/tqdm in the user-facing modules) is used here: the
sampler receives a ``logdensity_and_gradient(theta) -> (float, ndarray)`` callable
and never imports an automatic-differentiation library.
"""

from __future__ import annotations

__all__ = ["sample", "find_MAP"]


def __getattr__(name):
    # Lazy, so that ``import ppl_ad.infer.nuts`` does not import arviz or scipy.
    if name == "sample":
        from ppl_ad.infer.run import sample

        return sample
    if name == "find_MAP":
        from ppl_ad.infer.find_map import find_MAP

        return find_MAP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
