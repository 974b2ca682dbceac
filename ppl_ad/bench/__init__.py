"""Backend benchmarks and the automatic backend choice.

:mod:`ppl_ad.bench.benchmark` times every installed backend on one model
(``pa.benchmark``), :mod:`ppl_ad.bench.auto` picks the fastest correct backend for
``backend="auto"`` and caches the decision, and :mod:`ppl_ad.bench.cli` runs the benchmark
matrix of ``ppl-ad bench`` with one subprocess per cell. Nothing here is imported by
``import ppl_ad``.
"""
