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

# submodules reachable as attributes of `cbdsl` once imported on first access, so that
# `import cbdsl` stays light: the drop-ins (`cbdsl.callbacks.EarlyStopping`) load on first use
_LAZY_SUBMODULES = frozenset({"callbacks"})


def __getattr__(name: str) -> object:
    if name in _LAZY_SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_SUBMODULES})

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
