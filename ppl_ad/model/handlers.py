"""Handlers that give the primitives their meaning.

* :class:`CompileHandler` runs the model once to find its sites, check data and constant
  parameters, and fix the layout of the unconstrained parameter vector.
* :class:`EvaluateHandler` is the hot path: it reads each parameter from the flat vector,
  maps it to its support (adding the log-Jacobian, Stan Reference Manual "Constraint
  Transforms") and accumulates the log density. It works on any array library.
* :class:`PredictiveHandler` draws from priors and likelihoods with NumPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ppl_ad import math as M
from ppl_ad.distributions import base as _dist_base
from ppl_ad.distributions.continuous import Flat
from ppl_ad.errors import DataError, ModelDefinitionError, ModelError, ModelEvaluationError, PplAdError
from ppl_ad.model import primitives
from ppl_ad.transforms import Identity, biject_to, site_transform

__all__ = ["SampleSite", "ObserveSite", "CompileHandler", "EvaluateHandler", "PredictiveHandler", "run_model"]


#: axis names of every InferenceData group (ArviZ's), which a site's ``dims=`` may not use
RESERVED_DIMS = ("chain", "draw")


class _Traced(np.ndarray):
    """NumPy array subclass marking values that depend on parameters during compilation."""

    #: what the distributions look for (they cannot import this module): a value computed from
    #: parameters where a constant is needed (a count) is refused when the model compiles
    depends_on_parameters = True


@dataclass
class SampleSite:
    """A latent parameter: its model-space shape and its slice of the unconstrained vector."""

    name: str
    shape: tuple
    unconstrained_shape: tuple
    start: int
    stop: int
    distribution: str
    transform: object = None  # the transform when its support does not depend on parameters
    flat: bool = False
    dims: tuple | None = None  # axis names given with dims= (None: unnamed)
    kind: str = field(default="sample", init=False)

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass
class ObserveSite:
    """An observed site: its shape, and whether the support's bounds are other parameters
    (``bounded_by_parameters``): the data are then compared with them at every evaluation
    (``y ~ Uniform(0, theta)`` has log density ``-inf`` where ``theta < max(y)``); data outside a
    constant support are refused when the model is compiled."""

    name: str
    shape: tuple
    distribution: str
    value: object  # None: unobserved, simulated by the predictive functions (prediction only)
    dims: tuple | None = None
    bounded_by_parameters: bool = False
    kind: str = field(default="observe", init=False)


@dataclass
class OtherSite:
    """A deterministic or factor site."""

    name: str
    kind: str
    shape: tuple
    dims: tuple | None = None


class _Handler:
    validate = False

    def __init__(self):
        self.current = None

    def __enter__(self):
        primitives.HANDLERS.append(self)
        _dist_base._VALIDATE.append(self.validate)
        return self

    def __exit__(self, *exc):
        _dist_base._VALIDATE.pop()
        primitives.HANDLERS.pop()


def _shape_of(value) -> tuple:
    return tuple(np.shape(value))


def _is_static(value) -> bool:
    return value is None or isinstance(value, (int, float, np.generic)) or type(value) is np.ndarray


class CompileHandler(_Handler):
    """Find the sites of a model, validate them, and fix the parameter layout."""

    validate = True

    def __init__(self, model_name: str):
        super().__init__()
        self.model_name = model_name
        self.sites: dict = {}
        self.size = 0
        self.dim_sizes: dict = {}  # dimension name -> (length, first site that named it)

    def record_dims(self, name, dims):
        """Attach the axis names ``dims`` (from ``dims=``) to the site just recorded.

        Raises :class:`DataError` naming the site when their number differs from the site's
        number of axes, or when a dimension name has another length at another site.
        """
        site = self.sites[name]
        if isinstance(dims, str):
            dims = (dims,)
        elif isinstance(dims, (tuple, list)) and all(d is None or isinstance(d, str) for d in dims):
            dims = tuple(dims)
        else:
            raise ModelDefinitionError(
                f"model '{self.model_name}', site '{name}': dims must be a name or a tuple of names "
                f"(one per axis), got {dims!r}"
            )
        if len(dims) != len(site.shape):
            raise DataError(
                f"model '{self.model_name}', site '{name}': dims={dims} names {len(dims)} "
                f"ax{'is' if len(dims) == 1 else 'es'}, but the site has shape {site.shape} "
                f"({len(site.shape)} ax{'is' if len(site.shape) == 1 else 'es'})"
                + (" taken from its distribution, as the site is unobserved (bound to None): give the "
                   "distribution parameters of the data's shape" if site.kind == "observe" and site.value is None else "")
            )
        named = [d for d in dims if d is not None]
        reserved = [d for d in named if d in RESERVED_DIMS]
        if reserved:  # the InferenceData's own axes: a site axis of that name would clash with them
            raise ModelDefinitionError(
                f"model '{self.model_name}', site '{name}': dims={dims} uses the name '{reserved[0]}', which "
                f"ArviZ keeps for its own axes {RESERVED_DIMS}; give the axis another name (e.g. '{reserved[0]}_idx')"
            )
        if len(set(named)) != len(named):  # xarray keeps one axis per name: ("feat", "feat") breaks selections
            twice = sorted({d for d in named if named.count(d) > 1})
            raise ModelDefinitionError(
                f"model '{self.model_name}', site '{name}': dims={dims} names the axis '{twice[0]}' twice; "
                f"give each axis its own name (e.g. ('{twice[0]}', '{twice[0]}_bis'))"
            )
        for dim, length in zip(dims, site.shape):
            if dim is None:
                continue
            seen = self.dim_sizes.setdefault(dim, (length, name))
            if seen[0] != length:
                raise DataError(
                    f"model '{self.model_name}', site '{name}': dimension '{dim}' has length {length} "
                    f"here but {seen[0]} at site '{seen[1]}'"
                )
        site.dims = dims

    def _new_site(self, name):
        self.current = name
        if name in self.sites:
            raise ModelDefinitionError(
                f"model '{self.model_name}': duplicate site name '{name}' (each pa.sample/"
                "observe/deterministic/factor site needs its own name)"
            )

    def sample(self, name, distribution, shape, transform=None):
        self._new_site(name)
        _check_distribution(self.model_name, name, distribution)
        natural = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
        if shape is None:
            shape = natural
        else:
            shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
            try:
                if np.broadcast_shapes(natural, shape) != shape:  # shape=(1,) for three normals: three priors
                    raise ValueError
            except ValueError:
                raise ModelDefinitionError(
                    f"model '{self.model_name}', site '{name}': the distribution's shape {natural} does not "
                    f"broadcast to shape={shape} ({distribution!r}); shape may only add leading axes or "
                    "widen axes of size 1"
                ) from None
        if distribution.observed_only:
            raise ModelDefinitionError(
                f"model '{self.model_name}', site '{name}': {type(distribution).__name__} is a likelihood for "
                "observed data (pa.observe), not a prior for a parameter"
            )
        if distribution.is_discrete:
            raise ModelDefinitionError(
                f"model '{self.model_name}', site '{name}': {type(distribution).__name__} is "
                "discrete; HMC samples continuous parameters only (marginalise it out, or observe it)"
            )
        support = distribution.support
        if transform is None:
            transform = biject_to(support)
        else:
            transform = _requested_transform(self.model_name, name, transform, support, shape)
        event = tuple(distribution.event_shape)
        if not transform.batched and len(shape) > len(event):
            raise ModelDefinitionError(
                f"model '{self.model_name}', site '{name}': {type(distribution).__name__} gives one {event} "
                f"value per site, not a batch of shape={shape}; use one site per value (e.g. in a loop over "
                "groups, with names such as f'L_{g}')"
            )
        static = all(_is_static(getattr(support, b, None)) for b in ("lower", "upper"))
        ushape = transform.unconstrained_shape(shape)
        size = int(np.prod(ushape, dtype=int))
        site = SampleSite(
            name, shape, ushape, self.size, self.size + size, repr(distribution),
            transform if static else None, isinstance(distribution, Flat),
        )
        self.sites[name] = site
        self.size += size
        u = np.zeros(ushape)
        with M.using("numpy"):
            value = np.broadcast_to(np.asarray(transform.forward(u), dtype=float), shape)
        return np.array(value).view(_Traced)

    def observe(self, name, distribution, value):
        self._new_site(name)
        _check_distribution(self.model_name, name, distribution)
        if value is None:
            # Unobserved (my_model(x=x_new, y=None)): the predictive functions simulate the site;
            # compile_model refuses it, so no log density is built without its data.
            shape = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
            self.sites[name] = ObserveSite(name, shape, repr(distribution), None)
            return None
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise DataError(
                f"model '{self.model_name}', site '{name}': observed value of dtype {array.dtype} is not numeric"
            )
        if not np.all(np.isfinite(array)):
            bad = np.argwhere(~np.isfinite(array))[:5].tolist()
            raise DataError(
                f"model '{self.model_name}', site '{name}': observed data contain NaN or inf "
                f"(at indices {bad}{'...' if (~np.isfinite(array)).sum() > 5 else ''}); "
                "drop or impute them before binding the data"
            )
        natural = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
        try:
            broadcast = np.broadcast_shapes(natural, array.shape)
        except ValueError:
            raise DataError(
                f"model '{self.model_name}', site '{name}': observed value of shape {array.shape} "
                f"does not broadcast with the distribution's shape {natural} ({distribution!r})"
            ) from None
        if broadcast != array.shape:
            _raise_broadcast_up(self.model_name, name, array.shape, natural, broadcast)
        support = distribution.support
        bounded_by_parameters = not all(_is_static(getattr(support, b)) for b in support.bounds)
        # with bounds that are parameters, the value at this compilation's parameters says nothing:
        # the log density compares the data with the bounds at every evaluation
        inside = True if bounded_by_parameters else np.asarray(support.check_observed(array))  # one per event
        if not np.all(inside):
            _raise_outside_support(self.model_name, name, distribution, array, inside)
        self.sites[name] = ObserveSite(name, array.shape, repr(distribution), value,
                                       bounded_by_parameters=bounded_by_parameters)
        return value

    def deterministic(self, name, value):
        self._new_site(name)
        self.sites[name] = OtherSite(name, "deterministic", _shape_of(value))
        return value

    def factor(self, name, log_weight):
        self._new_site(name)
        self.sites[name] = OtherSite(name, "factor", _shape_of(log_weight))
        return log_weight


def _requested_transform(model_name, name, transform, support, shape):
    """The transform a site asked for with ``transform=`` ("ordered"), checked against its support
    and shape."""
    where = f"model '{model_name}', site '{name}'"
    try:
        chosen = site_transform(transform, support, where)
    except ValueError as error:
        raise ModelDefinitionError(str(error)) from None
    if len(shape) == 0:
        raise ModelDefinitionError(
            f"{where}: transform={transform!r} orders the last axis of a vector, but the site is a scalar; "
            "give it shape=K"
        )
    return chosen


def _raise_outside_support(model_name, name, distribution, array, inside):
    """Refuse observed data outside their distribution's (constant) support: the log density would be
    ``-inf`` whatever the parameters (Stan rejects such data too; PyMC only fails when sampling starts)."""
    inside = np.broadcast_to(inside, array.shape[: np.ndim(inside)] if np.ndim(inside) else ())
    bad = np.argwhere(~inside)
    count = len(bad)
    shown = []
    for at in bad[:5]:
        index = tuple(int(i) for i in at)
        label = index[0] if len(index) == 1 else index
        shown.append(f"{_dist_base._short(array[index])} at {label}" if array.ndim == len(index) else f"row {label}")
    hint = ""
    if getattr(distribution, "observed_only", False):
        hint = "; record censored observations at their bound (np.clip(y, lower, upper))"
    elif distribution.is_discrete and np.issubdtype(array.dtype, np.floating) and np.any(array != np.round(array)):
        hint = "; a count or category must be a whole number"
    raise DataError(
        f"model '{model_name}', site '{name}': {count} observed value{'s' if count > 1 else ''} outside the support "
        f"{distribution.support!r} of {type(distribution).__name__}: {', '.join(shown)}{', ...' if count > 5 else ''}; the log "
        f"density would be -inf whatever the parameters{hint}"
    )


def _raise_broadcast_up(model_name, name, value_shape, natural, broadcast):
    """Refuse an observed value that the distribution would broadcast to a larger shape.

    ``y`` of shape (200, 1) against a mean of shape (200,) broadcasts to 200 x 200: every
    observation would be counted 200 times, against every mean (PyMC refuses it too).
    """
    if len(value_shape) >= 1 and value_shape[-1] == 1 and int(np.prod(value_shape)) == int(np.prod(natural)):
        hint = f"pass a value of shape {natural}, e.g. `{name}.ravel()`"
    elif len(natural) >= 1 and natural[-1] == 1 and int(np.prod(value_shape)) == int(np.prod(natural)):
        hint = (
            f"the distribution's parameters are a column vector of shape {natural} (a covariate of shape "
            f"(n, 1), e.g. a one-column DataFrame df[['x']]): ravel it (`x.ravel()`, or df['x']) so that they "
            f"have the value's shape {value_shape}"
        )
    else:
        hint = (
            f"pass a value of shape {broadcast} (e.g. `.ravel()` a column vector), or give the "
            f"distribution parameters of the value's shape {value_shape}"
        )
    raise DataError(
        f"model '{model_name}', site '{name}': the observed value of shape {value_shape} and the "
        f"distribution's shape {natural} broadcast to {broadcast}, not to the value's shape, so "
        f"observations would be repeated and counted more than once; {hint}"
    )


def _check_distribution(model_name, name, distribution):
    if not isinstance(distribution, _dist_base.Distribution):
        raise ModelDefinitionError(
            f"model '{model_name}', site '{name}': expected a ppl_ad distribution, got {distribution!r}"
        )


class EvaluateHandler(_Handler):
    """Accumulate the log density at the unconstrained vector ``theta``.

    With ``record=True`` it also keeps the constrained values and deterministics; with
    ``log_density=False`` it only maps ``theta`` to those values and skips every log-density
    term (what converting draws to model space needs: no likelihood over the data). With
    ``jacobian=False`` the log-Jacobians of the transforms are left out: the result is the log
    density of the model-space values (what a MAP estimate in model space maximises).
    """

    def __init__(self, theta, sites: dict, model_name: str, record: bool = False, log_density: bool = True,
                 jacobian: bool = True):
        self.theta = theta
        self.sites = sites
        self.model_name = model_name
        self.record = record
        self.log_density = log_density
        self.jacobian = jacobian
        self.values = {} if record else None
        self.terms = {} if record else None
        self.total = 0.0
        self.current = None

    def _site(self, name, kind):
        self.current = name
        try:
            site = self.sites[name]
        except KeyError:
            raise ModelError(
                f"model '{self.model_name}': site '{name}' was not present when the model was "
                "compiled; the set of sites must not depend on parameter values"
            ) from None
        if site.kind != kind:
            raise ModelError(f"model '{self.model_name}': site '{name}' changed from {site.kind} to {kind}")
        return site

    def sample(self, name, distribution, shape, transform=None):
        site = self._site(name, "sample")
        theta = self.theta
        if site.unconstrained_shape == ():
            u = theta[site.start]
        else:
            u = theta[site.start:site.stop].reshape(site.unconstrained_shape)
        transform = site.transform or biject_to(distribution.support)
        x = transform.forward(u)
        if not self.log_density:
            if self.record:
                self.values[name] = x
            return x
        term = 0.0
        if self.jacobian and not site.flat and transform.is_logit and hasattr(distribution, "log_prob_logit"):
            # density and Jacobian from u (Beta): log(1 - x) of a rounded x = sigmoid(u) is -inf for u >= 37
            term = M.sum(distribution.log_prob_logit(u))
        else:
            if not site.flat:
                term = M.sum(distribution.log_prob(x))
            if self.jacobian and type(transform) is not Identity:
                term = term + M.sum(transform.log_abs_det_jacobian(u, x))
        self.total = self.total + term
        if self.record:
            self.values[name] = x
            self.terms[name] = term
        return x

    def observe(self, name, distribution, value):
        site = self._site(name, "observe")
        if not self.log_density:
            return value
        data = M.asarray(value) if type(value) is np.ndarray else value
        if str(getattr(data, "dtype", "")).endswith("bool"):  # PyTorch has no arithmetic on bool tensors
            data = M.where(data, 1.0, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):  # NumPy: log(0) of data on a bound
            log_prob = distribution.log_prob(data)
        if site.bounded_by_parameters:
            # selected, not added: the formula may be NaN outside (a log of negative data), and
            # NaN + (-inf) is NaN
            log_prob = M.where(distribution.support.inside(data), log_prob, -np.inf)
        term = M.sum(log_prob)
        self.total = self.total + term
        if self.record:
            self.terms[name] = term
        return value

    def deterministic(self, name, value):
        self.current = name
        if self.record:
            self.values[name] = value
        return value

    def factor(self, name, log_weight):
        self._site(name, "factor")
        if not self.log_density:
            return log_weight
        term = M.sum(log_weight)
        self.total = self.total + term
        if self.record:
            self.terms[name] = term
        return log_weight


class RejectedDraw(PplAdError):
    """A prior draw of the model that misses a site's restriction (an ordered site); raised to draw
    the whole model again (:func:`draw_prior`)."""



#: attempts at one prior draw of a model with restricted (ordered) sites, before giving up
PRIOR_ATTEMPTS = 1000


def draw_prior(model, rng: np.random.Generator):
    """One draw of ``model``'s parameters from the prior and its observed sites from the likelihood
    (a :class:`PredictiveHandler` after the run): a draw that misses an ordered site's restriction is
    rejected whole and drawn again, which is exact rejection sampling of the restricted prior.

    Raises
    ------
    ppl_ad.errors.ModelError
        Fewer than 1 in :data:`PRIOR_ATTEMPTS` draws satisfy the restriction (naming the site).
    """
    for _ in range(PRIOR_ATTEMPTS):
        try:
            return run_model(model, PredictiveHandler(rng, model_name=model.name))
        except RejectedDraw as rejected:
            last = rejected
    raise ModelError(
        f"{last}: fewer than 1 in {PRIOR_ATTEMPTS} prior draws of the model satisfy it, so its restricted "
        "prior cannot be drawn by rejection; give every element the same prior (its draws are then sorted), "
        "or a prior whose means increase (and are positive, for positive_ordered)"
    )


class PredictiveHandler(_Handler):
    """Draw NumPy values from the prior, or from the likelihood given ``substitutions``."""

    def __init__(self, rng: np.random.Generator, substitutions: dict | None = None, model_name: str = "",
                 exact: bool = True):
        super().__init__()
        self.exact = exact  # False: keep a restricted site's draw that misses its restriction (site names only)
        self.rng = rng
        self.substitutions = substitutions or {}
        self.model_name = model_name
        self.values: dict = {}
        self.observed: dict = {}

    def _draw(self, distribution, shape):
        """Independent draws of ``shape``: leading axes are sample axes; where ``shape`` widens an
        axis of size 1 of the distribution's batch shape, the parameters are broadcast first
        (copying one draw along it would correlate the entries perfectly)."""
        batch, event = tuple(distribution.batch_shape), tuple(distribution.event_shape)
        shape = tuple(shape)
        prefix = shape[: max(len(shape) - len(batch) - len(event), 0)]
        wanted = shape[len(prefix): len(shape) - len(event)]
        if len(wanted) == len(batch) and wanted != batch:
            distribution = distribution.expand(wanted)
        return np.broadcast_to(distribution.sample(self.rng, prefix), shape).copy()

    def sample(self, name, distribution, shape, transform=None):
        self.current = name
        if name in self.substitutions:
            value = np.asarray(self.substitutions[name])
        else:
            if shape is None:
                shape = tuple(distribution.batch_shape) + tuple(distribution.event_shape)
            shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
            if transform is None:
                value = self._draw(distribution, shape)
            else:
                value = self._draw_ordered(name, distribution, shape, transform)
        self.values[name] = value
        return value

    def _draw_ordered(self, name, distribution, shape, transform):
        """Draws of a site with ``transform="ordered"`` (or ``"positive_ordered"``): the prior
        restricted to increasing (positive) vectors.

        Where the prior's density does not change when the last axis is permuted (the same prior
        for every element), sorting independent draws gives exactly the restricted distribution
        (the order statistics; the chance of an order is 1/K! whatever the other parameters).
        Otherwise the chance that a draw satisfies the restriction can depend on other parameters
        (hyperparameters drawn before this site), so a draw that does not satisfy it rejects the
        whole draw of the model (:class:`RejectedDraw`, retried by :func:`draw_prior`): rejecting
        only this site's value would leave those parameters' draws unweighted.
        """
        constraint = _requested_transform(self.model_name, name, transform, distribution.support, shape).constraint
        value = self._draw(distribution, shape)
        if self._exchangeable(distribution, value):
            value = np.sort(value, axis=-1)
        if not np.all(constraint.check(value)):
            if not self.exact:
                return value
            raise RejectedDraw(f"model '{self.model_name}', site '{name}': prior draws of {distribution!r} "
                               f"rarely satisfy {constraint!r}")
        return value

    def _exchangeable(self, distribution, value) -> bool:
        """Whether the log density of ``value`` is unchanged by a cyclic shift and a reversal of its
        last axis (at a random value, only a prior that is the same for every element passes; no
        random numbers are used, so the other sites' draws stay as they were)."""
        with np.errstate(all="ignore"):
            total = float(np.sum(distribution.logpdf(value)))
            for permuted in (np.roll(value, 1, axis=-1), value[..., ::-1]):
                if not np.isclose(float(np.sum(distribution.logpdf(permuted))), total, rtol=1e-9, atol=1e-9):
                    return False
        return bool(np.isfinite(total))

    def observe(self, name, distribution, value):
        self.current = name
        shape = np.shape(value) if value is not None else tuple(distribution.batch_shape) + tuple(distribution.event_shape)
        draw = self._draw(distribution, shape)
        self.observed[name] = draw
        return draw

    def deterministic(self, name, value):
        self.current = name
        self.values[name] = np.asarray(value)
        return value

    def factor(self, name, log_weight):
        self.current = name
        return log_weight


def _model_line(model, error) -> str | None:
    """``"line 12: pa.observe('y2', dist.Normal(b, -1.0), y)"``: the line of the model function
    that ``error`` came through (innermost), or None."""
    import linecache

    code = getattr(getattr(getattr(model, "function", None), "fn", None), "__code__", None)
    if code is None:
        return None
    found = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code is code:
            found = tb.tb_lineno
        tb = tb.tb_next
    if found is None:
        return None
    text = linecache.getline(code.co_filename, found).strip()
    return f"line {found}" + (f": {text}" if text else "")


def run_model(model, handler, data=None):
    """Run ``model`` under ``handler``; errors from the model name the model and the site (a
    distribution's invalid constant parameter, raised before its site is declared, names the
    model's line)."""
    with handler:
        try:
            model.run(data)
        except ModelDefinitionError as error:
            if f"'{model.name}'" in str(error) or type(error) is not ModelDefinitionError:
                raise
            line = _model_line(model, error)
            if line is None:
                raise
            raise ModelDefinitionError(f"model '{model.name}', {line}: {error}") from error
        except PplAdError:
            raise
        except Exception as error:
            where = f"at or after site '{handler.current}'" if handler.current else "before its first site"
            raise ModelEvaluationError(
                f"model '{model.name}' raised {type(error).__name__} {where}: {error}"
            ) from error
    return handler
