"""Every drop-in beside Keras's class on one backend: the public attributes Keras's class stores,
compared at construction and after a real fit of each. Prints one JSON line:
`{backend, differing: {name: {construct: [...], fit: [...]}}}`.

Run: `KERAS_BACKEND=jax python tests/dropin_attributes_worker.py`.
"""

from __future__ import annotations

import json
import pathlib
import sys
import tempfile
import warnings

import keras
import numpy as np
from test_dropin_classes import NAMES, arguments_for, differing

from cbdsl import callbacks as dropin


def fit(cb) -> None:
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, use_ema=True), loss="mse")
    x = np.random.RandomState(0).rand(32, 3).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RemoteMonitor finds no server, as it should
        model.fit(x, x.sum(axis=1, keepdims=True), epochs=3, batch_size=8, verbose=0,
                  validation_split=0.25, callbacks=[cb])


def main() -> None:
    out = {}
    for name in NAMES:
        with tempfile.TemporaryDirectory() as folder:
            args = arguments_for(name, pathlib.Path(folder))
            theirs = getattr(keras.callbacks, name)(**args)
            ours = getattr(dropin, name)(**args)
            constructed = differing(theirs, ours)
            fit(theirs)
            fit(ours)
            out[name] = {"construct": sorted(constructed), "fit": sorted(differing(theirs, ours))}
    print(json.dumps({"backend": keras.backend.backend(), "differing": out}))


if __name__ == "__main__":
    sys.exit(main())
