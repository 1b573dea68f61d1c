"""Rule files drawn from the grammar itself (hypothesis's `from_lark`), for the fuzz and fmt tests.

Every production of `grammar/cbdsl.lark` can be drawn. The terminals are narrowed so that what is
drawn lexes as drawn: words are padded with spaces (`on`+`epoch_end` must not become
`onepoch_end`), names come from the language's vocabulary (so the checker gets past name lookup
often enough to test what lies behind it), and comments end their line. Whitespace between tokens
and comments is drawn from the grammar's ignored terminals.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

import lark
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from cbdsl import language
from cbdsl.diagnostics import CbdslSyntaxError
from cbdsl.syntax.parser import parse_tree

NAMES = sorted({*language.EVENTS, *language.BUILTIN_NAMES, *language.FUNCTIONS, "val_loss", "loss",
                "val_accuracy", "lr", "watch", "patience", "factor", "keras", "x", "t"})
NUMBERS = ["0", "1", "5", "0.2", "1e-3", ".5", "10"]
STRINGS = ['"val_loss"', "'min'", '"ckpt/e{epoch:03d}.keras"', '"{loss:.3f}"', "''",
           '"a \\" b"']
COMMENTS = ["# note\n", "#\n", "# a # b\n", "#  spaced   \n", "# on epoch_end do stop\n"]


@functools.cache
def _grammar() -> lark.Lark:
    # built afresh: a parser loaded from Lark's cache carries no grammar to generate from
    text = resources.files("cbdsl.grammar").joinpath("cbdsl.lark").read_text("utf-8")
    return lark.Lark(text, parser="lalr", lexer="basic", start="start")


@functools.cache
def _terminals() -> dict[str, st.SearchStrategy[str]]:
    parser = _grammar()
    explicit: dict[str, st.SearchStrategy[str]] = {
        "NAME": st.sampled_from(NAMES).map(lambda n: f" {n} "),
        "NUMBER": st.sampled_from(NUMBERS).map(lambda n: f" {n} "),
        "STRING": st.sampled_from(STRINGS),
        "COMMENT": st.sampled_from(COMMENTS),
        "WS": st.sampled_from([" ", "\n", "\t", "\n\n  ", "\r\n", " \f"]),
    }
    for terminal in parser.terminals:
        value = getattr(terminal.pattern, "value", "")
        if terminal.pattern.type == "str" and re.fullmatch(r"\w+", value):
            explicit[terminal.name] = st.just(f" {value} ")
    return explicit


def _parses(text: str) -> bool:
    try:
        parse_tree(text)
    except CbdslSyntaxError:  # nesting past the depth limit (E104): a refusal, not a program
        return False
    return True


@functools.cache
def programs() -> st.SearchStrategy[str]:
    """The text of a rule file drawn from the grammar: it always parses."""
    return from_lark(_grammar(), start="start", explicit=_terminals()).filter(_parses)
