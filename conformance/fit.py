"""Real `model.fit` runs of every built-in rule file against its Keras class, on one backend.

Each pair trains the same seeded model twice, once with the Keras callback and once with the
`cbdsl.callbacks` drop-in, and records the learning rate per epoch, the epoch and batch where
training stopped, the History that `fit` returned, printed output, the Python hooks' calls, a
digest of the final weights, and every public attribute the Keras class stores, read from both
after the fit. The two records must be equal, key for key.

Run: `KERAS_BACKEND=jax python -m cbdsl.conformance.fit` prints one JSON line,
`{backend, results: {run: {keras, cbdsl}}}`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

EPOCHS = 12

Make = Callable[[Any], Callable[[list], list]]  # callbacks namespace -> (calls -> callbacks)


def data(diverge: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A seeded regression problem; `diverge` scales it so SGD at lr=1 blows up to NaN."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(96, 4)).astype("float32")
    y = (x @ np.array([[0.5], [-1.0], [0.25], [2.0]], "float32")
         + rng.normal(scale=0.8, size=(96, 1))).astype("float32")
    return (x * 1e3, y * 1e3) if diverge else (x, y)


def train(make_callbacks: Callable[[list], list], *, lr: float = 0.05,
          diverge: bool = False, attributes: list[list[str]] | None = None) -> dict[str, Any]:
    """Train the seeded model with the callbacks `make_callbacks(calls)` builds.

    Args:
        attributes: the attribute names to read from each callback after the fit; by
            default, the public attributes each one stores (Keras's classes' own).

    Returns:
        What the run did, as plain JSON-ready data: `lr` per epoch, `epochs_run`,
        `batches_run`, `history` and `history_epoch` (what `fit` returned), `printed`,
        `calls` (the Python hooks' calls), `error` (a `RuntimeError`'s message),
        `weights` (a SHA-256 of the final weights), `device` (where they live) and
        `attributes` (each callback's attributes after the fit, by name).
    """
    import keras

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
    from cbdsl.dryrun import attribute_value, public_attributes

    names = attributes or [public_attributes(cb) for cb in callbacks]
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
        "device": device_of(model),
        "attributes": [{name: attribute_value(cb, name) for name in wanted}
                       for cb, wanted in zip(callbacks, names, strict=True)],
    }


def device_of(model: Any) -> str:
    """Where the model's first weight lives, as the backend names it (`cpu`, `cuda:0`,
    `/job:localhost/replica:0/task:0/device:GPU:0`)."""
    value = model.weights[0].value
    device = getattr(value, "device", None)
    if callable(device):
        device = device()
    if device is None and hasattr(value, "devices"):
        device = next(iter(value.devices()))
    return str(device)


def _plain(value: Any) -> Any:
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
    """The LearningRateScheduler runs' schedule: `lr` for three epochs, then 0.7 per epoch."""
    return lr if epoch < 3 else lr * 0.7


# run name -> the built-in (rule file) it is about, how it builds its callbacks, and whether
# it trains on the diverging data (lr=1.0, so the loss turns NaN)
RUNS: dict[str, tuple[str, Make, bool]] = {
    "early_stopping": ("early_stopping", lambda ns: lambda calls: [ns.EarlyStopping(
        monitor="val_loss", patience=1, min_delta=0.02, restore_best_weights=True,
        verbose=1)], False),
    "early_stopping_baseline": ("early_stopping", lambda ns: lambda calls: [ns.EarlyStopping(
        monitor="val_mae", mode="max", baseline=1e9, patience=3, start_from_epoch=2,
        verbose=1)], False),
    "reduce_lr_on_plateau": ("reduce_lr_on_plateau", lambda ns: lambda calls: [
        ns.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=0.05,
                             cooldown=1, min_lr=0.01, verbose=1)], False),
    "learning_rate_scheduler": ("learning_rate_scheduler", lambda ns: lambda calls: [
        ns.LearningRateScheduler(schedule, verbose=1)], False),
    "history": ("history", lambda ns: lambda calls: [ns.History()], False),
    "lambda_callback": ("lambda_callback", lambda ns: lambda calls: [ns.LambdaCallback(
        on_epoch_end=lambda epoch, logs: calls.append(["epoch_end", epoch, dict(logs)]),
        on_train_begin=lambda logs: calls.append(["train_begin", logs]),
        on_train_end=lambda logs: calls.append(["train_end", logs]))], False),
    "terminate_on_nan": ("terminate_on_nan", lambda ns: lambda calls: [ns.TerminateOnNaN()],
                         True),
    "terminate_on_nan_raise": ("terminate_on_nan", lambda ns: lambda calls: [
        ns.TerminateOnNaN(raise_error=True)], True),
}

NO_FIT = {"base_logger": "Keras 3 has no BaseLogger; its reference is Keras 2's (tf_keras), "
                         "which cannot take part in a Keras 3 fit"}


def deterministic() -> None:
    """Make the backend's kernels deterministic, so two seeded runs agree bit for bit."""
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def run_pair(name: str) -> dict[str, dict[str, Any]]:
    """Train run `name` with the Keras class and with the drop-in: `{keras, cbdsl}`."""
    import keras

    from cbdsl import callbacks as dropin

    _, make, diverge = RUNS[name]
    options = {"lr": 1.0, "diverge": True} if diverge else {}
    theirs = train(make(keras.callbacks), **options)
    wanted = [list(attributes) for attributes in theirs["attributes"]]  # Keras's names
    return {"keras": theirs, "cbdsl": train(make(dropin), attributes=wanted, **options)}


def compare(pair: dict[str, dict[str, Any]]) -> str | None:
    """None when the drop-in's run equals the Keras run; else the first key that differs.

    Args:
        pair: `{"keras": run, "cbdsl": run}` as `run_pair` returns it.
    """
    keras_run, cbdsl_run = pair["keras"], pair["cbdsl"]
    for key in keras_run:
        if cbdsl_run.get(key) != keras_run[key]:
            return (f"{key} differs\n  keras: {_show(keras_run[key])}\n"
                    f"  cbdsl: {_show(cbdsl_run.get(key, '<missing>'))}")
    return None


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 300 else text[:297] + "..."


def main() -> None:
    """Run every pair on the current backend and print one JSON line."""
    import keras

    deterministic()
    results = {name: run_pair(name) for name in RUNS}
    print(json.dumps({"backend": keras.backend.backend(), "results": results}))


if __name__ == "__main__":
    main()
