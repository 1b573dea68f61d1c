"""Running one column (a backend on a device) in a worker process, and what it reports."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbdsl.conformance.conform.options import Column, SuiteOptions

WORKER_TIMEOUT = 1800  # seconds one backend and device may take


@dataclass
class ColumnRun:
    """What one worker process reported."""

    column: Column
    skipped: str | None = None
    crashed: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    wall: float = 0.0
    not_run: dict[str, str] = field(default_factory=dict)  # section -> why it was not run



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
