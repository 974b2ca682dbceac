"""Peers for ``ppl-ad bench --peers``: PyMC, NumPyro, BlackJAX and nutpie on the standard models.

Each peer gets the same model, data and site names as :mod:`ppl_ad.testing.scenarios`
(:func:`pymc_model`, :func:`numpyro_model`, and for BlackJAX the hand-written JAX log density
:func:`jax_logdensity`; nutpie compiles the PyMC twin with ``nutpie.compile_pymc_model``).
:func:`run_peers` times PyMC's and NumPyro's own compiled value-and-gradient of the log density on
their unconstrained space: PyMC's ``Model.logp_dlogp_function`` (PyTensor, C backend) and
NumPyro's potential energy under ``jax.jit(jax.value_and_grad(...))``;
:mod:`ppl_ad.bench.sampling` runs every peer's NUTS. Peers are optional
(``pip install 'ppl_ad[bench]'``); one that is not installed or fails gives a row with a note.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from ppl_ad.bench.benchmark import time_call
from ppl_ad.testing.scenarios import EIGHT_SCHOOLS_SIGMA, EIGHT_SCHOOLS_Y, STANDARD, standard_data

__all__ = ["run_peers", "available_peers", "pymc_model", "numpyro_model", "jax_logdensity", "PEERS",
           "GRADIENT_PEERS"]

#: peer name -> importable library (the samplers of ``ppl-ad bench --sampling --peers``)
PEERS = {"pymc": "pymc", "numpyro": "numpyro", "blackjax": "blackjax", "nutpie": "nutpie"}

#: the peers whose value-and-gradient ``ppl-ad bench --peers`` times
GRADIENT_PEERS = ("pymc", "numpyro")


def available_peers() -> list[str]:
    """Peers whose library is importable."""
    return [name for name, lib in PEERS.items() if importlib.util.find_spec(lib)]


def pymc_model(name: str):
    """The standard model ``name`` as a ``pymc.Model`` (same data and site names as ppl_ad's)."""
    import pymc as pm

    data = standard_data()
    with pm.Model() as m:
        if name == "eight_schools":
            mu = pm.Normal("mu", 0.0, 5.0)
            tau = pm.HalfCauchy("tau", 5.0)
            tt = pm.Normal("theta_tilde", 0.0, 1.0, shape=8)
            pm.Normal("y", mu + tau * tt, EIGHT_SCHOOLS_SIGMA, observed=EIGHT_SCHOOLS_Y)
        elif name == "logistic_regression":
            X, y = data["logistic"]["X"], data["logistic"]["y"]
            alpha = pm.Normal("alpha", 0.0, 2.0)
            beta = pm.Normal("beta", 0.0, 1.0, shape=X.shape[1])
            pm.Bernoulli("y", logit_p=alpha + pm.math.dot(X, beta), observed=y)
        elif name == "gaussian_100d":
            L = data["gaussian"]["L"]
            pm.MvNormal("x", np.zeros(L.shape[0]), chol=L)
        else:
            d = data["poisson"]
            mu = pm.Normal("mu", 0.0, 1.0)
            sigma = pm.HalfNormal("sigma", 1.0)
            z = pm.Normal("z", 0.0, 1.0, shape=d["num_groups"])
            b = pm.Normal("b", 0.0, 1.0)
            pm.Poisson("y", pm.math.exp(mu + sigma * z[d["g"]] + b * d["x"]), observed=d["y"])
    return m


def _pymc(name):
    from pymc.blocking import DictToArrayBijection

    m = pymc_model(name)
    fn = m.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    point = m.initial_point()
    x = DictToArrayBijection.map({v.name: point[v.name] for v in m.value_vars}).data
    value_fn = m.compile_logp()
    return (lambda t: value_fn(point)), fn, x


def numpyro_model(name: str):
    """The standard model ``name`` as a NumPyro model function (float64 enabled)."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as nd

    jax.config.update("jax_enable_x64", True)
    data = standard_data()

    def model():
        if name == "eight_schools":
            mu = numpyro.sample("mu", nd.Normal(0.0, 5.0))
            tau = numpyro.sample("tau", nd.HalfCauchy(5.0))
            tt = numpyro.sample("theta_tilde", nd.Normal(0.0, 1.0).expand([8]))
            numpyro.sample("y", nd.Normal(mu + tau * tt, EIGHT_SCHOOLS_SIGMA), obs=EIGHT_SCHOOLS_Y)
        elif name == "logistic_regression":
            X, y = data["logistic"]["X"], data["logistic"]["y"]
            alpha = numpyro.sample("alpha", nd.Normal(0.0, 2.0))
            beta = numpyro.sample("beta", nd.Normal(0.0, 1.0).expand([X.shape[1]]))
            numpyro.sample("y", nd.Bernoulli(logits=alpha + jnp.dot(X, beta)), obs=y)
        elif name == "gaussian_100d":
            L = data["gaussian"]["L"]
            numpyro.sample("x", nd.MultivariateNormal(jnp.zeros(L.shape[0]), scale_tril=L))
        else:
            d = data["poisson"]
            mu = numpyro.sample("mu", nd.Normal(0.0, 1.0))
            sigma = numpyro.sample("sigma", nd.HalfNormal(1.0))
            z = numpyro.sample("z", nd.Normal(0.0, 1.0).expand([d["num_groups"]]))
            b = numpyro.sample("b", nd.Normal(0.0, 1.0))
            numpyro.sample("y", nd.Poisson(jnp.exp(mu + sigma * z[d["g"]] + b * d["x"])), obs=d["y"])

    return model


def jax_logdensity(name: str):
    """The standard model ``name`` hand-written in JAX on ppl_ad's unconstrained space.

    Positive parameters are sampled on the log scale with the log-Jacobian added, as in
    ppl_ad; constants of the density are dropped. The data are closed over (constants of
    the program), as a user writing BlackJAX code would do.

    Returns
    -------
    logdensity : callable
        ``logdensity(theta) -> scalar`` for a float64 vector ``theta``.
    layout : list of (str, slice, tuple)
        Site name, its slice of ``theta`` and its shape (``tau`` and ``sigma`` are reported on
        the log scale, which leaves their bulk ESS unchanged: it is rank based).
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular

    data = standard_data()

    def normal(x, sd):
        return jnp.sum(-0.5 * (x / sd) ** 2)

    if name == "eight_schools":
        y, sigma = jnp.asarray(EIGHT_SCHOOLS_Y), jnp.asarray(EIGHT_SCHOOLS_SIGMA)
        layout = [("mu", slice(0, 1), ()), ("tau", slice(1, 2), ()), ("theta_tilde", slice(2, 10), (8,))]

        def logdensity(t):
            mu, log_tau, tt = t[0], t[1], t[2:]
            tau = jnp.exp(log_tau)
            half_cauchy = -jnp.log1p((tau / 5.0) ** 2)
            return (normal(mu, 5.0) + half_cauchy + log_tau + normal(tt, 1.0)
                    + normal(y - (mu + tau * tt), sigma))
    elif name == "logistic_regression":
        X, y = jnp.asarray(data["logistic"]["X"]), jnp.asarray(data["logistic"]["y"], dtype=jnp.float64)
        D = X.shape[1]
        layout = [("alpha", slice(0, 1), ()), ("beta", slice(1, D + 1), (D,))]

        def logdensity(t):
            eta = t[0] + X @ t[1:]
            return normal(t[0], 2.0) + normal(t[1:], 1.0) + jnp.sum(y * eta - jax.nn.softplus(eta))
    elif name == "gaussian_100d":
        L = jnp.asarray(data["gaussian"]["L"])
        layout = [("x", slice(0, L.shape[0]), (L.shape[0],))]

        def logdensity(t):
            return -0.5 * jnp.sum(solve_triangular(L, t, lower=True) ** 2)
    elif name == "hierarchical_poisson":
        d = data["poisson"]
        g, x, y = jnp.asarray(d["g"]), jnp.asarray(d["x"]), jnp.asarray(d["y"], dtype=jnp.float64)
        k = d["num_groups"]
        layout = [("mu", slice(0, 1), ()), ("sigma", slice(1, 2), ()), ("z", slice(2, k + 2), (k,)),
                  ("b", slice(k + 2, k + 3), ())]

        def logdensity(t):
            mu, log_sigma, z, b = t[0], t[1], t[2:k + 2], t[k + 2]
            sigma = jnp.exp(log_sigma)
            eta = mu + sigma * z[g] + b * x
            return (normal(mu, 1.0) + normal(sigma, 1.0) + log_sigma + normal(z, 1.0) + normal(b, 1.0)
                    + jnp.sum(y * eta - jnp.exp(eta)))
    else:
        raise ValueError(f"no hand-written JAX density for {name!r}; peers know {list(STANDARD)}")
    return logdensity, layout


def _numpyro(name):
    import jax
    from numpyro.infer.util import initialize_model

    model = numpyro_model(name)
    init, potential, _, _ = initialize_model(jax.random.PRNGKey(0), model)
    value = jax.jit(potential)
    value_and_grad = jax.jit(jax.value_and_grad(potential))
    params = init.z
    return (lambda p: value(p).block_until_ready()), (lambda p: jax.block_until_ready(value_and_grad(p))), params


def run_peers(models=STANDARD, budget: float = 0.3) -> list[dict]:
    """Rows ``{"model", "name", "logdensity_us", "gradient_us", "note"}`` for each installed peer."""
    import time

    rows = []
    for peer in GRADIENT_PEERS:
        for model in models:
            row = {"model": model, "name": peer, "prepare_s": None, "logdensity_us": None, "gradient_us": None, "note": ""}
            rows.append(row)
            if peer not in available_peers():
                row["note"] = f"{peer} is not installed"
                continue
            if model not in STANDARD:
                row["note"] = "peers run only the four standard models"
                continue
            try:
                start = time.perf_counter()
                value, value_and_grad, x = (_pymc if peer == "pymc" else _numpyro)(model)
                value_and_grad(x)
                row["prepare_s"] = time.perf_counter() - start
                row["logdensity_us"] = time_call(value, x, None, budget)[0] * 1e6
                row["gradient_us"] = time_call(value_and_grad, x, None, budget)[0] * 1e6
            except Exception as exc:
                row["note"] = f"{type(exc).__name__}: {str(exc)[:200]}"
    return rows
