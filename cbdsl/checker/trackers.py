"""Trackers (the state of `stalls` and `improves`): their names, metrics, modes and weights."""

from __future__ import annotations

from typing import Any

from cbdsl import language
from cbdsl.checker.constants import NotConstant, const_value
from cbdsl.checker.definitions import ParamInfo
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions, walk


def mode_of(node: n.Stalls | n.Improves, params) -> Any:
    for option in node.options:
        if option.name.name == "mode":
            try:
                return const_value(option.value, params)
            except NotConstant:
                return None
    return "auto"


def metric_name_of(expr: n.Expr, params: dict[str, ParamInfo] | None = None) -> str | None:
    """The metric a predicate watches: `val_loss`, or `metric(monitor)` with a str param."""
    if isinstance(expr, n.Name) and expr.id not in language.BUILTIN_NAMES and not (
            params and expr.id in params):
        return expr.id
    if isinstance(expr, n.Name) and expr.id in ("lr", "learning_rate"):
        return expr.id
    if isinstance(expr, n.Call) and expr.func.name == "metric" and len(expr.args) == 1:
        arg = expr.args[0]
        if isinstance(arg, n.String):
            return arg.value
        if isinstance(arg, n.Name) and params and arg.id in params:
            return "<param>"
    return None


def restored_trackers(rules: list[n.Rule]) -> set[str]:
    """Trackers that some `restore best weights` reads, in `for` bodies too: they keep weight
    snapshots. An unnamed restore reads its own rule's first tracker, else the callback's."""
    named = [[tracker_name(t, i, k, rule) for k, t in enumerate(trackers_of(rule))]
             for i, rule in enumerate(rules)]
    everywhere = [name for names in named for name in names]
    restored = set()
    for rule, names in zip(rules, named, strict=True):
        for action in flat_actions(rule.actions):
            if isinstance(action, n.Restore):
                if action.tracker is not None:
                    restored.add(action.tracker.name)
                elif names or everywhere:
                    restored.add((names or everywhere)[0])
    return restored


def trackers_of(rule: n.Rule) -> list[n.Stalls | n.Improves]:
    """The `stalls` and `improves` predicates of a rule's condition, in source order."""
    return [x for x in walk(rule.condition) if isinstance(x, n.Stalls | n.Improves)]


def tracker_name(node, index: int, k: int, rule: n.Rule) -> str:
    """The name of a rule's k-th tracker: its alias, else `LABEL#k` (`ruleINDEX#k`)."""
    if node.alias is not None:
        return node.alias.name
    return f"{rule.label.name if rule.label else f'rule{index}'}#{k}"
