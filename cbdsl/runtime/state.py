"""The state of compiled callbacks: one serializable object per callback, and its timeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class MissingMetric(Exception):
    """A rule read a log metric that the event's logs do not hold."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


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
