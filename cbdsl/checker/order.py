"""Rules in order: their events, priorities, counters, and the targets they write and read."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cbdsl import language
from cbdsl.checker.constants import NotConstant, const_value
from cbdsl.checker.definitions import Definition
from cbdsl.checker.templates import template_fields
from cbdsl.diagnostics import Span
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import child_fields, flat_actions, unconditional, walk


def rule_events(rule: n.Rule) -> list[str]:
    events = []
    for ident in rule.events:
        event = language.resolve_event(ident.name)
        if event is not None:
            events.append(event.name)
    return events


def rule_priority(rule: n.Rule, definition: Definition) -> Any:
    if rule.priority is None:
        return 0
    try:
        value = const_value(rule.priority.value, definition.params)
    except NotConstant:
        return 0
    return 0 if isinstance(value, dict) else value  # a table is reported (E204), not hashed


def written_targets(rule: n.Rule) -> list[tuple[str, Span]]:
    """The targets a rule writes: the learning rate, log keys, variables, model weights."""
    out = []
    for action in flat_actions(rule.actions):
        if isinstance(action, n.Assign):
            out.append(("lr" if action.target.name in language.TARGETS else action.target.name,
                        action.span))
        elif isinstance(action, n.Log) and action.key is not None:
            out.append((f"logs['{action.key.name}']", action.span))
        elif isinstance(action, n.Set) and action.op == "=" and action.index is None:
            out.append((f"'{action.var.name}'", action.span))
        elif isinstance(action, n.Restore):
            out.append(("the model weights", action.span))
    return out


def names_read(rule: n.Rule) -> set[str]:
    """Every name a rule reads, anywhere in it (filters, condition, every action's operands and
    options, loop bodies, template fields), and the variables that `set` updates in place."""
    found = set()
    for node in walk(rule):
        if isinstance(node, n.Name):
            found.add(node.id)
        elif isinstance(node, n.String):
            found.update(template_fields(node.value))
        elif isinstance(node, n.Set) and (node.op != "=" or node.index is not None):
            found.add(node.var.name)
    return found


def filter_counter(unit: str | None, event: language.Event) -> str | None:
    """Which counter a filter reads in `event` (`epoch`, `batch`, `step`), or None."""
    if unit is None:
        return {"epoch": "epoch", "batch": "batch"}.get(event.level)
    base = unit.rstrip("es") if unit.endswith("ches") else unit.rstrip("s")
    base = {"batch": "batch", "epoch": "epoch", "step": "step"}.get(base, base)
    if base == "epoch":
        return "epoch" if event.phase == "train" and event.name != "train_begin" else None
    if base == "batch":
        return "batch" if event.level == "batch" else None
    if base == "step":
        return "step" if event.level == "batch" and event.phase == "train" else None
    return None


_IN_ORDER = ("args", "keywords", "options")  # operand lists, read one by one as they run


def sure_reads(actions: Iterable[n.Action], known: set[str]) -> set[str]:
    """The log metrics that running these actions reads, whatever the values are: a rule
    reads them all before its first action runs, so that it runs whole or not at all.

    Names and template fields that are not `known` (parameters, variables, built-ins), in the
    action's own operands and a `post`'s options (read before its request is sent); not in
    `for` bodies, argument lists (read in order as the call runs), the branches of
    `x if c else y` or the right side of `and`/`or`.
    """
    reads: set[str] = set()
    for action in actions:
        if isinstance(action, n.For):
            continue
        for name, child in child_fields(action):
            if name in _IN_ORDER and not isinstance(action, n.Post):
                continue
            for node in unconditional(child):
                if isinstance(node, n.Name) and node.id not in known:
                    reads.add(node.id)
                elif isinstance(node, n.String) and name in ("template", "path"):
                    reads.update(f for f in template_fields(node.value)
                                 if "." not in f and f not in known)
    return reads
