"""The posteriordb models against hand-written log posteriors (from each ``model.md``).

For every posterior, the ``ppl_ad`` NumPy log density on the unconstrained space must differ
from an independent NumPy/scipy log posterior (with the log-Jacobians written out by hand)
by one constant, and the JAX gradient must match finite differences.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

import ppl_ad as pa
from ppl_ad.testing import posteriordb as pdb
from ppl_ad.testing.scenarios import get_scenario, scenarios


def _norm(x, m, s):
    return stats.norm.logpdf(x, m, s).sum()


def _sigma(u):
    """sigma = exp(u); returns (sigma, log-Jacobian)."""
    return np.exp(u), u


# ---- hand-written log posteriors on the unconstrained space (theta in ppl_ad's site order)


def lp_eight_noncentered(th, d):
    tt, mu, (tau, jac) = th[:8], th[8], _sigma(th[9])
    return (_norm(tt, 0, 1) + _norm(mu, 0, 5) - np.log1p((tau / 5) ** 2) + jac
            + _norm(d["y"], mu + tau * tt, np.asarray(d["sigma"])))


def lp_eight_centered(th, d):
    mu, (tau, jac), theta = th[0], _sigma(th[1]), th[2:]
    return (_norm(mu, 0, 5) - np.log1p((tau / 5) ** 2) + jac + _norm(theta, mu, tau)
            + _norm(d["y"], theta, np.asarray(d["sigma"])))


def _lp_kid(column):
    def lp(th, d):
        (sigma, jac) = _sigma(th[2])
        x = np.asarray(d[column], float)
        return stats.halfcauchy.logpdf(sigma, scale=2.5) + jac + _norm(d["kid_score"], th[0] + th[1] * x, sigma)

    return lp


def lp_log10earn(th, d):
    sigma, jac = _sigma(th[2])
    return jac + _norm(np.log10(d["earn"]), th[0] + th[1] * np.asarray(d["height"], float), sigma)


def lp_interaction_z(th, d):
    sigma, jac = _sigma(th[4])
    h, male = np.asarray(d["height"], float), np.asarray(d["male"], float)
    z = (h - h.mean()) / h.std(ddof=1)
    eta = th[0] + th[1] * z + th[2] * male + th[3] * z * male
    return jac + _norm(np.log(d["earn"]), eta, sigma)


def lp_mesquite(th, d):
    sigma, jac = _sigma(th[7])
    b = th[:7]
    eta = (b[0] + b[1] * np.log(d["diam1"]) + b[2] * np.log(d["diam2"])
           + b[3] * np.log(d["canopy_height"]) + b[4] * np.log(d["total_height"])
           + b[5] * np.log(d["density"]) + b[6] * np.asarray(d["group"], float))
    return jac + _norm(np.log(d["weight"]), eta, sigma)


def lp_nes(th, d):
    sigma, jac = _sigma(th[9])
    b = th[:9]
    age = np.asarray(d["age_discrete"])
    g = lambda k: np.asarray(d[k], float)  # noqa: E731
    eta = (b[0] + b[1] * g("real_ideo") + b[2] * g("race_adj") + b[3] * (age == 2)
           + b[4] * (age == 3) + b[5] * (age == 4) + b[6] * g("educ1") + b[7] * g("gender")
           + b[8] * g("income"))
    return jac + _norm(g("partyid7"), eta, sigma)


def lp_blr(th, d):
    sigma, jac = _sigma(th[5])
    X = np.asarray(d["X"], float)
    return (_norm(th[:5], 0, 10) + _norm(sigma, 0, 10) + jac
            + _norm(d["y"], X @ th[:5], sigma))


def lp_kilpisjarvi(th, d):
    alpha, beta, (sigma, jac) = th[0], th[1], _sigma(th[2])
    return (_norm(alpha, d["pmualpha"], d["psalpha"]) + _norm(beta, d["pmubeta"], d["psbeta"])
            + jac + _norm(d["y"], alpha + beta * np.asarray(d["x"], float), sigma))


def lp_garch(th, d):
    mu, a, v1, v2 = th
    alpha0 = np.exp(a)
    alpha1 = special.expit(v1)
    beta1 = (1 - alpha1) * special.expit(v2)
    jac = (a + np.log(alpha1) + np.log1p(-alpha1) + np.log1p(-alpha1)
           + special.log_expit(v2) + special.log_expit(-v2))
    y = np.asarray(d["y"], float)
    s = np.empty(len(y))
    s[0] = d["sigma1"]
    for t in range(1, len(y)):
        s[t] = np.sqrt(alpha0 + alpha1 * (y[t - 1] - mu) ** 2 + beta1 * s[t - 1] ** 2)
    return jac + _norm(y, mu, s)


def lp_diamonds(th, d):
    b, intercept, (sigma, jac) = th[:24], th[24], _sigma(th[25])
    X = np.asarray(d["X"], float)
    Xc = X[:, 1:] - X[:, 1:].mean(axis=0)
    return (_norm(b, 0, 1) + stats.t.logpdf(intercept, 3, 8, 10) + stats.t.logpdf(sigma, 3, 0, 10)
            + jac + _norm(d["Y"], intercept + Xc @ b, sigma))


HAND = {
    "eight_schools-eight_schools_noncentered": lp_eight_noncentered,
    "eight_schools-eight_schools_centered": lp_eight_centered,
    "kidiq-kidscore_momiq": _lp_kid("mom_iq"),
    "kidiq-kidscore_momhs": _lp_kid("mom_hs"),
    "earnings-log10earn_height": lp_log10earn,
    "earnings-logearn_interaction_z": lp_interaction_z,
    "mesquite-logmesquite": lp_mesquite,
    "nes2000-nes": lp_nes,
    "sblrc-blr": lp_blr,
    "kilpisjarvi_mod-kilpisjarvi": lp_kilpisjarvi,
    "garch-garch11": lp_garch,
    "diamonds-diamonds": lp_diamonds,
}


def _points(ld, reference, rng, count):
    """Unconstrained points in the bulk of the reference posterior (uniform in [q5, q95])."""
    out = []
    for _ in range(count):
        values = {}
        for site, shape, _slice in ld.compiled.layout():
            values[site] = rng.normal(size=shape)
        for name, (site, index) in reference["sites"].items():
            if site in values:
                summ = reference["summaries"][name]
                value = summ["q5"] + (summ["q95"] - summ["q5"]) * rng.uniform()
                if index:
                    values[site][index] = value
                else:
                    values[site] = np.float64(value)
        if "beta1" in values:  # garch: keep beta1 below its dependent bound 1 - alpha1
            values["beta1"] = np.float64(min(values["beta1"], 0.9 * (1.0 - values["alpha1"])))
        out.append(ld.unconstrain(values))
    return out


def test_twelve_posteriors_are_scenarios():
    names = [s.name for s in scenarios("posteriordb")]
    assert sorted(names) == sorted(HAND)
    small = {s.name for s in scenarios("posteriordb") if "small" in s.tags}
    assert "diamonds-diamonds" not in small and "earnings-log10earn_height" not in small
    assert "garch-garch11" in small and "nes2000-nes" in small


def test_reference_site_mapping():
    assert pdb.reference_site("theta[1]") == ("theta", (0,))
    assert pdb.reference_site("mu") == ("mu", ())
    ref = pdb.load_reference("diamonds-diamonds")
    assert ref["sites"]["b[24]"] == ("b", (23,))
    assert ref["sites"]["Intercept"] == ("Intercept", ())
    assert ref["summaries"]["sigma"]["mcse_mean"] > 0


@pytest.mark.parametrize("name", sorted(HAND))
def test_logdensity_matches_hand_written(name):
    scenario = get_scenario(name)
    ld = pa.logdensity(scenario.model(), backend="finite-difference")
    ref = scenario.reference
    assert ld.dimension == ref["num_sampled_dims"] == sum(b["size"] for b in ref["stan_parameters_block"])
    sites = {site for site, _, _ in ld.compiled.layout()}
    assert sites == {b["name"] for b in ref["stan_parameters_block"]}
    data = pdb.load_data(name)
    rng = np.random.default_rng(7)
    thetas = _points(ld, ref, rng, 4)
    ours = np.array([ld.compiled.logdensity(t) for t in thetas])
    hand = np.array([HAND[name](t, data) for t in thetas])
    assert np.all(np.isfinite(ours))
    diffs = ours - hand
    scale = max(1.0, np.max(np.abs(hand)))
    np.testing.assert_allclose(diffs - diffs[0], 0.0, atol=1e-9 * scale)
    # the points differ in log density, so this comparison is not vacuous
    assert np.ptp(hand) > 1e-3


def test_noncentered_theta_is_deterministic():
    scenario = get_scenario("eight_schools-eight_schools_noncentered")
    ld = pa.logdensity(scenario.model(), backend="finite-difference")
    theta = np.linspace(-1, 1, 10)
    values = ld.constrain(theta, deterministics=True)
    np.testing.assert_allclose(values["theta"], theta[8] + np.exp(theta[9]) * theta[:8])


def _fd_gradient(f, x):
    """Fourth-order central differences with a per-coordinate step."""
    grad = np.empty_like(x)
    for i in range(len(x)):
        h = 1e-3 * max(1.0, abs(x[i]))
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (-f(x + 2 * e) + 8 * f(x + e) - 8 * f(x - e) + f(x - 2 * e)) / (12 * h)
    return grad


@pytest.mark.parametrize("name", sorted(HAND))
def test_jax_gradient_matches_finite_differences(name):
    pytest.importorskip("jax")
    model_fn, data_fn = pdb.POSTERIORS[name]
    data = data_fn()
    model = model_fn(**data)
    ld = pa.logdensity(model, backend="jax")
    ref = get_scenario(name).reference
    theta = _points(ld, ref, np.random.default_rng(3), 1)[0]
    _, grad = ld.logdensity_and_gradient(theta)
    fd = _fd_gradient(ld.compiled.logdensity, theta)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.max(np.abs(fd))))
