"""Statements (`Line`, `If`, `Block`, ...) laid out as indented source lines within WIDTH."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from cbdsl.pythonize.code import WIDTH, Code, chain
from cbdsl.pythonize.templates import call_with_string


@dataclass
class Line:
    """A statement; `text` may hold several physical lines laid out already."""

    text: str


@dataclass
class StrCall:
    """A call (or assignment) around a message: laid out once its indentation is known."""

    prefix: str
    message: list[tuple[str, str]] | Code
    suffix: str


@dataclass
class Comment:
    text: str


@dataclass
class Blank:
    pass


@dataclass
class If:
    branches: list[tuple[Code, list]]
    orelse: list | None = None


@dataclass
class Block:
    """A compound statement with one body: `for ...:`, `with ...:`, `def ...:`."""

    header: str
    body: list


def _merged(stmt: If) -> If:
    """`if a:` holding only `if b:` (no else on either) is `if a and b:`."""
    while (len(stmt.branches) == 1 and stmt.orelse is None and len(stmt.branches[0][1]) == 1
           and isinstance(stmt.branches[0][1][0], If)):
        inner = stmt.branches[0][1][0]
        if len(inner.branches) != 1 or inner.orelse is not None:
            break
        cond = chain("and", [stmt.branches[0][0], inner.branches[0][0]])
        stmt = If([(cond, inner.branches[0][1])])
    return stmt


def render(stmts: list, indent: int) -> list[str]:
    """Lay statements out as lines of source, `indent` spaces deep."""
    out: list[str] = []
    pad = " " * indent
    for stmt in stmts:
        # dispatches on every statement kind above
        if isinstance(stmt, Line):
            out += wrap_statement(stmt.text, indent)
        elif isinstance(stmt, StrCall):
            out += wrap_statement(
                call_with_string(stmt.prefix, stmt.message, stmt.suffix, indent), indent)
        elif isinstance(stmt, Comment):
            width = max(40, WIDTH - indent - 2)
            for line in stmt.text.split("\n"):
                wrapped = textwrap.wrap(line, width, subsequent_indent="  ",
                                        break_long_words=False, break_on_hyphens=False)
                out += [f"{pad}# {part}" for part in wrapped or [""]]
        elif isinstance(stmt, Blank):
            out.append("")
        elif isinstance(stmt, Block):
            out.append(pad + stmt.header)
            out += render(stmt.body or [Line("pass")], indent + 4)
        elif isinstance(stmt, If):
            stmt = _merged(stmt)
            branches, orelse = list(stmt.branches), stmt.orelse
            # `else:` holding one `if` is an `elif`
            while orelse is not None and len(orelse) == 1 and isinstance(orelse[0], If):
                inner = _merged(orelse[0])
                branches += inner.branches
                orelse = inner.orelse
            for i, (cond, body) in enumerate(branches):
                out += _header("if" if i == 0 else "elif", cond, indent)
                out += render(body or [Line("pass")], indent + 4)
            if orelse:
                out.append(pad + "else:")
                out += render(orelse, indent + 4)
    return out


def _header(keyword_: str, cond: Code, indent: int) -> list[str]:
    pad = " " * indent
    line = f"{pad}{keyword_} {cond.text}:"
    if len(line) <= WIDTH or not cond.op:
        return [line]
    inner = " " * (indent + 4)
    lines = [f"{pad}{keyword_} ("]
    for i, part in enumerate(cond.parts):
        lines.append(f"{inner}{'' if i == 0 else cond.op + ' '}{part}")
    return [*lines, f"{pad}):"]


def wrap_statement(text: str, indent: int) -> list[str]:
    """A statement as lines; one too long is broken inside its outermost brackets."""
    pad = " " * indent
    if "\n" in text:
        return [pad + line if line else "" for line in text.split("\n")]
    if len(pad + text) <= WIDTH:
        return [pad + text]
    broken = _break_expression(text, indent)
    if broken:
        return broken
    span = _outer_brackets(text)
    if span is None:
        return [pad + text]
    start, end = span
    items = _split_top(text[start + 1:end], ",")
    inner = " " * (indent + 4)
    lines, current = [pad + text[:start + 1]], ""
    for item in items:
        trial = f"{current}, {item}" if current else item
        if current and len(inner + trial) + 1 > WIDTH:
            lines.append(inner + current + ",")
            current = item
        else:
            current = trial
    lines.append(inner + current + text[end:])
    return lines


def _break_expression(text: str, indent: int) -> list[str] | None:
    """`target = a if c else b if d else e` (or a long `and`/`or`) as one operand a line,
    in parentheses."""
    head, sep, value = text.partition(" = ")
    if not sep or "(" in head or not value:
        return None
    for word in (" else ", " or ", " and "):
        parts = _split_words(value, word)
        if len(parts) > 1:
            pad, inner = " " * indent, " " * (indent + 4)
            lines = [f"{pad}{head} = ("]
            lines += [inner + ("" if i == 0 else word.strip() + " ") + part
                      for i, part in enumerate(parts)]
            return [*lines, f"{pad})"]
    return None


def _outside_strings(text: str):
    """(index, character, bracket depth) of each character of Python source outside string
    literals; a bracket counts at the depth outside it."""
    depth, quote, i = 0, None, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        else:
            depth -= c in ")]}"
            yield i, c, depth
            depth += c in "([{"
        i += 1


def _split_at(text: str, cuts: list[int], width: int) -> list[str]:
    bounds = [0, *(x for cut in cuts for x in (cut, cut + width)), len(text)]
    return [text[bounds[k]:bounds[k + 1]] for k in range(0, len(bounds), 2)]


def _split_words(text: str, word: str) -> list[str]:
    """Split at `word` where it stands outside brackets and strings."""
    cuts: list[int] = []
    for i, _, depth in _outside_strings(text):
        if depth == 0 and text.startswith(word, i) and (not cuts or i >= cuts[-1] + len(word)):
            cuts.append(i)
    return _split_at(text, cuts, len(word))


def _outer_brackets(text: str) -> tuple[int, int] | None:
    """The first bracket pair (outside strings) whose contents run to near the line's end."""
    start = None
    for i, c, depth in _outside_strings(text):
        if depth == 0 and c in "([{":
            start = i
        elif depth == 0 and c in ")]}" and start is not None and len(text) - i <= 3:
            return start, i
    return None


def _split_top(text: str, sep: str) -> list[str]:
    """Split at `sep` outside brackets and strings."""
    cuts = [i for i, c, depth in _outside_strings(text) if c == sep and depth == 0]
    return [p.strip() for p in _split_at(text, cuts, len(sep)) if p.strip()]


def docstring(lines: list[str], indent: int) -> list[str]:
    pad = " " * indent
    lines = [line.replace('"""', '\\"\\"\\"') for line in lines]
    if len(lines) == 1:
        return [f'{pad}"""{lines[0]}"""']
    return [f'{pad}"""{lines[0]}', *[f"{pad}{line}" if line else "" for line in lines[1:]],
            f'{pad}"""']


def wrap_def(line: str, indent: int) -> str:
    """`def name(a, b, ...):` at `indent`, continued under its first argument when long."""
    pad = " " * indent
    if len(pad + line) <= WIDTH:
        return pad + line
    open_at = line.index("(") + 1
    inner = " " * (indent + open_at)
    lines, current = [], pad + line[:open_at]
    for item in _split_top(line[open_at:line.rindex(")")], ","):
        piece = item + ","
        trial = current + ("" if current.endswith("(") else " ") + piece
        if len(trial) > WIDTH and not current.endswith("("):
            lines.append(current)
            current = inner + piece
        else:
            current = trial
    lines.append(current[:-1] + "):")
    return "\n".join(lines)
