"""``import ppl_ad`` stays cheap: no heavy library is imported (checked in a fresh process)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["jax", "torch", "autograd", "sympy", "pymc", "pytensor", "matplotlib", "scipy", "arviz"]

SCRIPT = """
import json, sys, time
start = time.perf_counter()
import ppl_ad
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "loaded": sorted(m for m in %r if m in sys.modules)}))
""" % (HEAVY,)


def test_import_ppl_ad_loads_no_heavy_library():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(f"import ppl_ad took {report['seconds']:.3f} s")
    assert report["loaded"] == []
