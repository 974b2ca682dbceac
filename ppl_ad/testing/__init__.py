"""Public testing utilities: the scenario list and :func:`check_gradients`.

``ppl_ad.testing.scenarios()`` is the list of models our own tests and benchmarks use;
users can run :func:`check_gradients` on their own models.
"""

from ppl_ad.testing.scenarios import Scenario, get_scenario, scenarios

__all__ = ["Scenario", "scenarios", "get_scenario", "check_gradients", "GradientCheck"]


def __getattr__(name):
    if name in ("check_gradients", "GradientCheck"):
        from ppl_ad.testing import gradients

        return getattr(gradients, name)
    raise AttributeError(name)
