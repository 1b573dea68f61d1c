"""Names in the written code: identifiers, names it reserves, and what a rule's names mean."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field, replace
from typing import Any

from cbdsl import language
from cbdsl.syntax import nodes as n

# What keras.callbacks.Callback already has: parameters and state must not hide these.
CALLBACK_ATTRS = frozenset({
    "model", "params", "validation_data", "set_model", "set_params", "_model",
    *(e.hook for e in language.EVENTS.values() if e.hook), "on_batch_begin", "on_batch_end",
})
# Local names the writer itself uses in hook methods.
RESERVED_LOCALS = frozenset({
    "self", "epoch", "batch", "logs", "lr", "missing", "filepath", "f", "in_cooldown",
    "math", "json", "os", "sys", "time", "warnings", "keras", "np", "is_improvement", "piecewise",
    "call_schedule", "file_empty", "write_row", "csv_field", "print_msg", "logging", "abs",
    "min", "max", "round",
    "float", "int", "bool", "list", "dict", "sorted",
    "str", "print", "len", "isinstance", "enumerate", "format", "type", "super", "None",
    "True", "False",
})


def class_name_of(name: str) -> str:
    """A definition's class name: `early_stopping` is `EarlyStopping`."""
    if name[:1].isupper():
        return name
    return "".join(part.capitalize() for part in name.split("_")) or "Policy"


def identifier(name: str, taken: set[str] | frozenset[str], suffix: str = "_value") -> str:
    """A Python name for `name` that is no keyword and not `taken` (`suffix`, then a number)."""
    base = name if name.isidentifier() and not keyword.iskeyword(name) else (
        re.sub(r"\W", "_", name).strip("_") or "value")
    if base[0].isdigit():
        base = "m_" + base
    if base in taken or keyword.iskeyword(base):
        base += suffix
    candidate, k = base, 2
    while candidate in taken:
        candidate, k = f"{base}_{k}", k + 1
    return candidate


@dataclass
class Scope:
    """What names mean where code is being written: one event of one rule, or `__init__`."""

    event: language.Event | None
    where: n.Node | None = None  # the rule (for error positions)
    epoch: str | None = None
    batch: str | None = None
    step: str | None = None
    logs: str = "logs"
    quote: str = '"'
    params: str = "self"  # "self": parameters are attributes; "local": __init__ arguments
    metric_locals: dict[str, str] = field(default_factory=dict)
    guards: frozenset[str] = frozenset()
    locals: dict[str, str] = field(default_factory=dict)
    results: dict[int, str] = field(default_factory=dict)
    handler: bool = False

    def inner(self, **changes: Any) -> Scope:
        copy = replace(self, **changes)
        copy.metric_locals = dict(copy.metric_locals)
        copy.locals = dict(copy.locals)
        return copy
