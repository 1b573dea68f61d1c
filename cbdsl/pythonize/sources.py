"""Where each rule was written (file and text), for the source comments above rules."""

from __future__ import annotations

import os
import re

from cbdsl.checker import CheckedProgram
from cbdsl.syntax import nodes as n


def rule_sources(checked: CheckedProgram) -> dict[int, tuple[str, str]]:
    """Where each rule was written (its file and text), for the comments above rules: the
    checker's record, which follows imports and the bases of `extends` into their files."""
    found = dict(checked.origins)
    for item in checked.program.items:
        found.setdefault(id(item), (checked.program.path, checked.program.source))
    return found


def source_text(node: n.Node, source: str) -> str:
    span = node.span
    if source and span.end > span.start:
        text = " ".join(source[span.start:span.end].split())
        return re.sub(r"([(\[{]) | ([)\]}])", r"\1\2", text)
    return f"the rule at line {span.line}"


def shown_path(path: str) -> str:
    """A rule file's path as given, or its name alone when that is long (a library's)."""
    return path if len(path) <= 60 else os.path.basename(path)
