"""Rule files in plain English: one sentence per rule, saying what it does and when."""

from __future__ import annotations

import os

from cbdsl import language
from cbdsl.checker import REQUIRED, CheckedProgram, Definition
from cbdsl.syntax import nodes as n

_EVENTS = {
    "train_begin": "when training begins", "train_end": "when training ends",
    "epoch_begin": "at the start of every epoch", "epoch_end": "at the end of every epoch",
    "train_batch_begin": "before every training batch",
    "train_batch_end": "after every training batch",
    "batch_begin": "before every training batch", "batch_end": "after every training batch",
    "test_begin": "when evaluation begins", "test_end": "when evaluation ends",
    "test_batch_begin": "before every evaluation batch",
    "test_batch_end": "after every evaluation batch",
    "predict_begin": "when prediction begins", "predict_end": "when prediction ends",
    "predict_batch_begin": "before every prediction batch",
    "predict_batch_end": "after every prediction batch",
    "metric_missing": "when a rule reads a metric the logs lack",
}
_UNITS = {"epoch": "epochs", "epochs": "epochs", "batch": "batches", "batches": "batches",
          "step": "steps", "steps": "steps"}
_ASSIGN = {"=": "set the learning rate to {v}", "*=": "multiply the learning rate by {v}",
           "/=": "divide the learning rate by {v}", "+=": "add {v} to the learning rate",
           "-=": "subtract {v} from the learning rate"}
_SET = {"=": "set {var} to {v}", "*=": "multiply {var} by {v}", "/=": "divide {var} by {v}",
        "+=": "add {v} to {var}", "-=": "subtract {v} from {var}"}


def explain(program: n.Program, checked: CheckedProgram | None = None) -> list[str]:
    """Sentences for a parsed rule file: a heading per callback, one sentence per rule.

    Given the checked program, `use` and `extends` are followed into the rules they bring
    (each said in the words of the file it was written in, which is named).
    """
    words = Explainer(program.source)
    lines = []
    top = [item for item in program.items if isinstance(item, n.Rule)]
    if top:
        lines.append("This file's own rules:")
        lines += [f"- {words.rule(rule)}" for rule in top]
    for item in program.items:
        if isinstance(item, n.CallbackDef):
            definition = checked.definitions.get(item.name.name) if checked else None
            if definition is not None and item.extends is not None:
                params = ", ".join(_param(name, info) for name, info in
                                   definition.params.items())
            else:
                params = ", ".join(words.param(p) for p in item.params)
            head = f"Callback {item.name.name}({params})"
            if item.extends is not None:
                head += f", built on {words.use(item.extends)}"
            doc = definition.doc if definition is not None else item.doc  # or the base's
            lines.append(head + (f": {doc.strip().splitlines()[0]}" if doc else ":"))
            if definition is not None:
                lines += _body(definition, checked, program.path, "")
            else:
                lines += _parts(item.body, words, "")
        elif isinstance(item, n.Use):
            instance = next((i for i in checked.instances if i.span == item.span), None) \
                if checked else None
            if instance is None:
                lines.append(f"Uses {words.use(item)}.")
                continue
            definition = instance.definition
            defined_here = definition.node is not None and any(
                i is definition.node for i in program.items)
            order = ""
            if instance.priority:
                order = (", before the file's own rules" if instance.priority > 0 else
                         ", after the file's own rules") + f" (priority {instance.priority})"
            if defined_here:
                lines.append(f"Uses {words.use(item)}{order}, defined above.")
                continue
            lines.append(f"Uses {words.use(item)}{order}: {definition.name} from "
                         f"{_shown(definition.path)}"
                         + (f", {definition.doc.strip().splitlines()[0]}" if definition.doc
                            else ""))
            lines += _body(definition, checked, definition.path, "  ")
        elif isinstance(item, n.Import):
            lines.append(f"Imports the rules of {item.path.value}.")
    return lines


def _body(definition: Definition, checked: CheckedProgram, here: str, indent: str) -> list[str]:
    """A definition's requirements, exposures and rules, each in its own file's words."""
    lines, explainers = [], {}
    for part in definition.body:
        path, source = checked.origin(part, definition)
        words = explainers.setdefault(path, Explainer(source))
        where = "" if path == here else f" (from {_shown(path)})"
        lines += [line + where for line in _parts([part], words, indent)]
    return lines


def _parts(parts, words: Explainer, indent: str) -> list[str]:
    lines = []
    for part in parts:
        if isinstance(part, n.Rule):
            lines.append(f"{indent}- {words.rule(part)}")
        elif isinstance(part, n.Require):
            lines.append(f"{indent}- Refuses to be built unless {words.expr(part.condition)}.")
        elif isinstance(part, n.Expose):
            lines.append(f"{indent}- Shows `{part.name.name}` as an attribute: "
                         f"{words.text(part.value)}.")
    return lines


def _param(name: str, info) -> str:
    if info.default is REQUIRED or (info.node is not None and info.node.default is None):
        return f"{name}: {info.type}"
    return f"{name} = {language.rule_literal(info.default)}"


def _shown(path: str) -> str:
    """A file as the reader knows it: relative to here when below it, else its name."""
    relative = os.path.relpath(path) if os.path.isabs(path) else path
    return relative if not relative.startswith("..") else os.path.basename(path)


class Explainer:
    def __init__(self, source: str):
        self.source = source

    def text(self, node) -> str:
        span = node.span
        if span.end > span.start:
            return " ".join(self.source[span.start:span.end].split())
        return "?"

    def param(self, p: n.ParamDecl) -> str:
        if p.default is None:
            return f"{p.name.name}: {p.type_name.name}"
        return f"{p.name.name} = {self.text(p.default)}"

    def use(self, use: n.Use) -> str:
        args = [self.text(a) for a in use.args] + [
            f"{k.name.name} = {self.text(k.value)}" for k in use.keywords]
        return f"{use.dotted}({', '.join(args)})"

    def rule(self, rule: n.Rule) -> str:
        events = [_EVENTS.get(e.name, e.name) for e in rule.events]
        when = " and ".join(events)
        for f in rule.filters:
            when += ", " + self.filter(f, rule)
        sentence = when[0].upper() + when[1:]
        if rule.condition is not None:
            sentence += f", if {self.expr(rule.condition)}"
        sentence += f", {self.actions(rule.actions)}."
        if rule.priority is not None:
            sentence += f" (Priority {self.text(rule.priority.value)}: higher runs first.)"
        if rule.label is not None:
            sentence = f"{rule.label.name}: {sentence}"
        return sentence

    def filter(self, f, rule: n.Rule) -> str:
        unit = _UNITS.get(f.unit.name, f.unit.name) if f.unit else (
            "batches" if any("batch" in e.name for e in rule.events) else "epochs")
        one = unit[:-2] if unit == "batches" else unit[:-1]
        if isinstance(f, n.Every):
            return f"every {self.text(f.count)} {unit}"
        if isinstance(f, n.After):
            return f"once {self.text(f.count)} {unit} have passed"
        if isinstance(f, n.Before):
            return f"only in the first {self.text(f.count)} {unit}"
        return f"only at {one} {self.text(f.at)} (counted from 0)"

    def expr(self, e) -> str:
        """A condition in words: `explain_<Node>` where a node kind has words of its own, else
        the expression as written."""
        words = getattr(self, f"explain_{type(e).__name__}", None)
        return words(e) if words is not None else self.text(e)

    def explain_BoolOp(self, e: n.BoolOp) -> str:
        return f"{self.expr(e.left)} {e.op} {self.expr(e.right)}"

    def explain_Unary(self, e: n.Unary) -> str:
        if e.op == "not":
            return f"not ({self.expr(e.operand)})"
        return self.text(e)

    def explain_Stalls(self, e: n.Stalls) -> str:
        count = self.text(e.count)
        return (f"{self.subject(e.subject)} has not improved for {count} "
                f"check{'' if count == '1' else 's'}{self.options(e.options, 'stalls')}")

    def explain_Improves(self, e: n.Improves) -> str:
        return f"{self.subject(e.subject)} improves{self.options(e.options, 'improves')}"

    def explain_IsNan(self, e: n.IsNan) -> str:
        return f"{self.subject(e.subject)} is {'not ' if e.negated else ''}NaN"

    def explain_IsFinite(self, e: n.IsFinite) -> str:
        return f"{self.subject(e.subject)} is {'not ' if e.negated else ''}finite"

    def subject(self, e) -> str:
        if isinstance(e, n.Name) and e.id in ("lr", "learning_rate"):
            return "the learning rate"
        if isinstance(e, n.Call) and e.func.name == "metric" and len(e.args) == 1:
            return f"the metric named by {self.text(e.args[0])}"
        return self.text(e)

    def options(self, options, kind: str) -> str:
        given = {o.name.name: self.text(o.value) for o in options}
        out = []
        if "min_delta" in given:
            out.append(f"by more than {given['min_delta']}")
        if given.get("mode", "").strip("\"'") in ("min", "max"):
            out.append("going down" if "min" in given["mode"] else "going up")
        if "baseline" in given and kind == "stalls":
            out.append(f"(patience resets only once it also beats {given['baseline']})")
        elif "baseline" in given:  # `improves`: the baseline is the first best to beat
            out.append(f"(the first best to beat is {given['baseline']})")
        if "only" in given:
            out.append(f"(checked only when {given['only']})")
        return (" " + " ".join(out)) if out else ""

    def actions(self, actions) -> str:
        said = [self.action(a) for a in actions]
        return ", ".join(said[:-1]) + (" and " if len(said) > 1 else "") + said[-1]

    def action(self, a) -> str:
        """An action in words: `explain_<Node>` says each action node."""
        return getattr(self, f"explain_{type(a).__name__}")(a)

    def explain_Assign(self, a: n.Assign) -> str:
        return _ASSIGN[a.op].format(v=self.text(a.value))

    def explain_Stop(self, a: n.Stop) -> str:
        return "stop training"

    def explain_Save(self, a: n.Save) -> str:
        what = "weights" if a.kind == "weights" else "model"
        return f"save the {what} to {self.text(a.path)}"

    def explain_Restore(self, a: n.Restore) -> str:
        of = f" kept by {a.tracker.name}" if a.tracker else ""
        return f"put back the best weights{of}"

    def explain_Log(self, a: n.Log) -> str:
        key = a.key.name if a.key else f"[{self.text(a.key_expr)}]"
        return f"write {self.text(a.value)} into the logs as {key}"

    def explain_Print(self, a: n.Print) -> str:
        return f"print {self.text(a.template)}"

    def explain_Warn(self, a: n.Warn) -> str:
        return f"warn {self.text(a.template)}"

    def explain_Fail(self, a: n.Fail) -> str:
        return f"end training with the error {self.text(a.template)}"

    def explain_Set(self, a: n.Set) -> str:
        var = a.var.name + (f"[{self.text(a.index)}]" if a.index is not None else "")
        return _SET[a.op].format(var=var, v=self.text(a.value))

    def explain_Cooldown(self, a: n.Cooldown) -> str:
        whose = f"{a.tracker.name}'s" if a.tracker is not None else "its"
        return f"hold {whose} stall count for the next {self.text(a.count)} checks"

    def explain_CallPython(self, a: n.CallPython) -> str:
        return f"call the caller's Python function {a.func.name}"

    def explain_Record(self, a: n.Record) -> str:
        return "record the epoch's logs in the history"

    def explain_WriteFile(self, a: n.WriteFile) -> str:
        verb = "append" if a.mode == "append" else "write"
        return f"{verb} {self.text(a.text)} to {self.text(a.path)}"

    def explain_WriteRow(self, a: n.WriteRow) -> str:
        if isinstance(a.row, n.NoneLit):
            return f"open {self.text(a.file)}"
        return f"write the values of {self.text(a.row)} as a CSV line to {self.text(a.file)}"

    def explain_Post(self, a: n.Post) -> str:
        how = "as JSON" if a.kind.name == "json" else "as form fields"
        words = f"post {self.text(a.body)} {how} to {self.text(a.url)}"
        options = {o.name.name: self.text(o.value) for o in a.options}
        if "headers" in options:
            words += f" with the headers {options['headers']}"
        words += f", with a {options.get('timeout', f'{language.POST_TIMEOUT:g}')} s timeout"
        if a.otherwise is not None:
            words += f"; if the server cannot be reached, {self.action(a.otherwise)}"
        return words

    def explain_Effect(self, a: n.Effect) -> str:
        effect = language.EFFECTS.get(a.full_name)
        args = [self.text(x) for x in a.args]
        args += [f"{k.name.name} = {self.text(k.value)}" for k in a.keywords]
        what = effect.doc.split(";")[0] if effect else a.full_name
        return f"{what} [{a.full_name}({', '.join(args)})]"

    def explain_For(self, a: n.For) -> str:
        names = " and ".join(i.name for i in a.names)
        cond = f" where {self.expr(a.condition)}" if a.condition is not None else ""
        return f"for each {names} in {self.text(a.iterable)}{cond}, {self.actions(a.actions)}"
