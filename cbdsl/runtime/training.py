"""What rules do to training: the learning rate, stopping, schedules, messages, templates."""

from __future__ import annotations

import functools
import math
import string
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from cbdsl.diagnostics import (
    CbdslRuntimeError,
    Diagnostic,
    LearningRateNotSettableError,
)
from cbdsl.language.formats import spec_problem
from cbdsl.language.values import MAX_TEXT, describe
from cbdsl.runtime import standin

_FORMATTER = string.Formatter()


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
        problem = spec_problem(spec or "")
        if problem:
            raise CbdslRuntimeError(Diagnostic(
                "E215", f"{where}: template field '{{{name}:{spec}}}': {problem}"))
        try:
            out.append(format(fields[name], spec or ""))
        except (ValueError, TypeError, OverflowError, RecursionError) as exc:  # {loss:d}
            raise CbdslRuntimeError(Diagnostic(
                "E221", f"{where}: template field '{{{name}:{spec}}}' cannot show "
                f"{describe(fields[name])}: {exc}")) from None
        if sum(map(len, out)) > MAX_TEXT:
            raise CbdslRuntimeError(Diagnostic(
                "E221", f"{where}: the filled template is longer than {MAX_TEXT:,} characters"))
    return "".join(out)


def read_lr(model: Any) -> float:
    """The optimizer's learning rate as Keras's callbacks read it: a float of its value."""
    value = model.optimizer.learning_rate
    if isinstance(value, float | np.floating):  # a dry run's stand-in: float32 already
        return float(value)
    from keras import ops

    return float(ops.convert_to_numpy(value))


def read_iterations(model: Any) -> int:
    """The optimizer's step count (`model.optimizer.iterations`) as an int; 0 without one."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return 0
    return int(np.asarray(optimizer.iterations))


def write_lr(model: Any, value: float, where: str) -> None:
    """Set the optimizer's learning rate: a finite number, not negative (else E401); a
    schedule-backed optimizer is a clear TypeError."""
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise CbdslRuntimeError(Diagnostic(
            "E401", f"{where}: the learning rate must be a number, got {value!r}"))
    if not math.isfinite(value) or value < 0:
        raise CbdslRuntimeError(Diagnostic(
            "E401", f"{where}: the learning rate must be finite and not negative, got {value!r}"))
    try:
        model.optimizer.learning_rate = float(value)
    except TypeError as exc:
        raise LearningRateNotSettableError(Diagnostic(
            "E401", str(exc), hint=f"{where} sets the learning rate")) from exc


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


def print_message(text: str) -> None:
    """A rule's `print`, as Keras's callbacks print: to stdout (flushed), or to `absl.logging`
    at INFO level, the logger Keras uses, when `keras.config.disable_interactive_logging()`
    was called. Keras's own `io_utils.print_msg` does it; `keras.utils` does not export it.
    A dry run without Keras prints to stdout."""
    if standin.active():
        print(text, flush=True)
        return
    _io_utils().print_msg(text)


@functools.cache
def _io_utils() -> Any:
    from keras.src.utils import io_utils

    return io_utils


def warn_missing(owner: str, line: int, metric: str, logs: dict[str, Any]) -> None:
    """Keras's missing-monitor warning, naming the rule and listing the available metrics."""
    warnings.warn(
        f"{owner} (rule at line {line}) is conditioned on metric `{metric}` which is not "
        f"available. Available metrics are: {','.join(logs)}.", stacklevel=3)
