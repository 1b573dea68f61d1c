"""Resolution: the files a program imports, and the library callbacks `use` and `extends` name."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cbdsl.checker.definitions import Definition
from cbdsl.checker.libraries import Library, find_libraries
from cbdsl.diagnostics import CbdslCheckError, CbdslError, Diagnostic, Span, did_you_mean
from cbdsl.syntax import nodes as n


@dataclass
class Session:
    """What the checkers of one program share: library files parsed and checked once, the
    files being checked (to find cycles), and where libraries are found from each folder."""

    parsed: dict[str, n.Program | None] = field(default_factory=dict)
    parse_errors: dict[str, list[Diagnostic]] = field(default_factory=dict)
    checked: dict[str, Any] = field(default_factory=dict)  # file -> its Checker
    active: dict[str, Any] = field(default_factory=dict)  # file -> the Checker checking it
    libraries: dict[tuple[str | None, str | None], dict[str, list[Library]]] = \
        field(default_factory=dict)


def used_here(diagnostic: Diagnostic, path: str, span: Span | None) -> Diagnostic:
    """The diagnostic with a note pointing at the line that uses its file."""
    if span is None:
        return diagnostic
    return dataclasses.replace(diagnostic,
                               related=(*diagnostic.related, ("used here", path, span)))


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
            self.diagnostics.extend(dataclasses.replace(d, related=(
                *d.related, ("imported here", program.path, item.span))) for d in exc.diagnostics)
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
        known = self._libraries(where)
        places = known.get(library)
        if not places:
            self.report("E206", f"no rule library named '{library}'", use.name[0].span, where,
                        did_you_mean(library, known)
                        or f"libraries found: {', '.join(sorted(known))}")
            return None
        if len(places) > 1:
            self.report("E209", f"library '{library}' is found in {len(places)} places: "
                        + "; ".join(place.describe() for place in places), use.name[0].span,
                        where, "a library name must mean one folder: uninstall or rename one "
                        "(a folder's name, or the name in a package's `cbdsl.rules` entry point)")
            return None
        return self._library_rule(places[0], rule, use, where)

    def _libraries(self, where: n.Program) -> dict[str, list[Library]]:
        """The libraries visible from the file `where` (from the main file's folder for text)."""
        path = where.path if os.path.isfile(where.path) else None
        key = (path, None if path else self._base)
        if key not in self._session.libraries:
            self._session.libraries[key] = find_libraries(path, self._base)
        return self._session.libraries[key]

    def _library_rule(self, library: Library, rule: str, use: n.Use,
                      where: n.Program) -> Definition | None:
        """`use LIBRARY.RULE`: the file `RULE.cbd`, else the file that defines a callback
        `RULE`; only that file is checked, so a broken file elsewhere in the library does not
        matter."""
        path, broken = library.folder / f"{rule}.cbd", []
        if not path.is_file():
            path = None
            for candidate in sorted(library.folder.glob("*.cbd")):
                program = self._parsed(candidate)
                if program is None:
                    broken.append(candidate.name)
                elif any(isinstance(item, n.CallbackDef) and item.name.name == rule
                         for item in program.items):
                    path = candidate
                    break
        if path is not None:
            checker = self._library_file(path, use, where)
            if checker is None:
                return None
            defs = [d for d in checker.definitions.values()
                    if d.node is not None and d.path == checker.program.path]
            named = [d for d in defs if d.name == rule] or (
                defs if path.stem == rule and len(defs) == 1 else [])
            if named:
                if checker is not self:
                    self._library_definitions[f"{library.name}.{named[0].name}"] = named[0]
                return named[0]
            if str(path.resolve()) in self._session.active:  # the notes show the way round
                self.report("E213", f"cycle: '{use.dotted}' leads back to {path.name}, which is "
                            "still being checked", use.span, where,
                            "a file uses its own callbacks only below their definitions"
                            if checker is self else None)
                return None
            if len(defs) > 1:
                self.report("E206", f"{path.name} defines {len(defs)} callbacks; name one",
                            use.name[-1].span, where, "use " + " or ".join(
                                f"{library.name}.{d.name}" for d in defs))
                return None
        files = sorted(library.folder.glob("*.cbd"))
        names = [p.stem for p in files]  # rule names, as `cbdsl list` shows them
        callbacks = {item.name.name for p in files for item in getattr(self._parsed(p), "items", ())
                     if isinstance(item, n.CallbackDef)}
        self.report("E206", f"library '{library.name}' has no rule '{rule}'", use.name[-1].span,
                    where, (did_you_mean(rule, names) or did_you_mean(rule, callbacks)
                            or (f"it has: {', '.join(names)}" if names else "it has no rules"))
                    + (f" ({', '.join(broken)} could not be read)" if broken else ""))
        return None

    def _parsed(self, path: Path) -> n.Program | None:
        """A library file's syntax tree, parsed once per program (None when it does not
        parse; its diagnostics wait in the session until a use needs the file)."""
        from cbdsl.syntax.parser import parse, read_source

        key = str(path.resolve())
        if key not in self._session.parsed:
            try:
                self._session.parsed[key] = parse(read_source(path), str(path))
            except CbdslError as exc:
                self._session.parsed[key] = None
                self._session.parse_errors[key] = list(exc.diagnostics)
        return self._session.parsed[key]

    def _library_file(self, path: Path, use: n.Use, where: n.Program) -> Any:
        """The checker of a used file, checked as the whole program it is (its imports, its
        definitions, its own uses); None when it has errors, which are reported once, each
        with a note at the using line."""
        key, session = str(path.resolve()), self._session
        if key in session.active:
            return session.active[key]
        if key in session.checked:
            checker = session.checked[key]
            return None if checker.failed else checker
        program = self._parsed(path)
        if program is None:
            self.diagnostics.extend(used_here(d, where.path, use.span)
                                    for d in session.parse_errors.pop(key, ()))
            return None
        checker = type(self)(program, session)
        session.active[key] = checker
        try:
            checker.check_program()
        finally:
            del session.active[key]
        session.checked[key] = checker
        self.diagnostics.extend(used_here(d, where.path, use.span) for d in checker.diagnostics)
        return None if checker.failed else checker


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
    if definition is None or checker.failed:
        raise CbdslCheckError(checker.diagnostics)
    return definition
