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
    The Python engine: one chain, warmup then draws, from a ``logdensity_and_gradient`` callable.
``jax_engine``
    The compiled engine: NUTS and the same warmup inside one XLA program (BlackJAX's kernel).
``engine``
    Choosing the engine and the chain method; running chains in this process.
``init``
    The log density to sample and the initial points.
``parallel``
    Chains in worker processes (pickling, thread limits).
``results``
    Chain results to ``arviz.InferenceData``.
``progress``
    Progress bars, in-process or fed from worker processes.
``sample``
    The user-facing :func:`sample`: arguments, engine, chain method, results.
``find_map``
    :func:`find_MAP`, the posterior mode by quasi-Newton optimisation.

The Python engine uses only numpy (and scipy/arviz/tqdm in the user-facing modules): it
receives a ``logdensity_and_gradient(theta) -> (float, ndarray)`` callable. The JAX engine
receives a traceable log density from the ``LogDensity``. Neither imports a backend.
"""

from __future__ import annotations

__all__ = ["sample", "find_MAP"]


def __getattr__(name):
    # Lazy, so that ``import ppl_ad.infer.nuts`` does not import arviz or scipy.
    if name == "sample":
        from ppl_ad.infer.sample import sample

        return sample
    if name == "find_MAP":
        from ppl_ad.infer.find_map import find_MAP

        return find_MAP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
