"""Text to syntax tree: one cached LALR parser; Lark's errors become CbdslSyntaxError in words."""

from __future__ import annotations

import functools
import os
from importlib import resources

import lark
from lark.lexer import PatternStr

from cbdsl.diagnostics import CbdslSyntaxError, Diagnostic, Span
from cbdsl.syntax.nodes import Expr, Program

MAX_BYTES = 1 << 20  # a policy is a page of text; 1 MiB is far past any real one
MAX_DEPTH = 200  # syntax tree levels; deeper input is refused before it is walked
MAX_BRACKETS = 100  # brackets inside brackets, which the tree does not count

# Terminals that are better described as a class than one by one.
_WORDS = {"NAME": "a name", "NUMBER": "a number", "STRING": "a string", "$END": "end of input"}
_OPERATORS = {"+", "-", "*", "/", "//", "%", "**", "<", "<=", ">", ">=", "==", "!=",
              "and", "or", "if", ".", "stalls", "improves", "is", "in", "["}
_ACTION_START = {"stop", "save", "restore", "print", "warn", "set", "cooldown", "call", "fail",
                 "for", "record", "write", "append", "post"}
# Tokens that can start an expression; when these are acceptable, say "an expression".
_EXPR_START = {"NAME", "NUMBER", "STRING", "(", "-", "+", "{", "true", "false", "none", "not",
               "log", "cooldown", "append", "keep", "epoch", "epochs", "batch", "batches", "step",
               "steps"}
# Words that end or join clauses: where an expression was due, one of these means it is missing,
# not that a reserved word was meant as a name.
_CLAUSE_WORDS = {"do", "when", "to", "else", "with", "as", "on", "and", "or", "not", "if", "in",
                 "is", "of", "at", "from", "every", "after", "before", "once", "priority"}
# Keywords that are also accepted as names in some places (grammar: soft_name, field_name).
_SOFT_NAMES = {"cooldown", "weights", "best", "append", "keep", "epoch", "batch", "step"}


@functools.cache
def lark_parser(keep_all_tokens: bool = False) -> lark.Lark:
    """The LALR parser, built on first use (the grammar ships in cbdsl.grammar).

    `keep_all_tokens` keeps keywords and punctuation in the tree, for the formatter.
    """
    grammar = resources.files("cbdsl.grammar").joinpath("cbdsl.lark").read_text("utf-8")
    return lark.Lark(grammar, parser="lalr", lexer="basic", propagate_positions=True,
                     strict=True, maybe_placeholders=True, start=["start", "expr"],
                     keep_all_tokens=keep_all_tokens,
                     cache=_cache_path(f"{grammar}start,expr,{keep_all_tokens}"))


def _cache_path(grammar: str) -> str | bool:
    # Lark's cache skips the LALR table construction on later imports; keep it
    # next to other caches and fall back to no cache where that is not writable.
    import hashlib
    import tempfile

    digest = hashlib.sha256((grammar + lark.__version__).encode()).hexdigest()[:16]
    path = os.path.join(tempfile.gettempdir(), f"cbdsl-lark-{digest}.cache")
    try:
        with open(path, "ab"):
            pass
    except OSError:
        return False
    return path


def read_source(path: str | os.PathLike[str]) -> str:
    """Read a rule file as UTF-8 text, refusing binary and oversized input with E10x."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise CbdslSyntaxError(Diagnostic("E213", f"cannot read rule file: {exc.strerror}",
                                          path=name)) from None
    except ValueError:  # open() refuses a name with a NUL character
        shown = name.replace("\0", "\\0")
        raise CbdslSyntaxError(Diagnostic("E213", "cannot read rule file: its name holds a "
                                          "NUL character", path=shown)) from None
    return decode(data, name)


def decode(data: bytes, path: str = "<string>") -> str:
    """Decode bytes as UTF-8, with E103 at the first bad byte and E105 when too large."""
    if len(data) > MAX_BYTES:
        raise CbdslSyntaxError(Diagnostic(
            "E105", f"rule file is larger than {MAX_BYTES // 1024} KiB", path=path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[:exc.start].decode("utf-8", "replace")
        line = head.count("\n") + 1
        column = len(head) - (head.rfind("\n") + 1) + 1
        source = data.decode("utf-8", "replace")
        raise CbdslSyntaxError(Diagnostic(
            "E103", f"byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8 text",
            Span.point(line, column, len(head)), path, source)) from None


def parse_tree(text: str, path: str = "<string>", start: str = "start") -> lark.Tree:
    """Parse `text` into a Lark tree, raising CbdslSyntaxError on any malformed input."""
    if len(text) > MAX_BYTES:
        raise CbdslSyntaxError(Diagnostic(
            "E105", f"rule file is larger than {MAX_BYTES // 1024} KiB", path=path))
    try:
        tree = lark_parser().parse(text, start=start)
        _check_brackets(text, path)
    except lark.exceptions.UnexpectedInput as exc:
        raise CbdslSyntaxError(_diagnose(exc, text, path)) from None
    _check_depth(tree, text, path)
    return tree


def _check_brackets(text: str, path: str) -> None:
    """Refuse brackets nested deeper than MAX_BRACKETS: the tree loses parentheses, but the
    formatter, which keeps every token, walks one level per bracket."""
    depth = 0
    for token in lark_parser().lex(text):
        if token.type in ("LPAR", "LSQB", "LBRACE"):
            depth += 1
            if depth > MAX_BRACKETS:
                raise CbdslSyntaxError(Diagnostic(
                    "E104", f"brackets nested more than {MAX_BRACKETS} levels deep",
                    Span(token.line, token.column, token.end_line, token.end_column,
                         token.start_pos, token.end_pos), path, text,
                    "split it into smaller expressions or state variables"))
        elif token.type in ("RPAR", "RSQB", "RBRACE"):
            depth -= 1


def parse(text: str, path: str = "<string>") -> Program:
    """Parse rule-file text into a `Program` node.

    Args:
        text: the rule file's text.
        path: the name used in diagnostics.

    Returns:
        The `Program`, not yet checked.

    Raises:
        CbdslSyntaxError: the text is not a rule file (codes E1xx).
    """
    from cbdsl.syntax.builder import build

    return build(parse_tree(text, path), text, path)


def parse_expression(text: str, path: str = "<expression>") -> Expr:
    """Parse one expression (a schedule given as text): `0.1 * 0.9 ** epoch`.

    Raises:
        CbdslSyntaxError: the text is not exactly one expression (codes E1xx).
    """
    from cbdsl.syntax.builder import build

    return build(parse_tree(text, path, start="expr"), text, path)


def _check_depth(tree: lark.Tree, text: str, path: str) -> None:
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            span = Span(meta.line, meta.column, meta.end_line, meta.end_column,
                        meta.start_pos, meta.end_pos) if not meta.empty else None
            raise CbdslSyntaxError(Diagnostic(
                "E104", f"expression nested more than {MAX_DEPTH} levels deep", span, path,
                text, "split it into smaller expressions or state variables"))
        stack.extend((child, depth + 1) for child in node.children
                     if isinstance(child, lark.Tree))


def _diagnose(exc: lark.exceptions.UnexpectedInput, text: str, path: str) -> Diagnostic:
    accepts = set()
    if isinstance(exc, lark.exceptions.UnexpectedToken) and exc.interactive_parser is not None:
        accepts = exc.interactive_parser.accepts()
        expected = describe_expected(accepts)
    else:
        expected = ""
    suffix = f"; expected {expected}" if expected else ""
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        shown = repr(char) if char.isprintable() and char not in "'\"" else f"{ord(char):#04x}"
        if char in "'\"":
            return Diagnostic("E101", "unterminated string", Span.point(
                exc.line, exc.column, exc.pos_in_stream), path, text,
                "close it with a matching quote on the same line")
        return Diagnostic("E101", f"unexpected character {shown}",
                          Span.point(exc.line, exc.column, exc.pos_in_stream), path, text)
    token = getattr(exc, "token", None)
    if token is None or token.type == "$END":
        line = text.count("\n") + 1
        column = len(text) - (text.rfind("\n") + 1) + 1
        return Diagnostic("E102", f"unexpected end of input{suffix}",
                          Span.point(line, column, len(text)), path, text)
    span = Span(token.line, token.column, token.end_line, token.end_column,
                token.start_pos, token.end_pos)
    what = f"name '{token}'" if token.type == "NAME" else f"'{token}'"
    if token.type in ("NUMBER", "STRING"):
        what = f"{token.type.lower()} {token}"
    hint = None
    if "NAME" in accepts and token.type not in ("NAME", "NUMBER", "STRING") \
            and str(token).isidentifier() and str(token) not in _CLAUSE_WORDS \
            and "on" not in _literals(accepts):  # not where a new rule (or its label) may start
        hint = (f"'{token}' is a reserved word: choose another name (a metric of that name "
                f'is read with metric("{token}"))')
    return Diagnostic("E100", f"unexpected {what}{suffix}", span, path, text, hint)


def _literals(terminals) -> set[str]:
    parser = lark_parser()
    out = set()
    for name in terminals:
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            continue
        if isinstance(pattern, PatternStr):
            out.add(pattern.value)
    return out


def describe_expected(terminals) -> str:
    """Turn Lark terminal names into words: `'do', 'when' or an operator`."""
    parser = lark_parser()
    literals = {}
    for name in terminals:
        if name in _WORDS:
            literals[name] = name
            continue
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            continue
        literals[name] = pattern.value if isinstance(pattern, PatternStr) else name
    values = set(literals.values())
    words = []
    if {"NAME", "NUMBER", "(", "-"} <= values:
        values -= _EXPR_START
        words.append("an expression")
    if values >= _ACTION_START:
        values -= _ACTION_START | {"log", "NAME"}
        words.append("an action")
    if "NAME" in literals.values():
        values -= _SOFT_NAMES  # said by "a name" or "an expression"
    if "in" in values:
        values.discard("not")  # `not in`: an operator here, said by "an operator"
    if "=" in values:  # after an action's first name, `lr =` is what was meant, not an effect
        values.discard(".")
    operators = bool(values & _OPERATORS)
    values -= _OPERATORS
    words = sorted(f"'{v}'" for v in values if v not in _WORDS) + sorted(
        _WORDS[v] for v in values if v in _WORDS) + words
    if operators:
        words.append("an operator")
    if not words:
        return ""
    if len(words) > 10:  # what can follow a rule or a rule's events is 9 or 10 words: say them all
        words = [*words[:9], "..."]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
