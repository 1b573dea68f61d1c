"""The vocabulary, one source of truth: events and their Keras hooks, names, targets, functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


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

# Actions and the events that allow them (absent: every event).
ACTION_EVENTS: dict[str, frozenset[str]] = {
    "assign": TRAIN_EVENTS,
    "restore": TRAIN_EVENTS,
    "stop": frozenset(e.name for e in EVENTS.values() if not (e.level == "run" and e.is_end)),
    "cooldown": frozenset(e.name for e in EVENTS.values() if e.level != "run"),
    "record": frozenset({"epoch_end"}),
}

# ------------------------------------------------------- stateful predicates

MODES = ("auto", "min", "max")
TRACKER_OPTIONS: dict[str, dict[str, str]] = {
    "stalls": {
        "mode": "'min', 'max' or 'auto' (Keras's rule: loss goes down, else the metric's "
                "own direction, else an error)",
        "min_delta": "the least change that counts as an improvement (sign ignored)",
        "baseline": "a value to beat before patience is reset",
        "weights": "keep the weights of the best check, for `restore best weights`",
        "only": "check only at events where this condition holds (elsewhere: false, no update)",
        "keep": "keep the best value and counters across `fit` calls (default: start afresh)",
    },
    "improves": {
        "mode": "'min', 'max' or 'auto'",
        "min_delta": "the least change that counts as an improvement (sign ignored)",
        "baseline": "the initial best value to beat",
        "weights": "keep the weights of the best check, for `restore best weights`",
        "only": "check only at events where this condition holds (elsewhere: false, no update)",
        "keep": "keep the best value and counters across `fit` calls (default: start afresh)",
    },
}
TRACKER_FIELDS = {
    "best": "the best value seen so far (none before the first check)",
    "wait": "checks since the last improvement",
    "best_epoch": "the epoch of the best value",
    "value": "the value seen at the latest check",
}

# Options of `write row TABLE to PATH with (...)`, with their types.
ROW_OPTIONS: dict[str, tuple[str, str]] = {
    "separator": ("str", "the one character between values (default \",\")"),
    "header": ("bool", "write a line of the table's keys before its values (default false)"),
    "append": ("bool", "false empties the file before writing (default true)"),
}

# `post json|form BODY to URL with (...)`: the two encodings, and the options with their types.
POST_KINDS = ("json", "form")
POST_TIMEOUT = 5.0  # seconds, when no `timeout` option is given
POST_OPTIONS: dict[str, tuple[str, str]] = {
    "headers": ("table", "HTTP headers to send, as a table of strings (default none)"),
    "timeout": ("number", "seconds to wait to connect, and then between bytes of the answer "
                f"(default {POST_TIMEOUT:g})"),
}

# ------------------------------------------------------------------ effects

# Effects: the runtime's input/output primitives, written `group.name(args)` as actions
# (`progress.update(seen, values = logs)`). Rule files decide when and with what; an effect
# only does the I/O, with Keras's own utilities where Keras has one.


@dataclass(frozen=True)
class EffectParam:
    """One argument of an effect: its name, type (`str`, `number`, `bool`, `table`, `any`)."""

    name: str
    type: str
    required: bool = True
    default: Any = None


@dataclass(frozen=True)
class Effect:
    """A runtime primitive with side effects, called as an action.

    Attributes:
        name: `group.name`, as written in rule files.
        params: the arguments, positional in this order, or by keyword.
        doc: what it does, in one sentence.
        events: the events where it may run (None: any event).
    """

    name: str
    params: tuple[EffectParam, ...]
    doc: str
    events: frozenset[str] | None = None

    def signature(self) -> str:
        args = [p.name if p.required else f"{p.name} = {rule_literal(p.default)}"
                for p in self.params]
        return f"{self.name}({', '.join(args)})"


def rule_literal(value: Any) -> str:
    """A constant as a rule file writes it: `none`, `true`, JSON strings and numbers, tables."""
    import json

    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{rule_literal(k)}: {rule_literal(v)}"
                               for k, v in value.items()) + "}"
    return repr(value)


def _opt(name: str, type_: str, default: Any = None) -> EffectParam:
    return EffectParam(name, type_, False, default)


EFFECTS: dict[str, Effect] = {
    e.name: e
    for e in [
        Effect("progress.start", (EffectParam("target", "number"), _opt("verbose", "number", 1)),
               "draw a new progress bar (Keras's Progbar) of `target` steps (none: unknown)"),
        Effect("progress.update", (EffectParam("current", "number"), _opt("values", "table"),
                                   _opt("finalize", "bool", False), _opt("target", "number"),
                                   _opt("verbose", "number", 1)),
               "move the progress bar to step `current`, showing `values`; `finalize` ends the "
               "bar, first setting its target when one is given (a bar of `target` and "
               "`verbose` is drawn when none was started)"),
        Effect("ema.swap", (), "exchange the model's trainable weights and the optimizer's "
               "moving averages of them (an optimizer with use_ema=True)"),
        Effect("ema.finalize", (), "set the optimizer's moving averages to the model's weights"),
        Effect("backup.store", (EffectParam("dir", "str"), EffectParam("epochs_done", "number"),
                                _opt("batch_index", "number", 0),
                                _opt("keep_previous", "bool", False)),
               "back up the training state to a directory: the weights (with the optimizer's), "
               "the epochs done (where a resumed fit starts), the batch index, and the state of "
               "every compiled callback of the fit; "
               "`keep_previous` keeps the last backup beside the new one",
               frozenset({"epoch_end", "train_batch_end"})),
        Effect("backup.resume", (EffectParam("dir", "str"),),
               "resume from a directory's backup, if there is one: the weights, the epoch to "
               "start at, and the state of every compiled callback (falls back to the kept "
               "previous backup when the latest cannot be read)", frozenset({"train_begin"})),
        Effect("backup.clear", (EffectParam("dir", "str"),),
               "remove a directory's backup files, and the directory when nothing else is in it"),
        Effect("tensorboard.scalar", (EffectParam("dir", "str"), EffectParam("tag", "str"),
                                      EffectParam("value", "any"), EffectParam("step", "any")),
               "write one scalar summary to the event file of a directory"),
        Effect("tensorboard.histograms", (EffectParam("dir", "str"), EffectParam("step", "number"),
                                          _opt("images", "bool", False)),
               "write a histogram of every weight of every layer (and, with `images`, each "
               "weight as an image, as Keras's TensorBoard draws them)"),
        Effect("tensorboard.model_config", (EffectParam("dir", "str"),),
               "write the model's configuration (the Keras conceptual graph) at step 0"),
        Effect("tensorboard.graph", (EffectParam("dir", "str"),),
               "write the graph of the model's train function (TensorFlow only)"),
        Effect("tensorboard.projector", (EffectParam("dir", "str"), _opt("metadata", "any")),
               "write the embedding projector's configuration for the model's Embedding layers"),
        Effect("tensorboard.trace", (EffectParam("dir", "str"), EffectParam("on", "bool"),
                                     _opt("step", "number", 0)),
               "start (`on = true`) or stop and write (at `step`) a profiler trace"),
        Effect("tensorboard.batch_trace", (EffectParam("on", "bool"), _opt("batch", "number", 0)),
               "while the profiler runs, mark the start (`on = true`) or the end of a batch"),
        Effect("tensorboard.close", (), "flush and close every event file this callback opened"),
    ]
}

# ---------------------------------------------------------------- functions


@dataclass(frozen=True)
class Function:
    """A safe built-in function: fixed arity bounds and a pure implementation."""

    name: str
    min_args: int
    max_args: int | None
    impl: Callable[..., Any]
    doc: str
    numeric: bool = True  # every argument must be a number


def _lookup(table: dict, key: Any, default: Any = None) -> Any:
    return table.get(key, default)


def _piecewise(table: dict, x: float, default: Any = None) -> Any:
    # the value of the largest key not above x: a step schedule
    best = None
    for key in sorted(table):
        if key <= x:
            best = key
    return default if best is None else table[best]


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def _file_empty(path: str) -> bool:
    # as Keras's CSVLogger reads an existing file in append mode: its first line
    import os

    if not os.path.exists(path):
        return True
    with open(path) as f:
        return not f.readline()


def _item(value: Any) -> Any:
    import numpy as np

    return value.item() if isinstance(value, np.ndarray | np.generic) else value


def _endswith(text: str, suffix: str) -> bool:
    if not isinstance(text, str) or not isinstance(suffix, str):
        raise ValueError(f"needs two strings, got {type_of_value(text)} and "
                         f"{type_of_value(suffix)}")
    return text.endswith(suffix)


def _format(value: Any, spec: str) -> str:
    if not isinstance(spec, str):
        raise ValueError(f"the format spec must be a string, got {type_of_value(spec)}")
    try:
        return format(value, spec)
    except TypeError as exc:  # a spec the value's type does not take
        raise ValueError(str(exc)) from None


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _profiler_available() -> bool:
    # as Keras's TensorBoard decides: TensorFlow, or JAX on Python 3.12 or later
    import sys

    backend = _backend()
    return backend == "tensorflow" or (backend == "jax" and sys.version_info >= (3, 12))


def _now() -> float:
    import time

    return time.time()


def _path(*parts: Any) -> str:
    import os

    if not all(isinstance(p, str) for p in parts):
        raise ValueError("needs strings, got " + ", ".join(type_of_value(p) for p in parts))
    return os.path.join(*parts)


def _split(text: str, separator: str) -> list[str]:
    if not isinstance(text, str) or not isinstance(separator, str):
        raise ValueError(f"needs two strings, got {type_of_value(text)} and "
                         f"{type_of_value(separator)}")
    return text.split(separator)


def _removeprefix(text: str, prefix: str) -> str:
    if not isinstance(text, str) or not isinstance(prefix, str):
        raise ValueError(f"needs two strings, got {type_of_value(text)} and "
                         f"{type_of_value(prefix)}")
    return text.removeprefix(prefix)


def _len(value: Any) -> int:
    if not isinstance(value, str | list | tuple | dict):
        raise ValueError(f"needs a list, a table or a string, got {type_of_value(value)}")
    return len(value)


def _round(x: float, ndigits: int | None = None) -> float:
    return round(x, ndigits) if ndigits is not None else round(x)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("min", 1, None, min, "the smallest argument"),
        Function("max", 1, None, max, "the largest argument"),
        Function("abs", 1, 1, abs, "absolute value"),
        Function("exp", 1, 1, math.exp, "e to the power x"),
        Function("log", 1, 2, math.log, "natural logarithm, or log(x, base)"),
        Function("sqrt", 1, 1, math.sqrt, "square root"),
        Function("floor", 1, 1, math.floor, "largest integer not above x"),
        Function("ceil", 1, 1, math.ceil, "smallest integer not below x"),
        Function("round", 1, 2, _round, "round to an integer, or to n digits"),
        Function("cos", 1, 1, math.cos, "cosine (radians)"),
        Function("sin", 1, 1, math.sin, "sine (radians)"),
        Function("tanh", 1, 1, math.tanh, "hyperbolic tangent"),
        Function("pow", 2, 2, math.pow, "x to the power y"),
        Function("clip", 3, 3, lambda x, lo, hi: min(max(x, lo), hi), "x limited to [lo, hi]"),
        Function("float", 1, 1, float, "as a float"),
        Function("float32", 1, 1, lambda x: float(np.float32(x)),
                 "rounded to the nearest float32, as the optimizer stores the learning rate"),
        Function("int", 1, 1, int, "truncated to an integer"),
        Function("lookup", 2, 3, _lookup, "table[key], or the default when key is absent",
                 numeric=False),
        Function("piecewise", 2, 3, _piecewise,
                 "the value of the largest key not above x (a step schedule)", numeric=False),
        Function("metric", 1, 1, None, "the log value named by a string", numeric=False),
        Function("json", 1, 1, _json, "the value as JSON text (Python's json.dumps)",
                 numeric=False),
        Function("keys", 1, 1, lambda t: list(t or ()), "the keys of a table, as a list",
                 numeric=False),
        Function("item", 1, 1, _item, "a NumPy scalar or one-item array as a Python value "
                 "(`.item()`, as Keras's RemoteMonitor sends logs); anything else as it is",
                 numeric=False),
        Function("has", 1, 1, None, "whether the logs hold the named metric", numeric=False),
        Function("sorted", 1, 1, sorted, "the items of a list (or a table's keys), sorted",
                 numeric=False),
        Function("startswith", 2, 2, lambda text, prefix: text.startswith(prefix),
                 "whether a string starts with another", numeric=False),
        Function("file_empty", 1, 1, _file_empty,
                 "whether no file is at a path or the file there holds no text", numeric=False),
        Function("endswith", 2, 2, _endswith, "whether a string ends with another",
                 numeric=False),
        Function("type", 1, 1, lambda value: type_of_value(value),
                 "the type of a value as parameters name it: int, float, str, bool, table, "
                 "none (a list is list)", numeric=False),
        Function("format", 2, 2, _format,
                 "a value as text by a format spec, as Python's format(x, \".5f\")",
                 numeric=False),
        Function("backend", 0, 0, _backend, "the Keras backend: tensorflow, jax, torch or numpy",
                 numeric=False),
        Function("profiler_available", 0, 0, _profiler_available,
                 "whether Keras's TensorBoard can profile here: on TensorFlow, or on JAX with "
                 "Python 3.12 or later", numeric=False),
        Function("now", 0, 0, _now, "the wall-clock time in seconds (Python's time.time())",
                 numeric=False),
        Function("path", 1, None, _path, "strings joined as a file path (os.path.join)",
                 numeric=False),
        Function("split", 2, 2, _split, "a string cut at each separator, as a list",
                 numeric=False),
        Function("removeprefix", 2, 2, _removeprefix,
                 "a string without the prefix it starts with (as it is when it does not)",
                 numeric=False),
        Function("len", 1, 1, _len, "the number of items of a list or table, or of characters "
                 "of a string", numeric=False),
        Function("fill", 1, 1, None, "a template's fields filled in, as `print` and `save` "
                 "fill theirs (1-based {epoch} and {batch}, metrics, parameters)",
                 numeric=False),
    ]
}

# ---------------------------------------------------------------- parameters

PARAM_TYPES = ("int", "float", "str", "bool", "table", "python", "schedule", "any")


def type_of_value(value: Any) -> str:
    """The parameter type a Python value has (`bool` before `int`, as Python needs)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "table"
    if callable(value):
        return "python"
    return type(value).__name__


def accepts(declared: str, given: str) -> bool:
    """Whether a parameter declared as `declared` takes a value of type `given`."""
    if declared == given or declared == "any":
        return True
    if declared == "float" and given == "int":
        return True
    if declared == "schedule" and given in ("table", "python", "str"):
        return True
    # a parameter whose default is none takes any value, and none is allowed anywhere
    # a value is optional (Keras's `baseline=None`)
    return declared == "none" or given == "none"
