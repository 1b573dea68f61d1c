"""Conflicts: two writers of one target in one event with no order between them (E207)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from cbdsl.checker.definitions import (
    Definition,
    Instance,
)
from cbdsl.checker.order import (
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
            for (rule, span), (other, first) in zip(entries[1:], entries, strict=False):
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
                        key = (event, target)
                        earlier = seen.get(key)
                        if earlier is not None and earlier is not instance:
                            self.report(
                                "E207", f"'{earlier.label}' and '{instance.label}' both write "
                                f"{target} at {event}", instance.span or rule.span,
                                self.program, "the later callback in the list would win "
                                "silently: keep one writer per target and event")
                        seen.setdefault(key, instance)
