"""`stalls`/`improves` trackers: their attributes, the state they keep, and their update."""

from __future__ import annotations

from dataclasses import dataclass

from cbdsl.checker.templates import template_fields
from cbdsl.checker.trackers import metric_name_of, tracker_name, trackers_of
from cbdsl.pythonize.code import CMP, NOT, Code, chain, py_str
from cbdsl.pythonize.layout import Comment, If, Line
from cbdsl.pythonize.names import RESERVED_LOCALS, Scope, identifier
from cbdsl.pythonize.sources import source_text
from cbdsl.pythonize.tree import action_exprs
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions, walk


@dataclass
class Tracker:
    """A `stalls`/`improves` predicate and the attributes that hold its state."""

    node: n.Stalls | n.Improves
    name: str
    rule: n.Rule
    attrs: dict[str, str]  # field -> attribute name: wait best best_epoch value ...
    keeps: bool | n.Expr = False  # keep weight snapshots: always, never, or as an option says
    cooled: bool = False  # some `cooldown` action of its rule sets it
    runtime_direction: bool = False
    static_direction: str | None = None


class TrackerWriter:
    """Each tracker of a definition as attributes of the class (`wait`, `best`, ...), reset
    where Keras resets them, and updated before the condition that reads it.

    A mixin of `ClassWriter` (classes.py), whose state and other mixins it uses.
    """

    def collect_trackers(self) -> None:
        found = []
        for index, rule in self.rules:
            nodes = trackers_of(rule)
            for k, node in enumerate(nodes):
                name = tracker_name(node, index, k, rule)
                found.append((node, name, rule, k, len(nodes)))
        single = len(found) == 1
        held_by_name = {a.tracker.name for _, rule in self.rules
                        for a in flat_actions(rule.actions)
                        if isinstance(a, n.Cooldown) and a.tracker is not None}
        fields = ("wait", "best", "best_epoch", "value", "best_weights", "cooldown_counter",
                  "direction")
        for node, name, rule, k, count in found:
            if single:
                prefix = ""
            elif node.alias is not None:
                prefix = node.alias.name + "_"
            elif rule.label is not None:
                prefix = rule.label.name + ("_" if count == 1 else f"_{k}_")
            else:
                prefix = f"rule{rule.span.line}_" + ("" if count == 1 else f"{k}_")
            attrs = {f: self.alloc(prefix + f, "_") for f in fields}
            tracker = Tracker(node, name, rule, attrs)
            options = {o.name.name: o.value for o in node.options}
            if "only" in options:
                raise self.error("the tracker option 'only'", node)
            weights = options.get("weights")
            if weights is None:
                tracker.keeps = name in self.restored
            elif isinstance(weights, n.Bool):
                tracker.keeps = weights.value
            else:
                tracker.keeps = weights
            tracker.cooled = isinstance(node, n.Stalls) and (name in held_by_name or any(
                isinstance(a, n.Cooldown) and a.tracker is None
                for a in flat_actions(rule.actions)))
            self.trackers[id(node)] = tracker
            self.tracker_by_name[name] = tracker
            if any(e.name == "metric_missing" for e in rule.events):
                raise self.error("a 'stalls'/'improves' predicate in a metric_missing rule",
                                 node)
            self.tracker_direction(tracker, options)

    def tracker_direction(self, tracker: Tracker, options: dict[str, n.Expr]) -> None:
        mode = options.get("mode")
        metric = metric_name_of(tracker.node.subject, self.params)
        if mode is None or isinstance(mode, n.String):
            value = mode.value if isinstance(mode, n.String) else "auto"
            if value in ("min", "max"):
                tracker.static_direction = value
                return
            if metric not in (None, "<param>") and metric.removeprefix("val_") == "loss":
                tracker.static_direction = "min"
                return
        elif isinstance(mode, n.Name) and mode.id in self.params:
            self.mode_checks[mode.id] = None
        else:
            raise self.error("a 'mode' that is neither a string nor a parameter", mode)
        tracker.runtime_direction = True

    def tracker_fields_used(self, tracker: Tracker) -> set[str]:
        used = set()
        for _, rule in self.rules:
            nodes = [rule.condition, *action_exprs(rule.actions)]
            for expr in nodes:
                for node in walk(expr):
                    if isinstance(node, n.Attribute) and node.value.name == tracker.name:
                        used.add(node.attr.name)
                    if isinstance(node, n.String):
                        for f in template_fields(node.value):
                            if f.startswith(tracker.name + "."):
                                used.add(f.split(".", 1)[1])
        return used

    def tracker_state(self, initial: bool) -> list:
        """The trackers' part of `state_lines`: the attributes each keeps."""
        out: list = []
        for tracker in self.trackers.values():
            if not initial and any(o.name.name == "keep" and isinstance(o.value, n.Bool)
                                   and o.value.value for o in tracker.node.options):
                continue  # `with keep = true`: kept across fit calls
            a = tracker.attrs
            used = self.tracker_fields_used(tracker)
            if isinstance(tracker.node, n.Stalls) or "wait" in used:
                out.append(Line(f"self.{a['wait']} = 0"))
            out.append(Line(f"self.{a['best']} = None"))
            out.append(Line(f"self.{a['best_epoch']} = 0"))
            if "value" in used:
                out.append(Line(f"self.{a['value']} = None"))
            if tracker.keeps is not False or tracker.name in self.restored:
                out.append(Line(f"self.{a['best_weights']} = None"))
            if tracker.cooled:
                out.append(Line(f"self.{a['cooldown_counter']} = 0"))
            if tracker.runtime_direction:
                out.append(Line(f"self.{a['direction']} = None  # \"min\" or \"max\", set at "
                                "the first check"))
        return out

    def option_code(self, node, name: str, scope: Scope) -> str | None:
        for option in node.options:
            if option.name.name == name:
                return self.expr(option.value, scope).text
        return None

    def tracker_update(self, tracker: Tracker, scope: Scope, trackers: list[Tracker],
                       raw_elsewhere: set[str]) -> list:
        node, a = tracker.node, tracker.attrs
        many = len(trackers) > 1
        short = tracker.name if not tracker.name.count("#") else tracker.name.replace("#", "_")
        stalls = isinstance(node, n.Stalls)
        result = (f"{identifier(short, set())}_" if many else "") + (
            "stalled" if stalls else "improved")
        scope.results[id(node)] = result
        out: list = []
        text = source_text(node, self.source_of(tracker.rule))
        if stalls:
            out.append(Comment(f"`{text}`: Keras's patience, counted before comparing"))
        else:
            out.append(Comment(f"`{text}`: whether it beats its best so far"))
        # the value checked
        key = self.metric_key(node.subject, scope)
        if key is not None:
            local = scope.metric_locals[key]
            if key in raw_elsewhere:
                value = f"float({local})"
            else:
                out.append(Line(f"{local} = float({local})"))
                value = local
        elif isinstance(node.subject, n.Name) and node.subject.id in ("lr", "learning_rate") \
                and node.subject.id not in self.params:
            value = "lr"
        else:
            value = identifier((short + "_" if many else "") + "value",
                               set(RESERVED_LOCALS) | set(scope.metric_locals.values()))
            out.append(Line(f"{value} = float({self.expr(node.subject, scope).text})"))
        if "value" in self.tracker_fields_used(tracker):
            out.append(Line(f"self.{a['value']} = {value}"))
        direction = py_str(tracker.static_direction) if tracker.static_direction else \
            f"self.{a['direction']}"
        min_delta = self.option_code(node, "min_delta", scope)
        baseline_node = next((o.value for o in node.options if o.name.name == "baseline"), None)
        baseline = self.option_code(node, "baseline", scope)
        baseline_may_be_none = baseline_node is not None and not isinstance(
            baseline_node, n.Number | n.Unary) and not (
            isinstance(baseline_node, n.Name) and baseline_node.id == "inf")
        if isinstance(baseline_node, n.NoneLit):
            baseline = None
        self.module.helpers.add("is_improvement")

        def improvement(reference: str) -> str:
            args = [value, reference, direction] + ([min_delta] if min_delta else [])
            return f"is_improvement({', '.join(args)})"

        epoch = scope.epoch or "0"
        if epoch == "self._current_epoch":
            self.uses.add("current_epoch")
        on_best = [Line(f"self.{a['best']} = {value}"),
                   Line(f"self.{a['best_epoch']} = {epoch}")]
        snapshot = Line(f"self.{a['best_weights']} = self.model.get_weights()")
        if tracker.keeps is True:
            on_best.append(snapshot)
        elif tracker.keeps is not False:
            on_best.append(If([(self.expr(tracker.keeps, scope, boolean=True), [snapshot])]))
        if stalls:
            if tracker.cooled:
                cooldown = f"self.{a['cooldown_counter']}"
                in_cooldown = ("" if not many else identifier(short, set()) + "_") + \
                    "in_cooldown"
                out += [Line(f"{in_cooldown} = {cooldown} > 0"),
                        If([(Code(in_cooldown), [Line(f"{cooldown} -= 1"),
                                                 Line(f"self.{a['wait']} = 0")])],
                           [Line(f"self.{a['wait']} += 1")])]
            else:
                out.append(Line(f"self.{a['wait']} += 1"))
            if baseline is None:
                on_best.append(Line(f"self.{a['wait']} = 0"))
            else:
                beats = Code(improvement(baseline))
                if baseline_may_be_none:
                    beats = chain("or", [Code(f"{baseline} is None", CMP), beats])
                on_best.append(If([(beats, [Line(f"self.{a['wait']} = 0")])]))
            count = self.expr(node.count, scope)
            stalled = Code(f"self.{a['wait']} >= {count.at(CMP + 1)}", CMP)
            if tracker.cooled:
                stalled = chain("and", [Code(f"not {in_cooldown}", NOT), stalled])
            out.append(If([(Code(improvement(f"self.{a['best']}")),
                            [*on_best, Line(f"{result} = False")])],
                          [Line(f"{result} = {stalled.text}")]))
        else:
            if baseline is not None:
                first = Code(f"self.{a['best']} is None", CMP)
                if baseline_may_be_none:
                    first = chain("and", [first, Code(f"{baseline} is not None", CMP)])
                out.append(If([(first, [Line(f"self.{a['best']} = {baseline}")])]))
            best = f"self.{a['best']}"
            out.append(Line(f"{result} = {improvement(best)}"))
            out.append(If([(Code(result), on_best)]))
        return out
