"""Python expressions as text: operator precedence, `Code` values, and literals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

WIDTH = 100  # the longest line written (the project's own ruff line length)

# Python operator precedence, lowest first (only the levels the writer uses).
TERNARY, OR, AND, NOT, CMP, ADD, MUL, UNARY, POW, ATOM = 1, 2, 3, 4, 5, 10, 11, 12, 13, 16
BIN_PREC = {"+": ADD, "-": ADD, "*": MUL, "/": MUL, "//": MUL, "%": MUL, "**": POW}


@dataclass(frozen=True)
class Code:
    """A Python expression: its text, precedence, and (for `and`/`or` chains) its operands."""

    text: str
    prec: int = ATOM
    op: str | None = None
    parts: tuple[str, ...] = ()

    def at(self, prec: int) -> str:
        """The text, parenthesized when it binds looser than `prec` needs."""
        return self.text if self.prec >= prec else f"({self.text})"


def chain(op: str, codes: list[Code]) -> Code:
    """`a and b and c` (or `or`), flattening operands that are chains of the same operator."""
    if len(codes) == 1:
        return codes[0]
    prec = AND if op == "and" else OR
    parts: list[str] = []
    for code in codes:
        for part in code.parts if code.op == op else (code.at(prec + 1),):
            if part in parts and _NONE_TEST.match(part):
                continue  # `x is not None and x is not None`: one guard says it
            parts.append(part)
    if len(parts) == 1:
        return Code(parts[0], CMP)
    return Code(f" {op} ".join(parts), prec, op, tuple(parts))


_NONE_TEST = re.compile(r"^[\w.\[\]'\"]+ is (not )?None$")


def py_str(text: str, quote: str = '"') -> str:
    """A Python string literal for `text`, in `quote` quotes where that needs no escape."""
    body = "".join(escape(c, quote) for c in text)
    return f"{quote}{body}{quote}"


def escape(c: str, quote: str) -> str:
    """One character as it stands inside a Python string literal in `quote` quotes."""
    if c == "\\":
        return "\\\\"
    if c == quote:
        return "\\" + c
    if c == "\n":
        return "\\n"
    if c == "\t":
        return "\\t"
    if c == "\r":
        return "\\r"
    if not c.isprintable():
        return f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" if ord(c) < 65536 \
            else f"\\U{ord(c):08x}"
    return c


def literal_value(value: Any) -> str:
    """A constant (a parameter's default) as a Python literal."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, float) and value == float("inf"):
        return "float(\"inf\")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal_value(k)}: {literal_value(v)}"
                               for k, v in value.items()) + "}"
    return repr(value)
