"""SwapEMAWeights's scenarios: the weights training, validation, evaluate and predict run on."""

from __future__ import annotations

from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.models import fit_named, named_data, named_model, weights_of
from cbdsl.conformance.artifacts.spec import Artifact, ArtifactSpec, Run, Scenario


def swap_ema_weights(run: Run, *, use_ema: bool = True, swap_on_epoch: bool = False,
                     predict: bool = False) -> Artifact:
    """Fit with validation, then evaluate (and predict) with the callback; the weights seen
    at each epoch's start and end and as each evaluation begins (by a callback listed after:
    the weights evaluation runs on), after each call, and the losses validation and evaluate
    report."""
    import keras

    model = named_model(use_ema=use_ema)
    seen: list[list] = []

    def probe(event: str):
        return lambda epoch, logs=None: seen.append([event, epoch, weights_of(model)])

    class Watcher(keras.callbacks.Callback):
        on_epoch_begin = staticmethod(probe("epoch_begin"))
        on_epoch_end = staticmethod(probe("epoch_end"))

        def on_test_begin(self, logs=None):
            seen.append(["test_begin", None, weights_of(model)])

    watcher = Watcher()
    swapper = run.build(swap_on_epoch=swap_on_epoch)
    history = run.attempt(lambda: fit_named(model, [swapper, watcher]))
    out: dict[str, Any] = {"seen": seen, "history": history.history if history else None,
                           "after_fit": weights_of(model)}
    if history is None:
        return out
    x, y = named_data()
    out["evaluate"] = model.evaluate(x, y, batch_size=16, verbose=0,
                                     callbacks=[swapper, watcher])
    out["after_evaluate"] = weights_of(model)
    if predict:
        out["predicted"] = np.asarray(model.predict(x[:4], verbose=0,
                                                    callbacks=[swapper])).tolist()
        out["after_predict"] = weights_of(model)
        again = fit_named(model, [swapper], epochs=1)
        out["next_fit"] = {"history": again.history, "weights": weights_of(model)}
    return out


EMA = "swap_ema_weights"
EMA_SCENARIOS = (
    Scenario("evaluate", "validation and evaluate run on the averages, training on the "
             "trained weights", swap_ema_weights, quick=True),
    Scenario("swap_on_epoch", "the averages in the model from each epoch's end to the next "
             "epoch's start; training ends with them", swap_ema_weights,
             {"swap_on_epoch": True}),
    Scenario("predict_leaves_averages", "predict swaps the averages in and, as Keras's class "
             "does, never back: the next fit starts from them", swap_ema_weights,
             {"predict": True}),
    Scenario("no_ema", "an optimizer without use_ema: the ValueError at the first swap",
             swap_ema_weights, {"use_ema": False}),
)

SPEC = ArtifactSpec(EMA, "SwapEMAWeights", EMA_SCENARIOS)
