"""``make demo`` / ``ppl-ad demo``: the eight-schools model end to end.

Compiles the model, shows the gradient from every installed backend agreeing with finite
differences, then samples with NUTS and prints the ArviZ summary.
"""

from __future__ import annotations

import numpy as np

import ppl_ad as pa
from ppl_ad.testing.scenarios import get_scenario

__all__ = ["main"]


def main(quick: bool = False) -> int:
    model = get_scenario("eight_schools").model()
    print("ppl_ad", pa.__version__, "- eight schools (non-centred), d = 10\n")
    print(pa.backends.list(), "\n")
    check = pa.check_gradients(model, points=2)
    print("Gradients at random points, each backend against finite differences:")
    print(check, "\n")
    try:
        from ppl_ad.infer.sample import sample
    except ImportError:  # the sampler is not installed in this checkout
        return 0 if check.all_passed else 1
    import arviz as az

    draws = 300 if quick else 1000
    idata = sample(model, backend="jax", draws=draws, tune=draws, chains=2, seed=1, progressbar=True)
    print(az.summary(idata, var_names=["mu", "tau", "theta"]).to_string())
    a = idata.attrs
    print(f"\nbackend: {a.get('backend')} ({a.get('backend_source')}); engine: {a.get('engine')} "
          f"({a.get('chain_method')} chains); compile {a.get('compile_time', 0.0):.1f} s, "
          f"warmup + sampling {a.get('tuning_time', 0.0) + a.get('sampling_time', 0.0):.1f} s, "
          f"{a.get('gradient_evaluations')} gradients, wall {a.get('wall_time', 0.0):.1f} s")
    return 0 if check.all_passed else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
