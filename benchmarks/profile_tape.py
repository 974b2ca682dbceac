"""Where a tape backend's time goes: cProfile of ``logdensity_and_gradient``.

Run: ``.venv/bin/python benchmarks/profile_tape.py [--backend torch] [--model hierarchical_poisson]``.
Writes ``benchmarks/results/profile_<backend>_<model>.txt``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats

import numpy as np

import ppl_ad as pa
from ppl_ad.testing import get_scenario


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--model", default="hierarchical_poisson")
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    ld = pa.logdensity(get_scenario(args.model).model(), backend=args.backend)
    theta = np.random.default_rng(0).uniform(-1, 1, ld.dimension)
    for _ in range(20):
        ld.logdensity_and_gradient(theta)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(args.calls):
        ld.logdensity_and_gradient(theta)
    profile.disable()
    stream = io.StringIO()
    pstats.Stats(profile, stream=stream).sort_stats("tottime").print_stats(15)
    import site
    import sysconfig

    body = stream.getvalue().replace(os.getcwd() + os.sep, "")
    for folder in {sysconfig.get_paths()["purelib"], *site.getsitepackages()}:
        body = body.replace(folder + os.sep, "<site-packages>/")
    text = f"# cProfile: {args.calls} calls of logdensity_and_gradient, backend {args.backend}, model {args.model}\n{body}"
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"profile_{args.backend}_{args.model}.txt")
    with open(path, "w") as handle:
        handle.write(text)
    print(text)


if __name__ == "__main__":
    main()
