"""``benchmarks/bench_step_time.py``: a smoke test of its controlled measurement.

The controlled part times ppl_ad's compiled chunk program and BlackJAX's NUTS kernel with the
same density, step size, inverse metric and start; here on eight schools with a few draws and
one round after the compiling round 0 (the numbers mean nothing, the table's shape does). The
end-to-end part runs full samplers through :func:`ppl_ad.bench.sampling.sampling_cell`, which
``tests/bench/test_bench_sampling.py`` covers.
"""

from __future__ import annotations

import pytest


def _table_rows(markdown: str, header: str) -> list[list[str]]:
    """The body rows (cells stripped) of the markdown table whose header line starts with ``header``."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_controlled_table_has_every_density_and_sampler_with_positive_numbers(step_time):
    controlled = step_time.run_controlled(["eight_schools"], draws=20, tune=40, rounds=1)

    [setup] = controlled["models"]
    assert setup["model"] == "eight_schools" and setup["dimension"] == 10 and setup["step_size"] > 0
    pairs = {(d, s) for d in step_time.DENSITIES for s in step_time.CONTROLLED_SAMPLERS}
    assert {(r["density"], r["sampler"], r["round"]) for r in controlled["rows"]} == {
        (d, s, r) for d, s in pairs for r in (0, 1)}
    for row in controlled["rows"]:
        assert row["n_steps"] > 0 and row["us_per_step"] > 0 and row["us_per_draw"] > 0

    markdown = step_time.controlled_markdown(controlled)
    assert markdown.startswith("## Controlled: the same density, step size, inverse metric and start")
    table = _table_rows(markdown, "| model | d | step size | density | sampler |")
    assert {(row[3], row[4]) for row in table} == {
        (step_time.DENSITIES[d], step_time.CONTROLLED_SAMPLERS[s]) for d, s in pairs}
    for row in table:
        assert row[:2] == ["eight_schools", "10"]
        assert all(float(cell) > 0 for cell in row[5:]), row  # min and median µs/step, steps/draw, µs/draw
    ratios = _table_rows(markdown, "| model | density | ppl_ad ÷ BlackJAX")
    assert [row[1] for row in ratios] == list(step_time.DENSITIES.values())
    assert all(float(cell) > 0 for row in ratios for cell in row[2:])
    [density_ratio] = _table_rows(markdown, "| model | ppl_ad's density ÷ hand-written")
    assert density_ratio[0] == "eight_schools" and all(float(cell) > 0 for cell in density_ratio[1:])
