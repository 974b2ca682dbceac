"""Backend benchmarks, the automatic backend choice, and what measurements share.

:mod:`ppl_ad.bench.benchmark` times every installed backend on one model
(``pa.benchmark``), :mod:`ppl_ad.bench.auto` picks the fastest correct backend for
``backend="auto"`` (and ranks them for ``pa.backends.recommend``) from one cached
measurement, and :mod:`ppl_ad.bench.cli` runs the benchmark matrix of ``ppl-ad bench`` with
one subprocess per cell. :mod:`ppl_ad.bench.measure` holds the one relative error, the one
call timer and the thread limits every measurement uses; :mod:`ppl_ad.table` the one
table class. Only :mod:`ppl_ad.table` (which imports nothing heavy) is imported by
``import ppl_ad``, for ``pa.backends.list()``.
"""
