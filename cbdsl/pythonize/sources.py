"""Where each rule was written (file and text), for the source comments above rules."""

from __future__ import annotations

import os
import re

from cbdsl.checker import CheckedProgram
from cbdsl.diagnostics import CbdslError
from cbdsl.syntax import nodes as n


def rule_sources(checked: CheckedProgram) -> dict[int, tuple[str, str]]:
    """Where each rule was written (its file and text), for the comments above rules."""
    found: dict[int, tuple[str, str]] = {}
    program = checked.program
    for item in program.items:
        if isinstance(item, n.Rule):
            found[id(item)] = (program.path, program.source)
    for definition in checked.definitions.values():
        if definition.node is not None:
            for part in definition.node.body:
                found.setdefault(id(part), (definition.path, definition.source))
    # rules of imported files: the checker parsed them itself; find each by its place
    imported = {}
    for path, source, rule in imported_rules(program):
        imported[(rule.span.start, rule.span.end, rule)] = (path, source)
    for rule in checked.main.rules:
        if id(rule) not in found:
            key = (rule.span.start, rule.span.end, rule)
            if key in imported:
                found[id(rule)] = imported[key]
    return found


def imported_rules(program: n.Program, seen: set[str] | None = None):
    """(path, source, rule) for each rule of the files `program` imports, recursively."""
    from cbdsl.syntax.parser import parse, read_source

    seen = set() if seen is None else seen
    base = os.path.dirname(os.path.abspath(program.path)) if program.path != "<string>" \
        else os.getcwd()
    for item in program.items:
        if not isinstance(item, n.Import):
            continue
        target = os.path.abspath(os.path.join(base, item.path.value))
        if target in seen:
            continue
        seen.add(target)
        try:
            imported = parse(read_source(target), target)
        except (CbdslError, OSError):
            continue
        for part in imported.items:
            if isinstance(part, n.Rule):
                yield target, imported.source, part
        yield from imported_rules(imported, seen)


def source_text(node: n.Node, source: str) -> str:
    span = node.span
    if source and span.end > span.start:
        text = " ".join(source[span.start:span.end].split())
        return re.sub(r"([(\[{]) | ([)\]}])", r"\1\2", text)
    return f"the rule at line {span.line}"


def shown_path(path: str) -> str:
    """A rule file's path as given, or its name alone when that is long (a library's)."""
    return path if len(path) <= 60 else os.path.basename(path)
