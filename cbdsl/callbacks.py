"""Drop-in replacements for `keras.callbacks`: the same names and signatures, built from rule files.

Switching is one import line::

    from cbdsl.callbacks import EarlyStopping, ReduceLROnPlateau

Each name compiles the rule file of the same name in `cbdsl.rules` (`rules/` in the source
tree) with the arguments given, and returns the compiled callback. Its state reads as the
Keras class's attributes (`wait`, `best`, `stopped_epoch`, `best_epoch`, `history`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

__all__ = [
    "BackupAndRestore",
    "BaseLogger",
    "CSVLogger",
    "EarlyStopping",
    "History",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ProgbarLogger",
    "ReduceLROnPlateau",
    "RemoteMonitor",
    "SwapEMAWeights",
    "TensorBoard",
    "TerminateOnNaN",
    "rule_file",
]


def rule_file(name: str) -> str:
    """The path of a built-in rule file, e.g. `rule_file("early_stopping")`."""
    return str(resources.files("cbdsl.rules").joinpath(f"{name}.cbd"))


@functools.cache
def _checked(name: str):
    import cbdsl

    return cbdsl.check(rule_file(name))


def _build(name: str, arguments: dict[str, Any]) -> Any:
    from cbdsl.compiler import compile_program

    (callback,) = compile_program(_checked(name), **arguments)
    return callback


def EarlyStopping(
    monitor: str = "val_loss",
    min_delta: float = 0,
    patience: int = 0,
    verbose: int = 0,
    mode: str = "auto",
    baseline: float | None = None,
    restore_best_weights: bool = False,
    start_from_epoch: int = 0,
) -> Any:
    """Stop training when a monitored metric has stopped improving.

    Compiled from `rules/early_stopping.cbd`; arguments as `keras.callbacks.EarlyStopping`.

    Args:
        monitor: quantity to be monitored.
        min_delta: minimum change that counts as an improvement.
        patience: epochs without improvement after which training stops.
        verbose: 1 prints a message when the callback acts.
        mode: `"auto"`, `"min"` or `"max"`.
        baseline: a value the metric must beat before patience resets.
        restore_best_weights: restore the weights of the best epoch when training ends.
        start_from_epoch: epochs to wait before starting to monitor.

    Returns:
        A `keras.callbacks.Callback` with `wait`, `best`, `best_epoch`, `stopped_epoch`.
    """
    return _build("early_stopping", dict(
        monitor=monitor, min_delta=min_delta, patience=patience, verbose=verbose, mode=mode,
        baseline=baseline, restore_best_weights=restore_best_weights,
        start_from_epoch=start_from_epoch))


def ReduceLROnPlateau(
    monitor: str = "val_loss",
    factor: float = 0.1,
    patience: int = 10,
    verbose: int = 0,
    mode: str = "auto",
    min_delta: float = 1e-4,
    cooldown: int = 0,
    min_lr: float = 0.0,
    **kwargs: Any,
) -> Any:
    """Reduce the learning rate when a metric has stopped improving.

    Compiled from `rules/reduce_lr_on_plateau.cbd`; arguments as
    `keras.callbacks.ReduceLROnPlateau` (extra keyword arguments are accepted and ignored,
    as Keras does).

    Args:
        monitor: quantity to be monitored.
        factor: factor by which the learning rate is reduced (must be below 1).
        patience: epochs without improvement after which the rate is reduced.
        verbose: 1 prints a message at each reduction.
        mode: `"auto"`, `"min"` or `"max"`.
        min_delta: minimum change that counts as an improvement.
        cooldown: epochs to wait after a reduction before counting again.
        min_lr: lower bound on the learning rate.
        **kwargs: ignored, for compatibility.

    Returns:
        A `keras.callbacks.Callback` with `wait` and `best`.

    Raises:
        ValueError: `factor >= 1.0`.
    """
    return _build("reduce_lr_on_plateau", dict(
        monitor=monitor, factor=factor, patience=patience, verbose=verbose, mode=mode,
        min_delta=min_delta, cooldown=cooldown, min_lr=min_lr))


def TerminateOnNaN(raise_error: bool = False) -> Any:
    """Terminate training when a NaN or infinite loss is encountered.

    Compiled from `rules/terminate_on_nan.cbd`.

    Args:
        raise_error: raise a RuntimeError instead of stopping training quietly.
    """
    return _build("terminate_on_nan", dict(raise_error=raise_error))


def LearningRateScheduler(
    schedule: Callable[..., float] | dict[int, float] | str,
    verbose: int = 0,
) -> Any:
    """Set the learning rate from a schedule at the start of every epoch.

    Compiled from `rules/learning_rate_scheduler.cbd`.

    Args:
        schedule: a function `schedule(epoch, lr)` (or `schedule(epoch)`) returning a
            float, as Keras takes it; a table `{epoch: lr}` (a step schedule); or an
            expression as text, such as `"0.1 * 0.9 ** epoch"`.
        verbose: 1 prints the rate set at each epoch.
    """
    return _build("learning_rate_scheduler", dict(schedule=schedule, verbose=verbose))


def History() -> Any:
    """Record the logs of every epoch; `model.history` and `fit`'s return value.

    Compiled from `rules/history.cbd`. Reads as Keras's: `history` (a dict of lists, kept
    across `fit` calls), `epoch` (the epochs of this `fit`), `params`, `model`.
    """
    return _build("history", {})


def BaseLogger(stateful_metrics: Iterable[str] | None = None) -> Any:
    """Average each metric over the batches of an epoch, as Keras 2's BaseLogger did.

    Compiled from `rules/base_logger.cbd`.

    Args:
        stateful_metrics: names of metrics that are logged as their last value instead
            of being averaged.
    """
    names = {name: True for name in stateful_metrics or ()}
    return _build("base_logger", dict(stateful_metrics=names))


_LAMBDA_HOOKS = (
    "on_epoch_begin", "on_epoch_end", "on_train_begin", "on_train_end",
    "on_train_batch_begin", "on_train_batch_end", "on_batch_begin", "on_batch_end",
    "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
    "on_predict_begin", "on_predict_end", "on_predict_batch_begin", "on_predict_batch_end",
)


def LambdaCallback(
    on_epoch_begin: Callable[..., Any] | None = None,
    on_epoch_end: Callable[..., Any] | None = None,
    on_train_begin: Callable[..., Any] | None = None,
    on_train_end: Callable[..., Any] | None = None,
    on_train_batch_begin: Callable[..., Any] | None = None,
    on_train_batch_end: Callable[..., Any] | None = None,
    **kwargs: Any,
) -> Any:
    """Call the given Python functions at the hooks they are named after.

    Compiled from `rules/lambda_callback.cbd`. As in Keras, any other hook can be passed
    by keyword (`on_test_end=...`), and other keyword arguments become attributes.

    Args:
        on_epoch_begin: called as `f(epoch, logs)`.
        on_epoch_end: called as `f(epoch, logs)`.
        on_train_begin: called as `f(logs)`.
        on_train_end: called as `f(logs)`.
        on_train_batch_begin: called as `f(batch, logs)`.
        on_train_batch_end: called as `f(batch, logs)`.
        **kwargs: other hooks by name, or attributes to set.
    """
    hooks = dict(on_epoch_begin=on_epoch_begin, on_epoch_end=on_epoch_end,
                 on_train_begin=on_train_begin, on_train_end=on_train_end,
                 on_train_batch_begin=on_train_batch_begin,
                 on_train_batch_end=on_train_batch_end)
    hooks.update({k: v for k, v in kwargs.items() if k in _LAMBDA_HOOKS})
    callback = _build("lambda_callback", hooks)
    for key, value in kwargs.items():
        if key not in _LAMBDA_HOOKS:
            setattr(callback, key, value)
    return callback


def CSVLogger(filename: str | os.PathLike[str], separator: str = ",",
              append: bool = False) -> Any:
    """Stream the logs of every epoch to a CSV file, as `keras.callbacks.CSVLogger` does.

    Compiled from `rules/csv_logger.cbd`. The file is the Keras class's, byte for byte: a
    header of `epoch` and the sorted keys of the first epoch's logs (with a `val_` twin of
    each when none is a validation metric), `NA` for a key an epoch lacks, `\r\n` line ends.

    Args:
        filename: path of the CSV file, e.g. `"run/log.csv"`. Its folder must exist.
        separator: the one character between values.
        append: `True` appends to an existing file (its header is written only when the
            file is empty); `False` overwrites it.

    Returns:
        A `keras.callbacks.Callback`.

    Example:

    ```python
    csv_logger = CSVLogger("training.log")
    model.fit(x_train, y_train, callbacks=[csv_logger])
    ```
    """
    return _build("csv_logger", dict(filename=os.fspath(filename), separator=separator,
                                     append=append))


def RemoteMonitor(
    root: str = "http://localhost:9000",
    path: str = "/publish/epoch/end/",
    field: str = "data",
    headers: dict[str, str] | None = None,
    send_as_json: bool = False,
) -> Any:
    """Callback used to stream events to a server.

    Compiled from `rules/remote_monitor.cbd`; arguments as `keras.callbacks.RemoteMonitor`.
    Requires the `requests` library. At the end of each epoch, `{"epoch": epoch, **logs}`
    (NumPy values as plain numbers) is sent by HTTP POST to `root + path`: as JSON when
    `send_as_json`, else as the form field `field` holding that JSON text. A server that
    cannot be reached gives the Keras warning and training goes on.

    Unlike Keras's class, which waits as long as the server does, each request gives up
    after 5 seconds (to connect, then between bytes of the answer) and warns as for an
    unreachable server: a server that hangs cannot hang training.

    Args:
        root: String; root url of the target server.
        path: String; path relative to `root` to which the events will be sent.
        field: String; JSON field under which the data will be stored. The field is used
            only if the payload is sent within a form (i.e. when `send_as_json=False`).
        headers: Dictionary; optional custom HTTP headers.
        send_as_json: Boolean; whether the request should be sent as `"application/json"`.

    Returns:
        A `keras.callbacks.Callback`.

    Raises:
        ImportError: at the end of an epoch, when `requests` is not installed.
    """
    return _build("remote_monitor", dict(root=root, path=path, field=field, headers=headers,
                                         send_as_json=send_as_json))


def ModelCheckpoint(
    filepath: str | os.PathLike[str],
    monitor: str = "val_loss",
    verbose: int = 0,
    save_best_only: bool = False,
    save_weights_only: bool = False,
    mode: str = "auto",
    save_freq: str | int = "epoch",
    initial_value_threshold: float | None = None,
) -> Any:
    """Save the model or its weights at some frequency.

    Compiled from `rules/model_checkpoint.cbd`; arguments, file names, messages, warnings and
    errors as `keras.callbacks.ModelCheckpoint`.

    Args:
        filepath: path of the file to save, ending in `.keras` (or `.h5`), or in `.weights.h5`
            with `save_weights_only=True`. It may hold fields filled at each save:
            `{epoch:02d}` and `{batch}` (1-based) and the event's log metrics
            (`"{epoch:02d}-{val_loss:.2f}.keras"`).
        monitor: the metric compared with `save_best_only`.
        verbose: 1 prints a message at each save or comparison.
        save_best_only: save only when `monitor` improves on the best so far.
        save_weights_only: save the weights (`model.save_weights`) instead of the model.
        mode: `"auto"`, `"min"` or `"max"`: the direction in which `monitor` improves.
        save_freq: `"epoch"` to save at the end of every epoch, or an int: save once that
            many batches have ended since the last save (counted across epochs).
        initial_value_threshold: the first best value to beat with `save_best_only`.

    Returns:
        A `keras.callbacks.Callback`; `watch` holds the best value so far (`watch.best`).

    Raises:
        ValueError: `save_freq` is neither `"epoch"` nor an int, or `filepath` does not end
            as the format requires.

    Example:

    ```python
    checkpoint = ModelCheckpoint("ckpt/{epoch:02d}.keras", monitor="val_loss",
                                 save_best_only=True)
    model.fit(x, y, validation_split=0.2, epochs=10, callbacks=[checkpoint])
    ```
    """
    return _build("model_checkpoint", dict(
        filepath=os.fspath(filepath), monitor=monitor, verbose=verbose,
        save_best_only=save_best_only, save_weights_only=save_weights_only, mode=mode,
        save_freq=save_freq, initial_value_threshold=initial_value_threshold))


def SwapEMAWeights(swap_on_epoch: bool = False, restore_after_predict: bool = False) -> Any:
    """Evaluate with the optimizer's moving averages of the weights (EMA), then swap back.

    Compiled from `rules/swap_ema_weights.cbd`; arguments as `keras.callbacks.SwapEMAWeights`,
    plus `restore_after_predict`. Use it with an optimizer built with `use_ema=True`.

    Args:
        swap_on_epoch: also hold the averages in the model from each epoch's end to the next
            epoch's start (for callbacks such as ModelCheckpoint listed after this one), and
            end training with them.
        restore_after_predict: swap the trained weights back after `predict`. Keras's class
            leaves the averages in the model after `predict` (its `on_predict_end` tests the
            wrong way round); False, the default, does the same, as a drop-in.

    Returns:
        A `keras.callbacks.Callback`; `swapped` says whether the averages are in the model.

    Raises:
        ValueError: at the first swap, when the optimizer keeps no moving averages
            (`use_ema=False`), as Keras raises.
    """
    return _build("swap_ema_weights", dict(swap_on_epoch=swap_on_epoch,
                                           restore_after_predict=restore_after_predict))


def ProgbarLogger() -> Any:
    """Print a progress bar with the metrics, as Keras's ProgbarLogger (and `fit(verbose=1)`).

    Compiled from `rules/progbar_logger.cbd`. The bar is Keras's own `Progbar`; the callback
    counts as Keras's ProgbarLogger, so `fit` adds no bar of its own beside it.

    Returns:
        A `keras.callbacks.Callback` that is also a `keras.callbacks.ProgbarLogger`.
    """
    return _build("progbar_logger", {})


def BackupAndRestore(backup_dir: str | os.PathLike[str], save_freq: str | int = "epoch",
                     double_checkpoint: bool = False, delete_checkpoint: bool = True) -> Any:
    """Back up the training state, and resume from it when `fit` is started again.

    Compiled from `rules/backup_and_restore.cbd`; arguments and files as
    `keras.callbacks.BackupAndRestore` (either one resumes from the other's backup). The backup
    also holds the state of every compiled callback of the fit, which a resumed fit restores.

    Args:
        backup_dir: the directory of the backup; nothing else should be kept there.
        save_freq: `"epoch"` to back up at the end of every epoch, or an int: back up once
            that many batches have ended since the last backup.
        double_checkpoint: keep the previous backup too, to resume from if the latest one
            cannot be read.
        delete_checkpoint: remove the backup when training ends.

    Returns:
        A `keras.callbacks.Callback`.

    Raises:
        ValueError: `backup_dir` is empty or `save_freq` is neither `"epoch"` nor an int, and,
            at `fit`, when the model is not built.

    Example:

    ```python
    backup = BackupAndRestore("/tmp/backup")
    model.fit(x, y, epochs=10, callbacks=[backup, ReduceLROnPlateau(patience=2)])
    # killed at epoch 6? the same call resumes at epoch 6, with the rules' counters too
    ```
    """
    return _build("backup_and_restore", dict(
        backup_dir=os.fspath(backup_dir) if backup_dir is not None else None,
        save_freq=save_freq, double_checkpoint=double_checkpoint,
        delete_checkpoint=delete_checkpoint))


def TensorBoard(
    log_dir: str | os.PathLike[str] = "logs",
    histogram_freq: int = 0,
    write_graph: bool = True,
    write_images: bool = False,
    write_steps_per_second: bool = False,
    update_freq: str | int = "epoch",
    profile_batch: int | str | tuple[int, int] = 0,
    embeddings_freq: int = 0,
    embeddings_metadata: str | dict[str, str] | None = None,
) -> Any:
    """Write TensorBoard summaries: the logs, weight histograms, the graph, a profile.

    Compiled from `rules/tensorboard.cbd`; arguments and event-file contents as
    `keras.callbacks.TensorBoard` (summaries are written with TensorFlow, on any backend).

    Args:
        log_dir: where the event files go (`train/` and `validation/` inside).
        histogram_freq: every how many epochs to write the weights' histograms (0: never).
        write_graph: write the model's configuration and, on TensorFlow, its train graph.
        write_images: with the histograms, each weight drawn as an image.
        write_steps_per_second: also write the training speed.
        update_freq: `"epoch"`, `"batch"`, or every how many batches to write the batch logs.
        profile_batch: a batch to profile, or a range `(start, stop)` or `"start,stop"`
            (0: none; TensorFlow and JAX only).
        embeddings_freq: every how many epochs to save the Embedding layers for the projector.
        embeddings_metadata: a metadata file for every Embedding layer, or one per layer name.

    Returns:
        A `keras.callbacks.Callback`.

    Raises:
        ValueError: a `profile_batch` that is not a batch or a range, or one on a backend
            that cannot profile.
    """
    return _build("tensorboard", dict(
        log_dir=os.fspath(log_dir), histogram_freq=histogram_freq, write_graph=write_graph,
        write_images=write_images, write_steps_per_second=write_steps_per_second,
        update_freq=update_freq, profile_batch=profile_batch, embeddings_freq=embeddings_freq,
        embeddings_metadata=embeddings_metadata))
