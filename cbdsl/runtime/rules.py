"""Compiled rules at run time: the event's context, filters, trackers, condition and actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cbdsl.diagnostics import CbdslRuntimeError, Diagnostic, Span
from cbdsl.language.values import describe, is_number
from cbdsl.runtime.monitor import update_tracker
from cbdsl.runtime.state import Firing, MissingMetric
from cbdsl.runtime.training import read_lr, warn_missing

Fn = Callable[["Context"], Any]


class Context:
    """What a rule sees while one event runs: logs, counters, learning rate, predicate results."""

    __slots__ = ("_lr", "batch", "cb", "epoch", "locals", "logs", "missing", "results")

    def __init__(self, cb: Any, logs: dict | None, epoch: int | None, batch: int | None):
        self.cb, self.logs, self.epoch, self.batch = cb, logs, epoch, batch
        self.results: dict[int, bool] = {}
        self._lr: float | None = None
        self.missing: str | None = None
        self.locals: dict[str, Any] = {}  # the names `for` loops bind

    def metric(self, name: str) -> Any:
        logs = self.logs
        if logs is None or name not in logs or logs[name] is None:
            raise MissingMetric(name)
        return logs[name]

    def lr(self) -> float:
        if self._lr is None:
            self._lr = read_lr(self.cb.model)
        return self._lr


@dataclass
class TrackerSpec:
    """A compiled `stalls`/`improves` predicate of one rule."""

    slot: int
    name: str
    subject: Fn
    metric: str | None
    stalls: int | None
    mode: str
    min_delta: float
    baseline: float | None
    keep_weights: bool
    only: Fn | None = None  # `with only = COND`: checked only where COND holds
    kept: bool = False  # `with keep = true`: kept across `fit` calls
    span: Span | None = None  # where its subject is written


@dataclass
class CompiledRule:
    """One rule, ready to run: filters, trackers, condition and actions as closures."""

    label: str
    line: int
    index: int
    priority: int
    phase_of: dict[str, str]
    filters: list[tuple[str, str, int]] = field(default_factory=list)
    trackers: list[TrackerSpec] = field(default_factory=list)
    condition: Fn | None = None
    actions: list[Callable[[Context], str]] = field(default_factory=list)
    stops: bool = False
    reads: tuple[str, ...] = ()  # log metrics the actions read whatever the values
    origin: tuple[str, str | None] = ("<string>", None)  # its file and the file's text
    span: Span | None = None  # the rule's
    condition_span: Span | None = None
    action_spans: list[Span] = field(default_factory=list)

    @property
    def spans(self) -> list[Span | None]:
        """Where each action is written (the rule's place where the compiler gave none)."""
        return self.action_spans or [self.span] * len(self.actions)

    def passes_filters(self, ctx: Context, counters: dict[str, int | None]) -> bool:
        for kind, counter, count in self.filters:
            index = counters.get(counter)
            if index is None:
                return False
            if kind == "every" and (index + 1) % count:
                return False
            if (kind == "after" and index < count) or (kind == "before" and index >= count):
                return False
            if kind == "once" and index != count:
                return False
        return True

    def run(self, ctx: Context, event: str, counters: dict[str, int | None]) -> None:
        if self.filters and not self.passes_filters(ctx, counters):
            return
        cb = ctx.cb
        at = self.span  # the part running: where an error without a place of its own is
        checked: list[TrackerSpec] = []
        try:
            if self.trackers:
                checked = [t for t in self.trackers if t.only is None or t.only(ctx)]
                values = []
                for spec in checked:
                    at = spec.span
                    values.append(self.tracked(spec, spec.subject(ctx)))
                trackers = cb.state.trackers
                for spec, value in zip(checked, values, strict=True):
                    snapshot = cb.model.get_weights if spec.keep_weights else None
                    ctx.results[spec.slot] = update_tracker(
                        trackers[spec.name], value, ctx.epoch or 0, stalls=spec.stalls,
                        min_delta=spec.min_delta, baseline=spec.baseline, snapshot=snapshot)
            if self.condition is not None:
                at = self.condition_span
                if not self.condition(ctx):
                    return
            at = self.span
            for name in self.reads:  # before any action: a rule runs whole or not at all
                ctx.metric(name)
            done = []
            for action, span in zip(self.actions, self.spans, strict=True):
                at = span
                done.append(action(ctx))
        except MissingMetric as missing:
            # a read behind a condition inside an action (`x if has("m") else m`) can still
            # miss once earlier actions have run: those stay done
            self.metric_missing(ctx, missing.name, counters)
            return
        except CbdslRuntimeError as error:
            located = error.located(*self.origin, at)
            if located is error:
                raise
            raise located from error.__cause__
        state = cb.state
        if not self.stops:  # a stall acted on starts a new count; a stop keeps it, as Keras
            for spec in checked:  # (a predicate not checked here, `only`, is left as it is)
                if spec.stalls is not None:
                    state.trackers[spec.name].wait = 0
        state.fired[self.label] = state.fired.get(self.label, 0) + 1
        cb.timeline.append(Firing(event, ctx.epoch, ctx.batch, self.label,
                                          self.reasons(ctx), tuple(d for d in done if d)))

    def tracked(self, spec: TrackerSpec, value: Any) -> float:
        """A predicate's subject as the float it compares: a number, else E221."""
        if not is_number(value):
            path, source = self.origin
            raise CbdslRuntimeError(Diagnostic(
                "E221", f"rule {self.label}: '{spec.metric or 'the subject'}' must be a number "
                f"to be tracked, got {describe(value)}", spec.span, path, source))
        return float(value)

    def metric_missing(self, ctx: Context, name: str, counters: dict[str, int | None]) -> None:
        """The callback's `on metric_missing` rules, or else Keras's warning (also for a
        metric that an `on metric_missing` rule itself reads and misses: no rule runs again)."""
        cb = ctx.cb
        handlers = cb.rules_by_event.get("metric_missing")
        if not handlers or ctx.missing is not None:
            warn_missing(cb.__class__.__name__, self.line, name, ctx.logs or {})
            return
        signal = Context(cb, ctx.logs, ctx.epoch, ctx.batch)
        signal.missing = name
        for rule in handlers:
            rule.run(signal, "metric_missing", counters)

    def reasons(self, ctx: Context) -> tuple[str, ...]:
        out = []
        for spec in self.trackers:
            if not ctx.results.get(spec.slot):
                continue
            tracker = ctx.cb.state.trackers[spec.name]
            what = spec.metric or "value"
            if spec.stalls is not None:
                out.append(f"{what} has not improved on {_num(tracker.best)} for "
                           f"{spec.stalls if spec.stalls > 0 else 1} checks")
            else:
                out.append(f"{what} improved to {_num(tracker.value)}")
        if not out and self.condition is not None:
            out.append("its condition held")
        return tuple(out)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _num(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)
