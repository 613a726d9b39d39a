"""The README's "add your own method" example, run by tests/inference/test_methods.py."""

from typing import ClassVar

from inference import MethodSettings, register_method
from inference.npe import NPEMethod


class NPEWithSplines(NPEMethod):
    """NPE whose density estimator is always a neural spline flow, whatever the config says."""

    name: ClassVar[str] = "npe_nsf"
    description: ClassVar[str] = "NPE with a neural spline flow"

    def relevant_settings(self, settings: MethodSettings):
        return settings.network.model_copy(update={"density_estimator": "nsf"})

    def train(self, theta, x, prior, settings, *, seed, context):
        nsf = settings.model_copy(update={"density_estimator": "nsf"})
        return super().train(theta, x, prior, nsf, seed=seed, context=context)


register_method(NPEWithSplines)  # or, in a package: [project.entry-points."emustudy.methods"]
