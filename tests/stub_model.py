"""A stand-in for a Keras model: the attributes callbacks touch, and nothing else."""

from __future__ import annotations

import numpy as np


class StubOptimizer:
    def __init__(self, learning_rate: float):
        self.learning_rate = learning_rate


class StubModel:
    """Optimizer with a settable float learning rate, stop flags, and numbered weights."""

    def __init__(self, learning_rate: float = 0.1):
        self.optimizer = StubOptimizer(learning_rate)
        self.stop_training = False
        self.weights_version = 0
        self.metrics = []

    def get_weights(self):
        return [np.full((2,), self.weights_version, dtype="float32")]

    def set_weights(self, weights):
        self.weights_version = int(weights[0][0])


def drive(callbacks, model, trace, *, epochs=None):
    """Run callbacks over a trace of epoch logs as `fit` would; returns (lrs, stop_epoch)."""
    for cb in callbacks:
        cb.set_model(model)
        cb.set_params({"epochs": epochs or len(trace), "steps": 1, "verbose": 0})
    for cb in callbacks:
        cb.on_train_begin({})
    lrs, stopped = [], None
    for epoch, logs in enumerate(trace):
        model.weights_version = epoch
        for cb in callbacks:
            cb.on_epoch_begin(epoch, {})
        logs = dict(logs)
        for cb in callbacks:
            cb.on_epoch_end(epoch, logs)
        lrs.append(float(model.optimizer.learning_rate))
        if model.stop_training:
            stopped = epoch
            break
    for cb in callbacks:
        cb.on_train_end({})
    return lrs, stopped
