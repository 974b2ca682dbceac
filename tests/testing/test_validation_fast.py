"""A fast end-to-end check: NUTS (JAX backend) on one posteriordb posterior against its reference.

The full set runs with ``make validate`` (``benchmarks/validate_posteriordb.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

from ppl_ad.testing.scenarios import get_scenario
from ppl_ad.testing.validation import compare_to_reference, summarise


def test_compare_to_reference_flags_a_wrong_sample():
    az = pytest.importorskip("arviz")
    scenario = get_scenario("kidiq-kidscore_momhs")
    ref = scenario.reference["summaries"]
    rng = np.random.default_rng(0)
    beta = np.stack([ref["beta[1]"]["mean"] + ref["beta[1]"]["sd"] * rng.normal(size=(2, 2000)),
                     ref["beta[2]"]["mean"] + ref["beta[2]"]["sd"] * rng.normal(size=(2, 2000))], axis=-1)
    sigma = ref["sigma"]["mean"] + ref["sigma"]["sd"] * rng.normal(size=(2, 2000))
    good = az.from_dict(posterior={"beta": beta, "sigma": sigma})
    rows = compare_to_reference(good, scenario)
    assert [r["name"] for r in rows] == ["beta[1]", "beta[2]", "sigma"]
    assert summarise(rows)["passed"]
    shifted = az.from_dict(posterior={"beta": beta, "sigma": sigma + 0.2 * ref["sigma"]["sd"]})
    assert not summarise(compare_to_reference(shifted, scenario))["passed"]
    wide = az.from_dict(posterior={"beta": beta, "sigma": ref["sigma"]["mean"] + 1.3 * (sigma - ref["sigma"]["mean"])})
    assert summarise(compare_to_reference(wide, scenario))["failed"] == ["sigma"]


def test_nuts_matches_posteriordb_kidiq_momhs():
    pytest.importorskip("jax")
    from ppl_ad.infer.sample import sample

    scenario = get_scenario("kidiq-kidscore_momhs")
    idata = sample(scenario.model(), backend="jax", draws=300, tune=300, chains=2, cores=1,
                   seed=11, progressbar=False)
    rows = compare_to_reference(idata, scenario)
    summary = summarise(rows, idata)
    assert summary["passed"], rows
    assert summary["divergences"] == 0
