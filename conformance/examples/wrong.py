"""Deliberately wrong callbacks, each one small mistake away from Keras, that the suite catches.

Run one: `cbdsl conform --impl cbdsl.conformance.examples.wrong:OffByOnePatience
--spec early_stopping`. Each is the Keras class with the mistake added, so any divergence the
suite reports comes from the mistake alone.
"""

from __future__ import annotations

from typing import Any

import keras


class OffByOnePatience(keras.callbacks.EarlyStopping):
    """An EarlyStopping that stops one epoch late: patience counted from 0, not from 1."""

    def __init__(self, patience: int = 0, **kwargs: Any):
        super().__init__(patience=patience + 1, **kwargs)


class WrongSignMinDelta(keras.callbacks.EarlyStopping):
    """An EarlyStopping that applies `min_delta` with the wrong sign, so a change smaller
    than `min_delta` (even a worsening one) counts as an improvement."""

    def _set_monitor_op(self) -> None:
        super()._set_monitor_op()
        self.min_delta = -self.min_delta


class NoBaseline(keras.callbacks.EarlyStopping):
    """An EarlyStopping whose constructor lacks `baseline`: building it with one is a
    TypeError, which the report shows with its message."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0, patience: int = 0,
                 verbose: int = 0, mode: str = "auto", restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        super().__init__(monitor=monitor, min_delta=min_delta, patience=patience,
                         verbose=verbose, mode=mode, restore_best_weights=restore_best_weights,
                         start_from_epoch=start_from_epoch)


class BoomAtSecondEpoch(keras.callbacks.EarlyStopping):
    """An EarlyStopping that raises `RuntimeError("boom")` at the end of its second epoch."""

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        if epoch == 1:
            raise RuntimeError("boom")
        super().on_epoch_end(epoch, logs)


class GuessedDirection(keras.callbacks.EarlyStopping):
    """An EarlyStopping that guesses `min` for a metric of no known direction under
    `mode="auto"`, where Keras raises a ValueError."""

    def _set_monitor_op(self) -> None:
        try:
            super()._set_monitor_op()
        except ValueError:
            self.monitor_op = keras.ops.less


class OffByOnePlateau(keras.callbacks.ReduceLROnPlateau):
    """A ReduceLROnPlateau that reduces the learning rate one epoch late."""

    def __init__(self, patience: int = 10, **kwargs: Any):
        super().__init__(patience=patience + 1, **kwargs)


class WrongSignPlateau(keras.callbacks.ReduceLROnPlateau):
    """A ReduceLROnPlateau that applies `min_delta` with the wrong sign."""

    def _set_monitor_op(self) -> None:
        super()._set_monitor_op()
        self.min_delta = -self.min_delta


class SemicolonCSVLogger(keras.callbacks.CSVLogger):
    """A CSVLogger whose default separator is `;` instead of `,`."""

    def __init__(self, filename: Any, separator: str = ";", append: bool = False):
        super().__init__(filename, separator=separator, append=append)


class OffByOneCheckpoint(keras.callbacks.ModelCheckpoint):
    """A ModelCheckpoint that fills `{epoch}` in file names from 0, not from 1."""

    def _get_file_path(self, epoch: int, batch: int | None, logs: Any) -> str:
        return super()._get_file_path(epoch - 1, batch, logs)


class OneBasedRemoteMonitor(keras.callbacks.RemoteMonitor):
    """A RemoteMonitor that sends epochs counted from 1, not from 0."""

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        super().on_epoch_end(epoch + 1, logs)
