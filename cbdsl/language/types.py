"""Types as rule files name them: of parameters, of values, and which types accept which."""

from __future__ import annotations

from typing import Any

# `keywords`: the extra keyword arguments a Python caller passes, as a table (Keras's
# `**kwargs`); the parameters declared after it are given by keyword only.
PARAM_TYPES = ("int", "float", "str", "bool", "table", "python", "schedule", "any", "keywords")


def type_of_value(value: Any) -> str:
    """The parameter type a Python value has (`bool` before `int`, as Python needs)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, dict):
        return "table"
    if callable(value):
        return "python"
    return type(value).__name__


def accepts(declared: str, given: str, optional: bool = True) -> bool:
    """Whether a parameter declared as `declared` takes a value of type `given`; `none` only
    where the value is `optional` (its default is none, as Keras's `baseline=None`)."""
    if declared == given or declared == "any":
        return True
    if declared == "float" and given == "int":
        return True
    if declared == "schedule" and given in ("table", "python", "str"):
        return True
    if declared == "table" and given in ("list", "tuple", "set", "frozenset"):
        return True  # a list is what the language's tables hold too (`keys`, `split`)
    if declared == "keywords" and given == "table":
        return True
    # a parameter whose default is none takes any value, and none where a value is optional
    return declared == "none" or (given == "none" and optional)


def rule_literal(value: Any) -> str:
    """A constant as a rule file writes it: `none`, `true`, JSON strings and numbers, tables."""
    import json

    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{rule_literal(k)}: {rule_literal(v)}"
                               for k, v in value.items()) + "}"
    return repr(value)




# "A number" is one idea everywhere: an int or a float, or a number whose kind only the run
# knows. The checker, the compiler and the Python writer all ask these.
NUMBER_TYPES = frozenset({"int", "float", "number"})


def is_number(type_name: str) -> bool:
    """Whether an inferred type is a number (int, float, or either)."""
    return type_name in NUMBER_TYPES


def narrowed(given: str, declared: str) -> str:
    """A value typed `number` stored where an int or a float is declared takes that type."""
    return declared if given == "number" and declared in ("int", "float") else given
