"""What every effect shares: its error, and the resources a callback keeps open."""

from __future__ import annotations

from typing import Any

from cbdsl.diagnostics import CbdslRuntimeError, Diagnostic, KerasWorded


class EffectError(KerasWorded, CbdslRuntimeError, ValueError):
    """An effect could not run, for a reason Keras's callback gives in the same words
    (a ValueError, as Keras raises)."""


def _resources(cb: Any) -> dict[str, Any]:
    """What a callback's effects keep open between events: the bar, writers (not state)."""
    return cb.__dict__.setdefault("resources", {})


def _fail(message: str, where: str) -> EffectError:
    return EffectError(Diagnostic("E405", message, hint=where))
