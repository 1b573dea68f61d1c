"""Scopes and types: what each name means inside one definition, and the type of each expression."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cbdsl import language
from cbdsl.checker.definitions import Definition
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk

if TYPE_CHECKING:
    from cbdsl.checker.program import Checker


class Scope:
    """What names mean inside one definition: parameters, variables, trackers."""

    def __init__(self, definition: Definition, checker: Checker | None):
        self.definition = definition
        self.params = definition.params
        self.variables: dict[str, str] = {}
        self.trackers: dict[str, n.Stalls | n.Improves] = {}
        self.locals: set[str] = set()  # the names a `for` binds, while its body is checked

    def collect_trackers(self, rule: n.Rule, checker: Checker) -> None:
        for node in walk(rule.condition):
            if isinstance(node, n.Stalls | n.Improves) and node.alias is not None:
                name = node.alias.name
                if name in self.trackers or name in self.params or name in self.variables:
                    checker.report("E209", f"'{name}' is already defined", node.alias.span,
                                   checker.origin(rule, self.definition))
                else:
                    self.trackers[name] = node

    def infer(self, expr: n.Expr, checker: Checker | None = None,
              event: language.Event | None = None) -> str:
        """The type of `expr`: int, float, number, bool, str, table, none or any (a value only
        the run knows); `infer_<Node>` gives each node kind's."""
        infer = getattr(self, f"infer_{type(expr).__name__}", None)
        return infer(expr) if infer is not None else "any"

    def infer_Number(self, expr: n.Number) -> str:
        return "int" if isinstance(expr.value, int) else "float"

    def infer_String(self, expr: n.String) -> str:
        return "str"

    def infer_Bool(self, expr: n.Bool) -> str:
        return "bool"

    def infer_NoneLit(self, expr: n.NoneLit) -> str:
        return "none"

    def infer_Table(self, expr: n.Table) -> str:
        return "table"

    def infer_Index(self, expr: n.Index) -> str:
        return "any"  # tables hold values of any type

    def infer_Name(self, expr: n.Name) -> str:
        if expr.id in self.locals:
            return "any"
        if expr.id in self.params:
            return self.params[expr.id].type
        if expr.id in self.variables:
            return self.variables[expr.id]
        return language.BUILTIN_TYPES.get(expr.id, "number")  # else a log metric

    def infer_Attribute(self, expr: n.Attribute) -> str:
        return language.TRACKER_FIELD_TYPES.get(expr.attr.name, "number")

    def infer_Compare(self, expr: n.Expr) -> str:
        return "bool"

    infer_BoolOp = infer_Stalls = infer_Improves = infer_IsNan = infer_IsFinite = infer_Compare

    def infer_Unary(self, expr: n.Unary) -> str:
        return "bool" if expr.op == "not" else self.infer(expr.operand)

    def infer_BinOp(self, expr: n.BinOp) -> str:
        left, right = self.infer(expr.left), self.infer(expr.right)
        if expr.op == "+" and "str" in (left, right) and {left, right} <= {"str", "any"}:
            return "str"  # a string joined with a string, or with what may be one
        if left == right == "int" and expr.op in ("+", "-", "*", "//", "%", "**"):
            return "int"
        return "number"

    def infer_Conditional(self, expr: n.Conditional) -> str:
        a, b = self.infer(expr.then), self.infer(expr.orelse)
        return a if a == b else "any"

    def infer_Call(self, expr: n.Call) -> str:
        function = language.FUNCTIONS.get(expr.func.name)
        if function is None or expr.func.name in self.params:  # a Python hook or schedule
            return "number"
        return function.result
