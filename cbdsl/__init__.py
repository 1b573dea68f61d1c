"""cbdsl: training policies written as rules, compiled into Keras callbacks."""

from cbdsl.api import callback_class, check, compile, load, parse
from cbdsl.diagnostics import (
    CbdslCheckError,
    CbdslCompileError,
    CbdslError,
    CbdslRuntimeError,
    CbdslSyntaxError,
    Diagnostic,
    MissingKeyFailure,
    RequirementError,
    RuleFailure,
)

__version__ = "0.1.0"
__all__ = [
    "CbdslCheckError",
    "CbdslCompileError",
    "CbdslError",
    "CbdslRuntimeError",
    "CbdslSyntaxError",
    "Diagnostic",
    "MissingKeyFailure",
    "RequirementError",
    "RuleFailure",
    "callback_class",
    "check",
    "compile",
    "load",
    "parse",
]
