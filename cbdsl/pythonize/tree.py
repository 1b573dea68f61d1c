"""Small questions about rule syntax trees: a node's children, the expressions of actions."""

from __future__ import annotations

from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions, walk


def children(node) -> list:
    """The expressions directly under `node`."""
    # dispatches on every expression kind that holds others (and `CallPython`)
    t = type(node)
    if t in (n.BinOp, n.BoolOp):
        return [node.left, node.right]
    if t is n.Unary:
        return [node.operand]
    if t is n.Compare:
        return [node.first, *(e for _, e in node.rest)]
    if t is n.Conditional:
        return [node.then, node.cond, node.orelse]
    if t in (n.Call, n.CallPython):
        return [*node.args, *(k.value for k in node.keywords)]
    if t is n.Table:
        return [x for pair in node.entries for x in pair]
    if t in (n.IsNan, n.IsFinite):
        return [node.subject]
    if t is n.Index:
        return [node.value, node.key]
    return []


def action_exprs(actions) -> list:
    """The expressions of actions (in `for` bodies too)."""
    exprs = []
    for action in flat_actions(actions):
        for attr in ("value", "path", "template", "count", "index", "key_expr", "iterable",
                     "condition", "text"):
            value = getattr(action, attr, None)
            if isinstance(value, n.Node):
                exprs.append(value)
        if isinstance(action, n.CallPython):
            exprs += [*action.args, *(k.value for k in action.keywords)]
    return exprs


def rule_exprs(rule: n.Rule) -> list:
    """A rule's condition and the expressions of its actions."""
    return [rule.condition, *action_exprs(rule.actions)]


def passes_logs(rule: n.Rule) -> bool:
    """Whether a rule hands `logs` to a Python hook."""
    return any(isinstance(node, n.Name) and node.id == "logs"
               for a in flat_actions(rule.actions) if isinstance(a, n.CallPython)
               for arg in (*a.args, *(k.value for k in a.keywords)) for node in walk(arg))


def nonzero(expr: n.Expr) -> bool:
    """Whether an expression is a number literal other than zero (a safe divisor)."""
    if isinstance(expr, n.Unary) and expr.op in "+-":
        return nonzero(expr.operand)
    return isinstance(expr, n.Number) and expr.value != 0
