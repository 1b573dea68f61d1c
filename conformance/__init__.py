"""The conformance suite: cases as data, a trace driver, a differential harness, and the
artifact specs (callbacks judged by the files and requests they leave on real fits).

It sits on top of the product and may import any of it (`cbdsl.callbacks`, the compiler, the
dry-run driver); nothing of the product imports it but the command line's `cbdsl conform`.
"""

from cbdsl.conformance.artifacts import ARTIFACT_SPECS, ArtifactSpec, Scenario
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
    "ARTIFACT_SPECS",
    "SPECS",
    "ArtifactSpec",
    "CaseResult",
    "Outcome",
    "Scenario",
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
