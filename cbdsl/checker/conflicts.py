"""Conflicts: two writers of one target in one event with no order between them (E207)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cbdsl import language
from cbdsl.checker.constants import NotConstant, const_value
from cbdsl.checker.definitions import (
    Definition,
    Instance,
)
from cbdsl.checker.order import (
    filter_counter,
    rule_events,
    rule_priority,
    written_targets,
)
from cbdsl.diagnostics import Span
from cbdsl.syntax import nodes as n


class ConflictChecks:
    """Two rules writing one target in one event with no declared order (a `Checker` part)."""

    def _check_conflicts(self, definition: Definition) -> None:
        writers: dict[tuple[str, str, Any], list[tuple[n.Rule, Span]]] = defaultdict(list)
        for rule in definition.rules:
            priority = rule_priority(rule, definition)
            for event in rule_events(rule):
                for target, span in written_targets(rule):
                    entries = writers[(event, target, priority)]
                    if not any(other is rule for other, _ in entries):  # a rule's own actions
                        entries.append((rule, span))                   # run in their order
        for (event, target, _), entries in writers.items():
            for k, (rule, span) in enumerate(entries):
                clash = next(((other, first) for other, first in reversed(entries[:k])
                              if not never_together(rule, other, event)), None)
                if clash is None:
                    continue
                other, first = clash
                self.report("E207", f"two rules write {target} at {event} in no declared order",
                            span, self.origin(rule, definition),
                            "give one rule a priority, or merge the rules",
                            [("the other write is here", self.origin(other, definition).path,
                              first)])

    def _check_cross_conflicts(self, instances: list[Instance]) -> None:
        seen: dict[tuple[str, str], Instance] = {}
        for instance in instances:
            for rule in instance.definition.rules:
                for event in rule_events(rule):
                    for target, _ in written_targets(rule):
                        if not target.startswith("lr"):
                            continue
                        key = (event, target, instance.priority)
                        earlier = seen.get(key)
                        if earlier is not None and earlier is not instance:
                            self.report(
                                "E207", f"'{earlier.label}' and '{instance.label}' both write "
                                f"{target} at {event}", instance.span or rule.span,
                                self.program, "the later callback in the list would win "
                                "silently: keep one writer per target and event, or order "
                                "them: `use X(...) priority 1` runs X before the file's rules")
                        seen.setdefault(key, instance)


# A bound of a counter filter: a constant, or a parameter plus an offset (`once at epoch w`
# passes below w + 1). Two bounds compare only when both are constants or the same parameter.
Bound = tuple[str | None, float]


def never_together(rule: n.Rule, other: n.Rule, event: str) -> bool:
    """Whether the counter filters of two rules can never pass in the same event: one passes
    only below a bound (`before epoch w`) that the other passes only at or above
    (`from epoch w`)."""
    mine, theirs = _ranges(rule, event), _ranges(other, event)
    for counter in mine.keys() & theirs.keys():
        (low, high), (other_low, other_high) = mine[counter], theirs[counter]
        if any(_at_most(h, lo) for h in high for lo in other_low) or \
                any(_at_most(h, lo) for h in other_high for lo in low):
            return True
    return False


def _ranges(rule: n.Rule, event: str) -> dict[str, tuple[list[Bound], list[Bound]]]:
    """Per counter, the lower bounds (index >= b) and upper bounds (index < b) of a rule's
    filters in `event`."""
    resolved = language.resolve_event(event)
    out: dict[str, tuple[list[Bound], list[Bound]]] = {}
    for f in rule.filters:
        counter = filter_counter(f.unit.name if f.unit else None, resolved)
        bound = _bound(f.at if isinstance(f, n.Once) else f.count)
        if counter is None or bound is None:
            continue
        low, high = out.setdefault(counter, ([], []))
        if isinstance(f, n.After | n.Once):
            low.append(bound)
        if isinstance(f, n.Before):
            high.append(bound)
        elif isinstance(f, n.Once):
            high.append((bound[0], bound[1] + 1))
    return out


def _bound(expr: n.Expr) -> Bound | None:
    if isinstance(expr, n.Name):
        return (expr.id, 0)
    try:
        value = const_value(expr)
    except NotConstant:
        return None
    return (None, value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _at_most(a: Bound, b: Bound) -> bool:
    return a[0] == b[0] and a[1] <= b[1]
