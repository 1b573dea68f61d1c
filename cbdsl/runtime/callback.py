"""The Callback base class of every compiled callback, and the hooks it overrides."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cbdsl import language
from cbdsl.runtime import standin
from cbdsl.runtime.effects import join_fit, run_deferred, take_restored
from cbdsl.runtime.files import close_rows
from cbdsl.runtime.monitor import resolve_direction
from cbdsl.runtime.rules import CompiledRule, Context, TrackerSpec
from cbdsl.runtime.state import CallbackState, Firing, TrackerState

# Keras's MonitorCallback attributes, read from (and written to) a callback's one tracker.
TRACKER_ALIASES = {"wait": "wait", "best": "best", "best_epoch": "best_epoch", "value": "value",
                   "best_weights": "best_weights", "cooldown": "cooldown",
                   "cooldown_counter": "cooldown"}


def single_tracker(cb: Any) -> TrackerState | None:
    """A callback's tracker when it has exactly one (whose fields read as its attributes)."""
    trackers = cb.state.trackers
    return next(iter(trackers.values())) if len(trackers) == 1 else None


def compiled_base() -> type:
    """The base class of every compiled callback (imports Keras on first use), or, while
    `standin.using()` is on (a dry run), the same class on a base that needs no Keras."""
    return _compiled_base(standin.active())


@functools.cache
def _compiled_base(keras_free: bool) -> type:
    if keras_free:
        base: type = standin.Callback
    else:
        import keras

        base = keras.callbacks.Callback

    class CompiledCallback(base):  # type: ignore[valid-type,misc]
        """A callback compiled from cbdsl rules.

        Only the hooks its rules use are overridden, so an epoch-only policy adds
        nothing to Keras's per-batch work. All state lives in `self.state`
        (a `cbdsl.CallbackState`); its fields read as attributes:
        `cb.wait`, `cb.best`, `cb.stopped_epoch`, state variables by name.

        Attributes:
            state: the serializable state of every rule.
            timeline: `cbdsl.runtime.Firing` entries, one per rule that fired.
            arguments: the bound parameter values.
            dry_run: when true, the actions that write files (`save`, `write`, `append`,
                `write row`), send requests (`post`) or run effects do nothing and say in
                the timeline what they would have done ("would save model to m3.keras");
                everything else runs as in training. `cbdsl replay` sets it.
        """

        definition_name = ""
        rules_by_event: dict[str, list[CompiledRule]] = {}
        initial_variables: dict[str, Callable[[], Any]] = {}
        tracker_names: tuple[str, ...] = ()
        kept: frozenset[str] = frozenset()  # variables and trackers kept across `fit` calls
        trackers_by_event: dict[str, list[TrackerSpec]] = {}
        phase = "train"
        records = False  # whether a `record` action makes this a History
        deferred: Any = ()  # backups' rule states to write once this event's rules have run
        exposed: dict[str, Callable[[Context], Any]] = {}  # `expose NAME = EXPR`
        handles: tuple[str, ...] = ()  # Python objects effects keep open (`csv_file`), by name
        rest_parameter: str | None = None  # the `keywords` parameter: Keras's **kwargs
        dry_run = False  # consulted by every action that touches files, the network, effects

        def __init__(self, arguments: dict[str, Any]):
            super().__init__()
            self.arguments = dict(arguments)
            self.timeline: list[Firing] = []
            self.state = CallbackState()
            self.reset_state()

        def reset_state(self) -> None:
            """Start every counter, best value and variable afresh (done at train begin).

            The recorded history is kept across `fit` calls, as Keras's History keeps it, and so
            are `keep var` variables and trackers `with keep = true`. A tracker's direction,
            once fixed, is kept too, as Keras's `monitor_op` is.
            """
            old = self.__dict__.get("state")
            kept = self.kept if old is not None else frozenset()
            before = old.trackers if old is not None else {}
            self.state = CallbackState(
                variables={k: old.variables[k] if k in kept and k in old.variables else make()
                           for k, make in self.initial_variables.items()},
                trackers={k: before[k] if k in kept and k in before
                          else TrackerState(direction=before[k].direction if k in before
                                            else None)
                          for k in self.tracker_names},
                history=old.history if old is not None else {})

        def step_index(self, batch: int | None) -> int | None:
            """The 0-based index across epochs of the train batch `batch` (of this event)."""
            if batch is None:
                return None
            if self.event == "train_batch_begin":  # not counted yet: the batch about to run
                return self.state.step
            return self.state.step - 1

        def steps_after(self, batch: int) -> int:
            # batches counted across epochs, as ModelCheckpoint does (steps_per_execution too)
            last = self.state.last_batch
            return self.state.step + (batch + 1 if last is None or batch <= last
                                      else batch - last)

        def count_step(self, batch: int) -> None:
            self.state.step = self.steps_after(batch)
            self.state.last_batch = batch

        def _run(self, event: str, phase: str, logs, epoch=None, batch=None) -> None:
            self.phase, self.event = phase, event
            # As Keras sets its monitor op first thing in the hook, before reading any log,
            # `mode="auto"` resolves (or fails) at the first event of a tracker's rules.
            for spec in self.trackers_by_event.get(event, ()):
                tracker = self.state.trackers[spec.name]
                if tracker.direction is None:
                    tracker.direction = resolve_direction(
                        spec.mode, spec.metric, self.model, self.__class__.__name__,
                        mode_parameter="mode" in self.arguments)
            ctx = Context(self, logs, epoch, batch)
            counters = {"epoch": epoch, "batch": batch, "step": self.step_index(batch)}
            for rule in self.rules_by_event.get(event, ()):  # a drop-in's rules may drop out
                rule.run(ctx, event, counters)
            if self.deferred:  # backups waiting for this event's last compiled callback
                run_deferred(self)

        def __getattr__(self, name: str) -> Any:
            """Exposed attributes, arguments (and other keyword arguments, as LambdaCallback
            keeps them), state variables, trackers by name, for a callback with one tracker
            Keras's MonitorCallback attributes (`wait`, `best`, `monitor_op`, ...), and the
            Python objects its effects keep open (`csv_file`, `writer`, `progbar`)."""
            if name in ("state", "tracker_names") or name.startswith("__"):
                raise AttributeError(name)
            state = self.__dict__.get("state")
            if state is not None and name in self.exposed:  # read live, with no event
                return self.exposed[name](Context(self, None, state.epoch, None))
            arguments = self.__dict__.get("arguments")
            if arguments is not None:
                if name in arguments:  # as Keras's classes keep them
                    return arguments[name]
                if self.rest_parameter is not None and name in arguments[self.rest_parameter]:
                    return arguments[self.rest_parameter][name]
            if state is not None:
                if name in state.variables:
                    return state.variables[name]
                if name in state.trackers:
                    return state.trackers[name]
                if name in ("stopped_epoch", "step", "fired"):
                    return getattr(state, name)
                if self.records and name in ("history", "epoch"):
                    return state.history if name == "history" else state.recorded_epochs
                tracker = single_tracker(self)
                if tracker is not None and name in TRACKER_ALIASES:
                    return getattr(tracker, TRACKER_ALIASES[name])
                if tracker is not None and name == "monitor_op":
                    import keras

                    return {"min": keras.ops.less,
                            "max": keras.ops.greater}.get(tracker.direction)
            if name in self.handles:  # none until an effect opens it
                return self.__dict__.get("resources", {}).get(name)
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

        def __repr__(self) -> str:
            args = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
            return f"{type(self).__name__}({args})"

    return CompiledCallback


def make_hook(event: language.Event, needs_epoch_begin: bool, counts_steps: bool,
          records: bool = False) -> Callable:
    name, phase = event.name, event.phase
    if event.level == "epoch":
        if name == "epoch_begin":
            def hook(self, epoch, logs=None):
                self.state.epoch = epoch
                self._run(name, phase, logs, epoch)
        else:
            def hook(self, epoch, logs=None):
                self._run(name, phase, logs, epoch)
    elif event.level == "batch":
        if counts_steps and name == "train_batch_end":
            def hook(self, batch, logs=None):
                self.count_step(batch)
                self._run(name, phase, logs, self.state.epoch if phase == "train" else None,
                          batch)
        else:
            def hook(self, batch, logs=None):
                self._run(name, phase, logs, self.state.epoch if phase == "train" else None,
                          batch)
    elif name == "train_begin":
        def hook(self, logs=None):
            self.reset_state()
            join_fit(self)
            if name in self.rules_by_event:
                self._run(name, phase, logs)
            take_restored(self)  # a resumed backup's state for this callback
    elif name == "train_end":
        def hook(self, logs=None):
            self._run(name, phase, logs, self.state.epoch)
            close_rows(self.__dict__.get("resources", {}))  # a CSV file kept open, as Keras's
            if records:
                self.model.history = self  # `fit` returns the model's history: this one
    else:
        def hook(self, logs=None):
            self._run(name, phase, logs, self.state.epoch if name == "train_end" else None)
    hook.__name__ = event.hook
    return hook
