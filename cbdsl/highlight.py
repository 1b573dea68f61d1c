"""A Pygments lexer for rule files, so that docs and review tools highlight `.cbd` text."""

from __future__ import annotations

import re
from importlib import resources

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import (
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from cbdsl import language


def _keywords() -> tuple[str, ...]:
    """Every word the grammar reserves (its quoted alphabetic literals): one source of truth."""
    grammar = resources.files("cbdsl.grammar").joinpath("cbdsl.lark").read_text("utf-8")
    found = set(re.findall(r'"([a-z_]+)"', grammar))
    return tuple(sorted(found - {"true", "false", "none"}))


_EVENTS = tuple(sorted({*language.EVENTS, *language.EVENT_ALIASES}))
_FUNCTIONS = tuple(sorted(language.FUNCTIONS))
_BUILTINS = tuple(sorted(language.BUILTIN_NAMES))


class CbdslLexer(RegexLexer):
    """Highlights cbdsl rule files: keywords, events, functions, template fields, comments."""

    name = "cbdsl"
    aliases = ["cbdsl", "cbd"]
    filenames = ["*.cbd"]
    mimetypes = ["text/x-cbdsl"]

    tokens = {
        "root": [
            (r"\s+", Whitespace),
            (r"#.*?$", Comment.Single),
            (r'"', String.Double, "dq"),
            (r"'", String.Single, "sq"),
            (r"(callback)(\s+)([A-Za-z_]\w*)", bygroups(Keyword.Declaration, Whitespace,
                                                        Name.Class)),
            (r"(use)(\s+)([A-Za-z_][\w.]*)", bygroups(Keyword.Namespace, Whitespace,
                                                      Name.Class)),
            (r"([A-Za-z_]\w*)(\s*)(:)(?=\s*on\b)", bygroups(Name.Label, Whitespace,
                                                           Punctuation)),
            (words(("true", "false", "none"), suffix=r"\b"), Keyword.Constant),
            (words(_keywords(), suffix=r"\b"), Keyword),
            (words(_EVENTS, suffix=r"\b"), Name.Function),
            (words(_FUNCTIONS, suffix=r"(?=\s*\()"), Name.Builtin),
            (words(_BUILTINS, suffix=r"\b"), Name.Builtin.Pseudo),
            (r"(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", Number),
            (r"\*\*|//|[<>=!]=|[-+*/%<>=]", Operator),
            (r"[(){}\[\],.:]", Punctuation),
            (r"[A-Za-z_]\w*", Name),
            (r".", Text),
        ],
        "dq": [
            (r'\\.', String.Escape),
            (r"\{[A-Za-z_][\w.]*(:[^{}\"]*)?\}", String.Interpol),
            (r'"', String.Double, "#pop"),
            (r'[^"\\{]+|\{', String.Double),
        ],
        "sq": [
            (r"\\.", String.Escape),
            (r"\{[A-Za-z_][\w.]*(:[^{}']*)?\}", String.Interpol),
            (r"'", String.Single, "#pop"),
            (r"[^'\\{]+|\{", String.Single),
        ],
    }
