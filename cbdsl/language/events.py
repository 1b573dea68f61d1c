"""Events and names: every Keras hook the language names, the built-in names and targets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    """A Keras callback hook as the language names it.

    Attributes:
        name: the event name in rule files (`epoch_end`).
        hook: the `keras.callbacks.Callback` method it compiles to.
        phase: `train`, `test` or `predict`.
        level: `run` (begin/end of fit, evaluate, predict), `epoch`, `batch`, or
            `signal` for `metric_missing`, which no Keras hook calls.
    """

    name: str
    hook: str
    phase: str
    level: str

    @property
    def is_end(self) -> bool:
        return self.name.endswith("_end")


EVENTS: dict[str, Event] = {
    e.name: e
    for e in [
        Event("train_begin", "on_train_begin", "train", "run"),
        Event("train_end", "on_train_end", "train", "run"),
        Event("epoch_begin", "on_epoch_begin", "train", "epoch"),
        Event("epoch_end", "on_epoch_end", "train", "epoch"),
        Event("train_batch_begin", "on_train_batch_begin", "train", "batch"),
        Event("train_batch_end", "on_train_batch_end", "train", "batch"),
        Event("test_begin", "on_test_begin", "test", "run"),
        Event("test_end", "on_test_end", "test", "run"),
        Event("test_batch_begin", "on_test_batch_begin", "test", "batch"),
        Event("test_batch_end", "on_test_batch_end", "test", "batch"),
        Event("predict_begin", "on_predict_begin", "predict", "run"),
        Event("predict_end", "on_predict_end", "predict", "run"),
        Event("predict_batch_begin", "on_predict_batch_begin", "predict", "batch"),
        Event("predict_batch_end", "on_predict_batch_end", "predict", "batch"),
        # not a Keras hook: raised when a rule reads a metric its event's logs lack
        Event("metric_missing", "", "train", "signal"),
    ]
}

# `batch_end` is Keras's own alias of `train_batch_end` (Callback.on_batch_end).
EVENT_ALIASES = {"batch_begin": "train_batch_begin", "batch_end": "train_batch_end"}


def resolve_event(name: str) -> Event | None:
    return EVENTS.get(EVENT_ALIASES.get(name, name))


# ------------------------------------------------------------------ names

# Built-in names readable in conditions, with the events where they exist.
# Every other plain name that is not a parameter or a state variable is a
# log metric (`val_loss`), looked up in the event's logs when the rule runs.
BUILTIN_NAMES: dict[str, str] = {
    "epoch": "the 0-based epoch index (Keras's `epoch` argument)",
    "batch": "the 0-based batch index within the epoch (batch events)",
    "step": "train batches completed since training began (train batch events)",
    "lr": "the optimizer's learning rate, as a float",
    "learning_rate": "the optimizer's learning rate, as a float (same as lr)",
    "epochs": "the number of epochs passed to fit (`params['epochs']`)",
    "steps": "the number of steps per epoch (`params['steps']`), or none",
    "verbose": "the verbosity passed to fit (`params['verbose']`)",
    "inf": "positive infinity",
    "logs": "the logs dict of the event (only as an argument of `call`)",
    "stopped_epoch": "the epoch at which a `stop` action last stopped training (0 before)",
    "metrics": "the metric names `fit` passes in its params (Keras 2), or none",
    "available": "the names in the event's logs, joined by commas",
    "missing": "the metric a rule read and did not find (metric_missing only)",
    "iterations": "the optimizer's count of training steps (`model.optimizer.iterations`)",
}


# The type of each built-in name where it is not a number (`any`: only the run knows).
BUILTIN_TYPES: dict[str, str] = {
    "epoch": "int", "batch": "int", "step": "int", "epochs": "int", "verbose": "int",
    "iterations": "int", "stopped_epoch": "int", "logs": "table[str, any]", "steps": "any",
    "metrics": "any", "available": "any", "missing": "any",
}


def name_available(name: str, event: Event) -> str | None:
    """Why `name` cannot be read in `event`, or None when it can."""
    if name == "batch" and event.level != "batch":
        return "'batch' exists only in batch events"
    if name == "step" and not (event.level == "batch" and event.phase == "train"):
        return "'step' exists only in train batch events"
    if name == "epoch" and (event.phase != "train" or event.name == "train_begin"):
        return "'epoch' exists only in epoch, train batch and train_end events"
    if name == "missing" and event.name != "metric_missing":
        return "'missing' exists only in metric_missing"
    if name in ("lr", "learning_rate") and event.phase == "predict":
        return "the learning rate is not read in predict events"
    return None


# ---------------------------------------------------------------- targets

TARGETS = {"lr": "the optimizer's learning rate", "learning_rate": "same as lr"}
TRAIN_EVENTS = frozenset(e.name for e in EVENTS.values() if e.phase == "train")
