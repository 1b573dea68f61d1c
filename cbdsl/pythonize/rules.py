"""One rule in one hook: its filters, tracker updates, condition, missing-metric checks."""

from __future__ import annotations

import os

from cbdsl import language
from cbdsl.checker.order import filter_counter, sure_reads
from cbdsl.checker.trackers import metric_name_of, trackers_of
from cbdsl.pythonize.code import AND, CMP, MUL, Code, chain, py_str
from cbdsl.pythonize.layout import Comment, If, Line
from cbdsl.pythonize.names import Scope
from cbdsl.pythonize.snippets import LR_READ
from cbdsl.pythonize.sources import source_text
from cbdsl.pythonize.templates import string_code
from cbdsl.syntax import nodes as n


class RuleWriter:
    """A rule as the statements of one hook method, under a comment with its source line.

    A mixin of `ClassWriter` (classes.py), whose state and other mixins it uses.
    """

    def rule_code(self, rule: n.Rule, event: language.Event, logs: str = "logs"
                  ) -> tuple[list, bool, list]:
        """The statements of one rule in one event, whether they read the logs as a dict,
        and the statements the hook must run first (resolving `mode="auto"`)."""
        scope = self.scope_for(event, rule, logs)
        self._needs_logs = False
        comment = self.rule_comment(rule)
        trackers = [self.trackers[id(t)] for t in trackers_of(rule)]
        # a rule whose actions are all calls of Python hooks the caller did not pass is not run
        calls = [a for a in rule.actions if isinstance(a, n.CallPython)]
        guard = None
        if calls and len(calls) == len(rule.actions):
            names = list(dict.fromkeys(a.func.name for a in calls))
            guard = chain("or", [Code(f"self.{self.attr[name]} is not None", CMP)
                                 for name in names])
        # filters
        filters = [self.filter_code(f, rule, event, scope) for f in rule.filters]
        # the values the trackers check, and the metrics the condition reads
        subject_reads: list[tuple[str, str]] = []  # (key, local)
        for tracker in trackers:
            reads, conditional = self.metric_reads(tracker.node.subject, scope)
            if conditional:
                raise self.error("a metric read on only some paths of a 'stalls'/'improves' "
                                 "subject", conditional[0])
            for key in reads:
                if key not in scope.metric_locals:
                    local = self.metric_local(key, scope)
                    scope.metric_locals[key] = local
                    subject_reads.append((key, local))
        core: list = []
        reads_lr = self.reads_lr(rule)
        lr_first = reads_lr and (any(self.reads_lr_in(t.node.subject) for t in trackers)
                                 or self.reads_lr_in(rule.condition))
        if lr_first:
            core.append(LR_READ)
        raw_elsewhere = self.raw_metric_keys(rule, scope)
        for tracker in trackers:
            core += self.tracker_update(tracker, scope, trackers, raw_elsewhere)
        # the condition, as groups of `and`-ed parts: the metrics a group reads are read (and
        # reported missing) only once the groups before it have passed, as the rule runs
        groups = self.condition_groups(rule, scope)
        conditions = [(reads, chain("and", [self.expr(c, scope, boolean=True) for c in parts]))
                      for reads, parts in groups]
        # the metrics the actions read whatever the values: all read before the first action,
        # so a rule runs whole or not at all, as the compiled rule does
        known = {*self.params, *self.variables, *language.BUILTIN_NAMES, *scope.locals}
        action_reads = []
        for key in sorted(sure_reads(rule.actions, known)):
            if key not in scope.metric_locals:
                scope.metric_locals[key] = self.metric_local(key, scope)
                action_reads.append((key, scope.metric_locals[key]))
        actions = self.actions(rule.actions, scope, rule, guarded_calls=guard is None)
        if not lr_first and reads_lr and actions:
            actions.insert(0, LR_READ)
        if not any(isinstance(a, n.Stop) for a in rule.actions):
            for tracker in trackers:
                if isinstance(tracker.node, n.Stalls):
                    actions.append(Line(f"self.{tracker.attrs['wait']} = 0  "
                                        "# acted on: count afresh"))
        actions = self.missing_chain(action_reads, actions, scope, rule)
        inner = actions
        last = core[-1] if core else None
        if len(conditions) == 1 and not conditions[0][0] and isinstance(last, If) and \
                last.orelse is None and last.branches[0][0].text == conditions[0][1].text:
            last.branches[0][1].extend(actions)  # `when x improves`: act on the improvement
            conditions = []
            inner = []
        for reads, cond in reversed(conditions):
            inner = self.missing_chain(reads, [If([(cond, inner)])], scope, rule)
        inner = core + inner
        inner = self.missing_chain(subject_reads, inner, scope, rule)
        if filters:
            inner = [If([(chain("and", filters), inner)])]
        if guard is not None:
            inner = [If([(guard, inner)])]
        resolve: list = []
        for tracker in trackers:
            if tracker.runtime_direction and not scope.handler:
                attr = f"self.{tracker.attrs['direction']}"
                mode = self.option_code(tracker.node, "mode", scope) or '"auto"'
                metric = metric_name_of(tracker.node.subject, self.params)
                if metric == "<param>":
                    monitor = self.expr(tracker.node.subject.args[0], scope).text
                else:
                    monitor = py_str(metric) if metric else "None"
                stmt: list = [If([(Code(f"{attr} is None", CMP), [
                    Comment('mode="auto" resolves at the first check, as in Keras'),
                    Line(f"{attr} = self._resolve_direction({mode}, {monitor}"
                         + (")" if "mode" in self.params else ", rule_words=True)"))])])]
                if guard is not None:
                    stmt = [If([(guard, stmt)])]
                resolve += stmt
        return [Comment(comment), *inner], self._needs_logs, resolve

    def condition_groups(self, rule: n.Rule, scope: Scope
                         ) -> list[tuple[list[tuple[str, str]], list[n.Expr]]]:
        """The rule's condition split at its top-level `and`s into groups, each with the
        metrics it reads first (a new group starts where a part reads a new metric)."""
        if rule.condition is None:
            return []
        parts: list[n.Expr] = []
        stack = [rule.condition]
        while stack:
            node = stack.pop()
            if isinstance(node, n.BoolOp) and node.op == "and":
                stack += [node.right, node.left]
            elif isinstance(node, n.Compare) and len(node.rest) > 1 and \
                    self.metric_reads(node, scope)[1]:
                # `a < b < val_loss` reads val_loss only once `a < b` holds: one link a part
                operands = [node.first, *(x for _, x in node.rest)]
                stack += [n.Compare(operands[i], ((op, operands[i + 1]),), node.span)
                          for i, (op, _) in reversed(list(enumerate(node.rest)))]
            else:
                parts.append(node)
        groups: list[tuple[list[tuple[str, str]], list[n.Expr]]] = []
        guards = scope.guards
        for part in parts:
            always, sometimes = self.metric_reads(part, scope.inner(guards=guards))
            if sometimes:
                raise self.error(
                    f"the metric read '{source_text(sometimes[0], self.source_of(rule))}' "
                    "happens only when the part of the condition before it lets it (guard it "
                    "with has(...), or move it into a part of its own joined by `and`)",
                    sometimes[0])
            new = [key for key in always if key not in scope.metric_locals]
            if new and groups:
                groups.append(([], []))
            if not groups:
                groups.append(([], []))
            for key in new:
                local = self.metric_local(key, scope)
                scope.metric_locals[key] = local
                groups[-1][0].append((key, local))
            groups[-1][1].append(part)
            guards = guards | self.has_guards(part, scope)
        return groups

    def has_guards(self, expr: n.Expr, scope: Scope) -> frozenset[str]:
        """The metrics an `and`-ed part proves present: `has("x")`."""
        if isinstance(expr, n.Call) and expr.func.name == "has" and "has" not in self.params:
            return frozenset({self.has_key(expr, scope)})
        return frozenset()

    def filter_code(self, f: n.Filter, rule: n.Rule, event: language.Event, scope: Scope) -> Code:
        counter = filter_counter(f.unit.name if f.unit else None, event)
        count = self.expr(f.at if isinstance(f, n.Once) else f.count, scope)
        index = {"epoch": scope.epoch, "batch": scope.batch, "step": scope.step}.get(counter)
        if index is None:
            raise self.error(f"a '{type(f).__name__.lower()}' filter on a counter "
                             f"{event.name} does not have here", f)
        if counter == "epoch" and index == "self._current_epoch":
            self.uses.add("current_epoch")
        if counter == "step":
            self.uses.add("steps")
        guard = ""
        if scope.handler:
            guard = f"{index} is not None and "
        # every filter kind: every, after, before, once
        if isinstance(f, n.Every):
            if index == "self._steps - 1":
                text = f"self._steps % {count.at(MUL + 1)} == 0"
            else:
                text = f"({index} + 1) % {count.at(MUL + 1)} == 0"
        elif isinstance(f, n.After):
            text = f"{index} >= {count.at(CMP + 1)}"
        elif isinstance(f, n.Before):
            text = f"{index} < {count.at(CMP + 1)}"
        else:
            text = f"{index} == {count.at(CMP + 1)}"
        if guard:
            return Code(guard + text, AND, "and", (f"{index} is not None", text))
        return Code(text, CMP)

    def missing_chain(self, reads: list[tuple[str, str]], rest: list, scope: Scope,
                      rule: n.Rule) -> list:
        """`x = logs.get("x")` for each read, then: a missing one is reported, else `rest`."""
        if not reads:
            return rest
        self._needs_logs = True
        lines: list = [Line(f"{local} = {scope.logs}.get({self.key_code(key, scope)})")
                       for key, local in reads]
        branches = [(Code(f"{local} is None", CMP), self.missing(key, scope, rule))
                    for key, local in reads]
        return [*lines, If(branches, rest or None)]

    def missing(self, key: str, scope: Scope, rule: n.Rule) -> list:
        code = self.key_code(key, scope)
        if self.has_handlers:
            args = [code, scope.logs]
            for name in self.handler_args:
                args.append(getattr(scope, name) or "None")
            return [Line(f"self._metric_missing({', '.join(args)})")]
        self.module.imports.add("warnings")
        metric = ("lit", key) if not key.startswith("@") else (
            "field", self.key_code(key, scope.inner(quote="'")))
        pieces = [("lit", f"{self.class_name} (rule at line {rule.span.line}) is conditioned "
                          "on metric `"), metric,
                  ("lit", "` which is not available. Available metrics are: "),
                  ("field", f"','.join({scope.logs})"), ("lit", ".")]
        return [Line(string_code(pieces, 16, "warnings.warn(", ", stacklevel=2)"))]

    def source_of(self, rule: n.Node) -> str:
        return self.module.sources.get(id(rule), (self.d.path, self.d.source))[1]

    def rule_comment(self, rule: n.Rule) -> str:
        path, source = self.module.sources.get(id(rule), (self.d.path, self.d.source))
        text = source_text(rule, source)
        where = f"line {rule.span.line}" if path == self.d.path else \
            f"{os.path.basename(path)}, line {rule.span.line}"
        return f"{where}: {text}"
