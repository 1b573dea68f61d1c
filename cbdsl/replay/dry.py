"""One dry run: a policy's compiled callbacks driven over one recorded log, and its plot."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbdsl.diagnostics import CbdslError, Diagnostic
from cbdsl.replay.logs import LogFormatError


@dataclass
class Replay:
    """What a policy would have done over a recorded log.

    Attributes:
        epochs: the log's epoch logs, in order (what each `on_epoch_end` received).
        learning_rates: the learning rate after each replayed epoch.
        firings: every rule firing (`cbdsl.runtime.Firing`), in order; the actions that
            write, send or run effects are there as what they would have done
            ("would save model to m3.keras").
        stopped_at: the 0-based epoch at which the policy stops training, or None.
        warnings: the warnings raised along the way, with their 0-based epoch.
        skipped_events: batch and other events a per-epoch log cannot replay.
        monitored: the metrics the policy's `stalls` and `improves` predicates watch.
        assumed: the directions `mode = "auto"` took from the log's metric names, as
            `{metric: "min" | "max"}` (Keras's built-in metrics' own, `directions`).
    """

    epochs: list[dict[str, float]]
    learning_rates: list[float] = field(default_factory=list)
    firings: list[Any] = field(default_factory=list)
    stopped_at: int | None = None
    warnings: list[tuple[int | None, str]] = field(default_factory=list)
    skipped_events: list[str] = field(default_factory=list)
    monitored: list[str] = field(default_factory=list)
    assumed: dict[str, str] = field(default_factory=dict)

    @property
    def withheld(self) -> list[tuple[int | None, str, str]]:
        """What training would have done that the dry run did not: files written, requests
        sent, effects run, as `(0-based epoch or None, rule, "would ...")`, in order."""
        return [(f.epoch, f.rule, said) for f in self.firings for done in f.actions
                for said in done.split("\n") if said.startswith("would ")]


def replay(callbacks: list[Any], epochs: list[dict[str, float]],
           learning_rate: float | None = None, *, policy: str | Path | None = None) -> Replay:
    """Drive compiled callbacks over recorded epoch logs, as `fit` would have called them.

    A dry run: the callbacks are the ones that train (the same compiled rules), with their
    `dry_run` switch on, so that the actions that would write files (`save`, `write`,
    `append`, `write row`), send requests (`post`) or run effects (progress bars, EMA swaps,
    backups, TensorBoard) do nothing and say in the timeline what they would have done.
    Nothing is written or sent; Python functions the caller passed (hooks, schedules) are
    called as in training. The learning rate, stops, logs and state change as in training,
    on a stub model.

    Args:
        callbacks: from `cbdsl.compile` (the engine that runs during training).
        epochs: per-epoch logs (`read_log`).
        learning_rate: the starting rate; default the log's first `learning_rate`/`lr`,
            else 0.001.
        policy: the policy's file, named in errors.

    Returns:
        The `Replay`.

    Raises:
        LogFormatError: the policy failed (E502), as it would have ended `fit`: the message
            names the policy file and the epoch, counted from 1 as Keras prints epochs.
        TypeError: a callback is not a compiled one, which cannot run dry.
    """
    from cbdsl.dryrun import StubModel, drive
    from cbdsl.language import EVENTS
    from cbdsl.replay.directions import stand_in_metrics

    for cb in callbacks:
        if not hasattr(type(cb), "dry_run"):
            raise TypeError(f"replay drives compiled callbacks only, which can run dry; got "
                            f"{type(cb).__name__}")
    first = epochs[0] if epochs else {}
    lr = learning_rate if learning_rate is not None else first.get(
        "learning_rate", first.get("lr", 0.001))
    model = StubModel(lr, metrics=stand_in_metrics(
        list(dict.fromkeys(k for logs in epochs for k in logs))))
    trace = [{"logs": dict(logs)} for logs in epochs]
    result = Replay(epochs)
    for cb in callbacks:
        for event in getattr(cb, "rules_by_event", {}):
            if EVENTS[event].level == "batch" or EVENTS[event].phase != "train":
                result.skipped_events.append(event)
        result.monitored += [t.metric for rules in getattr(cb, "rules_by_event", {}).values()
                             for r in rules for t in r.trackers if t.metric]
    with _dry(callbacks):
        outcome = drive(_Together(callbacks), trace, model=model,
                        fit_params={"epochs": len(trace), "steps": None, "verbose": 0})
    for record in outcome.events:
        if record["event"] == "epoch_end":
            result.learning_rates.append(record["lr"])
            if record["stop"] and result.stopped_at is None:
                result.stopped_at = record["index"]
        for said in record.get("warnings", []):
            result.warnings.append((record.get("index"), said))
    if outcome.error:
        raise LogFormatError(Diagnostic(
            "E502", f"the policy failed {_when(outcome.events, outcome.error['at'], len(trace))}"
            f" (epochs counted from 1, as Keras prints them): {_failure(outcome)}",
            path=str(policy) if policy is not None else "<policy>"))
    result.firings = sorted((f for cb in callbacks for f in cb.timeline),
                            key=lambda f: (-1 if f.epoch is None else f.epoch))
    result.skipped_events = sorted(set(result.skipped_events) - {"epoch_begin", "epoch_end",
                                                                   "train_begin", "train_end"})
    result.monitored = list(dict.fromkeys(result.monitored))
    result.assumed = assumed_directions(callbacks)
    return result


def assumed_directions(callbacks: list[Any]) -> dict[str, str]:
    """The directions the callbacks' `mode = "auto"` trackers resolved to, by metric."""
    found = {}
    for cb in callbacks:
        for specs in getattr(cb, "trackers_by_event", {}).values():
            for spec in specs:
                tracker = cb.state.trackers.get(spec.name)
                if spec.mode == "auto" and spec.metric and tracker is not None \
                        and tracker.direction:
                    found[spec.metric] = tracker.direction
    return found


_UNSET = object()


@contextlib.contextmanager
def _dry(callbacks: list[Any]) -> Iterator[None]:
    """The callbacks' `dry_run` switch on, then back as it was."""
    before = [cb.__dict__.get("dry_run", _UNSET) for cb in callbacks]
    for cb in callbacks:  # on the instance, past a drop-in's attribute writes
        cb.__dict__["dry_run"] = True
    try:
        yield
    finally:
        for cb, value in zip(callbacks, before, strict=True):
            if value is _UNSET:
                cb.__dict__.pop("dry_run", None)
            else:
                cb.__dict__["dry_run"] = value


def _when(records: list[dict[str, Any]], at: int, count: int) -> str:
    """Where the hook `records[at]` ran, as a person reads it: `at the end of epoch 3 of 10`."""
    event, index = records[at]["event"], records[at].get("index")
    if event == "train_begin":
        return "as training began, before epoch 1"
    if event == "train_end":
        ended = sum(r["event"] == "epoch_end" for r in records)
        return f"as training ended, after epoch {ended} of {count}"
    place = "at the start of" if event == "epoch_begin" else "at the end of"
    return f"{place} epoch {index + 1} of {count}"


def _failure(outcome: Any) -> str:
    """The exception that ended the replay, its diagnostics' codes and messages unwrapped."""
    error, exception = outcome.error, outcome.exception
    if isinstance(exception, CbdslError):
        return f"{error['type']}: " + "; ".join(
            f"{d.code} {d.message}" + (f" ({d.hint})" if d.hint else "")
            for d in exception.diagnostics)
    return f"{error['type']}: {error['message']}"


class _Together:
    """Several callbacks driven as one, in list order, as Keras's CallbackList calls them."""

    def __init__(self, callbacks: list[Any]):
        self.callbacks = callbacks

    def __getattr__(self, name: str) -> Any:
        if not name.startswith(("on_", "set_")):
            raise AttributeError(name)

        def each(*args: Any, **kwargs: Any) -> None:
            for cb in self.callbacks:
                getattr(cb, name)(*args, **kwargs)
        return each


def plot(result: Replay, path: str | Path, metrics: list[str] | None = None) -> Path:
    """Save a figure: the metrics per epoch, the learning rate on a second axis, and a marker
    at each firing, labelled with its rule.

    Args:
        result: from `replay`.
        path: the image to write (its suffix picks the format: `.png`, `.svg`, `.pdf`).
        metrics: the metrics to draw; default the ones the policy monitors, else every
            loss in the log.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = metrics or [m for m in result.monitored if any(m in e for e in result.epochs)] or [
        k for k in dict.fromkeys(k for e in result.epochs for k in e) if "loss" in k]
    shown = len(result.learning_rates)
    x = list(range(1, shown + 1))
    fig, ax = plt.subplots(figsize=(9, 4.8), layout="constrained")
    for name in names:
        ax.plot(x, [result.epochs[i].get(name, math.nan) for i in range(shown)], label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(", ".join(names))
    lr_axis = ax.twinx()
    lr_axis.step(x, result.learning_rates, where="post", color="tab:gray", linestyle="--",
                 label="learning rate")
    if all(v > 0 for v in result.learning_rates):
        lr_axis.set_yscale("log")
    lr_axis.set_ylabel("learning rate")
    for firing in result.firings:
        if firing.epoch is None or firing.epoch >= shown:
            continue
        ax.axvline(firing.epoch + 1, color="tab:red", alpha=0.35, linewidth=1)
        ax.annotate(firing.rule, (firing.epoch + 1, 0.02), xycoords=("data", "axes fraction"),
                    rotation=90, va="bottom", ha="right", fontsize=7, color="tab:red")
    handles = ax.get_legend_handles_labels()
    extra = lr_axis.get_legend_handles_labels()
    ax.legend(handles[0] + extra[0], handles[1] + extra[1], loc="upper right", fontsize=8)
    title = "policy replay"
    if result.stopped_at is not None:
        title += f": stops at epoch {result.stopped_at + 1}"
    ax.set_title(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
