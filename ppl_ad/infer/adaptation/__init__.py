"""Warmup adaptation of the step size and the metric, following Stan.

``step_size``
    Nesterov dual averaging of the log step size (Hoffman & Gelman 2014) and
    Stan's step-size (re-)initialisation heuristic.
``mass_matrix``
    Welford's streaming (co)variance and Stan's regularised inverse metric.
``low_rank``
    nutpie's low-rank correction of the diagonal metric (``metric="low_rank"``), estimated
    from a window of draws and their gradients.
``window``
    The warmup schedules combining the two: nutpie's (estimators that switch every 10, then
    80 draws; the default) and Stan's windows (fast initial buffer, doubling slow windows,
    fast terminal buffer).

References
----------
Stan Development Team. *Stan Reference Manual*, "Adaptation" (HMC algorithm
parameters: step size and metric adaptation, warmup windows).
"""

from ppl_ad.infer.adaptation.mass_matrix import (
    WelfordState,
    fisher_diagonal,
    regularized_covariance,
    welford_covariance,
    welford_init,
    welford_update,
)
from ppl_ad.infer.adaptation.step_size import (
    DualAveragingState,
    dual_averaging_final,
    dual_averaging_init,
    dual_averaging_update,
    find_reasonable_step_size,
)
from ppl_ad.infer.adaptation.window import (
    ESTIMATORS,
    WindowAdaptationState,
    build_nutpie_schedule,
    build_schedule,
    restart_end,
    uses_nutpie_schedule,
    warmup_schedule,
    window_adaptation_final,
    window_adaptation_init,
    window_adaptation_restart_step_size,
    window_adaptation_update,
)

__all__ = [
    "DualAveragingState",
    "dual_averaging_init",
    "dual_averaging_update",
    "dual_averaging_final",
    "find_reasonable_step_size",
    "WelfordState",
    "welford_init",
    "welford_update",
    "welford_covariance",
    "regularized_covariance",
    "fisher_diagonal",
    "WindowAdaptationState",
    "build_schedule",
    "build_nutpie_schedule",
    "warmup_schedule",
    "uses_nutpie_schedule",
    "ESTIMATORS",
    "window_adaptation_init",
    "window_adaptation_update",
    "restart_end",
    "window_adaptation_restart_step_size",
    "window_adaptation_final",
]
