"""Hook methods: which rules each Keras hook runs, in order, and the counters they keep."""

from __future__ import annotations

import textwrap

from cbdsl import language
from cbdsl.checker.order import filter_counter
from cbdsl.checker.templates import template_fields
from cbdsl.pythonize.code import OR, Code
from cbdsl.pythonize.layout import Blank, Comment, If, Line, render
from cbdsl.pythonize.names import Scope
from cbdsl.pythonize.snippets import RESOLVE_DIRECTION
from cbdsl.pythonize.tree import passes_logs, rule_exprs
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions, walk

# Hook methods in the order `fit`, `evaluate` and `predict` call them.
HOOK_ORDER = ("train_begin", "epoch_begin", "train_batch_begin", "train_batch_end", "epoch_end",
              "train_end", "test_begin", "test_batch_begin", "test_batch_end", "test_end",
              "predict_begin", "predict_batch_begin", "predict_batch_end", "predict_end")


class HookWriter:
    """The class's hook methods (`on_epoch_end`, ...) and `_metric_missing`.

    A mixin of `ClassWriter` (classes.py), whose state and other mixins it uses.
    """

    def hooks(self) -> list[str]:
        by_event: dict[str, list[tuple[int, int, n.Rule]]] = {}
        for index, rule in self.rules:
            priority = self.priority(rule)
            for ident in rule.events:
                event = language.resolve_event(ident.name)
                by_event.setdefault(event.name, []).append((-priority, index, rule))
        for rules in by_event.values():
            rules.sort(key=lambda item: (item[0], item[1]))
        handlers = [r for _, _, r in by_event.pop("metric_missing", [])]
        self.handler_args: list[str] = []
        self.has_handlers = bool(handlers)  # a handler reading a missing metric calls itself
        handler = self.handler_method(handlers) if handlers else None
        bodies: dict[str, list] = {}
        for event_name in language.EVENTS:
            if event_name in by_event:
                bodies[event_name] = self.event_body(language.EVENTS[event_name],
                                                     [r for _, _, r in by_event[event_name]])
        # state reset, counters, the History hand-over
        reset = self.state_lines(initial=False)
        if reset:
            begin = bodies.get("train_begin", [])
            bodies["train_begin"] = [Comment("Each fit starts afresh."), *reset,
                                     *([Blank()] if begin else []), *begin]
        if "current_epoch" in self.uses:
            bodies["epoch_begin"] = [Line("self._current_epoch = epoch"),
                                     *bodies.get("epoch_begin", [])]
        if "steps" in self.uses:
            count = [Comment("Count train batches across epochs, as ModelCheckpoint counts "
                             "them (steps_per_execution included)."),
                     If([(Code("self._last_batch is None or batch <= self._last_batch", OR),
                          [Line("self._steps += batch + 1")])],
                        [Line("self._steps += batch - self._last_batch")]),
                     Line("self._last_batch = batch")]
            existing = bodies.get("train_batch_end", [])
            bodies["train_batch_end"] = [*count, *([Blank()] if existing else []), *existing]
        if self.records:
            bodies["train_end"] = [*bodies.get("train_end", []),
                                   Line("self.model.history = self  # what fit returns")]
        methods = []
        for event_name in HOOK_ORDER:
            if event_name not in bodies:
                continue
            event = language.EVENTS[event_name]
            body = bodies[event_name]
            if event.level == "epoch":
                args = "epoch, logs=None"
            elif event.level == "batch":
                args = "batch, logs=None"
            else:
                args = "logs=None"
            methods.append("\n".join([f"    def {event.hook}(self, {args}):",
                                      *render(body, 8)]))
        if handler is not None:
            methods.append(handler)
        if any(t.runtime_direction for t in self.trackers.values()):
            methods.append(textwrap.indent(RESOLVE_DIRECTION.strip("\n"), "    "))
        return methods

    def priority(self, rule: n.Rule) -> int:
        if rule.priority is None:
            return 0
        value = rule.priority.value
        if isinstance(value, n.Number) and isinstance(value.value, int):
            return value.value
        if isinstance(value, n.Unary) and value.op == "-" and isinstance(value.operand, n.Number):
            return -int(value.operand.value)
        raise self.error("a priority given by a parameter (the order of the rules must be "
                         "known when the code is written)", rule.priority)

    def event_body(self, event: language.Event, rules: list[n.Rule]) -> list:
        # Python hooks get the logs as Keras passes them (None included); the rules read
        # them as a dict
        logs = "log_values" if any(passes_logs(rule) for rule in rules) else "logs"
        body: list = []
        prologue: list = []
        uses_logs = False
        for rule in rules:
            stmts, needs_logs, resolve = self.rule_code(rule, event, logs)
            uses_logs |= needs_logs
            prologue += resolve
            if body:
                body.append(Blank())
            body += stmts
        head: list = []
        if uses_logs:
            head.append(Line(f"{logs} = {{}} if logs is None else logs"))
        head += prologue
        if head:
            head.append(Blank())
        return head + body

    def scope_for(self, event: language.Event, rule: n.Rule, logs: str) -> Scope:
        epoch = batch = step = None
        if event.level == "epoch":
            epoch = "epoch"
        elif event.phase == "train" and (event.level == "batch" or event.name == "train_end"):
            epoch = "self._current_epoch"
        if event.level == "batch":
            batch = "batch"
            if event.phase == "train":  # counted at batch end: at its begin, the batch to run
                step = "self._steps" if event.name == "train_batch_begin" else "self._steps - 1"
        if event.level == "signal":
            epoch = "epoch" if "epoch" in self.handler_args else None
            batch = "batch" if "batch" in self.handler_args else None
        return Scope(event, rule, epoch, batch, step, logs=logs,
                     handler=event.level == "signal")

    def handler_method(self, rules: list[n.Rule]) -> str:
        """`_metric_missing(...)`: the `on metric_missing` rules, run instead of the warning."""
        event = language.EVENTS["metric_missing"]
        needed = set()
        for rule in rules:
            for node in [*rule_exprs(rule)]:
                for sub in walk(node):
                    if isinstance(sub, n.Name) and sub.id in ("epoch", "batch"):
                        needed.add(sub.id)
                    if isinstance(sub, n.String):
                        needed |= {f for f in template_fields(sub.value) if f in ("epoch",
                                                                                  "batch")}
            for f in rule.filters:
                needed.add(filter_counter(f.unit.name if f.unit else None, event) or "epoch")
            if any(isinstance(a, n.Stop) for a in flat_actions(rule.actions)):
                needed.add("epoch")
        if "step" in needed:
            raise self.error("a 'step' filter in a metric_missing rule", rules[0])
        self.handler_args = [a for a in ("epoch", "batch") if a in needed]
        body: list = []
        uses_logs = False
        for rule in rules:
            stmts, needs_logs, _ = self.rule_code(rule, event)
            uses_logs |= needs_logs
            if body:
                body.append(Blank())
            body += stmts
        args = ", ".join(["missing", "logs", *self.handler_args])
        lines = [f"    def _metric_missing(self, {args}):",
                 '        """Runs where a rule reads a metric the logs lack (`missing`), '
                 'instead of the rule."""']
        lines += render(body, 8)
        return "\n".join(lines)
