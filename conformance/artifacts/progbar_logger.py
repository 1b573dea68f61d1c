"""ProgbarLogger's scenarios: what fit, evaluate and predict print, on a steady clock."""

from __future__ import annotations

import contextlib
from typing import Any

from cbdsl.conformance.artifacts.models import fit_named, named_data, named_model
from cbdsl.conformance.artifacts.spec import Artifact, ArtifactSpec, Run, Scenario


class _Clock:
    """`time` for Keras's Progbar: each reading 37.5 ms after the last."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def time(self) -> float:
        self.now += 0.0375
        return self.now


@contextlib.contextmanager
def _steady_clock():
    from keras.src.utils import progbar

    real, progbar.time = progbar.time, _Clock()
    try:
        yield
    finally:
        progbar.time = real


def _batches():
    """Batches from a generator: `fit` knows no number of steps."""
    x, y = named_data()
    for start in range(0, 40, 16):
        yield x[start:start + 16], y[start:start + 16]


def progbar_logger(run: Run, *, verbose: Any = 1, epochs: int = 3, standalone: bool = False,
                   reuse: bool = False, unknown_steps: bool = False) -> Artifact:
    """Fit (and evaluate and predict) with the logger; the artifact is what was printed."""
    model = named_model()
    with _steady_clock():
        logger = run.build()
        if unknown_steps:
            run.attempt(lambda: model.fit(_batches(), epochs=epochs, verbose=verbose,
                                          callbacks=[logger]))
        else:
            run.attempt(lambda: fit_named(model, [logger], epochs=epochs, verbose=verbose))
        if standalone:
            x, y = named_data()
            again = logger if reuse else run.build()
            run.attempt(lambda: model.evaluate(x, y, batch_size=16, verbose=verbose,
                                               callbacks=[again]))
            run.attempt(lambda: model.predict(x, batch_size=16, verbose=verbose,
                                              callbacks=[again]))
    return {}


PROGBAR = "progbar_logger"
PROGBAR_SCENARIOS = (
    Scenario("verbose_1", "fit with validation, verbose=1: a bar per epoch, drawn as batches "
             "end", progbar_logger, {"verbose": 1}, quick=True),
    Scenario("verbose_2", "verbose=2: one line per epoch", progbar_logger, {"verbose": 2}),
    Scenario("verbose_auto", "verbose='auto' draws as 1", progbar_logger, {"verbose": "auto"}),
    Scenario("one_epoch", "one epoch: no 'Epoch 1/1' line", progbar_logger, {"epochs": 1}),
    Scenario("evaluate_and_predict", "evaluate and predict on their own, each with a new "
             "logger: their bars", progbar_logger, {"epochs": 1, "standalone": True}),
    Scenario("reused_after_fit", "the logger of a fit, used again: evaluate stays silent, "
             "predict draws", progbar_logger, {"epochs": 1, "standalone": True, "reuse": True}),
    Scenario("unknown_steps", "a generator: the first epoch's bar learns the steps, later "
             "bars keep them", progbar_logger, {"unknown_steps": True}),
)

SPEC = ArtifactSpec(PROGBAR, "ProgbarLogger", PROGBAR_SCENARIOS)
