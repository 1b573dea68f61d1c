"""The written module: imports, helpers, one class per definition, `make_callbacks`."""

from __future__ import annotations

import textwrap

from cbdsl.checker import CheckedProgram, Definition
from cbdsl.diagnostics import Diagnostic
from cbdsl.pythonize.classes import ClassWriter
from cbdsl.pythonize.errors import NotExpressibleError
from cbdsl.pythonize.layout import wrap_statement
from cbdsl.pythonize.names import class_name_of
from cbdsl.pythonize.snippets import HELPER_IMPORTS, HELPER_NEEDS, HELPERS
from cbdsl.pythonize.sources import rule_sources, shown_path


def pythonize(checked: CheckedProgram) -> str:
    """Write a checked program as plain, runnable Keras callback classes.

    Every `callback` definition of the file (and every definition its `use`
    statements name) becomes one `keras.callbacks.Callback` subclass whose
    `__init__` takes the same parameters with the same defaults; the file's own
    top-level rules become one more class, named after the file. Each hook method
    holds the rules of its event in the order they run, each under a comment with
    the rule's source line. The code calls nothing of cbdsl: only Keras, NumPy and
    the standard library.

    Example:

    ```python
    pathlib.Path("policy_callbacks.py").write_text(pythonize(cbdsl.check("policy.cbd")))
    from policy_callbacks import Policy  # reviewed, then imported like any module
    model.fit(x, y, callbacks=[Policy()])
    ```

    Args:
        checked: a `CheckedProgram` from `cbdsl.check`.

    Returns:
        The Python module's source text.

    Raises:
        NotExpressibleError: a rule needs a feature that Python code written by
            hand cannot express faithfully; the diagnostic (E601) names the feature
            and points at the rule.
    """
    return ModuleWriter(checked).write()


class ModuleWriter:
    """The whole file: imports, helpers, one class per definition, the file's callbacks."""

    def __init__(self, checked: CheckedProgram):
        self.checked = checked
        self.imports: set[str] = set()
        self.helpers: set[str] = set()
        self.sources = rule_sources(checked)

    def definitions(self) -> list[tuple[Definition, str]]:
        checked, program = self.checked, self.checked.program
        chosen: list[Definition] = []
        for definition in checked.definitions.values():
            if definition.path == program.path and definition.node is not None:
                chosen.append(definition)
        for instance in checked.instances:
            if instance.definition is not checked.main and instance.definition not in chosen:
                chosen.append(instance.definition)
        if checked.main.rules:
            chosen.append(checked.main)
        named: list[tuple[Definition, str]] = []
        seen: dict[str, Definition] = {}
        for definition in chosen:
            name = class_name_of(definition.name)
            if name in seen:
                raise NotExpressibleError(Diagnostic(
                    "E601", f"two callbacks would be classes named '{name}' "
                    f"('{seen[name].name}' and '{definition.name}')",
                    None, definition.path))
            seen[name] = definition
            named.append((definition, name))
        return named

    def write(self) -> str:
        named = self.definitions()
        classes = [ClassWriter(self, d, name).write() for d, name in named]
        factory = self.factory(dict((id(d), name) for d, name in named))
        program = self.checked.program
        head = [f'"""Keras callbacks written out from {shown_path(program.path)}.',
                "",
                "Plain Keras code, one class per callback, by `cbdsl explain --python`: it "
                "runs without cbdsl.",
                '"""', ""]
        helpers = set(self.helpers)
        for name in list(helpers):
            helpers.update(HELPER_NEEDS.get(name, ()))
        for name in helpers:
            self.imports |= HELPER_IMPORTS[name]
        std = sorted(m for m in self.imports
                     if m in ("json", "math", "os", "sys", "time", "warnings"))
        third = [line for key, line in (("keras", "import keras"),
                                        ("numpy", "import numpy as np"),
                                        ("absl", "from absl import logging"))
                 if key in self.imports]
        lines = head + [f"import {m}" for m in std]
        if std and third:
            lines.append("")
        lines += third
        body = [textwrap.dedent(HELPERS[h]).strip("\n") for h in HELPERS if h in helpers]
        body += classes
        if factory:
            body.append(factory)
        text = "\n".join(lines).rstrip("\n") + "\n"
        for part in body:
            text += "\n\n" + part.rstrip("\n") + "\n"
        return text

    def factory(self, names: dict[int, str]) -> str | None:
        """`make_callbacks(...)`: the callbacks the file's `use` statements make, in order."""
        checked = self.checked
        if not any(i.definition is not checked.main for i in checked.instances):
            return None
        main = checked.main
        writer = ClassWriter(self, main, names.get(id(main), "Main"))
        params = writer.signature()
        # a Python hook the caller passes by name to the one used callback that leaves it unset
        hooks = {name: where[0] for name, where in checked.open_hooks().items()
                 if len(where) == 1}
        params = ", ".join(p for p in (params, *(f"{h}=None" for h in hooks)) if p)
        calls = []
        for position, instance in enumerate(checked.instances):
            cls = names[id(instance.definition)]
            if instance.definition is main:
                args = [f"{p}={writer.local_param[p]}" for p in main.params]
            else:
                scope = writer.init_scope()
                args = [f"{k}={writer.expr(v, scope).text}" for k, v in instance.args.items()]
                args += [f"{h}={h}" for h, at in hooks.items() if at == position]
            calls.append(f"{cls}({', '.join(args)})")
        lines = [f"def make_callbacks({params}):",
                 '    """The callbacks the rule file makes, in order, for '
                 '`model.fit(callbacks=...)`."""']
        lines += wrap_statement(f"return [{', '.join(calls)}]", 4)
        return "\n".join(lines)
