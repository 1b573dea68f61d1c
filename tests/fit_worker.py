"""Runs in a subprocess per Keras backend: the mission sentence against ReduceLROnPlateau.

Prints one JSON line: per-epoch val_loss and learning rate for both seeded runs.
"""

from __future__ import annotations

import json
import sys

import keras
import numpy as np

import cbdsl

MISSION = "on epoch_end when val_loss stalls 5 do lr *= 0.2"


def run(callbacks, epochs: int):
    keras.utils.set_random_seed(3)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(320, 6)).astype("float32")
    y = (0.1 * x[:, :1] + rng.normal(scale=1.0, size=(320, 1))).astype("float32")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    lrs = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: lrs.append(
            float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
    history = model.fit(x, y, epochs=epochs, batch_size=32, validation_split=0.25,
                        shuffle=False, verbose=0, callbacks=[*callbacks, recorder])
    return {"val_loss": history.history["val_loss"], "lr": lrs}


def main() -> None:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    compiled = run(cbdsl.compile(MISSION), epochs)
    native = run([keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=5, min_delta=0)],
                 epochs)
    print(json.dumps({"backend": keras.backend.backend(), "compiled": compiled,
                      "native": native}))


if __name__ == "__main__":
    main()
