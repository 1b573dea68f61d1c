"""A policy's settings replayed over many recorded runs: epochs saved against quality lost."""

from __future__ import annotations

import contextlib
import io
import itertools
import math
import multiprocessing
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cbdsl.diagnostics import CbdslError, Diagnostic
from cbdsl.replay.directions import metric_direction, stand_in_metrics
from cbdsl.replay.dry import assumed_directions
from cbdsl.replay.logs import Run

LR_COLUMNS = ("learning_rate", "lr")


class SweepError(CbdslError):
    """A sweep that cannot be run: a malformed `--sweep`, or no metric to judge by (E503)."""


def parse_value(text: str) -> Any:
    """A setting's value as written on the command line: a number, `true`/`false`, `none`,
    a quoted string, or else the text itself."""
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        return stripped[1:-1]
    for kind in (int, float):
        try:
            return kind(stripped)
        except ValueError:
            pass
    return stripped


def parse_sweep(specs: Sequence[str]) -> dict[str, list[Any]]:
    """`NAME=V1,V2,...` and `NAME=A..B` (integers A to B; `A..B..STEP`) to values by name.

    Raises:
        SweepError: a malformed item, an empty or reversed range, a name given twice (E503).
    """
    values: dict[str, list[Any]] = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not rest.strip():
            raise SweepError(Diagnostic(
                "E503", f"--sweep takes NAME=V1,V2,... or NAME=A..B, got {spec!r}"))
        if name in values:
            raise SweepError(Diagnostic("E503", f"--sweep names '{name}' twice"))
        if ".." in rest:
            parts = rest.split("..")
            try:
                bounds = [int(p) for p in parts]
            except ValueError:
                raise SweepError(Diagnostic(
                    "E503", f"--sweep {name}: a range is of integers, A..B or A..B..STEP, "
                    f"got {rest!r}")) from None
            if len(bounds) not in (2, 3) or (len(bounds) == 3 and bounds[2] <= 0) \
                    or bounds[1] < bounds[0]:
                raise SweepError(Diagnostic(
                    "E503", f"--sweep {name}: {rest!r} is not a range A..B (A <= B) or "
                    "A..B..STEP (STEP > 0)"))
            values[name] = list(range(bounds[0], bounds[1] + 1,
                                      bounds[2] if len(bounds) == 3 else 1))
        else:
            values[name] = [parse_value(v) for v in rest.split(",")]
    return values


def settings_of(sweep: dict[str, list[Any]], fixed: dict[str, Any] | None = None
                ) -> list[dict[str, Any]]:
    """The cross product of the swept values, each with the `fixed` ones, in order."""
    names = list(sweep)
    return [{**(fixed or {}), **dict(zip(names, combo, strict=True))}
            for combo in itertools.product(*(sweep[n] for n in names))]


@dataclass
class RunResult:
    """What one setting did over one recorded run.

    Attributes:
        path: the run's log.
        recorded: epochs in the log.
        ran: epochs the policy would have run (all of them when it never stops).
        stopped_at: the 1-based epoch at which it stops, or None.
        kept_epoch: the 1-based epoch whose weights training ends with (the restored best,
            else the last one run).
        kept: the monitored value at `kept_epoch` (NaN when that epoch does not log it).
        best: the best monitored value in the whole recorded run.
        regret: how much worse `kept` is than `best` (0 when it is the best; NaN when unknown).
        exact: whether the replay is what the policy would have done: false from the first
            epoch at which its learning rate leaves the recorded one.
        counterfactual_from: that 1-based epoch, or None.
        lr_unverified: the policy changes the learning rate and the log has no learning-rate
            column to check it against (not counted as exact).
        error: the policy failed on this run (E502), with why; the rest is then unset.
    """

    path: str
    recorded: int
    ran: int = 0
    stopped_at: int | None = None
    kept_epoch: int | None = None
    kept: float = math.nan
    best: float = math.nan
    regret: float = math.nan
    exact: bool = True
    counterfactual_from: int | None = None
    lr_unverified: bool = False
    error: str | None = None


@dataclass
class SettingReport:
    """One setting over every run, summed up.

    Attributes:
        setting: the parameter values.
        runs: one `RunResult` per run.
        monitor: the metric quality is judged by, and `direction`: `min` or `max`.
    """

    setting: dict[str, Any]
    monitor: str
    direction: str
    runs: list[RunResult] = field(default_factory=list)

    @property
    def replayed(self) -> list[RunResult]:
        return [r for r in self.runs if r.error is None]

    @property
    def stopped_early(self) -> int:
        return sum(r.stopped_at is not None and r.ran < r.recorded for r in self.replayed)

    @property
    def epochs_recorded(self) -> int:
        return sum(r.recorded for r in self.replayed)

    @property
    def epochs_run(self) -> int:
        return sum(r.ran for r in self.replayed)

    @property
    def saved_percent(self) -> float:
        total = self.epochs_recorded
        return 100.0 * (total - self.epochs_run) / total if total else 0.0

    @property
    def regrets(self) -> list[float]:
        return [r.regret for r in self.replayed if not math.isnan(r.regret)]

    @property
    def mean_regret(self) -> float:
        values = self.regrets
        return sum(values) / len(values) if values else math.nan

    @property
    def worst_regret(self) -> float:
        return max(self.regrets, default=math.nan)

    @property
    def exact(self) -> int:
        return sum(r.exact for r in self.replayed)

    @property
    def failed(self) -> int:
        return sum(r.error is not None for r in self.runs)

    def summary(self) -> dict[str, Any]:
        """The figures of the report, JSON-ready."""
        return {"setting": self.setting, "monitor": self.monitor, "direction": self.direction,
                "runs": len(self.runs), "stopped_early": self.stopped_early,
                "epochs_recorded": self.epochs_recorded, "epochs_run": self.epochs_run,
                "epochs_saved": self.epochs_recorded - self.epochs_run,
                "saved_percent": self.saved_percent, "mean_regret": _plain(self.mean_regret),
                "worst_regret": _plain(self.worst_regret), "exact": self.exact,
                "counterfactual": sum(r.counterfactual_from is not None for r in self.replayed),
                "lr_unverified": sum(r.lr_unverified for r in self.replayed),
                "failed": self.failed}


@dataclass
class Sweep:
    """Every setting over every run.

    Attributes:
        settings: one `SettingReport` per setting, in sweep order.
        unreadable: `(path, reason)` for each run that could not be read.
        assumed: `mode = "auto"` directions taken from the logs' metric names, as
            `{metric: "min" | "max"}`.
    """

    settings: list[SettingReport]
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    assumed: dict[str, str] = field(default_factory=dict)

    def pareto(self) -> list[int]:
        """The indices of the settings on the Pareto front: no other setting saves at least as
        many epochs with no more mean regret, and is better at one of the two."""
        points = [(s.saved_percent, s.mean_regret) for s in self.settings]
        front = []
        for i, (saved, regret) in enumerate(points):
            if math.isnan(regret):
                continue
            if not any(j != i and not math.isnan(r) and s >= saved and r <= regret
                       and (s > saved or r < regret) for j, (s, r) in enumerate(points)):
                front.append(i)
        return front

    def to_json(self) -> dict[str, Any]:
        """The whole report as plain data: per setting its summary and its runs."""
        front = set(self.pareto())
        return {"settings": [{**s.summary(), "pareto": i in front,
                              "per_run": [_plain_run(r) for r in s.runs]}
                             for i, s in enumerate(self.settings)],
                "unreadable": [{"path": p, "reason": why} for p, why in self.unreadable],
                "assumed_directions": self.assumed}


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else value


def _plain_run(result: RunResult) -> dict[str, Any]:
    return {k: _plain(v) if isinstance(v, float) else v for k, v in asdict(result).items()}


# ------------------------------------------------------------------ the engine


def learning_rate_of(epochs: list[dict[str, float]], default: float = 0.001) -> float:
    """The run's starting learning rate: its first `learning_rate`/`lr`, else `default`."""
    first = epochs[0] if epochs else {}
    return next((first[k] for k in LR_COLUMNS if k in first), default)


def policy_monitor(callbacks: list[Any]) -> str | None:
    """The metric the policy's first `stalls`/`improves` watches (a parameter's value, for
    `metric(monitor)`), or None."""
    for cb in callbacks:
        for rules in getattr(cb, "rules_by_event", {}).values():
            for rule in rules:
                for tracker in rule.trackers:
                    if tracker.metric and tracker.metric not in ("lr", "learning_rate"):
                        return tracker.metric
    return None


def replay_run(callbacks: list[Any], run: Run, monitor: str, direction: str, *,
               learning_rate: float | None = None,
               assumed: dict[str, str] | None = None) -> RunResult:
    """Drive compiled callbacks over one run, as `fit` calls their epoch hooks, and judge it.

    The callbacks are started afresh (as new instances of their class would be), run dry,
    and driven through `on_train_begin`, `on_epoch_begin`/`on_epoch_end` per recorded epoch
    and `on_train_end` on a stub model; what they print and warn is dropped.

    Args:
        callbacks: compiled callbacks (from `cbdsl.compile`), reused run after run.
        run: the recorded run.
        monitor: the metric quality is judged by; `direction` says which way is better.
        learning_rate: the starting rate; default the log's (`learning_rate_of`).
        assumed: filled with the directions `mode = "auto"` resolved to from names.

    Returns:
        The `RunResult`; a policy that fails on the run gives one with `error` set.
    """
    from cbdsl.dryrun import StubModel

    epochs = run.epochs
    result = RunResult(run.path, len(epochs))
    lr = learning_rate if learning_rate is not None else learning_rate_of(epochs)
    model = StubModel(lr, metrics=stand_in_metrics(list(epochs[0]) if epochs else []))
    column = next((k for k in LR_COLUMNS if any(k in e for e in epochs)), None)
    lrs: list[float] = []  # the rate in use during each epoch
    after: list[float] = []  # and at its end, once the policy's epoch_end rules have run
    stopped = None
    for cb in callbacks:
        cb.__dict__.pop("state", None)  # a fresh start: nothing kept from the last run
        cb.reset_state()
        cb.timeline.clear()
        cb.__dict__["dry_run"] = True
        cb.set_model(model)
        cb.set_params({"epochs": len(epochs), "steps": None, "verbose": 0})
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            for cb in callbacks:
                cb.on_train_begin(None)
            for epoch, logs in enumerate(epochs):
                for cb in callbacks:
                    cb.on_epoch_begin(epoch, {})
                lrs.append(float(model.optimizer.learning_rate))
                model.weights_version = epoch
                given = dict(logs)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, given)
                after.append(float(model.optimizer.learning_rate))
                if model.stop_training:
                    stopped = epoch
                    break
            for cb in callbacks:
                cb.on_train_end(None)
    except Exception as exc:  # as it would have ended `fit`
        why = "; ".join(f"{d.code} {d.message}" for d in exc.diagnostics) \
            if isinstance(exc, CbdslError) else f"{type(exc).__name__}: {exc}"
        result.error = f"E502 the policy failed at epoch {len(lrs) or 1}: {why}"
        return result
    finally:
        for cb in callbacks:
            cb.__dict__.pop("dry_run", None)
    if assumed is not None:
        assumed.update(assumed_directions(callbacks))
    result.ran = len(lrs)
    result.stopped_at = None if stopped is None else stopped + 1
    kept = model.weights_version if 0 <= model.weights_version < len(epochs) else len(lrs) - 1
    result.kept_epoch = kept + 1
    result.kept = epochs[kept].get(monitor, math.nan)
    values = [e[monitor] for e in epochs if monitor in e and math.isfinite(e[monitor])]
    if values:
        result.best = min(values) if direction == "min" else max(values)
        if math.isfinite(result.kept):
            result.regret = result.kept - result.best if direction == "min" \
                else result.best - result.kept
    if column is not None:
        # Keras logs the rate in use during the epoch (ReduceLROnPlateau and
        # LearningRateScheduler put it in the logs that CSVLogger and History keep).
        # TensorBoard logs the optimizer's rate when its own hook runs: during the epoch, or
        # its end when a callback before it in the list changed it; either reading holds.
        during = _first_mismatch(epochs, column, lrs)
        ending = _first_mismatch(epochs, column, after) if run.tensorboard else during
        if during is not None and ending is not None:
            result.exact = False
            result.counterfactual_from = min(during, ending) + 1
    elif any(not _same_rate(lr, x) for x in lrs) or (
            lrs and not _same_rate(lr, float(model.optimizer.learning_rate))):
        result.exact = False
        result.lr_unverified = True
    return result


def _first_mismatch(epochs: list[dict[str, float]], column: str,
                    replayed: list[float]) -> int | None:
    for epoch, rate in enumerate(replayed):
        recorded = epochs[epoch].get(column)
        if recorded is not None and not _same_rate(recorded, rate):
            return epoch
    return None


def _same_rate(recorded: float, replayed: float) -> bool:
    """Equal as the optimizer stores a rate (float32), up to a text log's rounding."""
    a, b = float(np.float32(recorded)), float(np.float32(replayed))
    return a == b or abs(a - b) <= 1e-6 * max(abs(a), abs(b))


# ------------------------------------------------------------------ many runs, many settings

_WORK: dict[str, Any] = {}  # the compiled settings and the runs, set before the pool forks


def _compile(policy: str | Path, setting: dict[str, Any]) -> list[Any]:
    import cbdsl

    return cbdsl.compile(policy, **setting)


def _work_chunk(task: tuple[int, int, int]) -> tuple[int, int, list[RunResult], dict[str, str]]:
    """In a worker: one setting over a slice of the runs."""
    from cbdsl.runtime import standin

    index, start, stop = task
    work = _WORK
    assumed: dict[str, str] = {}
    with standin.using():
        callbacks = work["compiled"][index]
        results = [replay_run(callbacks, run, work["monitor"], work["direction"],
                              learning_rate=work["lr"], assumed=assumed)
                   for run in work["runs"][start:stop]]
    return index, start, results, assumed


def sweep(policy: str | Path, runs: list[Run], settings: list[dict[str, Any]], *,
          monitor: str | None = None, learning_rate: float | None = None,
          jobs: int | None = None, unreadable: list[tuple[str, str]] | None = None,
          progress: Callable[[int], None] | None = None) -> Sweep:
    """Replay every setting of a policy over every recorded run, and report each setting.

    Each setting is compiled once with `cbdsl.compile` (the engine that trains) and driven
    dry over each run without Keras or a backend (`cbdsl.runtime.standin`); settings and
    runs are spread over `jobs` processes.

    Args:
        policy: the policy's file (or text).
        runs: from `read_runs`.
        settings: parameter values per setting (`settings_of`); `[{}]` for the defaults.
        monitor: the metric to judge quality by; default the one the policy watches.
        learning_rate: the starting rate of every run; default each log's.
        jobs: processes to use; default one per CPU, one for small sweeps.
        unreadable: runs that could not be read, carried into the report.
        progress: called with the number of runs just replayed, as they finish.

    Returns:
        The `Sweep`.

    Raises:
        CbdslError: a setting does not compile (its diagnostics), or no metric to judge by
            (E503).
    """
    from cbdsl.runtime import standin

    with standin.using():  # a bad value fails here, named, before any replay
        compiled = [_compile(policy, s) for s in settings]
    monitor = monitor or policy_monitor(compiled[0])
    if not monitor:
        raise SweepError(Diagnostic(
            "E503", "the policy watches no metric (no `stalls` or `improves`) to judge the "
            "quality it keeps by; name one with --monitor"))
    direction = {"up": "max", "down": "min"}.get(metric_direction(monitor) or "")
    for cb in compiled[0]:
        for specs in cb.trackers_by_event.values():
            for spec in specs:
                if spec.metric == monitor and spec.mode in ("min", "max"):
                    direction = spec.mode
    if direction is None:
        raise SweepError(Diagnostic(
            "E503", f"cannot tell whether {monitor} should go up or down (Keras's built-in "
            "metrics say, by their names); write `with mode = \"max\"` or \"min\" in the "
            "policy's rule"))
    reports = [SettingReport(s, monitor, direction, [None] * len(runs))  # type: ignore[list-item]
               for s in settings]
    out = Sweep(reports, list(unreadable or []))
    _WORK.clear()
    _WORK.update(compiled=compiled, runs=runs, monitor=monitor,
                 direction=direction, lr=learning_rate)
    chunk = max(1, min(250, math.ceil(len(runs) / 4)))
    tasks = [(i, start, min(start + chunk, len(runs)))
             for i in range(len(settings)) for start in range(0, len(runs), chunk)]
    work = len(runs) * len(settings)
    if jobs is None:
        jobs = 1 if work < 400 else len(os.sched_getaffinity(0)) \
            if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        for index, start, results, assumed in _map(tasks, jobs):
            reports[index].runs[start:start + len(results)] = results
            out.assumed.update(assumed)
            if progress is not None:
                progress(len(results))
    finally:
        _WORK.clear()
    return out


def _map(tasks: list[tuple[int, int, int]], jobs: int
         ) -> Iterator[tuple[int, int, list[RunResult], dict[str, str]]]:
    if jobs <= 1 or len(tasks) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        yield from map(_work_chunk, tasks)
        return
    with multiprocessing.get_context("fork").Pool(jobs) as pool:
        yield from pool.imap_unordered(_work_chunk, tasks)

