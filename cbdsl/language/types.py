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


# -- the checker's types of values
#
# A value's static type is a string: `int`, `float`, `number` (either), `str`, `bool`, `none`,
# `any` (only the run knows); `table[K, V]` and `list[E]` with the types of their keys, values
# and items (`table` and `list` alone hold anything); `T?` for a value that may be none (a
# tracker's `best` before its first check); `A|B` for a value of one of several kinds (a table
# whose keys are ints and strings); `nothing` for what an empty table holds; `any?` for a value
# only the run knows, or none (`lookup` without a default).
def base_type(kind: str) -> str:
    """The plain kind of a type: `table[str, float]` is a table, `float?` a float, and a value
    of several kinds (`int|str`) or of none yet (`nothing`) is `any`."""
    if kind.endswith("?"):
        return base_type(kind[:-1])
    if kind.startswith("table["):
        return "table"
    if kind.startswith("list["):
        return "list"
    if kind == "nothing" or _top_split(kind, "|") != [kind]:
        return "any"
    return kind


def is_optional(kind: str) -> bool:
    """Whether a value of this type may be none where a value is due."""
    return kind.endswith("?")


def present(kind: str) -> str:
    """The type of a value known not to be none."""
    return kind[:-1] if kind.endswith("?") else kind


def optional(kind: str) -> str:
    """The type of a value of type `kind` or none."""
    return kind if kind in ("none", "any", "nothing") or kind.endswith("?") else kind + "?"


def table_of(key: str, value: str) -> str:
    return f"table[{key}, {value}]"


def list_of(item: str) -> str:
    return f"list[{item}]"


def contents(kind: str) -> tuple[str, ...]:
    """What a collection holds: `(key, value)` of a table, `(item,)` of a list, each `any` where
    the type does not say."""
    kind = present(kind)
    if kind.startswith("table[") and kind.endswith("]"):
        key, value = _top_split(kind[6:-1], ",")
        return key.strip(), value.strip()
    if kind.startswith("list[") and kind.endswith("]"):
        return (kind[5:-1],)
    if kind == "table":
        return "any", "any"
    return ("any",)


def kinds(kind: str) -> list[str]:
    """The kinds a type of several kinds (`int|str`) may be; a type of one kind is itself."""
    return _top_split(kind, "|")


def join(a: str, b: str) -> str:
    """The type of a value that is of type `a` or of type `b` (both branches of a conditional,
    every value a variable is set to)."""
    if a == b or b == "nothing":
        return a
    if a == "nothing":
        return b
    if "any" in (a, b):
        return "any"
    if "none" in (a, b):
        return optional(b if a == "none" else a)
    if is_optional(a) or is_optional(b):
        return optional(join(present(a), present(b)))
    if a in NUMBER_TYPES and b in NUMBER_TYPES:
        return "number"
    plain_a, plain_b = base_type(a), base_type(b)
    if plain_a == plain_b and plain_a in ("table", "list") and a != "any" != b:
        joined = [join(x, y) for x, y in zip(contents(a), contents(b), strict=True)]
        return table_of(*joined) if plain_a == "table" else list_of(*joined)
    members: list[str] = []
    for kind in (*kinds(a), *kinds(b)):
        kind = "number" if kind in NUMBER_TYPES else base_type(kind)
        if kind not in members:
            members.append(kind)
    return "|".join(sorted(members))


def _top_split(text: str, sep: str) -> list[str]:
    """`text` cut at each `sep` outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts
