"""A seeded one-layer model and its data, for tests that compare callbacks on real fits."""

from __future__ import annotations

import keras
import numpy as np


def tiny_model(seed: int = 3) -> keras.Model:
    """A compiled Dense(1) regression model with seeded weights (SGD, MSE, MAE metric)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mean_squared_error", metrics=["mean_absolute_error"])
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    """48 seeded samples of 4 features and a noisy sum as the target."""
    rng = np.random.default_rng(0)
    x = rng.random((48, 4)).astype("float32")
    y = (x.sum(axis=1) + rng.normal(size=48)).astype("float32")
    return x, y
