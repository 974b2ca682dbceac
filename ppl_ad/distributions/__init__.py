"""Probability distributions in Stan/PyMC parameterisations (``from ppl_ad import dist``).

Each distribution has ``logpdf``/``logpmf`` with full normalising constants (values outside
the support give ``-inf``), its ``support`` constraint and a NumPy ``sample`` method for
predictive draws. See ``docs/distributions.md`` for the table of parameterisations.
"""

from ppl_ad.distributions.base import Distribution
from ppl_ad.distributions.censored import Censored
from ppl_ad.distributions.continuous import (
    Beta, Cauchy, ChiSquared, Exponential, Flat, Gamma, Gumbel, HalfCauchy, HalfFlat, HalfNormal,
    HalfStudentT, InverseGamma, Laplace, Logistic, LogNormal, Normal, Pareto, SkewNormal, StudentT,
    TruncatedNormal, Uniform, VonMises, Wald, Weibull,
)
from ppl_ad.distributions.mixture import Mixture, NormalMixture
from ppl_ad.distributions.discrete import (
    Bernoulli, BernoulliLogit, BetaBinomial, Binomial, BinomialLogit, Categorical, Geometric,
    NegativeBinomial2, OrderedLogistic, Poisson, PoissonLog, ZeroInflatedNegativeBinomial, ZeroInflatedPoisson,
)
from ppl_ad.distributions.multivariate import (
    Dirichlet, DirichletMultinomial, LKJCholesky, Multinomial, MvNormal, MvNormalCholesky, MvStudentT,
)

__all__ = [
    "Distribution", "Normal", "HalfNormal", "Cauchy", "HalfCauchy", "StudentT", "HalfStudentT",
    "Exponential", "Gamma", "InverseGamma", "Beta", "Uniform", "LogNormal", "Laplace",
    "Logistic", "Flat", "HalfFlat", "Bernoulli", "BernoulliLogit", "Binomial", "BinomialLogit",
    "Poisson", "PoissonLog", "NegativeBinomial2", "Categorical", "Dirichlet", "MvNormal",
    "MvNormalCholesky", "LKJCholesky", "Weibull", "Gumbel", "ChiSquared", "SkewNormal",
    "TruncatedNormal", "Pareto", "BetaBinomial", "ZeroInflatedPoisson", "Geometric", "Multinomial",
    "OrderedLogistic", "Censored", "Mixture", "NormalMixture", "Wald", "ZeroInflatedNegativeBinomial",
    "MvStudentT", "DirichletMultinomial", "VonMises",
]
