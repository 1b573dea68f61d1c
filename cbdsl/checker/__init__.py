"""The checker: every semantic pass over a parsed program, every diagnostic, did-you-mean.

Files and libraries are resolved (`libraries`, `program`); names and types inside one
definition (`scope`); each rule's events, filters and expressions (`rules`) and actions
(`actions`); constants (`constants`), templates (`templates`), trackers (`trackers`), and the
order of rules and what they write (`order`). The result is a `CheckedProgram`
(`definitions`). It may import the syntax, the language tables and the diagnostics; never the
compiler or the runtime.
"""

from cbdsl.checker.definitions import (
    INVALID,
    REQUIRED,
    CheckedProgram,
    Definition,
    Instance,
    ParamInfo,
)
from cbdsl.checker.program import Checker, check

__all__ = ["INVALID", "REQUIRED", "CheckedProgram", "Checker", "Definition", "Instance",
           "ParamInfo", "check"]
