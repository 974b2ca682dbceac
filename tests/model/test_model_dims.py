"""Tests of dims= on sites (ppl_ad.model.primitives and the compile handler's records)."""

from __future__ import annotations

import numpy as np
import pytest

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad.errors import DataError, ModelDefinitionError
from ppl_ad.model.compiled import compile_model


@pa.model
def grouped(y, group, n_groups):
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    effect = pa.sample("effect", dist.Normal(0.0, 1.0), shape=(n_groups,), dims="group")
    scale = pa.sample("scale", dist.HalfNormal(1.0), shape=(2, n_groups), dims=(None, "group"))
    pa.deterministic("level", mu + effect, dims=("group",))
    pa.observe("y", dist.Normal(mu + effect[group], scale[0, group]), y, dims="obs")


def test_compile_records_dims_per_site():
    sites = compile_model(grouped(np.zeros(5), np.array([0, 1, 2, 0, 1]), 3)).sites
    assert sites["effect"].dims == ("group",)
    assert sites["scale"].dims == (None, "group")
    assert sites["level"].dims == ("group",)
    assert sites["y"].dims == ("obs",)
    assert sites["mu"].dims is None


def test_dims_of_the_wrong_length_name_the_site():
    @pa.model
    def bad(y):
        pa.sample("theta", dist.Normal(0.0, 1.0), shape=(3,), dims=("school", "extra"))

    with pytest.raises(DataError, match=r"site 'theta': dims=\('school', 'extra'\) names 2 axes, but the site has shape \(3,\)"):
        compile_model(bad(None))


def test_a_dimension_with_two_lengths_is_refused():
    @pa.model
    def bad(y):
        pa.sample("a", dist.Normal(0.0, 1.0), shape=(3,), dims="school")
        pa.observe("y", dist.Normal(0.0, 1.0), y, dims="school")

    with pytest.raises(DataError, match="site 'y': dimension 'school' has length 4 here but 3 at site 'a'"):
        compile_model(bad(np.zeros(4)))


def test_dims_must_be_names():
    @pa.model
    def bad():
        pa.sample("a", dist.Normal(0.0, 1.0), shape=(3,), dims=3)

    with pytest.raises(ModelDefinitionError, match="site 'a': dims must be a name or a tuple of names"):
        compile_model(bad())


def test_a_dimension_named_twice_on_one_site_is_refused():
    # xarray keeps one axis per name: a (3, 3) matrix with dims ("feat", "feat") was accepted silently
    @pa.model
    def twice():
        pa.sample("corr", dist.Normal(0.0, 1.0), shape=(3, 3), dims=("feat", "feat"))

    with pytest.raises(ModelDefinitionError, match="site 'corr': dims=.* names the axis 'feat' twice"):
        compile_model(twice())


@pytest.mark.parametrize("reserved", ["draw", "chain"])
def test_arviz_axis_names_are_refused_as_dims(reserved):
    # dims="draw" was silently replaced by 'a_dim_0' in the posterior
    @pa.model
    def clash():
        pa.sample("a", dist.Normal(0.0, 1.0), shape=(2,), dims=reserved)

    with pytest.raises(ModelDefinitionError, match=f"site 'a': dims=.* uses the name '{reserved}', which ArviZ keeps"):
        compile_model(clash())


def test_dims_do_not_change_the_log_density():
    data = dict(y=np.array([0.5, -1.0, 2.0]), group=np.array([0, 1, 1]), n_groups=2)

    @pa.model
    def plain(y, group, n_groups):
        mu = pa.sample("mu", dist.Normal(0.0, 5.0))
        effect = pa.sample("effect", dist.Normal(0.0, 1.0), shape=(n_groups,))
        scale = pa.sample("scale", dist.HalfNormal(1.0), shape=(2, n_groups))
        pa.deterministic("level", mu + effect)
        pa.observe("y", dist.Normal(mu + effect[group], scale[0, group]), y)

    theta = np.linspace(-1.0, 1.0, 7)
    a = pa.logdensity(grouped(**data), backend="finite-difference").logdensity(theta)
    b = pa.logdensity(plain(**data), backend="finite-difference").logdensity(theta)
    assert a == b
