"""Keras's parts a dry run touches, without Keras: the Callback base, a float32 learning rate."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import numpy as np

# On while a dry run builds and drives callbacks without Keras (`cbdsl replay`); training never
# sets it. The compiled rules are the same either way: only Keras's base class, the optimizer's
# variable and the backend comparison are stood in for, with Keras's float32 semantics.
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("cbdsl_standin", default=False)


def active() -> bool:
    """Whether callbacks built and driven now use the stand-ins instead of Keras."""
    return _ACTIVE.get()


@contextlib.contextmanager
def using() -> Iterator[None]:
    """Build and drive callbacks without importing Keras (or any backend) inside the block."""
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


class Callback:
    """`keras.callbacks.Callback`'s interface: `params`, `model`, and hooks that do nothing."""

    def __init__(self) -> None:
        self.params: dict[str, Any] | None = None
        self._model: Any = None

    def set_params(self, params: dict[str, Any]) -> None:
        self.params = params

    def set_model(self, model: Any) -> None:
        self._model = model

    @property
    def model(self) -> Any:
        return self._model


def _noop(self: Any, *args: Any, **kwargs: Any) -> None:
    return None


for _hook in ("batch_begin", "batch_end", "epoch_begin", "epoch_end", "train_begin",
              "train_end", "train_batch_begin", "train_batch_end", "test_begin", "test_end",
              "test_batch_begin", "test_batch_end", "predict_begin", "predict_end",
              "predict_batch_begin", "predict_batch_end"):
    setattr(Callback, f"on_{_hook}", _noop)


class Optimizer:
    """An optimizer's learning rate as Keras keeps it: a float32 variable, read as a float."""

    def __init__(self, learning_rate: float):
        self._lr = np.float32(learning_rate)
        self.iterations = 0

    @property
    def learning_rate(self) -> np.float32:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        self._lr = np.float32(value)


class Metric:
    """A compiled metric's name and direction (`up`/`down`), all `mode = "auto"` reads."""

    def __init__(self, name: str, direction: str | None):
        self.name = name
        if direction is not None:
            self._direction = direction


class MetricsList:
    """The container Keras keeps compiled metrics in (`model.metrics`)."""

    def __init__(self, metrics: list[Metric]):
        self.metrics = metrics


def compare(shifted: float, reference: float, direction: str) -> bool:
    """`ops.greater`/`ops.less` in float32, as Keras's NumPy backend computes them."""
    with np.errstate(over="ignore", invalid="ignore"):
        a, b = np.float32(shifted), np.float32(reference)
    return bool(a > b) if direction == "max" else bool(a < b)
