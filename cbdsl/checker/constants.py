"""Constants: the values known when a rule file is checked (literals, defaults, tables)."""

from __future__ import annotations

from typing import Any

from cbdsl.checker.definitions import (
    INVALID,
    REQUIRED,
    ParamInfo,
)
from cbdsl.diagnostics import Span
from cbdsl.syntax import nodes as n


class NotConstant(Exception):
    def __init__(self, span: Span):
        self.span = span


def const_value(expr: n.Expr | None, params: dict[str, ParamInfo] | None = None) -> Any:
    """The value of a constant expression (literals, tables, params' defaults), else NotConstant."""
    t = type(expr)
    if t in (n.Number, n.String, n.Bool):
        return expr.value
    if t is n.NoneLit:
        return None
    if t is n.Name and expr.id == "inf":
        return float("inf")
    if t is n.Name and params and expr.id in params and \
            params[expr.id].default is not REQUIRED and params[expr.id].default is not INVALID:
        return params[expr.id].default
    if t is n.Unary and expr.op in "+-":
        value = const_value(expr.operand, params)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if expr.op == "-" else value
    if t is n.Table:
        table = {}
        for k, v in expr.entries:
            key = const_value(k, params)
            if isinstance(key, dict):  # a table is no key
                raise NotConstant(k.span)
            table[key] = const_value(v, params)
        return table
    raise NotConstant(expr.span if expr is not None else Span(0, 0, 0, 0))


def _const_ok(expr, params) -> bool:
    try:
        const_value(expr, params)
    except NotConstant:
        return False
    return True
