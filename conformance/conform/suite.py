"""The whole suite: which columns run which sections, running them at once, the report."""

from __future__ import annotations

import importlib.util
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cbdsl.conformance.conform.options import (
    BACKENDS,
    DEVICES,
    EXIT_FAIL,
    EXIT_PASS,
    Column,
    SuiteOptions,
)
from cbdsl.conformance.conform.workers import ColumnRun, run_column


def rows_of(options: SuiteOptions) -> list[str]:
    """The table's rows: `language` (unless specs were named), then each rule file: the
    decision specs, then the artifact specs; last `distributed` (the multi-process jobs),
    unless specs were named."""
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.specs import SPECS
    from cbdsl.conformance.worker import DISTRIBUTED

    if options.specs:
        return list(options.specs)
    return ["language", *SPECS, *ARTIFACT_SPECS, DISTRIBUTED]


def sections_of(row: str) -> tuple[str, ...]:
    """The sections that have something to say about a row."""
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.worker import ARTIFACT_SECTIONS, DECISION_SECTIONS, DISTRIBUTED

    if row in ("language", DISTRIBUTED):
        return (row,)
    return ARTIFACT_SECTIONS if row in ARTIFACT_SPECS else DECISION_SECTIONS


CPU_ONLY = {"artifacts": "runs on the CPU only: it compares the files and requests a fit "
                         "leaves (the fit section runs on the device)",
            "distributed": "runs on the CPU only: its jobs are processes on 127.0.0.1 with a "
                           "CPU device each"}
QUICK_FIT_ORDER = ("torch", "jax", "tensorflow")  # fastest real fits first, as measured


def fit_backend(options: SuiteOptions) -> str | None:
    """With `--quick`, the one backend that runs the real fits: the first of torch, jax and
    tensorflow (fastest fits first) that is selected and installed."""
    for backend in QUICK_FIT_ORDER:
        if backend in options.backends and importlib.util.find_spec(backend) is not None:
            return backend
    return None


def plan_columns(options: SuiteOptions) -> list[tuple[Column, list[str], dict[str, str]]]:
    """Each column to run, the sections it runs, and why it leaves the others out."""
    from cbdsl.conformance.worker import GPU_SECTIONS, SECTIONS

    quick_fit = fit_backend(options) if options.quick else None
    wanted = {s for row in rows_of(options) for s in sections_of(row)}
    planned = []
    for device in DEVICES:
        if device not in options.devices:
            continue
        for backend in options.backends:
            sections = [s for s in (SECTIONS if device == "cpu" else GPU_SECTIONS)
                        if s in wanted]
            not_run = {s: CPU_ONLY.get(s, "runs on the CPU only: it does not touch the device")
                       for s in SECTIONS if device != "cpu" and s not in GPU_SECTIONS}
            if options.quick and backend != quick_fit:
                for section in ("fit", "artifacts"):
                    if section in sections:
                        sections.remove(section)
                        not_run[section] = (f"--quick runs the real fits on one backend "
                                            f"({quick_fit})")
            if options.quick and "distributed" in sections:
                sections.remove("distributed")
                not_run["distributed"] = ("--quick leaves out the multi-process jobs (the "
                                          "full run has them)")
            if options.examples == 0 and "differential" in sections:
                sections.remove("differential")
                not_run["differential"] = "--examples 0"
            planned.append((Column(backend, device), sections, not_run))
    # the longest first, so that the last process to start is a short one
    return sorted(planned, key=lambda p: (p[0].device != "cpu", "fit" not in p[1]))


def run_suite(options: SuiteOptions, console: Any = None) -> dict[str, Any]:
    """Run the suite and return the report (what `--json` writes).

    Args:
        options: what to run.
        console: a `rich.console.Console` for the progress bar (none shown when None).

    Returns:
        The report: `cells[row][column]` with `status` (`pass`, `fail`, `skipped`), `reason`
        and `sections`; `timings` per column and section; `coverage`; `exit_status`.
    """
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    started = time.perf_counter()
    planned = plan_columns(options)
    progress = Progress(TextColumn("{task.description:<16}"), BarColumn(),
                        TaskProgressColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[what]}"), console=console,
                        disable=console is None, transient=True)
    tasks = {column: progress.add_task(column.key, total=None, what="waiting", start=False)
             for column, _, _ in planned}
    first_cpu = next((c for c, s, _ in planned if c.device == "cpu" and s
                      and importlib.util.find_spec(c.backend) is not None), None)

    def on_event(column: Column, event: dict[str, Any]) -> None:
        task = tasks[column]
        kind = event.get("event")
        if kind == "plan":
            progress.start_task(task)
            progress.update(task, total=max(event["total"], 1e-9), what="")
        elif kind == "progress":
            progress.update(task, completed=event["completed"], what=event.get("what", ""))
        elif kind == "skipped":
            progress.update(task, total=1, completed=1, what="skipped")

    def work(item: tuple[Column, list[str], dict[str, str]]) -> ColumnRun:
        column, sections, not_run = item
        progress.start_task(tasks[column])
        if (not sections and column != first_cpu
                and importlib.util.find_spec(column.backend) is not None):
            run = ColumnRun(column, result={"rows": {}, "timings": {}})  # no process to start
        else:
            progress.update(tasks[column], what="starting")
            run = run_column(column, options, sections, on_event,
                             coverage=column == first_cpu)
        run.not_run = not_run
        done = "skipped" if run.skipped else "crashed" if run.crashed else "done"
        progress.update(tasks[column], total=1, completed=1, what=done)
        if console is not None and sys.stdout.isatty() is False:
            console.print(f"{column.key}: {done} in {run.wall:.1f}s")
        return run

    with progress, ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
        runs = list(pool.map(work, planned))
    return report(options, runs, time.perf_counter() - started)


def report(options: SuiteOptions, runs: list[ColumnRun], wall: float) -> dict[str, Any]:
    """Assemble the machine-readable report from the workers' results."""
    rows = rows_of(options)
    cells: dict[str, dict[str, Any]] = {row: {} for row in rows}
    timings: dict[str, dict[str, float]] = {}
    columns: dict[str, dict[str, Any]] = {}
    coverage = None
    canonical = [(d, b) for d in DEVICES for b in BACKENDS]
    runs = sorted(runs, key=lambda r: canonical.index((r.column.device, r.column.backend)))
    for run in runs:
        key = run.column.key
        columns[key] = {"backend": run.column.backend, "device": run.column.device,
                        "wall_s": round(run.wall, 2)}
        if run.result:
            columns[key]["device_name"] = run.result.get("device_name")
            columns[key]["versions"] = run.result.get("versions")
            timings[key] = {k: round(v, 2) for k, v in run.result["timings"].items()}
            timings[key]["total"] = round(run.wall, 2)
            coverage = coverage or run.result.get("coverage")
        for row in rows:
            cells[row][key] = _cell(run, row)
    failed = any(c["status"] == "fail" for r in cells.values() for c in r.values())
    return {
        "kind": "suite",
        "options": {"backends": list(options.backends), "devices": list(options.devices),
                    "specs": list(options.specs), "examples": options.examples,
                    "quick": options.quick, "jobs": options.jobs, "seed": options.seed},
        "rows": rows, "columns": columns, "cells": cells, "timings": timings,
        "wall_s": round(wall, 2), "coverage": coverage,
        "exit_status": EXIT_FAIL if failed else EXIT_PASS,
    }


def _cell(run: ColumnRun, row: str) -> dict[str, Any]:
    if run.skipped:
        return {"status": "skipped", "reason": run.skipped, "sections": {}}
    if run.crashed:
        return {"status": "fail", "reason": run.crashed, "sections": {}}
    sections = dict(run.result.get("rows", {}).get(row, {}))
    for section, why in run.not_run.items():
        if section in sections_of(row):
            sections.setdefault(section, {"status": "skipped", "reason": why, "passed": 0,
                                          "failed": 0, "failures": []})
    statuses = [s["status"] for s in sections.values()]
    if "fail" in statuses:
        return {"status": "fail", "sections": sections}
    if "pass" in statuses:
        return {"status": "pass", "sections": sections}
    reasons = sorted({s.get("reason", "") for s in sections.values()} - {""})
    return {"status": "skipped", "reason": "; ".join(reasons) or "nothing to run",
            "sections": sections}
