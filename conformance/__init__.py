"""The conformance suite: cases as data, a trace driver, and a differential harness."""

from cbdsl.conformance.driver import Outcome, StubModel, drive
from cbdsl.conformance.runner import (
    CaseResult,
    case_paths,
    first_divergence,
    load_case,
    run_case,
    run_language_case,
    run_spec,
    run_trace,
)
from cbdsl.conformance.specs import SPECS, Spec

__all__ = [
    "SPECS",
    "CaseResult",
    "Outcome",
    "Spec",
    "StubModel",
    "case_paths",
    "drive",
    "first_divergence",
    "load_case",
    "run_case",
    "run_language_case",
    "run_spec",
    "run_trace",
]
