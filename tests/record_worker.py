"""Recorded runs for replay's tests: small fits logged by Keras's CSVLogger and TensorBoard.

Run as `python record_worker.py OUT` with KERAS_BACKEND set (prints one JSON line), or call
`record(OUT)` in a process whose Keras backend is already chosen.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import keras
import numpy as np

EPOCHS = 24
PATIENCES = (1, 4)


def _fit(callbacks: list, epochs: int = EPOCHS) -> dict:
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    x = rng.normal(size=(192, 4)).astype("float32")
    y = (0.3 * x[:, :1] + rng.normal(scale=1.0, size=(192, 1))).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    history = model.fit(x, y, epochs=epochs, batch_size=72, validation_split=0.25,
                        shuffle=False, verbose=0, callbacks=callbacks)
    return history.history


def record(out: str | Path) -> dict:
    """Fit the same seeded model several ways and keep its logs under `out`.

    `free`: no callback but the loggers (CSVLogger `free.csv`, TensorBoard `tb_free/`, History
    `free.json`); `stopped[p]`: the epochs EarlyStopping(patience=p) ran, and the 1-based epoch
    it stopped at (None when it did not); `plateau`: a run
    trained with ReduceLROnPlateau(patience=2) and EarlyStopping(patience=5), logged with its
    learning rate (`plateau.csv`, `tb_plateau/`), and the epochs it ran.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    free = _fit([keras.callbacks.CSVLogger(str(out / "free.csv")),
                 keras.callbacks.TensorBoard(str(out / "tb_free"))])
    (out / "free.json").write_text(json.dumps(free))
    stopped = {}
    for p in PATIENCES:
        early = keras.callbacks.EarlyStopping(patience=p)
        ran = len(_fit([early])["loss"])
        stopped[p] = [ran, early.stopped_epoch + 1 if early.stopped_epoch else None]
    plateau = _fit([keras.callbacks.ReduceLROnPlateau(patience=2, factor=0.5, min_delta=0),
                    keras.callbacks.EarlyStopping(patience=5),
                    keras.callbacks.CSVLogger(str(out / "plateau.csv")),
                    keras.callbacks.TensorBoard(str(out / "tb_plateau"))])
    return {"backend": keras.backend.backend(), "free_val_loss": free["val_loss"],
            "stopped": stopped, "plateau_epochs": len(plateau["loss"]),
            "plateau_lr": plateau.get("learning_rate")}


if __name__ == "__main__":
    print(json.dumps(record(sys.argv[1])))
