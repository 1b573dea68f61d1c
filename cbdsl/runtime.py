"""What compiled callbacks call at run time: state, monitor logic, templates, action primitives."""

from __future__ import annotations

import csv
import math
import os
import string
import sys
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbdsl.diagnostics import (
    CbdslRuntimeError,
    Diagnostic,
    KerasWorded,
    LearningRateNotSettableError,
    MetricDirectionError,
)

_FORMATTER = string.Formatter()


class MissingMetric(Exception):
    """A rule read a log metric that the event's logs do not hold."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


# ------------------------------------------------------------------- state


@dataclass
class TrackerState:
    """The state of one `stalls` or `improves` predicate, as Keras's MonitorCallback keeps it.

    Attributes:
        wait: checks since the last improvement (Keras's `wait`).
        best: the best value so far; None before the first check (Keras 3).
        best_epoch: the epoch of `best`.
        value: the value seen at the latest check.
        cooldown: checks left in which `stalls` is held (see `cooldown N`).
        direction: `min` or `max`, fixed at the first check (`mode=auto` resolves then).
    """

    wait: int = 0
    best: float | None = None
    best_epoch: int = 0
    value: float | None = None
    cooldown: int = 0
    direction: str | None = None
    best_weights: list[Any] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"wait": self.wait, "best": self.best, "best_epoch": self.best_epoch,
                "value": self.value, "cooldown": self.cooldown, "direction": self.direction}


@dataclass
class CallbackState:
    """Every piece of state of one compiled callback, in one serializable object.

    `to_dict()` is JSON-ready (weights snapshots travel separately in `weights()`),
    and `load_dict()` restores it, so that a backup can carry a policy's state.
    """

    variables: dict[str, Any] = field(default_factory=dict)
    trackers: dict[str, TrackerState] = field(default_factory=dict)
    stopped_epoch: int = 0
    epoch: int = 0
    step: int = 0
    last_batch: int | None = None
    fired: dict[str, int] = field(default_factory=dict)
    history: dict[str, list[Any]] = field(default_factory=dict)
    recorded_epochs: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "history": {k: list(v) for k, v in self.history.items()},
            "recorded_epochs": list(self.recorded_epochs),
            "variables": dict(self.variables),
            "trackers": {k: t.to_dict() for k, t in self.trackers.items()},
            "stopped_epoch": self.stopped_epoch,
            "epoch": self.epoch,
            "step": self.step,
            "last_batch": self.last_batch,
            "fired": dict(self.fired),
        }

    def load_dict(self, data: dict[str, Any]) -> None:
        """Take the state `to_dict` gave; with variables and trackers already here (the
        callback's own), only theirs are taken and the others left as they are."""
        variables = dict(data.get("variables", {}))
        trackers = {k: TrackerState(**v) for k, v in data.get("trackers", {}).items()}
        if self.variables or self.trackers:
            variables = {k: variables.get(k, v) for k, v in self.variables.items()}
            trackers = {k: trackers.get(k, t) for k, t in self.trackers.items()}
        self.variables, self.trackers = variables, trackers
        for key in ("stopped_epoch", "epoch", "step", "last_batch"):
            setattr(self, key, data.get(key, getattr(self, key)))
        self.fired = dict(data.get("fired", {}))
        self.history = {k: list(v) for k, v in data.get("history", {}).items()}
        self.recorded_epochs = list(data.get("recorded_epochs", []))

    def weights(self) -> dict[str, list[Any]]:
        return {k: t.best_weights for k, t in self.trackers.items() if t.best_weights is not None}


@dataclass(frozen=True)
class Firing:
    """One entry of a callback's timeline: which rule fired, when, and why."""

    event: str
    epoch: int | None
    batch: int | None
    rule: str
    reasons: tuple[str, ...]
    actions: tuple[str, ...]

    def __str__(self) -> str:
        when = f"epoch {self.epoch + 1}" if self.epoch is not None else self.event
        if self.batch is not None:
            when += f" batch {self.batch + 1}"
        why = "; ".join(self.reasons) or "its event fired"
        return f"{when}: {self.rule} -> {', '.join(self.actions)} ({why})"


# -------------------------------------------------------------- the monitor


def is_improvement(value: float, reference: float | None, direction: str,
                   min_delta: float) -> bool:
    """Keras's `_is_improvement`: strict, by `min_delta`, in the backend's float precision.

    Keras compares with `ops.less`/`ops.greater`, which turn Python floats into
    `floatx` tensors of the active backend. For finite normal numbers (and zero)
    a NumPy comparison in `floatx` gives the same answer at a fraction of the
    cost; anything else (subnormals, which JAX flushes to zero, infinities, NaN)
    goes through the backend's own op so that every backend keeps its own answer.
    """
    if reference is None:
        return True
    shifted = value - min_delta if direction == "max" else value + min_delta
    dtype, tiny = _floatx()
    if dtype is None:  # float16/bfloat16 floatx: leave it all to the backend
        return _backend_compare(shifted, reference, direction)
    with np.errstate(over="ignore", invalid="ignore"):
        a, b = dtype(shifted), dtype(reference)
    if _plain(a, tiny) and _plain(b, tiny):
        return bool(a > b) if direction == "max" else bool(a < b)
    return _backend_compare(shifted, reference, direction)


def _backend_compare(shifted: float, reference: float, direction: str) -> bool:
    from keras import ops

    op = ops.greater if direction == "max" else ops.less
    return bool(op(shifted, reference))


def _plain(x: np.floating, tiny: float) -> bool:
    """Finite and either zero or normal: the values every backend compares alike."""
    return bool(np.isfinite(x)) and (x == 0 or abs(x) >= tiny)


def _floatx() -> tuple[type | None, float]:
    from keras import backend

    floatx = backend.floatx()
    if floatx not in ("float32", "float64"):
        return None, 0.0
    dtype = np.float32 if floatx == "float32" else np.float64
    return dtype, float(np.finfo(dtype).tiny)


def resolve_direction(mode: str, metric: str | None, model: Any, owner: str) -> str:
    """`min`/`max`, with Keras 3's `mode='auto'`: loss goes down, else the metric's direction."""
    if mode in ("min", "max"):
        return mode
    name = (metric or "").removeprefix("val_")
    direction = "min" if name == "loss" else None
    for m in _compiled_metrics(model):
        if getattr(m, "name", None) == name and hasattr(m, "_direction"):
            direction = "max" if m._direction == "up" else "min"
    if direction is None:
        raise MetricDirectionError(Diagnostic(
            "E402", f"{owner} callback received monitor={metric}, but Keras isn't able to "
            "automatically determine whether that metric should be maximized or minimized. Pass "
            "`mode='max'` in order to monitor based on the highest metric value, or pass "
            "`mode='min'` in order to use the lowest value."))
    return direction


def _compiled_metrics(model: Any) -> list[Any]:
    try:
        from keras.src.trainers import compile_utils
    except ImportError:  # pragma: no cover - keras layout changed
        return []
    found = []
    for m in getattr(model, "metrics", []) or []:
        if isinstance(m, compile_utils.CompileMetrics | compile_utils.MetricsList):
            found.extend(m.metrics)
    return found


def update_tracker(state: TrackerState, value: float, epoch: int, *, stalls: int | None,
                   min_delta: float, baseline: float | None, snapshot) -> bool:
    """One check of a `stalls N` (stalls=N) or `improves` (stalls=None) predicate.

    `stalls` follows Keras's patience: every check counts (`wait += 1`), an
    improvement resets `wait` (only once it also beats `baseline`, as
    EarlyStopping does) and is never a stall; a non-improving check stalls
    when `wait >= N`. During a cooldown `wait` is held at 0 and nothing stalls.
    For `improves`, `baseline` is the first best to beat (ModelCheckpoint's
    `initial_value_threshold`).
    """
    state.value = value
    direction = state.direction or "min"
    delta = abs(min_delta)
    in_cooldown = state.cooldown > 0
    if in_cooldown:
        state.cooldown -= 1
        state.wait = 0
    elif stalls is not None:
        state.wait += 1
    if stalls is None and state.best is None and baseline is not None:
        state.best = baseline  # `improves with baseline = x`: x is the first best to beat
    if is_improvement(value, state.best, direction, delta):
        state.best = value
        state.best_epoch = epoch
        if snapshot is not None:
            state.best_weights = snapshot()
        if baseline is None or is_improvement(value, baseline, direction, delta):
            state.wait = 0
        return stalls is None
    if stalls is None or in_cooldown:
        return False
    return state.wait >= stalls


# ----------------------------------------------------------------- templates


def render(template: str, fields: dict[str, Any], where: str) -> str:
    """Fill a template's named fields with format specs; no attribute or index access."""
    out = []
    for literal, name, spec, _ in _FORMATTER.parse(template):
        out.append(literal)
        if name is None:
            continue
        if name not in fields:
            raise CbdslRuntimeError(Diagnostic(
                "E403", f"{where}: template field '{{{name}}}' is not available here; "
                f"available: {', '.join(sorted(fields))}"))
        out.append(format(fields[name], spec or ""))
    return "".join(out)


# ----------------------------------------------------------- action primitives


def read_lr(model: Any) -> float:
    """The optimizer's learning rate as Keras's callbacks read it: a float of its value."""
    from keras import ops

    return float(ops.convert_to_numpy(model.optimizer.learning_rate))


def read_iterations(model: Any) -> int:
    """The optimizer's step count (`model.optimizer.iterations`) as an int; 0 without one."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return 0
    return int(np.asarray(optimizer.iterations))


def write_lr(model: Any, value: float, where: str) -> None:
    """Set the optimizer's learning rate; a schedule-backed optimizer is a clear TypeError."""
    if not isinstance(value, int | float | np.floating | np.integer) or math.isnan(value):
        raise CbdslRuntimeError(Diagnostic(
            "E401", f"{where}: the learning rate must be a number, got {value!r}"))
    try:
        model.optimizer.learning_rate = float(value)
    except TypeError as exc:
        raise LearningRateNotSettableError(Diagnostic(
            "E401", str(exc), hint=f"{where} sets the learning rate")) from exc


class DirectoryPathError(KerasWorded, CbdslRuntimeError, OSError):
    """`save` was given the path of an existing directory: an `OSError`, as Keras's
    ModelCheckpoint raises, with its message."""


def save(model: Any, kind: str, path: str, where: str, owner: str = "ModelCheckpoint") -> None:
    """Save the model or its weights, creating the folder.

    The file is written beside its place under a hidden name and moved there once whole: a
    save that fails or is interrupted leaves no partial file under the name (and an earlier
    file of that name as it was).

    Raises:
        DirectoryPathError: `path` is an existing directory (an `OSError` worded as Keras's,
            `owner` naming the callback).
    """
    from keras.src.utils import file_utils

    if file_utils.isdir(path):
        raise DirectoryPathError(Diagnostic(
            "E403", f"Please specify a non-directory filepath for {owner}. Filepath used is an "
            f"existing directory: {path}", hint=where))
    folder, name = os.path.split(path)
    if folder and not file_utils.exists(folder):
        file_utils.makedirs(folder)
    suffixes = (".weights.h5",) if kind == "weights" else (".keras", ".h5")
    suffix = next((s for s in suffixes if name.endswith(s)), "")
    if not suffix or is_remote_path(path):  # Keras's own error names the path; no rename there
        _save_as(model, kind, path)
        return
    partial = os.path.join(folder, f".{name[:len(name) - len(suffix)]}.partial{suffix}")
    try:
        _save_as(model, kind, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _save_as(model: Any, kind: str, path: str) -> None:
    if kind == "weights":
        model.save_weights(path, overwrite=True)
    else:
        model.save(path, overwrite=True)


def is_remote_path(path: str) -> bool:
    """Whether Keras reads `path` as remote storage (`gs://`, `/gcs`, ...): no rename there."""
    from keras.src.utils import file_utils

    return file_utils.is_remote_path(path)


def is_writer() -> bool:
    """Whether this process writes files: the first process of a multi-process job.

    Under one process (a single device, `MirroredStrategy`, JAX `DataParallel` on one host) the
    callbacks run once per event whatever the replicas, so the one process writes. In a
    multi-process job (JAX on several hosts, `MultiWorkerMirroredStrategy`, torch.distributed)
    every process runs the callbacks and only the first writes.
    """
    jax = sys.modules.get("jax")
    if jax is not None and jax.process_count() > 1:
        return jax.process_index() == 0
    tf = sys.modules.get("tensorflow")
    if tf is not None and tf.distribute.has_strategy():
        resolver = getattr(tf.distribute.get_strategy(), "cluster_resolver", None)
        if resolver is not None and resolver.task_type not in (None, "chief"):
            has_chief = "chief" in resolver.cluster_spec().as_dict()
            return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() \
            and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


def write_text(path: str, text: str, *, append: bool, where: str) -> None:
    """`write` replaces a file's text; `append` adds the text and a newline. Folders are made.

    Only the writing process of a multi-process job writes (see `is_writer`).
    """
    if not is_writer():
        return
    if os.path.isdir(path):
        raise CbdslRuntimeError(Diagnostic(
            "E403", f"{where}: please specify a non-directory filepath; '{path}' is a directory"))
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8", newline="") as f:
        f.write(text + "\n" if append else text)


def csv_cell(value: Any) -> Any:
    """A value as Keras's CSVLogger writes it: text as it is, an iterable (but not a 0-d array)
    as a quoted list `"[a, b]"`, anything else as the csv module writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        return f'"[{", ".join(map(str, value))}]"'
    return value


def write_row(path: str, row: dict[str, Any] | None, *, separator: str = ",",
              header: bool = False, append: bool = True) -> None:
    """`write row`: a table's values as one CSV line at the end of a file, as Keras's CSVLogger.

    The line is written by `csv.writer` in the Excel dialect with `separator` as delimiter
    (`"\r\n"` line ends, values quoted where needed), after a line of the table's keys when
    `header` is true. `append=False` empties the file first; `row=None` only opens the file
    (creating it). Folders are not created: a missing folder, a directory or an unwritable
    path raise Python's `OSError` (`FileNotFoundError`, `IsADirectoryError`,
    `PermissionError`), as Keras does. Only the writing process of a multi-process job writes
    (see `is_writer`).
    """
    if not is_writer():
        return
    with open(path, "a" if append else "w") as f:
        if row is None:
            return
        writer = csv.writer(f, dialect=_dialect(separator))
        if header:
            writer.writerow(list(row))
        writer.writerow([csv_cell(value) for value in row.values()])


def _dialect(separator: str) -> type[csv.Dialect]:
    class Dialect(csv.excel):
        delimiter = separator

    return Dialect


def post(url: str, body: Any, *, kind: str, headers: dict[str, Any] | None, timeout: float,
         owner: str, unhandled: bool = True) -> bool:
    """`post`: one HTTP POST of `body` to `url` with `requests`, as Keras's RemoteMonitor sends.

    `kind="json"` sends the body as JSON (`requests.post(url, json=body)`, content type
    `application/json`); `kind="form"` sends a table as form fields
    (`requests.post(url, body)`, `application/x-www-form-urlencoded`). The answer is not
    read: any status counts as sent. The request is bounded in time: `timeout` seconds to
    connect, and again between bytes of the answer (Keras's RemoteMonitor passes no timeout
    and waits as long as the server does). In a multi-process job only the first process
    sends (see `is_writer`); Keras's RemoteMonitor sends from every process.

    Args:
        url: where to send the request.
        body: a JSON value (`kind="json"`) or a table of form fields (`kind="form"`).
        kind: `"json"` or `"form"`.
        headers: HTTP headers to send, or None.
        timeout: seconds, passed to `requests.post`.
        owner: the callback's name, for the ImportError.
        unhandled: raise a failed request's exception instead of returning False.

    Returns:
        True when the server answered; False when the request failed with a
        `requests.exceptions.RequestException` (no server, refused, timed out), unless
        `unhandled`, where that exception is raised.

    Raises:
        ImportError: `requests` is not installed (`"{owner} requires the `requests`
            library."`, Keras's message).
    """
    try:
        import requests
    except ImportError:
        raise ImportError(f"{owner} requires the `requests` library.") from None
    if not is_writer():  # one request per event from a multi-process job, as files
        return True
    try:
        if kind == "json":
            requests.post(url, json=body, headers=headers, timeout=timeout)
        else:
            requests.post(url, body, headers=headers, timeout=timeout)
    except requests.exceptions.RequestException:
        if unhandled:
            raise
        return False
    return True


def call_schedule(schedule: Callable[..., Any], args: list[Any], name: str) -> Any:
    """Call a Python schedule as Keras's LearningRateScheduler does.

    `schedule(epoch, lr)`, or `schedule(epoch)` when that raises TypeError; the
    result must be a float (Python, float32 or float64), else ValueError.
    """
    try:
        value = schedule(*args)
    except TypeError:
        value = schedule(*args[:1])
    if not isinstance(value, float | np.float32 | np.float64):
        raise ValueError(f"The output of the `{name}` function should be a float. Got: {value}")
    return value


def stop(model: Any, phase: str) -> None:
    attr = {"train": "stop_training", "test": "stop_evaluating", "predict": "stop_predicting"}
    setattr(model, attr[phase], True)


def warn_missing(owner: str, line: int, metric: str, logs: dict[str, Any]) -> None:
    """Keras's missing-monitor warning, naming the rule and listing the available metrics."""
    warnings.warn(
        f"{owner} (rule at line {line}) is conditioned on metric `{metric}` which is not "
        f"available. Available metrics are: {','.join(logs)}.", stacklevel=3)
