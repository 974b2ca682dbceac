"""Does ``backend="auto"`` pick a backend within 10 % of the fastest correct one?

For each of the four standard models: clear the decision cache, let
:func:`ppl_ad.bench.auto.choose_backend` decide (a near tie goes to ``jax``; the decision's
margin is reported), check that ``pa.backends.recommend`` ranks the same backend first from
the same cached measurement, then time every candidate with :func:`ppl_ad.benchmark` (an
independent measurement) and compare the pick's gradient time with the fastest correct one.
Writes ``benchmarks/results/auto_choice.md``.

Run: ``python benchmarks/bench_auto.py``
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import ppl_ad as pa
from ppl_ad.bench import auto
from ppl_ad.bench.cells import machine_info
from ppl_ad.table import Table
from ppl_ad.model.compiled import compile_model
from ppl_ad.testing.scenarios import STANDARD, get_scenario


def main(out: str = "benchmarks/results/auto_choice.md") -> int:
    os.environ.setdefault("PPL_AD_CACHE_DIR", tempfile.mkdtemp(prefix="ppl_ad_auto_"))
    auto.clear_cache()
    names = [b.name for b in auto.candidates()]
    header = [
        "# `backend=\"auto\"` against the fastest correct backend",
        "",
        f"- command: `python benchmarks/bench_auto.py`; {machine_info()['date']}; "
        f"CPU {machine_info()['cpu']} ({os.cpu_count()} cores, shared with other work while measured)",
        f"- candidates: {', '.join(names)}",
        "- auto decides from its own short interleaved measurement (near ties within the noise go to `jax`; "
        "`margin` is how much faster the pick measured than the runner-up, negative for a tie given to `jax`); "
        "`recommend` ranks from the same cached measurement. The times below are an independent `pa.benchmark` "
        "run (medians, µs of value and gradient).",
        "",
    ]
    table = Table(columns=("model", "d", "auto's pick", "margin", "decide s", "cached decide ms", "pick µs",
                           "fastest", "fastest µs", "ratio", "within 10 %"),
                  formats={"margin": "{:+.0%}", "decide s": "{:.1f}", "cached decide ms": "{:.1f}",
                           "pick µs": "{:.1f}", "fastest µs": "{:.1f}", "ratio": "{:.2f}"})
    failures = 0
    for name in STANDARD:
        model = get_scenario(name).model()
        compiled = compile_model(model)
        start = time.perf_counter()
        pick, reason = auto.choose_backend(compiled)
        decide = time.perf_counter() - start
        start = time.perf_counter()
        again, _ = auto.choose_backend(compiled)
        cached_ms = (time.perf_counter() - start) * 1e3
        ranking = pa.backends.recommend(model)
        assert again == pick == ranking[0]["name"]
        bench = pa.benchmark(model, backends=names, points=1)
        correct = [r for r in bench if r["correct"] == "ok"]
        fastest = min(correct, key=lambda r: r["gradient_us"])
        picked = next(r for r in bench if r["name"] == pick)
        ratio = picked["gradient_us"] / fastest["gradient_us"]
        ok = ratio <= 1.10
        failures += not ok
        table.append({"model": name, "d": compiled.dimension, "auto's pick": pick,
                      "margin": ranking.decision.get("margin"), "decide s": decide, "cached decide ms": cached_ms,
                      "pick µs": picked["gradient_us"], "fastest": fastest["name"],
                      "fastest µs": fastest["gradient_us"], "ratio": ratio, "within 10 %": "yes" if ok else "no"})
        print(table.cells()[-1], flush=True)
    lines = header + [table.to_markdown()]
    lines.append("")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text("\n".join(lines))
    print(f"wrote {out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
