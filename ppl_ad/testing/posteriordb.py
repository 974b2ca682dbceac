"""posteriordb reference posteriors written as ``ppl_ad`` models, with their reference summaries.

This module owns the twelve posteriors copied from posteriordb (Magnusson, Bürkner and
Vehtari, *posteriordb: a set of posteriors for Bayesian inference and probabilistic
programming*; <https://github.com/stan-dev/posteriordb>, commit ``28f8d3d6``, BSD-3 licence,
see ``posteriordb_data/LICENCE-posteriordb.md``). Each model follows the posterior's Stan
program as described in the posteriordb folder's ``model.md``:

* Stan's bounded parameters with no sampling statement are improper flat priors on their
  support (``dist.Flat``, ``dist.Flat(lower=0.0)``, and the dependent bound
  ``dist.Flat(0.0, 1.0 - alpha1)`` of ``garch11``); the bound's log-Jacobian is part of the log
  density, as in Stan (Stan Reference Manual, "Constraint transforms").
* A sampling statement on a ``<lower=0>`` scale is the half distribution (``HalfCauchy``,
  ``HalfNormal``, ``HalfStudentT``); the truncation constant does not change the posterior.
* Transformed data (log/log10, standardisation with ``ddof=1``, indicator columns, the
  diamonds column centring) are computed in NumPy when the model is built.
* Derived reference quantities are ``pa.deterministic`` sites (``theta`` of the non-centred
  eight schools).

Data and reference summaries live in ``ppl_ad/testing/posteriordb_data/<posterior>/``.
:func:`posteriordb_scenarios` returns one :class:`~ppl_ad.testing.scenarios.Scenario` per
posterior, named by the posteriordb name; its ``reference`` dict is :func:`load_reference`.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path

import numpy as np

import ppl_ad as pa
from ppl_ad import dist
from ppl_ad import math as M

__all__ = [
    "DATA_DIR", "POSTERIORS", "load_data", "load_reference", "reference_site",
    "posteriordb_scenarios", "eight_schools_noncentered", "eight_schools_centered",
    "kidscore_momiq", "kidscore_momhs", "log10earn_height", "logearn_interaction_z",
    "logmesquite", "nes", "blr", "kilpisjarvi", "garch11", "diamonds",
]

DATA_DIR = Path(__file__).resolve().parent / "posteriordb_data"


# --------------------------------------------------------------------------- models


@pa.model
def eight_schools_noncentered(y, sigma):
    """Non-centred eight schools; ``theta = mu + tau * theta_trans`` is reported."""
    theta_trans = pa.sample("theta_trans", dist.Normal(0.0, 1.0), shape=(len(y),))
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    tau = pa.sample("tau", dist.HalfCauchy(5.0))
    theta = pa.deterministic("theta", mu + tau * theta_trans)
    pa.observe("y", dist.Normal(theta, sigma), y)


@pa.model
def eight_schools_centered(y, sigma):
    """Centred eight schools (a funnel in tau and theta)."""
    mu = pa.sample("mu", dist.Normal(0.0, 5.0))
    tau = pa.sample("tau", dist.HalfCauchy(5.0))
    theta = pa.sample("theta", dist.Normal(mu, tau), shape=(len(y),))
    pa.observe("y", dist.Normal(theta, sigma), y)


@pa.model
def kidscore_momiq(kid_score, mom_iq):
    """Kid score on (uncentred) mother's IQ; flat beta, half-Cauchy(2.5) sigma."""
    beta = pa.sample("beta", dist.Flat(), shape=(2,))
    sigma = pa.sample("sigma", dist.HalfCauchy(2.5))
    pa.observe("kid_score", dist.Normal(beta[0] + beta[1] * mom_iq, sigma), kid_score)


@pa.model
def kidscore_momhs(kid_score, mom_hs):
    """Kid score on mother's high-school indicator; flat beta, half-Cauchy(2.5) sigma."""
    beta = pa.sample("beta", dist.Flat(), shape=(2,))
    sigma = pa.sample("sigma", dist.HalfCauchy(2.5))
    pa.observe("kid_score", dist.Normal(beta[0] + beta[1] * mom_hs, sigma), kid_score)


@pa.model
def log10earn_height(log10_earn, height):
    """log10 earnings on (uncentred) height; flat priors on beta and on sigma > 0."""
    beta = pa.sample("beta", dist.Flat(), shape=(2,))
    sigma = pa.sample("sigma", dist.Flat(lower=0.0))
    pa.observe("log10_earn", dist.Normal(beta[0] + beta[1] * height, sigma), log10_earn)


def _flat_linear_regression(site, y, X):
    """``y ~ Normal(X @ beta, sigma)`` with Stan's implicit flat priors on beta and sigma > 0."""
    beta = pa.sample("beta", dist.Flat(), shape=(X.shape[1],))
    sigma = pa.sample("sigma", dist.Flat(lower=0.0))
    pa.observe(site, dist.Normal(M.matmul(X, beta), sigma), y)


@pa.model
def logearn_interaction_z(log_earn, X):
    """log earnings on z-height, male and their interaction (``X`` has the intercept column)."""
    _flat_linear_regression("log_earn", log_earn, X)


@pa.model
def logmesquite(log_weight, X):
    """log leaf biomass on logged shrub measurements and group; flat priors."""
    _flat_linear_regression("log_weight", log_weight, X)


@pa.model
def nes(partyid7, X):
    """Party identification on ideology, race, age indicators, education, gender, income."""
    _flat_linear_regression("partyid7", partyid7, X)


@pa.model
def blr(X, y):
    """Bayesian linear regression without intercept; Normal(0, 10) and half-Normal(10) priors."""
    beta = pa.sample("beta", dist.Normal(0.0, 10.0), shape=(X.shape[1],))
    sigma = pa.sample("sigma", dist.HalfNormal(10.0))
    pa.observe("y", dist.Normal(M.matmul(X, beta), sigma), y)


@pa.model
def kilpisjarvi(x, y, pmualpha, psalpha, pmubeta, psbeta):
    """Linear trend on the uncentred year; Normal priors on alpha, beta, flat sigma > 0."""
    alpha = pa.sample("alpha", dist.Normal(pmualpha, psalpha))
    beta = pa.sample("beta", dist.Normal(pmubeta, psbeta))
    sigma = pa.sample("sigma", dist.Flat(lower=0.0))
    pa.observe("y", dist.Normal(alpha + beta * x, sigma), y)


@pa.model
def garch11(y, sigma1):
    """GARCH(1,1) with a flat prior on the triangle alpha1 + beta1 < 1 (dependent bound)."""
    mu = pa.sample("mu", dist.Flat())
    alpha0 = pa.sample("alpha0", dist.Flat(lower=0.0))
    alpha1 = pa.sample("alpha1", dist.Flat(0.0, 1.0))
    beta1 = pa.sample("beta1", dist.Flat(0.0, 1.0 - alpha1))
    sigma_1 = sigma1 + 0.0 * mu  # sigma[1] is data; "+ 0 * mu" gives it the array type of mu

    def step(sigma_prev, y_prev):
        sigma_t = M.sqrt(alpha0 + alpha1 * M.square(y_prev - mu) + beta1 * M.square(sigma_prev))
        return sigma_t, sigma_t

    _, sigma_rest = M.scan(step, sigma_1, y[:-1])  # a compiled loop under JAX, not 199 unrolled steps
    pa.observe("y", dist.Normal(mu, M.concatenate([sigma_1, sigma_rest])), y)


@pa.model
def diamonds(Y, Xc):
    """brms linear model on the centred diamonds design (26 parameters, N = 5000)."""
    b = pa.sample("b", dist.Normal(0.0, 1.0), shape=(Xc.shape[1],))
    intercept = pa.sample("Intercept", dist.StudentT(3.0, 8.0, 10.0))
    sigma = pa.sample("sigma", dist.HalfStudentT(3.0, 10.0))
    pa.observe("Y", dist.Normal(intercept + M.matmul(Xc, b), sigma), Y)


# --------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=None)
def _read_json(posterior: str, filename: str) -> dict:
    path = DATA_DIR / posterior / filename
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def load_data(posterior: str) -> dict:
    """posteriordb's data for ``posterior`` (Stan JSON; a fresh copy)."""
    return copy.deepcopy(_read_json(posterior, "data.json"))


def _arr(data, key):
    return np.asarray(data[key], dtype=float)


def _eight_schools(posterior):
    d = load_data(posterior)
    return {"y": _arr(d, "y"), "sigma": _arr(d, "sigma")}


def _kidiq(column):
    def build_data():
        d = load_data("kidiq-" + ("kidscore_momiq" if column == "mom_iq" else "kidscore_momhs"))
        return {"kid_score": _arr(d, "kid_score"), column: _arr(d, column)}

    return build_data


def _log10earn_height_data():
    d = load_data("earnings-log10earn_height")
    return {"log10_earn": np.log10(_arr(d, "earn")), "height": _arr(d, "height")}


def _logearn_interaction_z_data():
    d = load_data("earnings-logearn_interaction_z")
    height, male = _arr(d, "height"), _arr(d, "male")
    z_height = (height - height.mean()) / np.std(height, ddof=1)
    X = np.column_stack([np.ones_like(height), z_height, male, z_height * male])
    return {"log_earn": np.log(_arr(d, "earn")), "X": X}


def _logmesquite_data():
    d = load_data("mesquite-logmesquite")
    cols = [np.log(_arr(d, k)) for k in ("diam1", "diam2", "canopy_height", "total_height", "density")]
    X = np.column_stack([np.ones(int(d["N"]))] + cols + [_arr(d, "group")])
    return {"log_weight": np.log(_arr(d, "weight")), "X": X}


def _nes_data():
    d = load_data("nes2000-nes")
    age = np.asarray(d["age_discrete"])
    X = np.column_stack([
        np.ones(int(d["N"])), _arr(d, "real_ideo"), _arr(d, "race_adj"),
        (age == 2).astype(float), (age == 3).astype(float), (age == 4).astype(float),
        _arr(d, "educ1"), _arr(d, "gender"), _arr(d, "income"),
    ])
    return {"partyid7": _arr(d, "partyid7"), "X": X}


def _blr_data():
    d = load_data("sblrc-blr")
    return {"X": _arr(d, "X"), "y": _arr(d, "y")}


def _kilpisjarvi_data():
    d = load_data("kilpisjarvi_mod-kilpisjarvi")
    out = {"x": _arr(d, "x"), "y": _arr(d, "y")}
    out.update({k: float(d[k]) for k in ("pmualpha", "psalpha", "pmubeta", "psbeta")})
    return out


def _garch_data():
    d = load_data("garch-garch11")
    return {"y": _arr(d, "y"), "sigma1": float(d["sigma1"])}


def _diamonds_data():
    d = load_data("diamonds-diamonds")
    X = _arr(d, "X")
    return {"Y": _arr(d, "Y"), "Xc": X[:, 1:] - X[:, 1:].mean(axis=0)}


#: posteriordb name -> (model function, data builder)
POSTERIORS = {
    "eight_schools-eight_schools_noncentered": (
        eight_schools_noncentered, lambda: _eight_schools("eight_schools-eight_schools_noncentered")),
    "eight_schools-eight_schools_centered": (
        eight_schools_centered, lambda: _eight_schools("eight_schools-eight_schools_centered")),
    "kidiq-kidscore_momiq": (kidscore_momiq, _kidiq("mom_iq")),
    "kidiq-kidscore_momhs": (kidscore_momhs, _kidiq("mom_hs")),
    "earnings-log10earn_height": (log10earn_height, _log10earn_height_data),
    "earnings-logearn_interaction_z": (logearn_interaction_z, _logearn_interaction_z_data),
    "mesquite-logmesquite": (logmesquite, _logmesquite_data),
    "nes2000-nes": (nes, _nes_data),
    "sblrc-blr": (blr, _blr_data),
    "kilpisjarvi_mod-kilpisjarvi": (kilpisjarvi, _kilpisjarvi_data),
    "garch-garch11": (garch11, _garch_data),
    "diamonds-diamonds": (diamonds, _diamonds_data),
}


def build_model(posterior: str):
    """The ``ppl_ad`` model of ``posterior`` with its (transformed) data bound."""
    model_fn, data_fn = POSTERIORS[posterior]
    return model_fn(**data_fn())


# --------------------------------------------------------------------------- references

_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([0-9, ]+)\])?$")


def reference_site(flat_name: str) -> tuple[str, tuple]:
    """Map a Stan flattened 1-based name to a ``ppl_ad`` site and 0-based index.

    ``"theta[1]"`` -> ``("theta", (0,))``; ``"mu"`` -> ``("mu", ())``.
    """
    match = _NAME.match(flat_name)
    if match is None:
        raise ValueError(f"cannot parse reference name {flat_name!r}")
    site, index = match.group(1), match.group(2)
    return site, tuple(int(i) - 1 for i in index.split(",")) if index else ()


def load_reference(name: str) -> dict:
    """The reference of posterior ``name`` (a fresh dict).

    Returns
    -------
    dict
        ``summaries``: flattened Stan name -> ``{mean, sd, q5, q50, q95, mcse_mean, rhat,
        ess_bulk, ess_tail}``; ``sites``: flattened name -> ``(site, index)`` in the ``ppl_ad``
        model; ``parameter_names`` (reference order); ``num_sampled_dims``;
        ``stan_parameters_block``; ``method_arguments`` (posteriordb's Stan run: iterations,
        ``control``); ``num_data_points``; ``reference_note``.
    """
    raw = _read_json(name, "reference.json")
    names = list(raw["parameter_names"])
    out = {
        "posterior": raw["posterior"],
        "summaries": {k: dict(raw["parameters"][k]) for k in names},
        "sites": {k: reference_site(k) for k in names},
        "parameter_names": names,
        "num_sampled_dims": int(raw["num_sampled_dims"]),
        "stan_parameters_block": copy.deepcopy(raw["stan_parameters_block"]),
        "method_arguments": copy.deepcopy(raw["reference_method"]["method_arguments"]),
        "num_data_points": int(raw["num_data_points"]),
        "reference_note": raw.get("reference_note"),
    }
    return out


def posteriordb_scenarios() -> list:
    """One scenario per posteriordb posterior (tags ``posteriordb``, plus ``small`` when d ≤ 10, N ≤ 500)."""
    from ppl_ad.testing.scenario import Scenario

    out = []
    for name in POSTERIORS:
        reference = load_reference(name)
        tags = ["posteriordb"]
        if reference["num_sampled_dims"] <= 10 and reference["num_data_points"] <= 500:
            tags.append("small")
        if name == "eight_schools-eight_schools_centered":
            tags.append("funnel")
        out.append(Scenario(name, functools.partial(build_model, name), tuple(tags), reference))
    return out
