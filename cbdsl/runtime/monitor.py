"""Keras's monitor logic: improvement, the direction `mode` resolves to, patience counting."""

from __future__ import annotations

from typing import Any

import numpy as np

from cbdsl.diagnostics import (
    Diagnostic,
    MetricDirectionError,
    keras_worded,
)
from cbdsl.runtime import standin
from cbdsl.runtime.state import TrackerState


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
    if -_LIMIT[dtype] < shifted < _LIMIT[dtype] and -_LIMIT[dtype] < reference < _LIMIT[dtype]:
        # finite and inside the range: rounded without a warning, so without NumPy's errstate
        a, b = float(dtype(shifted)), float(dtype(reference))
        if (a == 0 or abs(a) >= tiny) and (b == 0 or abs(b) >= tiny):
            return a > b if direction == "max" else a < b
        return _backend_compare(shifted, reference, direction)
    with np.errstate(over="ignore", invalid="ignore"):
        a, b = dtype(shifted), dtype(reference)
    if _plain(a, tiny) and _plain(b, tiny):
        return bool(a > b) if direction == "max" else bool(a < b)
    return _backend_compare(shifted, reference, direction)


def _backend_compare(shifted: float, reference: float, direction: str) -> bool:
    if standin.active():
        return standin.compare(shifted, reference, direction)
    from keras import ops

    op = ops.greater if direction == "max" else ops.less
    try:
        return bool(op(shifted, reference))
    except (ValueError, OverflowError) as exc:  # 1e308 in float32: as Keras's callbacks fail
        raise keras_worded(type(exc))(Diagnostic(
            "E221", f"{shifted!r} and {reference!r} cannot be compared in Keras's floatx: "
            f"{exc}")) from exc


def _plain(x: np.floating, tiny: float) -> bool:
    """Finite and either zero or normal: the values every backend compares alike."""
    return bool(np.isfinite(x)) and (x == 0 or abs(x) >= tiny)


def _floatx() -> tuple[type | None, float]:
    if standin.active():  # Keras's default floatx
        return np.float32, _FLOAT32_TINY
    from keras import backend

    floatx = backend.floatx()
    if floatx not in ("float32", "float64"):
        return None, 0.0
    dtype = np.float32 if floatx == "float32" else np.float64
    return dtype, float(np.finfo(dtype).tiny)


def resolve_direction(mode: str, metric: str | None, model: Any, owner: str, *,
                      mode_parameter: bool = True) -> str:
    """`min`/`max`, with Keras 3's `mode='auto'`: loss goes down, else the metric's direction.

    The error is Keras's, asking for `mode='max'`, when the callback has a `mode` parameter
    (`mode_parameter`); otherwise it says what to write in the rule file.
    """
    if mode in ("min", "max"):
        return mode
    name = (metric or "").removeprefix("val_")
    direction = "min" if name == "loss" else None
    for m in _compiled_metrics(model):
        if getattr(m, "name", None) == name and hasattr(m, "_direction"):
            direction = "max" if m._direction == "up" else "min"
    if direction is None:
        raise MetricDirectionError(Diagnostic("E402", direction_message(owner, metric,
                                                                        mode_parameter)))
    return direction


def direction_message(owner: str, metric: str | None, mode_parameter: bool) -> str:
    """Keras's words for a metric of no known direction, or the rule file's way to give one."""
    head = (f"{owner} callback received monitor={metric}, but Keras isn't able to "
            "automatically determine whether that metric should be maximized or minimized. ")
    if mode_parameter:
        return head + ("Pass `mode='max'` in order to monitor based on the highest metric "
                       "value, or pass `mode='min'` in order to use the lowest value.")
    return head + ("Write `with mode = \"max\"` after `stalls` or `improves` in the rule in "
                   "order to monitor based on the highest metric value, or "
                   "`with mode = \"min\"` in order to use the lowest value.")


_FLOAT32_TINY = float(np.finfo(np.float32).tiny)
# below these in size a value rounds into the dtype without overflow (NaN fails every test)
_LIMIT = {np.float32: float(np.finfo(np.float32).max), np.float64: float("inf")}


def _compiled_metrics(model: Any) -> list[Any]:
    if standin.active():
        return [m for ms in getattr(model, "metrics", []) or []
                if isinstance(ms, standin.MetricsList) for m in ms.metrics]
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
