"""Rule files in one canonical layout (`cbdsl fmt`), keeping every comment and blank-line break.

The layout is a function of the syntax tree and the comments alone: spacing between tokens is
fixed, a rule goes on one line when it fits in `WIDTH` columns and otherwise breaks before
`when` and `do`, then between actions, then between `and`/`or` terms, and a bracketed list that
still runs past the margin is filled and aligned after its opening bracket. Comments stay with
the part of a statement they sit next to: a comment on its own line goes before the part that
follows it, a comment at a line's end stays at the end of that part's line. Blank lines between
statements are kept (several become one). Parentheses, numbers and strings are kept as written.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass, field

from lark import Token, Tree

from cbdsl.syntax.parser import lark_parser, parse_tree

WIDTH = 100
INDENT = "  "

_OPENERS = {"(": ")", "[": "]", "{": "}"}
_CLOSERS = {")", "]", "}"}
_CALL_PARENTS = {"func", "use", "call", "effect", "param_list", "extends"}
_CLAUSES = {"every", "after", "from_", "before", "once", "priority"}
_COMMENT = re.compile(r"#[^\n]*")


def format_source(text: str, path: str = "<string>") -> str:
    """Lay a rule file out canonically.

    Args:
        text: the rule file's text.
        path: the name used in diagnostics.

    Returns:
        The formatted text: it parses to the same program, keeps every comment, and formatting
        it again changes nothing. Empty (or blank) text stays empty.

    Raises:
        CbdslSyntaxError: the text is not a rule file (codes E1xx).
    """
    parse_tree(text, path)  # syntax errors as diagnostics, depth limits
    tree = lark_parser(keep_all_tokens=True).parse(text, start="start")
    return _Formatter(text, tree).run()


# ----------------------------------------------------------------- tokens and spacing


def _tokens(node: Tree | Token | None, parent: str = "") -> list[tuple[Token, str]]:
    """The tokens of a subtree in source order, each with the name of the rule holding it."""
    if node is None:
        return []
    if isinstance(node, Token):
        return [(node, parent)]
    out: list[tuple[Token, str]] = []
    for child in node.children:
        out.extend(_tokens(child, str(node.data)))
    return out


def _punct(token: Token) -> str | None:
    return None if token.type in ("NAME", "NUMBER", "STRING") else str(token)


def _space(prev: tuple[Token, str], cur: tuple[Token, str]) -> bool:
    """Whether one space separates two adjacent tokens."""
    (p, p_rule), (c, c_rule) = prev, cur
    pp, cp = _punct(p), _punct(c)
    if cp in (")", "]", ",", ":", ".") or pp in ("(", "[", "."):
        return False
    if (pp == "{" and p_rule == "table") or (cp == "}" and c_rule == "table"):
        return False
    if cp == "(":
        return c_rule not in _CALL_PARENTS
    if cp == "[":
        return c_rule == "log_key"
    return not (pp in ("-", "+") and p_rule in ("neg", "pos"))


def _pieces(nodes: list[Tree | Token | None], parent: str = "") -> list[tuple[Token, str]]:
    tokens = [t for node in nodes for t in _tokens(node, parent)]
    # a trailing comma before a closing bracket is dropped: `f(a, b,)` is `f(a, b)`
    return [t for i, t in enumerate(tokens)
            if not (_punct(t[0]) == "," and i + 1 < len(tokens)
                    and _punct(tokens[i + 1][0]) in _CLOSERS)]


def _join(pieces: list[tuple[Token, str]]) -> str:
    out = []
    for i, piece in enumerate(pieces):
        if i and _space(pieces[i - 1], piece):
            out.append(" ")
        out.append(str(piece[0]))
    return "".join(out)


def _wrap(pieces: list[tuple[Token, str]], column: int) -> list[str]:
    """Lay out tokens starting at `column`, breaking lines that run past `WIDTH`.

    In order: before each `else` of a conditional, a `require` or a `post`; between the actions of a
    `for` body, one per line; in the first bracketed list with commas, filled and aligned after
    its bracket. The first line carries no indentation; later lines carry their own.
    """
    text = _join(pieces)
    if column + len(text) <= WIDTH:
        return [text]
    depth, cuts, group = 0, [], None
    for i, (token, rule) in enumerate(pieces):
        punct = _punct(token)
        if punct in _OPENERS:
            depth += 1
            if depth == 1 and group is None:
                opening, commas = i, []
        elif punct in _CLOSERS:
            depth -= 1
            if depth == 0 and group is None and (commas or rule == "for_"):
                group = (opening, commas, i, rule == "for_")
        elif punct == "," and depth == 1 and group is None:
            commas.append(i)
        elif punct == "else" and depth == 0 and i and rule in ("conditional", "require", "post"):
            cuts.append(i)
    if cuts:
        bounds = [0, *cuts, len(pieces)]
        lines = _wrap(pieces[:cuts[0]], column)
        for a, b in itertools.pairwise(bounds[1:]):
            more = _wrap(pieces[a:b], column + 2 * len(INDENT))
            lines += [" " * (column + 2 * len(INDENT)) + more[0], *more[1:]]
        return lines
    if group is None:
        return [text]
    opening, commas, closing, stacked = group
    if stacked:
        return _stack(pieces, opening, commas, closing, column)
    return _fill(pieces, opening, commas, closing, column)


def _items(pieces, opening: int, commas: list[int], closing: int) -> list[list]:
    bounds = [opening + 1, *(c + 1 for c in commas), closing]
    return [pieces[a:b] for a, b in itertools.pairwise(bounds)]


def _stack(pieces, opening: int, commas: list[int], closing: int, column: int) -> list[str]:
    """A `for` body: one action per line, indented under the `for`."""
    lines = [_join(pieces[:opening + 1])]
    at = column + len(INDENT)
    items = _items(pieces, opening, commas, closing)
    for n, item in enumerate(items):
        last = n == len(items) - 1
        wrapped = _wrap(item + (pieces[closing:] if last else []), at)
        lines += [" " * at + wrapped[0], *wrapped[1:]]
    return lines


def _fill(pieces, opening: int, commas: list[int], closing: int, column: int) -> list[str]:
    """The list's items packed onto lines, each line aligned after the opening bracket."""
    head = _join(pieces[:opening + 1])
    align = " " * (column + len(head))
    items = _items(pieces, opening, commas, closing)
    lines, current, empty = [], head, True
    for n, item in enumerate(items):
        text = _join(item + (pieces[closing:] if n == len(items) - 1 else []))
        width = len(current) + (column if not lines else 0)
        if not empty and width + 1 + len(text) > WIDTH:
            lines.append(current)
            current, empty = align, True
        current += ("" if empty else " ") + text
        empty = False
    return [*lines, current]


# ------------------------------------------------------------------ layout parts


@dataclass
class _Part:
    """A run of tokens that comments attach to: a clause, an action, a parameter, a statement."""

    start: int
    leading: list[tuple[str, bool]] = field(default_factory=list)  # (comment, blank before)
    trailing: list[str] = field(default_factory=list)

    @property
    def comment(self) -> str:
        """The comment at the end of this part's line."""
        return self.trailing[-1] if self.trailing else ""

    def settle(self) -> None:
        # a part ends one line: any earlier end-of-line comments move to their own lines
        self.leading.extend((c, False) for c in self.trailing[:-1])
        del self.trailing[:-1]


class _Formatter:
    """Plans each statement's parts, gives every comment to a part, then prints the lines."""

    def __init__(self, text: str, tree: Tree) -> None:
        self.text = text
        self.tree = tree
        self.parts: list[_Part] = []
        self.lines: list[str] = []
        self.opened = -1  # the index of the line that opened the innermost block

    # ---- parts and comments

    def part(self, start: int) -> _Part:
        made = _Part(start)
        self.parts.append(made)
        return made

    def blank_before(self, pos: int) -> bool:
        """Whether the source has a blank line just before offset `pos`."""
        j = pos
        while j > 0 and self.text[j - 1] in " \t\r\n\f":
            j -= 1
        return j > 0 and self.text.count("\n", j, pos) >= 2

    def attach_comments(self) -> None:
        """Give each comment to the part it sits next to (see the module docstring)."""
        tokens = [t for t, _ in _tokens(self.tree)]
        self.parts.sort(key=lambda p: p.start)
        starts = [p.start for p in self.parts]
        bounds = [0, *(x for t in tokens for x in (t.start_pos, t.end_pos)), len(self.text)]
        for i in range(len(tokens) + 1):
            prev = tokens[i - 1] if i else None
            following = tokens[i].start_pos if i < len(tokens) else len(self.text)
            for match in _COMMENT.finditer(self.text, bounds[2 * i], bounds[2 * i + 1]):
                comment = match.group().rstrip()
                own_line = prev is None or "\n" in self.text[prev.end_pos:match.start()]
                anchor = following if own_line else prev.start_pos
                owner = self.parts[bisect.bisect_right(starts, anchor) - 1]
                if own_line:
                    owner.leading.append((comment, self.blank_before(match.start())))
                else:
                    owner.trailing.append(comment)
        for part in self.parts:
            part.settle()

    # ---- output

    def emit(self, indent: str, text: str, comment: str = "") -> None:
        lines = text.split("\n")
        self.lines.append(indent + lines[0])
        self.lines.extend(lines[1:])
        if comment:
            self.lines[-1] += f"  {comment}"

    def blank(self) -> None:
        if self.lines and self.lines[-1] and len(self.lines) - 1 != self.opened:
            self.lines.append("")

    def comments(self, part: _Part, indent: str, blanks: bool = False) -> None:
        for comment, blank in part.leading:
            if blanks and blank:
                self.blank()
            self.lines.append(indent + comment)
        part.leading = []

    def run(self) -> str:
        items = [self.plan(item) for item in self.tree.children]
        end = self.part(len(self.text))
        self.attach_comments()
        self.emit_statements(items, "")
        self.comments(end, "", blanks=True)
        return "\n".join(self.lines) + "\n" if self.lines else ""

    # ---- plans: the parts of each statement, made before comments are attached

    def plan(self, node: Tree) -> tuple:
        kind = str(node.data)
        if kind == "rule":
            return self.plan_rule(node)
        if kind == "callback_def":
            return self.plan_callback(node)
        return ("simple", self.part(node.meta.start_pos), _pieces([node]))

    def plan_rule(self, node: Tree) -> tuple:
        head_nodes, when, acts = [], None, []
        do = next(c for c in node.children if isinstance(c, Token) and str(c) == "do")
        for child in node.children:
            if isinstance(child, Tree) and child.data == "condition":
                keyword, expr = child.children
                when = (self.part(keyword.start_pos), expr)
            elif isinstance(child, Tree) and child.data == "actions":
                actions = [c for c in child.children if isinstance(c, Tree) or _punct(c) != ","]
                for i, action in enumerate(actions):
                    acts.append((self.part(do.start_pos if i == 0 else _start(action)),
                                 _pieces([action])))
            elif child is not do:
                head_nodes.append(child)
        return ("rule", self.part(node.meta.start_pos), _pieces(head_nodes), when, acts)

    def plan_callback(self, node: Tree) -> tuple:
        children = [c for c in node.children if c is not None]
        trees = {str(c.data): c for c in children if isinstance(c, Tree)}
        brace = next(c for c in children if isinstance(c, Token) and str(c) == "{")
        head = self.part(node.meta.start_pos)
        prefix, params, tail_text = f"callback {children[1]}", [], " {"
        if "extends" in trees:
            tail_text = f" {_join(_pieces([trees['extends']]))} {{"
        tail_start = trees["extends"].meta.start_pos if "extends" in trees else brace.start_pos
        if "param_list" in trees:
            prefix += "("
            _, plist, closing = trees["param_list"].children
            entries = [c for c in plist.children if isinstance(c, Tree)] if plist else []
            params = [(self.part(_start(p)), _join(_pieces([p]))) for p in entries]
            tail_start, tail_text = closing.start_pos, ")" + tail_text
        tail = self.part(tail_start)
        body = [("simple", self.part(c.meta.start_pos), _pieces([c])) if c.data == "doc"
                else self.plan(c) for c in children if isinstance(c, Tree)
                and c.meta.start_pos > brace.start_pos]
        close = self.part(children[-1].start_pos)
        return ("callback", head, prefix, params, tail, tail_text, body, close)

    # ---- printing

    def emit_statements(self, items: list[tuple], indent: str) -> None:
        for n, item in enumerate(items):
            first: _Part = item[1]
            had_comments = bool(first.leading)
            self.comments(first, indent, blanks=True)
            if (n or had_comments) and self.blank_before(first.start):
                self.blank()
            if item[0] == "simple":
                _, part, pieces = item
                self.emit(indent, "\n".join(_wrap(pieces, len(indent))), part.comment)
            elif item[0] == "rule":
                self.emit_rule(item, indent)
            else:
                self.emit_callback(item, indent)

    def emit_rule(self, item: tuple, indent: str) -> None:
        _, head, head_pieces, when, acts = item
        cont, align = indent + INDENT, indent + INDENT + "   "
        head_text = _join(head_pieces)
        when_text = f"when {_join(_pieces([when[1]]))}" if when else ""
        do_text = "do " + ", ".join(_join(p) for _, p in acts)
        act_parts = [p for p, _ in acts]
        upto_when = [head, when[0]] if when else [head]

        def fits(group: list[_Part], text: str, at: str) -> bool:
            # a part with comments before it starts a line; one with a comment after ends it
            return len(at) + len(text) <= WIDTH and all(not p.leading for p in group[1:]) \
                and all(not p.trailing for p in group[:-1])

        line = " ".join(filter(None, [head_text, when_text, do_text]))
        if fits([*upto_when, *act_parts], line, indent):
            self.emit(indent, line, act_parts[-1].comment)
            return
        if when and fits(upto_when, f"{head_text} {when_text}", indent):
            self.emit(indent, f"{head_text} {when_text}", when[0].comment)
        else:
            self.emit(indent, "\n".join(_wrap(head_pieces, len(indent))), head.comment)
            if when:
                self.comments(when[0], cont)
                self.emit_condition(when[1], cont, when[0].comment)
        self.comments(act_parts[0], cont)
        if fits(act_parts, do_text, cont):
            self.emit(cont, do_text, act_parts[-1].comment)
            return
        for i, (part, pieces) in enumerate(acts):
            at, lead = (cont, "do ") if i == 0 else (align, "")
            self.comments(part, at)
            text = "\n".join(_wrap(pieces, len(at) + len(lead)))
            self.emit(at, lead + text + ("," if i < len(acts) - 1 else ""), part.comment)

    def emit_condition(self, expr: Tree | Token, indent: str, comment: str) -> None:
        whole = "when " + _join(_pieces([expr]))
        if len(indent) + len(whole) <= WIDTH:
            self.emit(indent, whole, comment)
            return
        terms, ops = _chain(expr)
        for i, term in enumerate(terms):
            at, lead = (indent, "when ") if i == 0 else (indent + INDENT, f"{ops[i - 1]} ")
            text = "\n".join(_wrap(_pieces([term]), len(at) + len(lead)))
            self.emit(at, lead + text, comment if i == len(terms) - 1 else "")

    def emit_callback(self, item: tuple, indent: str) -> None:
        _, head, prefix, params, tail, tail_text, body, close = item
        # a comment after the name or the opening bracket goes after the block's `{`
        tail.trailing[:0] = head.trailing
        tail.settle()
        line = indent + prefix
        align = " " * len(line)
        empty = True  # nothing yet after the bracket or the alignment

        def flush() -> None:
            if line.strip():
                self.lines.append(line)

        for i, (part, text) in enumerate(params):
            piece = text + ("," if i < len(params) - 1 else "")
            room = len(piece) + (len(tail_text) if i == len(params) - 1 else 0)
            if part.leading or (not empty and len(line) + 1 + room > WIDTH):
                flush()
                self.comments(part, align)
                line, empty = align, True
            line += ("" if empty else " ") + piece
            empty = False
            if part.comment:
                self.lines.append(f"{line}  {part.comment}")
                line, empty = align, True
        if tail.leading or not line.strip() or len(line) + len(tail_text) > WIDTH:
            flush()
            self.comments(tail, indent)
            line = indent + tail_text.lstrip()
        else:
            line += tail_text
        self.emit("", line, tail.comment)
        self.opened = len(self.lines) - 1
        inner = indent + INDENT
        self.emit_statements(body, inner)
        self.comments(close, inner)
        self.emit(indent, "}", close.comment)


def _start(node: Tree | Token) -> int:
    return node.start_pos if isinstance(node, Token) else node.meta.start_pos


def _chain(expr: Tree | Token) -> tuple[list, list[str]]:
    """The terms of a top-level `and`/`or` chain and the operators between them."""
    if not isinstance(expr, Tree) or expr.data not in ("or_", "and_"):
        return [expr], []
    left, op, right = expr.children
    if isinstance(left, Tree) and left.data == expr.data:
        terms, ops = _chain(left)
    else:
        terms, ops = [left], []
    return [*terms, right], [*ops, str(op)]


