"""One rule file as the language server sees it: its parse, its check, and positions in it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from cbdsl.checker import CheckedProgram, Checker, Definition
from cbdsl.diagnostics import CbdslError, Diagnostic, Span
from cbdsl.syntax import nodes as n
from cbdsl.syntax.parser import parse

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


@dataclass
class Analysis:
    """What the command line's parser and checker say about one text.

    Attributes:
        text: the text analysed.
        path: its file name (the checker finds imports and libraries from its folder).
        program: the syntax tree, or None when the text does not parse.
        checked: the checked program (errors and all), or None when it does not parse.
        diagnostics: every error and warning `cbdsl check` reports for the text.
    """

    text: str
    path: str
    program: n.Program | None = None
    checked: CheckedProgram | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)


def analyze(text: str, path: str = "<string>") -> Analysis:
    """Parse and check `text` as `cbdsl check` does, collecting diagnostics without raising.

    Args:
        text: the rule file's text, as the editor holds it (saved or not).
        path: the file's path, from which imports and libraries are found.

    Returns:
        The `Analysis`: the program and checked program when the text parses.
    """
    try:
        program = parse(text, path)
    except CbdslError as exc:
        return Analysis(text, path, diagnostics=list(exc.diagnostics))
    try:
        checked = Checker(program).check_program()
    except CbdslError as exc:  # a stage that stops at its first finding
        return Analysis(text, path, program, diagnostics=list(exc.diagnostics))
    return Analysis(text, path, program, checked, list(checked.diagnostics))


# ------------------------------------------------------------------ positions


class Lines:
    """A text's lines, numbered as the parser numbers them (by "\\n" alone), and the
    conversion between its character columns and an editor's position units.

    Args:
        text: the text.
        encoding: how the editor counts a line's characters: `utf-16` (the protocol's
            default), `utf-8` or `utf-32`.
    """

    def __init__(self, text: str, encoding: str = UTF16):
        self.text = text
        self.lines = text.split("\n")
        self.encoding = encoding
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line) + 1)

    def units(self, line: int, column: int) -> int:
        """The editor's character position of 0-based `column` of 0-based `line`."""
        if not 0 <= line < len(self.lines) or self.encoding == UTF32:
            return column
        head = self.lines[line][:column]
        if self.encoding == UTF8:
            return len(head.encode("utf-8")) + max(0, column - len(head))
        return len(head.encode("utf-16-le")) // 2 + max(0, column - len(head))

    def column(self, line: int, units: int) -> int:
        """The 0-based character column of the editor's position `units` on `line`."""
        if not 0 <= line < len(self.lines) or self.encoding == UTF32:
            return units
        text, counted = self.lines[line], 0
        for index, char in enumerate(text):
            if counted >= units:
                return index
            counted += (len(char.encode("utf-8")) if self.encoding == UTF8
                        else len(char.encode("utf-16-le")) // 2)
        return len(text)

    def offset(self, line: int, units: int) -> int:
        """The 0-based offset in the text of an editor's (line, character) position."""
        if line >= len(self.lines):
            return len(self.text)
        line = max(line, 0)
        return min(self.starts[line] + self.column(line, units),
                   self.starts[line] + len(self.lines[line]))

    def position(self, offset: int) -> tuple[int, int]:
        """The editor's (line, character) position of a 0-based text offset."""
        import bisect

        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        return line, self.units(line, offset - self.starts[line])

    def span(self, span: Span) -> tuple[tuple[int, int], tuple[int, int]]:
        """A span's start and end as editor positions (1-based lines and columns become
        0-based; the end is one past the last character)."""
        last = len(self.lines) - 1
        start_line = min(max(span.line - 1, 0), last)
        end_line = min(max(span.end_line - 1, start_line), last)
        start = (start_line, self.units(start_line, max(span.column - 1, 0)))
        end = (end_line, self.units(end_line, max(span.end_column - 1, 0)))
        return start, max(start, end)


# ------------------------------------------------------------------ the tree


def nodes_at(root: Any, offset: int) -> list[Any]:
    """The nodes (names as written included) whose span holds `offset`, outermost first."""
    found: list[Any] = []
    _descend(root, offset, found)
    return found


def _descend(node: Any, offset: int, found: list[Any]) -> None:
    for child in _parts(node):
        span = getattr(child, "span", None)
        if span is None or not span.line:
            continue
        if span.start <= offset <= span.end:
            found.append(child)
            _descend(child, offset, found)
            return


def _parts(node: Any) -> Iterator[Any]:
    """Every node and name directly inside `node`, in field order."""
    if not dataclasses.is_dataclass(node):
        return
    for item in dataclasses.fields(node):
        if item.name == "span":
            continue
        yield from _flat(getattr(node, item.name))


def _flat(value: Any) -> Iterator[Any]:
    if isinstance(value, n.Node):
        yield value
    elif isinstance(value, tuple):
        for item in value:
            yield from _flat(item)


def every_node(root: Any) -> Iterator[Any]:
    """Every node and name under `root`, itself first."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(list(_parts(node))))


def definition_at(analysis: Analysis, path: list[Any]) -> Definition | None:
    """The callback definition whose scope a position (its `nodes_at` path) is in: the
    enclosing `callback` block's, else the file's top level."""
    checked = analysis.checked
    if checked is None:
        return None
    for node in reversed(path):
        if isinstance(node, n.CallbackDef):
            found = checked.definitions.get(node.name.name)
            if found is not None and found.node is node:
                return found
            return None
    return checked.main


def file_of(path: str) -> str:
    """A diagnostic's or definition's file as an absolute path (the checker names the file
    it was given as given, and the files it finds as absolute paths)."""
    return os.path.abspath(path)
