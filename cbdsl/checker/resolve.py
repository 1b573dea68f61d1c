"""Resolution: the files a program imports, and the library callbacks `use` and `extends` name."""

from __future__ import annotations

import os
from pathlib import Path

from cbdsl.checker.definitions import Definition
from cbdsl.checker.libraries import library_dirs
from cbdsl.diagnostics import CbdslCheckError, CbdslError, Diagnostic, did_you_mean
from cbdsl.syntax import nodes as n


class Resolution:
    """What a program names from other files: imports, uses, library rules (a `Checker` part)."""

    def _import(self, item: n.Import, program: n.Program, params, body, uses, stack) -> None:
        from cbdsl.syntax.parser import parse, read_source

        base = os.path.dirname(os.path.abspath(program.path)) if program.path != "<string>" \
            else os.getcwd()
        target = os.path.abspath(os.path.join(base, item.path.value))
        if target in stack:
            start = self._importing.get(target, item.span)
            self.report("E213", f"import cycle: '{item.path.value}' imports itself", item.span,
                        program, related=[("the cycle starts here", target, start)])
            return
        if not os.path.isfile(target):
            self.report("E213", f"cannot import '{item.path.value}': no such file", item.path.span,
                        program)
            return
        try:
            imported = parse(read_source(target), target)
        except CbdslError as exc:
            self.diagnostics.extend(exc.diagnostics)
            return
        self._importing[os.path.abspath(program.path)] = item.span
        self._collect(imported, params, body, uses, [*stack, target])

    # --------------------------------------------------------------- uses
    def _resolve_use(self, use: n.Use, where: n.Program) -> Definition | None:
        dotted = use.dotted
        if len(use.name) == 1:
            found = self.definitions.get(dotted)
            if found is None:
                self.report("E206", f"no callback named '{dotted}'", use.name[0].span, where,
                            did_you_mean(dotted, self.definitions) or
                            "define it with `callback`, import its file, or name its library")
            return found
        library, rule = ".".join(i.name for i in use.name[:-1]), use.name[-1].name
        dirs = library_dirs(self._base).get(library)
        if not dirs:
            known = library_dirs(self._base)
            self.report("E206", f"no rule library named '{library}'", use.name[0].span, where,
                        did_you_mean(library, known)
                        or f"libraries found: {', '.join(sorted(known))}")
            return None
        for folder in dirs:
            definition = self._library_definition(folder, rule)
            if definition is not None:
                return definition
        # what `use` takes, named as `cbdsl list` shows it: a file of one callback by the
        # file's name, the callbacks of a file of several by theirs (every file was parsed
        # by the search above); a callback's own name is taken too
        rules, names = set(), set()
        for path in (path for folder in dirs for path in folder.glob("*.cbd")):
            defs = [item.name.name for item in self.library_cache.get(path, n.Program(())).items
                    if isinstance(item, n.CallbackDef)]
            rules.update([path.stem] if len(defs) == 1 else defs)
            names.update(defs)
        self.report("E206", f"library '{library}' has no rule '{rule}'", use.name[-1].span, where,
                    did_you_mean(rule, rules) or did_you_mean(rule, names)
                    or (f"it has: {', '.join(sorted(rules))}" if rules else "it has no rules"))
        return None

    def _library_definition(self, folder: Path, rule: str) -> Definition | None:
        from cbdsl.syntax.parser import parse, read_source

        candidates = [folder / f"{rule}.cbd", *sorted(folder.glob("*.cbd"))]
        for path in candidates:
            if not path.is_file():
                continue
            if path not in self.library_cache:
                try:
                    self.library_cache[path] = parse(read_source(path), str(path))
                except CbdslError as exc:
                    self.diagnostics.extend(exc.diagnostics)
                    self.library_cache[path] = n.Program(())
            program = self.library_cache[path]
            defs = [item for item in program.items if isinstance(item, n.CallbackDef)]
            # `use keras.EarlyStopping` names the callback; `use keras.early_stopping` the
            # file, when it defines one callback
            named = [d for d in defs if d.name.name == rule] or (
                defs if path.stem == rule and len(defs) == 1 else [])
            for item in named:
                key = f"{folder.name}.{item.name.name}"
                if key not in self.definitions:
                    sub = type(self)(program)  # a library file, checked on its own
                    definition = sub._define(item, program)
                    sub.check_definition(definition)
                    self.diagnostics.extend(sub.diagnostics)
                    self.definitions[key] = definition
                return self.definitions[key]
        return None


def resolve_definition(name: str, base: str | None = None) -> Definition:
    """The definition `name` denotes: `LIBRARY.RULE` as `use` names it, or a rule file's path
    (its one callback definition, or `PATH:NAME`).

    Raises:
        CbdslError: a subclass naming the problem, with its position where it has one.
    """
    from cbdsl.checker.program import Checker, check
    from cbdsl.syntax.parser import parse

    path, wanted = name, ""
    head, _, tail = name.rpartition(":")
    if head and tail.isidentifier() and not os.path.exists(name):
        path, wanted = head, tail  # `PATH:NAME`
    if path.endswith(".cbd") or os.path.exists(path):
        checked = check(parse(Path(path).read_text("utf-8"), path))
        own = [d for d in checked.definitions.values() if d.node is not None and d.path == path]
        found = [d for d in own if d.name == wanted] if wanted else own
        if len(found) != 1:
            what = f"no callback named '{wanted}'" if wanted else "more than one callback" \
                if found else "no callback"
            raise CbdslCheckError([Diagnostic(
                "E206", f"{path} holds {what}", path=path,
                hint="callbacks: " + (", ".join(d.name for d in own) or "none")
                + ("; name one as PATH:NAME" if len(own) > 1 else ""))])
        return found[0]
    program = parse("", os.path.join(base, "<callback_class>") if base else "<callback_class>")
    checker = Checker(program)
    use = n.Use(tuple(n.Ident(part) for part in name.split(".")))
    definition = checker._resolve_use(use, program)
    if definition is None:
        raise CbdslCheckError(checker.diagnostics)
    return definition
