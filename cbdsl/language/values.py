"""Values as rules compute on them: what counts as a number, and arithmetic within bounds.

Rules compute on what the logs and tables hold, which only the run knows. These are the
operations the compiled expressions use, each refusing (with `ValueError`, which the compiler
turns into a positioned `CbdslRuntimeError`) what Python would do badly: a huge integer, a
string or table that grows without end, an operator applied to a value of the wrong type.
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Callable
from typing import Any

import numpy as np

from cbdsl.language.types import type_of_value

# The bounds, documented in docs/language.md ("Bounds").
MAX_INT_BITS = 1024  # an integer result beyond the float range is a float: inf
MAX_TEXT = 1_000_000  # characters in one string a rule builds
MAX_TABLE = 100_000  # entries in one table a rule fills


def is_number(value: Any) -> bool:
    """An int or a float (NumPy's too, and a 0-d NumPy array of one), not a bool."""
    if type(value) in (float, int):  # the common case, without the ABC check below
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def describe(value: Any) -> str:
    """A value for an error message: its type and a short repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type_of_value(value)} {text}"


def bounded(value: Any) -> Any:
    """An integer past the float range as a signed infinity; anything else as it is."""
    if type(value) is int and value.bit_length() > MAX_INT_BITS:
        return math.copysign(math.inf, value)
    return value


def _power(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int and b > 0 and abs(a) > 1 \
            and b * math.log2(abs(a)) > MAX_INT_BITS:
        return math.copysign(math.inf, a) if b % 2 else math.inf
    try:
        result = a ** b
    except ZeroDivisionError:  # 0 ** -1
        return math.nan
    if isinstance(result, complex):  # (-8) ** 0.5
        return math.nan
    return result


def _times(a: Any, b: Any) -> Any:
    if type(a) is int and type(b) is int \
            and a.bit_length() + b.bit_length() - 1 > MAX_INT_BITS:
        return math.copysign(math.inf, a) * math.copysign(1, b)
    return a * b


_ARITHMETIC: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "-": operator.sub, "*": _times, "/": operator.truediv,
    "//": operator.floordiv, "%": operator.mod, "**": _power,
}


def arithmetic(op: str, a: Any, b: Any) -> Any:
    """`a op b` for two numbers, or `+` for two strings, within bounds.

    Division by zero is NaN and an overflow is a signed infinity (a rule never ends training
    on arithmetic, and a comparison with NaN is false).

    Raises:
        ValueError: an operand of the wrong type, or a string past MAX_TEXT.
    """
    if is_number(a) and is_number(b):
        try:
            return bounded(_ARITHMETIC[op](a, b))
        except ZeroDivisionError:
            return math.nan
        except OverflowError:
            return math.copysign(math.inf, a) if op in ("*", "**", "+") else math.inf
    if op == "+" and isinstance(a, str) and isinstance(b, str):
        if len(a) + len(b) > MAX_TEXT:
            raise ValueError(f"'+' would make a string of more than {MAX_TEXT:,} characters")
        return a + b
    wanted = "two numbers, or two strings" if op == "+" else "numbers"
    raise ValueError(f"'{op}' needs {wanted}, got {describe(a)} and {describe(b)}")


def negate(value: Any) -> Any:
    """`-x` for a number."""
    if not is_number(value):
        raise ValueError(f"'-' needs a number, got {describe(value)}")
    return -value


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
}


def compare(op: str, a: Any, b: Any) -> bool:
    """One comparison. `none` is unequal to anything but `none` and never ordered (the
    comparison is false); `in` looks in a table, list or string.

    Raises:
        ValueError: an order between values that have none (a number and a string), or
            `in` on a value that holds nothing.
    """
    if op == "==":
        return _equal(a, b)
    if op == "!=":
        return not _equal(a, b)
    if op in ("in", "not in"):
        if b is None:
            return op == "not in"
        if isinstance(b, str) and not isinstance(a, str):
            raise ValueError(f"'{op}' a string needs a string, got {describe(a)}")
        if not isinstance(b, dict | list | tuple | str | set | frozenset):
            raise ValueError(f"'{op}' needs a table, a list or a string on its right, "
                             f"got {describe(b)}")
        try:
            found = a in b
        except TypeError:  # an unhashable key looked up in a table
            found = False
        return found if op == "in" else not found
    if a is None or b is None:
        return False
    if (is_number(a) and is_number(b)) or (isinstance(a, str) and isinstance(b, str)):
        return _ORDER[op](a, b)
    raise ValueError(f"'{op}' compares two numbers or two strings, got {describe(a)} and "
                     f"{describe(b)}")


def _equal(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except (ValueError, TypeError, RecursionError):  # an array, a table holding itself
        return a is b


def check_table_size(table: dict, key: Any) -> None:
    """Refuse a new key past MAX_TABLE entries."""
    if len(table) >= MAX_TABLE and key not in table:
        raise ValueError(f"a table may hold at most {MAX_TABLE:,} entries")


def check_text(value: Any) -> Any:
    """Refuse a string past MAX_TEXT characters (a function's result)."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        raise ValueError(f"the result is a string of more than {MAX_TEXT:,} characters")
    return value


def matches(kind: str, value: Any) -> bool:
    """Whether a value is of a function argument's type (`cbdsl.language.Arg.type`)."""
    if kind == "number":
        return is_number(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "numeric":
        return is_number(value) or isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "table":
        return isinstance(value, dict)
    if kind == "iterable":
        return value is None or isinstance(value, dict | list | tuple)
    if kind == "sized":
        return value is None or isinstance(value, dict | list | tuple | str)
    return True
