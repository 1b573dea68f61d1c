"""`cbdsl conform`: the suite across backends and devices, or one spec against any callback."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BACKENDS = ("tensorflow", "jax", "torch")
DEVICES = ("cpu", "gpu")
EXAMPLES, QUICK_EXAMPLES = 1000, 25
WORKER_TIMEOUT = 1800  # seconds one backend and device may take
EXIT_PASS, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input to `cbdsl conform`: one line for the user, exit status 2."""


# ------------------------------------------------------------------ the suite


@dataclass(frozen=True)
class Column:
    """One backend on one device: a column of the table, a process of its own."""

    backend: str
    device: str

    @property
    def key(self) -> str:
        return f"{self.backend}/{self.device}"


@dataclass
class SuiteOptions:
    """What `cbdsl conform` runs.

    Attributes:
        backends: the Keras backends, each in a process of its own.
        devices: `cpu`, `gpu` or both.
        specs: the rule files to run (all built-ins when empty): decision specs
            (`cbdsl.conformance.specs`) and artifact specs (`cbdsl.conformance.artifacts`);
            the language cases run only when this is empty.
        examples: generated traces per built-in.
        quick: run the real fits on one backend only, and there the artifacts' quick
            subset.
        jobs: how many backend processes run at once.
        seed: hypothesis's seed for the generated traces (random when None).
    """

    backends: Sequence[str] = BACKENDS
    devices: Sequence[str] = DEVICES
    specs: Sequence[str] = ()
    examples: int = EXAMPLES
    quick: bool = False
    jobs: int = 2
    seed: int | None = None


@dataclass
class ColumnRun:
    """What one worker process reported."""

    column: Column
    skipped: str | None = None
    crashed: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    wall: float = 0.0
    not_run: dict[str, str] = field(default_factory=dict)  # section -> why it was not run


def rows_of(options: SuiteOptions) -> list[str]:
    """The table's rows: `language` (unless specs were named), then each rule file: the
    decision specs, then the artifact specs."""
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.specs import SPECS

    return ([] if options.specs else ["language"]) + list(options.specs
                                                          or [*SPECS, *ARTIFACT_SPECS])


def sections_of(row: str) -> tuple[str, ...]:
    """The sections that have something to say about a row."""
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.worker import ARTIFACT_SECTIONS, DECISION_SECTIONS

    if row == "language":
        return ("language",)
    return ARTIFACT_SECTIONS if row in ARTIFACT_SPECS else DECISION_SECTIONS


CPU_ONLY = {"artifacts": "runs on the CPU only: it compares the files and requests a fit "
                         "leaves (the fit section runs on the device)"}
QUICK_FIT_ORDER = ("torch", "jax", "tensorflow")  # fastest real fits first, as measured


def fit_backend(options: SuiteOptions) -> str | None:
    """With `--quick`, the one backend that runs the real fits: the first of torch, jax and
    tensorflow (fastest fits first) that is selected and installed."""
    for backend in QUICK_FIT_ORDER:
        if backend in options.backends and importlib.util.find_spec(backend) is not None:
            return backend
    return None


def gpu_build(backend: str) -> str | None:
    """Why the installed build of `backend` cannot use a GPU, read from the installed
    distributions without importing the framework; None when it may (a worker then looks).
    """
    import importlib.metadata
    import re

    versions = {re.sub(r"[-_.]+", "-", (d.metadata["Name"] or "").lower()): d.version
                for d in importlib.metadata.distributions()}
    if backend == "tensorflow":
        gpu_capable = {"tensorflow", "tensorflow-gpu", "tf-nightly", "tensorflow-macos",
                       "tensorflow-metal", "tensorflow-rocm", "tensorflow-intel"}
        if "tensorflow-cpu" in versions and not gpu_capable & versions.keys():
            return (f"no GPU visible to tensorflow: tensorflow-cpu "
                    f"{versions['tensorflow-cpu']} is installed, a build without GPU support")
    elif backend == "torch" and sys.platform.startswith("linux"):
        found = importlib.util.find_spec("torch")
        origin = Path(found.origin) if found and found.origin else None
        try:
            text = origin.with_name("version.py").read_text(encoding="utf-8") if origin else ""
        except OSError:
            text = ""
        builds = re.findall(r"^(cuda|hip|xpu)\b[^=]*=\s*(\S+)", text, re.MULTILINE)
        if len(builds) == 3 and all(value == "None" for _, value in builds):
            return (f"no GPU visible to torch: torch {versions.get('torch', '')} is built "
                    f"without CUDA, ROCm or XPU")
    elif backend == "jax" and sys.platform.startswith("linux"):
        plugins = [n for n in versions if re.match(r"jax-(cuda|rocm)\d*-(plugin|pjrt)$", n)]
        if not plugins and not re.search(r"cuda|rocm", versions.get("jaxlib", "")):
            return ("no GPU visible to jax: no CUDA or ROCm plugin is installed "
                    "(pip install 'jax[cuda12]')")
    return None


def worker_env(column: Column) -> dict[str, str]:
    """The environment of a worker: its backend, and only its device."""
    env = {**os.environ, "KERAS_BACKEND": column.backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONUNBUFFERED": "1"}
    if column.device == "cpu":
        env.update(CUDA_VISIBLE_DEVICES="", JAX_PLATFORMS="cpu")
    else:  # deterministic kernels, so the Keras run and the rule file's run agree bit for bit
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true"
                            ).strip()
        env.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        env.setdefault("TF_DETERMINISTIC_OPS", "1")
    return env


def run_column(column: Column, options: SuiteOptions, sections: list[str],
               on_event: Callable[[Column, dict[str, Any]], None],
               coverage: bool = False) -> ColumnRun:
    """Run the worker for one column and collect its report, passing each line it writes
    to `on_event` (for the progress bar)."""
    run = ColumnRun(column)
    if importlib.util.find_spec(column.backend) is None:
        run.skipped = f"{column.backend} not installed (pip install 'cbdsl[{column.backend}]')"
        return run
    if column.device == "gpu":
        run.skipped = gpu_build(column.backend)
        if run.skipped:
            return run
    command = [sys.executable, "-m", "cbdsl.conformance.worker", "--device", column.device,
               "--examples", str(options.examples), "--sections", ",".join(sections)]
    if options.seed is not None:
        command += ["--seed", str(options.seed)]
    for spec in options.specs:
        command += ["--spec", spec]
    if options.quick:
        command.append("--quick")
    if coverage:
        command.append("--coverage")
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors,
                                   env=worker_env(column), text=True, encoding="utf-8",
                                   start_new_session=True)
        timer = threading.Timer(WORKER_TIMEOUT, _kill, [process])
        timer.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if event.get("event") == "skipped":
                    run.skipped = event["reason"]
                elif event.get("event") == "result":
                    run.result = event
                on_event(column, event)
            status = process.wait()
        finally:
            timer.cancel()
        run.wall = time.perf_counter() - start
        if not run.result and not run.skipped:
            errors.seek(0)
            tail = errors.read().strip().splitlines()[-8:]
            why = ("timed out" if status in (-signal.SIGKILL, 137)
                   else f"exited with status {status}")
            run.crashed = f"the {column.key} worker {why}: " + " | ".join(tail)
    return run


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


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


# ------------------------------------------------------------------- output


def render_suite(data: dict[str, Any], console: Any) -> None:
    """Print the table of rule files x backend and device, the failures, and the timings."""
    from rich.table import Table
    from rich.text import Text

    notes: dict[str, int] = {}

    def note(reason: str) -> str:
        return f"[{notes.setdefault(reason, len(notes) + 1)}]"

    keys = list(data["columns"])
    table = Table(title="cbdsl conform: each rule file against its Keras class")
    table.add_column("rule file")
    for key in keys:
        table.add_column(key.replace("/", "\n"), justify="center")
    for row in data["rows"]:
        texts = []
        for key in keys:
            cell = data["cells"][row][key]
            if cell["status"] == "skipped":
                texts.append(Text.assemble(("skipped ", "yellow"), note(cell["reason"])))
            elif cell["status"] == "fail":
                bad = [f"{name} {s['failed']}/{s['failed'] + s['passed']}"
                       if name != "differential" else name
                       for name, s in cell["sections"].items() if s["status"] == "fail"]
                texts.append(Text.assemble(("FAIL", "bold red"), " " + ", ".join(bad)
                                           if bad else " " + note(cell.get("reason", ""))))
            else:
                skipped = [f"{name} {note(s['reason'])}" for name, s in cell["sections"].items()
                           if s["status"] == "skipped"]
                known = sum(len(s.get("xfailed", [])) for s in cell["sections"].values())
                texts.append(Text.assemble(
                    ("pass", "green"),
                    (f" ({known} known difference{'s' * (known != 1)})", "yellow") if known
                    else "",
                    ("\n" + ", ".join(skipped) + " skipped") if skipped else ""))
        table.add_row(row, *texts)
    console.print(table)
    for reason, number in notes.items():
        console.print(Text(f"[{number}] {reason}", style="dim"), soft_wrap=True)
    _render_failures(data, console)
    _render_known(data, console)
    _render_timings(data, console)


def _render_failures(data: dict[str, Any], console: Any) -> None:
    from rich.rule import Rule
    from rich.text import Text

    seen: dict[tuple[str, str, str, str], list[str]] = {}
    for row in data["rows"]:
        for key, cell in data["cells"][row].items():
            for section, result in cell["sections"].items():
                for failure in result.get("failures", []):
                    what = (row, section, failure["name"], failure["divergence"])
                    seen.setdefault(what, []).append(key)
    for (row, section, name, divergence), keys in seen.items():
        console.print(Rule(f"{row} · {section} · {name} · on {', '.join(keys)}",
                           style="red"))
        console.print(Text(divergence), soft_wrap=True)


def _render_known(data: dict[str, Any], console: Any) -> None:
    """The drop-ins' known differences from Keras that showed, once each."""
    from rich.text import Text

    seen: dict[tuple[str, str, str, str], list[str]] = {}
    for row in data["rows"]:
        for key, cell in data["cells"][row].items():
            for section, result in cell["sections"].items():
                for known in result.get("xfailed", []):
                    seen.setdefault((row, section, known["name"], known["reason"]),
                                    []).append(key)
    if not seen:
        return
    console.print(Text("Known differences of the drop-ins (expected failures; the report "
                       "holds each divergence):", style="yellow"))
    for (row, section, name, reason), keys in seen.items():
        console.print(Text(f"  {row} · {section} · {name} · on {', '.join(keys)}: {reason}"),
                      soft_wrap=True)


def _render_timings(data: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    if not data["timings"]:
        return
    keys = list(data["timings"])
    order = ["startup", "language", "cases", "differential", "fit", "artifacts", "coverage",
             "total"]
    names = [s for s in order if any(s in data["timings"][k] for k in keys)]
    table = Table(title="Time per section (seconds)")
    table.add_column("section")
    for key in keys:
        table.add_column(key, justify="right")
    for name in names:
        table.add_row(name, *(f"{data['timings'][k][name]:.1f}" if name in data["timings"][k]
                              else "-" for k in keys))
    console.print(table)
    options = data["options"]
    console.print(f"wall time {data['wall_s']:.1f}s, {options['jobs']} backend process"
                  f"{'es' * (options['jobs'] != 1)} at a time, {options['examples']} generated"
                  f" traces per rule file{' (--quick)' if options['quick'] else ''}, seed "
                  f"{options['seed']}")


# ------------------------------------------------------- one implementation


@dataclass
class Implementation:
    """A callback class or factory to run a spec's cases on.

    Attributes:
        factory: builds the callback from a case's arguments.
        label: how the report names it.
        python_functions: whether it takes Python functions only (see `run_case`).
    """

    factory: Callable[..., Any]
    label: str
    python_functions: bool = True


def load_implementation(text: str) -> Implementation:
    """`package.module:Factory` (imported; the current folder is searched first, as
    `python -m` does) or a rule file `FILE.cbd` (checked, then compiled for each case).

    Raises:
        UsageError: the module, the name or the file is not there, or is not callable.
    """
    if text.endswith(".cbd"):
        return _rule_file(text)
    module_name, sep, name = text.partition(":")
    if not sep:
        module_name, _, name = text.rpartition(".")
    if not module_name or not name or not all(
            part.isidentifier() for part in [*module_name.split("."), *name.split(".")]):
        raise UsageError(f"--impl takes MODULE:NAME (e.g. mypackage.callbacks:EarlyStopping)"
                         f" or a rule file FILE.cbd, got {text!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise UsageError(f"--impl {text}: no module named {error.name!r}") from None
        raise UsageError(f"--impl {text}: importing {module_name!r} failed: "
                         f"ModuleNotFoundError: {error}") from None
    except Exception as error:
        raise UsageError(f"--impl {text}: importing {module_name!r} failed: "
                         f"{type(error).__name__}: {error}") from None
    target: Any = module
    for part in name.split("."):
        if not hasattr(target, part):
            raise UsageError(f"--impl {text}: {module_name!r} has no attribute {name!r}")
        target = getattr(target, part)
    if not callable(target):
        raise UsageError(f"--impl {text}: {name} is a {type(target).__name__}, not a "
                         f"callback class or factory")
    return Implementation(target, f"{module_name}:{name}", python_functions=True)


def _rule_file(path: str) -> Implementation:
    import cbdsl
    from cbdsl.compiler import compile_program

    if not os.path.isfile(path):
        raise UsageError(f"--impl: no such rule file: {path}")
    checked = cbdsl.check(path)  # a CbdslError here is reported with its diagnostics

    def factory(**params: Any) -> Any:
        built = compile_program(checked, **params)
        if len(built) != 1:
            raise ValueError(f"{path} builds {len(built)} callbacks; a spec needs one")
        return built[0]

    return Implementation(factory, path, python_functions=False)


def read_xfail(path: str | os.PathLike[str], spec: str) -> dict[str, str]:
    """The expected failures of `spec` in an xfail file: `{case name: reason}`.

    One name a line: a case of the spec (its file's stem, as `tie_at_min_delta`), or
    `generated` for the generated traces; `SPEC/NAME` names a case of one spec (lines of
    other specs are skipped, so one file can serve several). `#` starts a comment, which
    after a name is the reason. Blank lines are skipped.

    Raises:
        UsageError: the file cannot be read, or names a case the spec does not have.
    """
    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.runner import case_paths

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"cannot read xfail file {path}: {error.strerror}") from None
    if spec in ARTIFACT_SPECS:
        known = {s.name for s in ARTIFACT_SPECS[spec].scenarios}
    else:
        known = {p.stem for p in case_paths(spec)} | {"generated"}
    names: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        entry, _, comment = line.partition("#")
        entry = entry.strip()
        if not entry:
            continue
        owner, slash, name = entry.rpartition("/")
        if slash and owner != spec:
            continue
        if name not in known:
            raise UsageError(f"{path}:{number}: {spec} has no case {name!r}")
        names[name] = comment.strip()
    return names


def run_impl(implementation: Implementation, spec: str, *, xfail: dict[str, str] | None = None,
             examples: int = EXAMPLES, seed: int | None = None, quick: bool = False,
             console: Any = None) -> dict[str, Any]:
    """Run a spec's recorded cases, and `examples` generated traces against Keras's class,
    on one implementation; for an artifact spec, its scenarios against Keras's class.

    Args:
        implementation: what `load_implementation` returns.
        spec: the spec's name (`early_stopping`, `csv_logger`).
        xfail: the expected failures (`read_xfail`): a listed case that fails is `xfail`,
            one that passes is `xpass` and fails the run, as in a strict pytest xfail.
        examples: generated traces (0 runs the recorded cases only).
        seed: hypothesis's seed; random when None.
        quick: an artifact spec's quick subset of scenarios only.
        console: a `rich.console.Console` for a progress bar.

    Returns:
        The report: `results` (name, status, description, divergence), `summary`,
        `exit_status`.
    """
    import keras

    from cbdsl.conformance.artifacts import ARTIFACT_SPECS

    xfail = xfail or {}
    started = time.perf_counter()
    results: list[dict[str, Any]] = []

    def verdict(name: str, passed: bool, divergence: str, description: str) -> None:
        listed = name in xfail
        status = ("xpass" if listed else "pass") if passed else ("xfail" if listed else "fail")
        entry = {"name": name, "status": status, "description": description,
                 "divergence": divergence}
        if listed:
            entry["xfail_reason"] = xfail[name]
        results.append(entry)

    if spec in ARTIFACT_SPECS:
        _run_scenarios(implementation, spec, quick, verdict, results, console)
        examples = 0
    else:
        _run_cases(implementation, spec, examples, seed, verdict, results, console)
    summary = {s: sum(r["status"] == s for r in results)
               for s in ("pass", "fail", "xfail", "xpass", "skipped")}
    return {"kind": "impl", "impl": implementation.label, "spec": spec,
            "backend": keras.backend.backend(), "keras": keras.__version__,
            "examples": examples, "seed": seed, "xfail": xfail, "results": results,
            "summary": summary, "wall_s": round(time.perf_counter() - started, 2),
            "exit_status": EXIT_FAIL if summary["fail"] or summary["xpass"] else EXIT_PASS}


def _run_scenarios(implementation: Implementation, spec: str, quick: bool,
                   verdict: Callable[[str, bool, str, str], None],
                   results: list[dict[str, Any]], console: Any) -> None:
    """An artifact spec's scenarios: the implementation's artifacts against Keras's."""
    from cbdsl.conformance import artifacts

    chosen = artifacts.ARTIFACT_SPECS[spec].selected(quick)
    with _progress(console, len(chosen)) as advance:
        for scenario in chosen:
            result = artifacts.check(spec, scenario, implementation.factory)
            if result.status == "skipped":
                results.append({"name": scenario.name, "status": "skipped",
                                "description": scenario.description, "divergence": "",
                                "reason": result.reason})
            else:
                verdict(scenario.name, result.passed, result.divergence,
                        scenario.description)
            advance(1)


def _run_cases(implementation: Implementation, spec: str, examples: int, seed: int | None,
               verdict: Callable[[str, bool, str, str], None],
               results: list[dict[str, Any]], console: Any) -> None:
    """A decision spec's recorded cases, then the generated traces against Keras's class."""
    from cbdsl.conformance.differential import search
    from cbdsl.conformance.runner import case_paths, load_case, run_case
    from cbdsl.conformance.specs import SPECS

    paths = case_paths(spec)
    with _progress(console, len(paths) + (examples > 0)) as advance:
        for path in paths:
            case = load_case(path)
            result = run_case(case, implementation.factory,
                              python_functions=implementation.python_functions)
            divergence = result.divergence and (
                f"case file {path}\nparams {case.get('params', {})}\n{result.divergence}")
            verdict(case["name"], result.passed, divergence, case.get("description", ""))
            advance(1)
        if examples > 0:
            description = f"{examples} generated traces against Keras's class (seed {seed})"
            try:
                reference = SPECS[spec].reference()
            except LookupError as why:
                results.append({"name": "generated", "status": "skipped",
                                "description": description, "divergence": "",
                                "reason": str(why)})
            else:
                found = search(spec, implementation.factory, examples=examples, seed=seed,
                               reference=reference,
                               python_functions=implementation.python_functions,
                               )
                verdict("generated", found is None, found or "", description)
            advance(1)


@contextlib.contextmanager
def _progress(console: Any, total: int):
    if console is None:
        yield lambda amount: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("cases"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("cases", total=total)
        yield lambda amount: progress.advance(task, amount)


STYLE = {"pass": "green", "fail": "bold red", "xfail": "yellow", "xpass": "bold red",
         "skipped": "yellow"}


def render_impl(data: dict[str, Any], console: Any) -> None:
    """Print each case's verdict, then each failure's first divergence side by side."""
    from rich.rule import Rule
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{data['impl']} against the {data['spec']} spec "
                        f"(Keras {data['keras']}, {data['backend']} backend)")
    for column in ("case", "result", "what it checks"):
        table.add_column(column, overflow="fold")
    for r in data["results"]:
        table.add_row(r["name"], Text(r["status"].upper() if r["status"] in ("fail", "xpass")
                                      else r["status"], style=STYLE[r["status"]]),
                      r.get("reason") or r["description"] + (
                          f" (expected to fail: {r['xfail_reason']})"
                          if r.get("xfail_reason") else ""))
    console.print(table)
    for r in data["results"]:
        if r["status"] in ("fail", "xfail"):
            console.print(Rule(f"{data['spec']}/{r['name']}: "
                               f"{'expected failure' if r['status'] == 'xfail' else 'FAIL'}",
                               style=STYLE[r["status"]]))
            console.print(Text(r["divergence"]), soft_wrap=True)
        elif r["status"] == "xpass":
            console.print(Rule(f"{data['spec']}/{r['name']}: XPASS", style="bold red"))
            console.print(f"{r['name']} is listed as an expected failure but passes: "
                          "remove it from the xfail file")
    s = data["summary"]
    console.print(f"{s['pass']} passed, {s['fail']} failed, {s['xfail']} expected failures, "
                  f"{s['xpass']} unexpectedly passed, {s['skipped']} skipped in "
                  f"{data['wall_s']:.1f}s")


# ----------------------------------------------------------------- the command


def main(args: Any) -> int:
    """`cbdsl conform` with parsed arguments (see `cbdsl.cli`); returns the exit status."""
    from rich.console import Console

    from cbdsl.conformance.artifacts import ARTIFACT_SPECS
    from cbdsl.conformance.specs import SPECS

    console = Console()
    try:
        for spec in args.spec or []:
            if spec not in SPECS and spec not in ARTIFACT_SPECS:
                raise UsageError(f"unknown spec {spec!r}; specs: "
                                 f"{', '.join([*SPECS, *ARTIFACT_SPECS])}")
        if args.json and not Path(args.json).resolve().parent.is_dir():
            raise UsageError(f"--json {args.json}: no such folder")
        if args.examples is not None and args.examples < 0:
            raise UsageError("--examples must be 0 or more")
        if args.jobs < 1:
            raise UsageError("--jobs must be 1 or more")
        examples = args.examples if args.examples is not None else (
            QUICK_EXAMPLES if args.quick else EXAMPLES)
        seed = args.seed if args.seed is not None else random.randrange(2**31)
        if args.impl:
            data = _impl_command(args, examples, seed, console)
        else:
            if args.xfail:
                raise UsageError("--xfail goes with --impl")
            for backend in args.backend or []:
                if backend not in BACKENDS:
                    raise UsageError(f"unknown backend {backend!r}; backends: "
                                     f"{', '.join(BACKENDS)}")
            options = SuiteOptions(
                backends=tuple(args.backend or BACKENDS),
                devices=DEVICES if args.device == "all" else (args.device,),
                specs=tuple(args.spec or ()), examples=examples, quick=args.quick,
                jobs=args.jobs, seed=seed)
            data = run_suite(options, console)
            render_suite(data, console)
    except UsageError as error:
        print(f"cbdsl conform: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        console.print(f"report: {args.json}")
    return data["exit_status"]


def _impl_command(args: Any, examples: int, seed: int, console: Any) -> dict[str, Any]:
    from cbdsl.diagnostics import CbdslError

    if not args.spec or len(args.spec) != 1:
        raise UsageError("--impl needs one --spec to run (e.g. --spec early_stopping)")
    (spec,) = args.spec
    if args.device != "all":
        raise UsageError("--device goes with the whole suite; --impl runs in this process, "
                         "on the device its backend picks")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.backend:
        if len(args.backend) != 1 or args.backend[0] not in BACKENDS:
            raise UsageError(f"--impl runs on one backend of {', '.join(BACKENDS)}")
        if "keras" in sys.modules:
            import keras

            if keras.backend.backend() != args.backend[0]:
                raise UsageError(f"Keras is already running {keras.backend.backend()}")
        os.environ["KERAS_BACKEND"] = args.backend[0]
    try:
        implementation = load_implementation(args.impl)
    except CbdslError as error:
        raise UsageError(f"--impl {args.impl} does not check:\n{error.render()}") from None
    xfail = read_xfail(args.xfail, spec) if args.xfail else {}
    data = run_impl(implementation, spec, xfail=xfail, examples=examples, seed=seed,
                    quick=args.quick, console=console)
    data["xfail_file"] = args.xfail
    render_impl(data, console)
    return data
