"""Dry runs: driving callbacks over recorded logs without a model."""

from __future__ import annotations

import contextlib
import hashlib
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbdsl.runtime import standin

Trace = list[dict[str, Any]]  # per epoch: {"logs": {...}, "batches": [{...}, ...]}


class StubModel:
    """The parts of a Keras model that callbacks touch, with a real Keras optimizer.

    The learning rate lives in a real `keras.optimizers.SGD` variable, so reads and writes
    round through float32 exactly as in `fit`. Weights are a version number: the driver sets
    them to the epoch index at each epoch end, so "the weights of epoch 3" is observable.
    `metrics` holds compiled-metric stand-ins with directions, for `mode="auto"`. While
    `cbdsl.runtime.standin.using()` is on, no Keras: the learning rate is a float32 held by
    `standin.Optimizer`, the metrics `standin.Metric`s.
    """

    def __init__(self, learning_rate: float = 0.1, metrics: list[dict] | None = None,
                 schedule: bool = False):
        self.stop_training = False
        self.weights_version = -1
        if standin.active() and not schedule:
            self.optimizer: Any = standin.Optimizer(learning_rate)
            self.metrics: list[Any] = [standin.MetricsList(
                [standin.Metric(m["name"], m.get("direction")) for m in metrics])] \
                if metrics else []
            return
        import keras
        from keras.src.trainers.compile_utils import MetricsList

        lr: Any = learning_rate
        if schedule:
            lr = keras.optimizers.schedules.ExponentialDecay(learning_rate, 10, 0.9)
        self.optimizer = keras.optimizers.SGD(learning_rate=lr)
        members = []
        for spec in metrics or []:
            metric = keras.metrics.Mean(name=spec["name"])
            if spec.get("direction"):
                metric._direction = spec["direction"]
            members.append(metric)
        self.metrics = [MetricsList(members)] if members else []

    def get_weights(self) -> list[np.ndarray]:
        return [np.array([self.weights_version], dtype="int64")]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        self.weights_version = int(weights[0][0])


@dataclass
class Outcome:
    """Everything a callback did over one trace, as plain JSON-ready data.

    Attributes:
        events: one record per hook call: event, index, learning rate after it, the logs
            after it (when the callback changed them), stop flag, weights version, and the
            messages printed and warnings raised during it.
        error: the exception that ended the run, as `{"type", "bases", "message", "at"}`
            (`at`: the index in `events` of the hook that raised it).
        final: the state after training: weights version, learning rate, inspection
            attributes (`wait`, `best`, `stopped_epoch`, `best_epoch`, `history`, `epoch`),
            whether `model.history` is the callback, and the Python hook calls.
        exception: the exception itself (not part of `to_json`).
    """

    events: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    final: dict[str, Any] = field(default_factory=dict)
    exception: Exception | None = field(default=None, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        return plain({"events": self.events, "error": self.error, "final": self.final})


INSPECTED = ("wait", "best", "stopped_epoch", "best_epoch", "history", "epoch")


def public_attributes(callback: Any) -> list[str]:
    """The public attributes a callback stores, as Keras's classes keep their arguments and
    state (not its hooks, its model or its params)."""
    return sorted(k for k in vars(callback)
                  if not k.startswith(("_", "on_")) and k not in ("model", "params"))


def attribute_value(callback: Any, name: str) -> Any:
    """An attribute as plain data: weights by digest, functions by name, sets sorted."""
    try:
        value = getattr(callback, name)
    except AttributeError:
        return "<missing>"
    if isinstance(value, list) and value and hasattr(value[0], "shape"):
        return hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in value)).hexdigest()
    if callable(value):
        return getattr(value, "__name__", type(value).__name__)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if not isinstance(value, int | float | str | bool | list | tuple | dict | np.generic) \
            and value is not None:
        return type(value).__name__  # an object of its own (a file, a writer): by its type
    return plain(value)


def drive(callback: Any, trace: Trace, *, model: StubModel, fit_params: dict[str, Any],
          calls: list | None = None, attributes: list[str] | str | None = None) -> Outcome:
    """Run `callback` over `trace` the way `model.fit` calls its hooks, recording everything.

    Args:
        callback: any object with the Keras callback hooks.
        trace: per epoch, the logs of each train batch (`batches`) and of the epoch (`logs`).
        model: the model the callback sees (`StubModel`).
        fit_params: what `fit` passes to `set_params` (`epochs`, `steps`, `verbose`, and
            `metrics` for Keras 2 callbacks).
        calls: a list the caller's Python hooks append to; recorded in the outcome.
        attributes: attribute names to read after the run into `final["attributes"]`, or
            `"stored"` for every public attribute the callback keeps (Keras's classes' own).

    Returns:
        The `Outcome`. An exception from the callback ends the run and is recorded, as it
        would end `fit`.
    """
    outcome = Outcome()
    callback.set_model(model)
    callback.set_params(dict(fit_params))

    def hook(event: str, index: int | None, logs: dict | None, method: Callable) -> None:
        before = dict(logs) if logs is not None else None
        out = io.StringIO()
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(out):
            warnings.simplefilter("always")
            try:
                method(*([] if index is None else [index]), logs)
            finally:
                record = {"event": event, "index": index, "lr": _lr(model),
                          "stop": bool(model.stop_training), "weights": model.weights_version}
                if logs != before and not _same(logs, before):
                    record["logs"] = dict(logs)
                if out.getvalue():
                    record["printed"] = out.getvalue()
                said = [f"{w.category.__name__}: {w.message}" for w in caught
                        if issubclass(w.category, UserWarning)]
                if said:
                    record["warnings"] = said
                outcome.events.append(record)

    try:
        hook("train_begin", None, None, callback.on_train_begin)
        for epoch, step in enumerate(trace):
            hook("epoch_begin", epoch, {}, callback.on_epoch_begin)
            for batch, batch_logs in enumerate(step.get("batches", [])):
                hook("train_batch_begin", batch, {}, callback.on_train_batch_begin)
                hook("train_batch_end", batch, dict(batch_logs), callback.on_train_batch_end)
                if model.stop_training:
                    break
            model.weights_version = epoch
            hook("epoch_end", epoch, dict(step.get("logs", {})), callback.on_epoch_end)
            if model.stop_training:
                break
        hook("train_end", None, None, callback.on_train_end)
    except Exception as error:  # an exception ends `fit`: it is part of the behaviour
        outcome.error = {"type": type(error).__name__,
                         "bases": [k.__name__ for k in type(error).__mro__],
                         "message": str(error),
                         "at": len(outcome.events) - 1}
        outcome.exception = error
    outcome.final = {"weights": model.weights_version, "lr": _lr(model),
                     "model_history_is_callback": getattr(model, "history", None) is callback}
    for name in INSPECTED:
        try:
            value = getattr(callback, name)
        except AttributeError:
            continue
        if name == "best_weights" or callable(value):
            continue
        outcome.final[name] = value
    if calls is not None:
        outcome.final["calls"] = list(calls)
    if attributes is not None:  # "stored": every public attribute the callback keeps
        names = public_attributes(callback) if attributes == "stored" else attributes
        outcome.final["attributes"] = {name: attribute_value(callback, name) for name in names}
    return outcome


def _lr(model: StubModel) -> float | str:
    if isinstance(model.optimizer, standin.Optimizer):
        return float(model.optimizer.learning_rate)
    from keras import ops

    try:
        return float(ops.convert_to_numpy(model.optimizer.learning_rate))
    except TypeError:
        return "schedule"


def _same(a: Any, b: Any) -> bool:
    return plain(a) == plain(b)


def plain(value: Any) -> Any:
    """JSON-ready: numpy scalars to Python, tuples to lists, NaN and infinities kept as floats."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value
