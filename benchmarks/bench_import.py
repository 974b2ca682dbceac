"""Median wall time of ``import ppl_ad`` over fresh subprocesses (target: under 0.3 s).

Run: ``python benchmarks/bench_import.py [repeats]``. To see where the time goes:
``python -X importtime -c "import ppl_ad"``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys

TARGET_SECONDS = 0.3
SCRIPT = "import time; t = time.perf_counter(); import ppl_ad; print(time.perf_counter() - t)"


def measure(repeats: int = 10) -> list[float]:
    """Import time of ``ppl_ad`` in ``repeats`` fresh interpreters, in seconds."""
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
        times.append(float(out.stdout.strip().splitlines()[-1]))
    return times


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    repeats = int(args[0]) if args else 10
    times = measure(repeats)
    median = statistics.median(times)
    verdict = "under" if median < TARGET_SECONDS else "OVER"
    print(
        f"import ppl_ad: median {median:.3f} s over {repeats} fresh processes "
        f"(min {min(times):.3f} s, max {max(times):.3f} s); {verdict} the {TARGET_SECONDS} s target"
    )
    return 0 if median < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
