"""Compiled rules under data-parallel training: the same decisions as Keras's classes, files once.

One backend per process, with two devices made on the CPU: TensorFlow's `MirroredStrategy`
over two logical CPU devices, or Keras's JAX `DataParallel` over two host devices (the parent
sets `XLA_FLAGS=--xla_force_host_platform_device_count=2` before JAX starts). Each pair trains
the same seeded model under the strategy, once with the Keras callback and once with the
`cbdsl.callbacks` drop-in, and records learning rates, the stop epoch, History and a digest of
the weights. A rule file that appends one line per epoch shows that a file action runs once per
event, not once per replica.

Run: `KERAS_BACKEND=tensorflow python -m cbdsl.conformance.distributed` prints one JSON line,
`{backend, replicas, devices, results: {run: {keras, cbdsl}}, lines}`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from typing import Any

REPLICAS = 2
LOG_POLICY = """
callback epoch_log(path = "epochs.log") {
  on train_begin do write "" to path
  on epoch_end do append json({"epoch": epoch, "loss": loss}) to path
}
"""


def _strategy(backend: str) -> tuple[Any, list[str]]:
    """A context that makes and compiles models across two CPU devices, and their names."""
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS)
        names = [d.name for d in tf.config.list_logical_devices("CPU")][:REPLICAS]
        strategy = tf.distribute.MirroredStrategy(names)
        assert strategy.num_replicas_in_sync == REPLICAS
        return strategy.scope, names
    if backend == "jax":
        import keras

        devices = keras.distribution.list_devices("cpu")
        if len(devices) < REPLICAS:
            raise SystemExit(f"jax sees {len(devices)} CPU device(s); run with XLA_FLAGS="
                             f"--xla_force_host_platform_device_count={REPLICAS}")
        keras.distribution.set_distribution(
            keras.distribution.DataParallel(devices=devices[:REPLICAS]))
        return contextlib.nullcontext, [str(d) for d in devices[:REPLICAS]]
    raise SystemExit(f"no data-parallel strategy for the {backend} backend here")


def _pairs() -> dict[str, tuple[Callable[[Any], list], Callable[[Any], list]]]:
    from cbdsl import callbacks as drop_ins

    def both(name: str, **kwargs: Any):
        import keras

        return (lambda: [getattr(keras.callbacks, name)(**kwargs)],
                lambda: [getattr(drop_ins, name)(**kwargs)])

    return {
        "reduce_lr_on_plateau": both("ReduceLROnPlateau", monitor="val_loss", factor=0.5,
                                     patience=1, min_delta=1e-3, verbose=1),
        "early_stopping": both("EarlyStopping", monitor="val_loss", patience=2,
                               min_delta=1e-3, restore_best_weights=True, verbose=1),
    }


def run() -> dict[str, Any]:
    """Train every pair under the backend's strategy; see the module docstring."""
    import keras

    from cbdsl.conformance.fit import train

    backend = keras.backend.backend()
    scope, devices = _strategy(backend)
    results: dict[str, dict[str, Any]] = {}
    for name, (reference, compiled) in _pairs().items():
        results[name] = {}
        wanted = None  # the Keras class's attribute names, read from both after the fit
        for who, make in (("keras", reference), ("cbdsl", compiled)):
            with scope():
                results[name][who] = train(lambda calls, make=make: make(), lr=0.2,
                                           attributes=wanted)
            wanted = [list(a) for a in results[name][who]["attributes"]]
    import cbdsl

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "epochs.log")
        (logger,) = cbdsl.compile(LOG_POLICY, path=path)
        with scope():
            record = train(lambda calls: [logger], lr=0.2)
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    return {"backend": backend, "replicas": REPLICAS, "devices": devices, "results": results,
            "lines": lines, "epochs_run": record["epochs_run"],
            "history_loss": record["history"]["loss"]}


def main() -> int:
    json.dump(run(), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
