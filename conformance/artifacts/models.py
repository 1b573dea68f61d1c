"""The small seeded models and data the scenarios fit, made once per process where they can be."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.spec import SEED

_MODELS: dict[tuple[Any, ...], tuple[Any, str, list, list]] = {}


def _reused(key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    """The model `make()` returns, made once per process and key, and put back before each
    use to the weights and optimizer state it was made with: a fit of it is a fresh
    model's fit, without tracing the training step again (most of a small fit's time on
    TensorFlow and JAX). A model whose configuration changed is made again: saving as
    legacy `.h5` takes the optimizer out of the model's compile config, for one."""
    import keras

    from cbdsl.conformance import artifacts  # REUSE_MODELS, the package's switch

    if not artifacts.REUSE_MODELS:
        return make()
    key = (keras.backend.backend(), *key)
    kept = _MODELS.get(key)
    if kept is not None:
        model, fingerprint, weights, state = kept
        if _fingerprint(model) == fingerprint:
            model.set_weights(weights)
            for variable, value in zip(model.optimizer.variables, state, strict=True):
                variable.assign(value)
            keras.utils.set_random_seed(SEED)
            return model
    model = make()
    _MODELS[key] = (model, _fingerprint(model), model.get_weights(),
                    [keras.ops.convert_to_numpy(v) for v in model.optimizer.variables])
    return model


def _fingerprint(model: Any) -> str:
    return json.dumps([model.get_config(), model.get_compile_config(), id(model.optimizer),
                       [v.path for v in model.weights],
                       [v.path for v in model.optimizer.variables]], sort_keys=True,
                      default=repr)


def regression_model(seed: int = SEED) -> Any:
    """A compiled Dense(1) regression model with seeded weights (SGD, MSE, MAE metric)."""
    return _reused(("regression", seed), lambda: make_regression(seed))


def make_regression(seed: int) -> Any:
    """A new regression model, made as `regression_model` makes it."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mean_squared_error", metrics=["mean_absolute_error"])
    return model


def regression_data() -> tuple[np.ndarray, np.ndarray]:
    """48 seeded samples of 4 features and a noisy sum as the target."""
    rng = np.random.default_rng(0)
    x = rng.random((48, 4)).astype("float32")
    y = (x.sum(axis=1) + rng.normal(size=48)).astype("float32")
    return x, y


def fit_regression(model: Any, callbacks: list, *, epochs: int = 3,
                   validation: bool = True) -> Any:
    """Fit the regression model: 16 samples a batch, the last quarter for validation."""
    x, y = regression_data()
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0,
                     validation_split=0.25 if validation else 0.0, callbacks=callbacks)


CLASSIFIER_BATCHES = 4  # per epoch: 48 samples, validation_split 0.25, batch_size 9


def classifier_model(steps_per_execution: int = 1) -> Any:
    """A compiled two-layer binary classifier with seeded weights (SGD 0.5, accuracy)."""
    return _reused(("classifier", steps_per_execution),
                   lambda: make_classifier(steps_per_execution))


def make_classifier(steps_per_execution: int = 1) -> Any:
    """A new classifier, made as `classifier_model` makes it."""
    import keras

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return model


def classifier_data() -> tuple[np.ndarray, np.ndarray]:
    """48 seeded samples of 4 features; the label mostly follows the first."""
    rng = np.random.default_rng(0)
    x = rng.random((48, 4)).astype("float32")
    y = ((x[:, 0] + rng.normal(scale=0.3, size=48)) > 0.5).astype("float32")
    return x, y


def fit_classifier(model: Any, callbacks: list, *, epochs: int = 4,
                   validation: bool = True) -> Any:
    """Fit the classifier: 9 samples a batch (4 batches an epoch with validation)."""
    x, y = classifier_data()
    return model.fit(x, y, batch_size=9, epochs=epochs, verbose=0, shuffle=False,
                     validation_split=0.25 if validation else 0.0, callbacks=callbacks)


def logs_editor(edit: Callable[[int, dict], None] | None) -> list:
    """A LambdaCallback placed before the callback under test, changing the logs it sees."""
    if edit is None:
        return []
    import keras

    return [keras.callbacks.LambdaCallback(on_epoch_end=edit)]


# ------------------------------------------------- for the callbacks built on effects


def named_model(embedding: bool = False, use_ema: bool = False) -> Any:
    """A small seeded regression model whose names are all given, so that two models made
    one after the other have the same configuration (TensorBoard writes it)."""
    import keras

    keras.utils.set_random_seed(SEED)
    if embedding:
        layers = [keras.Input((4,), name="tokens", dtype="int32"),
                  keras.layers.Embedding(10, 3, name="embed"), keras.layers.Flatten(name="flat"),
                  keras.layers.Dense(1, name="out")]
    else:
        layers = [keras.Input((4,), name="features"), keras.layers.Dense(3, name="hidden"),
                  keras.layers.Dense(1, name="out")]
    model = keras.Sequential(layers, name="net")
    optimizer = keras.optimizers.SGD(0.1, name="sgd", use_ema=use_ema, ema_momentum=0.9,
                                     ema_overwrite_frequency=None)
    model.compile(optimizer=optimizer, loss="mse", metrics=["mae"])
    return model


def named_data(embedding: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """50 seeded samples: 3 batches of 16 for training and one of 10 for validation."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 10, (50, 4)).astype("int32") if embedding else \
        rng.random((50, 4)).astype("float32")
    y = (np.asarray(x, "float32").sum(axis=1, keepdims=True) / 4).astype("float32")
    return x, y


def weights_of(model: Any) -> list:
    """The model's weights as lists."""
    return [np.asarray(w).tolist() for w in model.get_weights()]


def fit_named(model: Any, callbacks: list, *, epochs: int = 3, verbose: Any = 0,
              validation: bool = True, embedding: bool = False, **kwargs: Any) -> Any:
    """Fit the named model: 16 samples a batch, the last fifth for validation."""
    x, y = named_data(embedding)
    return model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=verbose,
                     validation_split=0.2 if validation else 0.0, callbacks=callbacks, **kwargs)
