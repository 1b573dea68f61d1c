"""`cbdsl conform`: the suite across backends and devices, or one spec against any callback."""

from cbdsl.conformance.conform.command import main
from cbdsl.conformance.conform.impl import Implementation, load_implementation, run_impl
from cbdsl.conformance.conform.options import (
    BACKENDS,
    DEVICES,
    EXAMPLES,
    EXIT_FAIL,
    EXIT_PASS,
    EXIT_USAGE,
    QUICK_EXAMPLES,
    Column,
    SuiteOptions,
    UsageError,
)
from cbdsl.conformance.conform.suite import (
    CPU_ONLY,
    QUICK_FIT_ORDER,
    fit_backend,
    plan_columns,
    report,
    rows_of,
    run_suite,
    sections_of,
)
from cbdsl.conformance.conform.tables import STYLE, render_impl, render_suite
from cbdsl.conformance.conform.workers import (
    WORKER_TIMEOUT,
    ColumnRun,
    gpu_build,
    run_column,
    worker_env,
)
from cbdsl.conformance.conform.xfail import expected_failures, read_xfail

__all__ = [
    "BACKENDS",
    "CPU_ONLY",
    "DEVICES",
    "EXAMPLES",
    "EXIT_FAIL",
    "EXIT_PASS",
    "EXIT_USAGE",
    "QUICK_EXAMPLES",
    "QUICK_FIT_ORDER",
    "STYLE",
    "WORKER_TIMEOUT",
    "Column",
    "ColumnRun",
    "Implementation",
    "SuiteOptions",
    "UsageError",
    "expected_failures",
    "fit_backend",
    "gpu_build",
    "load_implementation",
    "main",
    "plan_columns",
    "read_xfail",
    "render_impl",
    "render_suite",
    "report",
    "rows_of",
    "run_column",
    "run_impl",
    "run_suite",
    "sections_of",
    "worker_env",
]
