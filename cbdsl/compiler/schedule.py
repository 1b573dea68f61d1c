"""Schedules given as text (`0.1 * 0.9 ** epoch`), parsed and checked, never `eval`-ed."""

from __future__ import annotations

from cbdsl import language
from cbdsl.diagnostics import (
    CbdslCompileError,
    Diagnostic,
    did_you_mean,
)
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import walk

SCHEDULE_NAMES = ("epoch", "lr", "learning_rate", "epochs", "inf")


def parse_schedule(text: str, where: str) -> n.Expr:
    """A schedule given as text (`0.1 * 0.9 ** epoch`), parsed and checked; never `eval`-ed.

    It may read `epoch`, `lr`, `learning_rate`, `epochs` and `inf`, and call the
    built-in functions; anything else is a CbdslCompileError with its position.
    """
    from cbdsl.syntax.parser import parse_expression

    path = f"<{where}>"
    expr = parse_expression(text, path)
    for node in walk(expr):
        problem = None
        if isinstance(node, n.Name) and node.id not in SCHEDULE_NAMES:
            problem = ("E206", f"a schedule cannot read '{node.id}'", node.span,
                       did_you_mean(node.id, SCHEDULE_NAMES) or
                       "names: " + ", ".join(SCHEDULE_NAMES))
        elif isinstance(node, n.Call) and (node.func.name not in language.FUNCTIONS
                                           or node.func.name in ("metric", "has")):
            problem = ("E202", f"a schedule cannot call '{node.func.name}'", node.func.span,
                       did_you_mean(node.func.name, language.FUNCTIONS))
        elif isinstance(node, n.Stalls | n.Improves | n.Attribute | n.Table):
            problem = ("E205", "a schedule is arithmetic on epoch and lr", node.span, None)
        if problem:
            code, message, span, hint = problem
            raise CbdslCompileError(Diagnostic(code, message, span, path, text, hint=hint))
    return expr
