"""Rule files in plain English: one sentence per rule, saying what it does and when."""

from __future__ import annotations

from cbdsl import language
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


def explain(program: n.Program) -> list[str]:
    """Sentences for a parsed rule file: a heading per callback, one sentence per rule."""
    words = _Words(program.source)
    lines = []
    top = [item for item in program.items if isinstance(item, n.Rule)]
    if top:
        lines.append("This file's own rules:")
        lines += [f"- {words.rule(rule)}" for rule in top]
    for item in program.items:
        if isinstance(item, n.CallbackDef):
            params = ", ".join(words.param(p) for p in item.params)
            head = f"Callback {item.name.name}({params})"
            if item.extends is not None:
                head += f", built on {words.use(item.extends)}"
            lines.append(head + (f": {item.doc.strip().splitlines()[0]}" if item.doc else ":"))
            for part in item.body:
                if isinstance(part, n.Rule):
                    lines.append(f"- {words.rule(part)}")
                elif isinstance(part, n.Require):
                    lines.append(f"- Refuses to be built unless {words.expr(part.condition)}.")
        elif isinstance(item, n.Use):
            lines.append(f"Uses {words.use(item)}.")
        elif isinstance(item, n.Import):
            lines.append(f"Imports the rules of {item.path.value}.")
    return lines


class _Words:
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
        if isinstance(e, n.BoolOp):
            return f"{self.expr(e.left)} {e.op} {self.expr(e.right)}"
        if isinstance(e, n.Unary) and e.op == "not":
            return f"not ({self.expr(e.operand)})"
        if isinstance(e, n.Stalls):
            count = self.text(e.count)
            return (f"{self.subject(e.subject)} has not improved for {count} "
                    f"check{'' if count == '1' else 's'}{self.options(e.options, 'stalls')}")
        if isinstance(e, n.Improves):
            return f"{self.subject(e.subject)} improves{self.options(e.options, 'improves')}"
        if isinstance(e, n.IsNan):
            return f"{self.subject(e.subject)} is {'not ' if e.negated else ''}NaN"
        if isinstance(e, n.IsFinite):
            return f"{self.subject(e.subject)} is {'not ' if e.negated else ''}finite"
        return self.text(e)

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
        if isinstance(a, n.Assign):
            return _ASSIGN[a.op].format(v=self.text(a.value))
        if isinstance(a, n.Stop):
            return "stop training"
        if isinstance(a, n.Save):
            what = "weights" if a.kind == "weights" else "model"
            return f"save the {what} to {self.text(a.path)}"
        if isinstance(a, n.Restore):
            of = f" kept by {a.tracker.name}" if a.tracker else ""
            return f"put back the best weights{of}"
        if isinstance(a, n.Log):
            key = a.key.name if a.key else f"[{self.text(a.key_expr)}]"
            return f"write {self.text(a.value)} into the logs as {key}"
        if isinstance(a, n.Print):
            return f"print {self.text(a.template)}"
        if isinstance(a, n.Warn):
            return f"warn {self.text(a.template)}"
        if isinstance(a, n.Fail):
            return f"end training with the error {self.text(a.template)}"
        if isinstance(a, n.Set):
            var = a.var.name + (f"[{self.text(a.index)}]" if a.index is not None else "")
            return _SET[a.op].format(var=var, v=self.text(a.value))
        if isinstance(a, n.Cooldown):
            return f"hold its stall count for the next {self.text(a.count)} checks"
        if isinstance(a, n.CallPython):
            return f"call the caller's Python function {a.func.name}"
        if isinstance(a, n.Record):
            return "record the epoch's logs in the history"
        if isinstance(a, n.WriteFile):
            verb = "append" if a.mode == "append" else "write"
            return f"{verb} {self.text(a.text)} to {self.text(a.path)}"
        if isinstance(a, n.WriteRow):
            if isinstance(a.row, n.NoneLit):
                return f"open {self.text(a.file)}"
            return f"write the values of {self.text(a.row)} as a CSV line to {self.text(a.file)}"
        if isinstance(a, n.Post):
            how = "as JSON" if a.kind.name == "json" else "as form fields"
            words = f"post {self.text(a.body)} {how} to {self.text(a.url)}"
            options = {o.name.name: self.text(o.value) for o in a.options}
            if "headers" in options:
                words += f" with the headers {options['headers']}"
            words += f", with a {options.get('timeout', f'{language.POST_TIMEOUT:g}')} s timeout"
            if a.otherwise is not None:
                words += f"; if the server cannot be reached, {self.action(a.otherwise)}"
            return words
        if isinstance(a, n.Effect):
            effect = language.EFFECTS.get(a.full_name)
            args = [self.text(x) for x in a.args]
            args += [f"{k.name.name} = {self.text(k.value)}" for k in a.keywords]
            what = effect.doc.split(";")[0] if effect else a.full_name
            return f"{what} [{a.full_name}({', '.join(args)})]"
        if isinstance(a, n.For):
            names = " and ".join(i.name for i in a.names)
            cond = f" where {self.expr(a.condition)}" if a.condition is not None else ""
            return f"for each {names} in {self.text(a.iterable)}{cond}, {self.actions(a.actions)}"
        return self.text(a)
