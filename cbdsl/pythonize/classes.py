"""One callback definition as one `keras.callbacks.Callback` subclass, made of the mixins."""

from __future__ import annotations

import keyword
import os
from typing import TYPE_CHECKING

from cbdsl.checker import REQUIRED, Definition
from cbdsl.checker.trackers import restored_trackers
from cbdsl.diagnostics import Diagnostic
from cbdsl.pythonize.actions import ActionWriter
from cbdsl.pythonize.analysis import Analysis
from cbdsl.pythonize.code import CMP, NOT, Code, literal_value
from cbdsl.pythonize.errors import NotExpressibleError
from cbdsl.pythonize.expressions import ExpressionWriter
from cbdsl.pythonize.hooks import HookWriter
from cbdsl.pythonize.layout import If, Line, StrCall, docstring, render, wrap_def
from cbdsl.pythonize.names import CALLBACK_ATTRS, Scope, identifier
from cbdsl.pythonize.rules import RuleWriter
from cbdsl.pythonize.sources import shown_path
from cbdsl.pythonize.templates import TemplateWriter, string_code
from cbdsl.pythonize.trackers import Tracker, TrackerWriter
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions

if TYPE_CHECKING:
    from cbdsl.pythonize.module import ModuleWriter


class ClassWriter(HookWriter, RuleWriter, TrackerWriter, ActionWriter, TemplateWriter,
                  Analysis, ExpressionWriter):
    """One definition as one `keras.callbacks.Callback` subclass: its `__init__`, the state
    each `fit` starts from, and its hook methods (the mixins write what those hold)."""

    def __init__(self, module: ModuleWriter, definition: Definition, class_name: str):
        self.module, self.d, self.class_name = module, definition, class_name
        self.params = definition.params
        self.rules = list(enumerate(definition.rules))
        self.variables = {v.name.name: v for v in definition.variables}
        self.taken: set[str] = set(CALLBACK_ATTRS) | {"_resolve_direction", "_metric_missing"}
        self.records = any(isinstance(a, n.Record) for r in definition.rules
                           for a in flat_actions(r.actions))
        if self.records:
            self.taken |= {"history", "epoch"}
        self.attr: dict[str, str] = {}
        self.local_param: dict[str, str] = {}
        for name, info in self.params.items():
            if keyword.iskeyword(name) or name == "self":
                raise self.error(f"the parameter '{name}' cannot be a Python argument name",
                                 info.node)
            self.local_param[name] = name
            suffix = "_fn" if info.type in ("python", "schedule") else "_value"
            self.attr[name] = self.alloc(name, suffix)
        for name in self.variables:
            self.attr[name] = self.alloc(name, "_var")
        self.stopped_epoch: str | None = None
        self.uses: set[str] = set()  # current_epoch, steps, stopped_epoch
        self.trackers: dict[int, Tracker] = {}
        self.tracker_by_name: dict[str, Tracker] = {}
        self.restored = restored_trackers([rule for _, rule in self.rules])
        self.mode_checks: dict[str, None] = {}  # parameters used as a tracker's mode
        self.collect_trackers()

    def alloc(self, name: str, suffix: str) -> str:
        chosen = identifier(name, self.taken, suffix)
        self.taken.add(chosen)
        return chosen

    def error(self, message: str, node: n.Node | None) -> NotExpressibleError:
        path, source = self.d.path, self.d.source
        if node is not None and id(node) in self.module.sources:
            path, source = self.module.sources[id(node)]
        span = getattr(node, "span", None)
        return NotExpressibleError(Diagnostic(
            "E601", f"cannot write as plain Keras code: {message}",
            span if span is not None and span.line else None, path, source,
            hint="the compiled callback (cbdsl.compile) runs it"))

    def write(self) -> str:
        self.module.imports.add("keras")
        hooks = self.hooks()  # written first: they tell which state the class keeps
        init = self.init_method()
        doc = (self.d.doc or f"The rules of {self.d.name}.").strip()
        program = self.module.checked.program.path
        origin = shown_path(self.d.path) if self.d.path == program else \
            os.path.basename(self.d.path)
        lines = [f"class {self.class_name}(keras.callbacks.Callback):"]
        lines += docstring([*doc.splitlines(), "", f"Written out from {origin}."], 4)
        return "\n\n".join(["\n".join(lines), init, *hooks])

    def signature(self) -> str:
        parts, star = [], False
        seen_default = False
        for name, info in self.params.items():
            default = info.default
            if default is REQUIRED:
                if seen_default and not star:
                    parts.append("*")
                    star = True
                parts.append(self.local_param[name])
                continue
            seen_default = True
            shown = "None" if isinstance(default, dict) else literal_value(default)
            parts.append(f"{self.local_param[name]}={shown}")
        return ", ".join(parts)

    def init_scope(self) -> Scope:
        return Scope(None, params="local", logs="{}")

    def init_method(self) -> str:
        params = self.signature()
        head = wrap_def(f"def __init__(self{', ' if params else ''}{params}):", 4)
        stmts: list = [Line("super().__init__()")]
        scope = self.init_scope()
        for requirement in self.d.requirements:
            cond = self.expr(requirement.condition, scope, boolean=True)
            message = self.template(requirement.message, scope, requirement, in_init=True)
            stmts.append(If([(Code(f"not {cond.at(NOT)}", NOT),
                              [StrCall("raise ValueError(", message, ")")])]))
        for name in self.mode_checks:
            local = self.local_param[name]
            self.module.imports.add("warnings")
            # Keras's MonitorCallback's warning, word for word
            warn = string_code([("field", "self.__class__.__name__"), ("lit", " mode '"),
                                ("field", local),
                                ("lit", "' is unknown, fallback to auto mode.")], 12,
                               "warnings.warn(", ", stacklevel=2)")
            stmts.append(If([(Code(f'{local} not in ("auto", "min", "max")', CMP),
                              [Line(warn), Line(f'{local} = "auto"')])]))
        for name, info in self.params.items():
            local = self.local_param[name]
            if info.type == "schedule":
                stmts.append(If([(Code(f"isinstance({local}, str)"), [Line(
                    "raise TypeError(\n"
                    f'    "{name}: a schedule given as text needs cbdsl; pass a function such '
                    'as "\n'
                    '    "`lambda epoch, lr: 0.1 * 0.9 ** epoch` or a table {epoch: rate}")')])]))
            if isinstance(info.default, dict):
                value = literal_value(info.default)
                stmts.append(If([(Code(f"{local} is None", CMP), [Line(f"{local} = {value}")])]))
            stmts.append(Line(f"self.{self.attr[name]} = {local}"))
        state = self.state_lines(initial=True)
        if state:
            stmts += state
        return "\n".join([head, *render(stmts, 8)])

    def state_lines(self, initial: bool) -> list:
        """The state every `fit` starts from (also set in `__init__`)."""
        out: list = []
        if self.records:
            if initial:
                out.append(Line("self.history = {}  # kept across fit calls, as Keras's History"))
            out.append(Line("self.epoch = []"))
        if "stopped_epoch" in self.uses:
            out.append(Line("self.stopped_epoch = 0"))
        if "current_epoch" in self.uses:
            out.append(Line("self._current_epoch = 0"))
        if "steps" in self.uses:
            out.append(Line("self._steps = 0  # train batches so far, across epochs"))
            out.append(Line("self._last_batch = None"))
        for name, var in self.variables.items():
            if var.kept and not initial:
                continue  # `keep var`: set once, kept across fit calls
            scope = Scope(None, params="self", logs="{}")
            value = self.expr(var.value, scope)
            text = value.text
            if isinstance(var.value, n.Name) and var.value.id in self.params and \
                    self.params[var.value.id].type in ("table", "none", "any"):
                text = f"dict({text})" if self.params[var.value.id].type == "table" else text
            out.append(Line(f"self.{self.attr[name]} = {text}"))
        out += self.tracker_state(initial)
        return out
