"""Runs in a subprocess per Keras backend: every built-in rule file against its Keras class.

Each pair trains the same seeded model twice, once with the Keras callback and once with the
`cbdsl.callbacks` drop-in, and records the learning rate per epoch, the epoch and batch where
training stopped, the History that `fit` returned, printed output, the Python hooks' calls and
a digest of the final weights. Prints one JSON line: {backend, results: {spec: {keras, cbdsl}}}.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math

import keras
import numpy as np

from cbdsl import callbacks as dropin

EPOCHS = 12


def data(diverge: bool = False):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x @ np.array([[0.5], [-1.0], [0.25], [2.0]], "float32")
         + rng.normal(scale=0.8, size=(96, 1))).astype("float32")
    return (x * 1e3, y * 1e3) if diverge else (x, y)


def train(make_callbacks, *, lr: float = 0.05, diverge: bool = False) -> dict:
    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(6, activation="tanh"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss="mse",
                  metrics=["mae"])
    calls: list = []
    callbacks = make_callbacks(calls)
    lrs: list[float] = []
    batches: list[int] = []
    probe = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: lrs.append(
            float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))),
        on_train_batch_end=lambda batch, logs: batches.append(batch))
    x, y = data(diverge)
    out = io.StringIO()
    error = None
    history = None
    with contextlib.redirect_stdout(out):
        try:
            history = model.fit(x, y, epochs=EPOCHS, batch_size=16, validation_split=0.25,
                                shuffle=False, verbose=0, callbacks=[*callbacks, probe])
        except RuntimeError as exc:
            error = str(exc)
    weights = b"".join(np.asarray(w).tobytes() for w in model.get_weights())
    return {
        "lr": lrs,
        "epochs_run": len(lrs),
        "batches_run": len(batches),
        "history": _plain(history.history) if history is not None else None,
        "history_epoch": list(history.epoch) if history is not None else None,
        "printed": out.getvalue(),
        "calls": _plain(calls),
        "error": error,
        "weights": hashlib.sha256(weights).hexdigest(),
    }


def _plain(value):
    """JSON-ready, NaN and infinities spelled out."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else repr(value)
    return value


def schedule(epoch: int, lr: float) -> float:
    return lr if epoch < 3 else lr * 0.7


SPECS = {
    "early_stopping": lambda ns: lambda calls: [ns.EarlyStopping(
        monitor="val_loss", patience=1, min_delta=0.02, restore_best_weights=True, verbose=1)],
    "early_stopping_baseline": lambda ns: lambda calls: [ns.EarlyStopping(
        monitor="val_mae", mode="max", baseline=1e9, patience=3, start_from_epoch=2, verbose=1)],
    "reduce_lr_on_plateau": lambda ns: lambda calls: [ns.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=1, min_delta=0.05, cooldown=1, min_lr=0.01,
        verbose=1)],
    "learning_rate_scheduler": lambda ns: lambda calls: [ns.LearningRateScheduler(
        schedule, verbose=1)],
    "history": lambda ns: lambda calls: [ns.History()],
    "lambda_callback": lambda ns: lambda calls: [ns.LambdaCallback(
        on_epoch_end=lambda epoch, logs: calls.append(["epoch_end", epoch, dict(logs)]),
        on_train_begin=lambda logs: calls.append(["train_begin", logs]),
        on_train_end=lambda logs: calls.append(["train_end", logs]))],
}
DIVERGING = {
    "terminate_on_nan": lambda ns: lambda calls: [ns.TerminateOnNaN()],
    "terminate_on_nan_raise": lambda ns: lambda calls: [ns.TerminateOnNaN(raise_error=True)],
}


def main() -> None:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    results = {}
    for name, spec in SPECS.items():
        results[name] = {"keras": train(spec(keras.callbacks)), "cbdsl": train(spec(dropin))}
    for name, spec in DIVERGING.items():
        results[name] = {"keras": train(spec(keras.callbacks), lr=1.0, diverge=True),
                         "cbdsl": train(spec(dropin), lr=1.0, diverge=True)}
    print(json.dumps({"backend": keras.backend.backend(), "results": results}))


if __name__ == "__main__":
    main()
