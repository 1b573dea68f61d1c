"""The Pygments lexer: registered by entry point, and every shipped rule file lexes cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.token import Error, Keyword, Name, String

from cbdsl.highlight import CbdslLexer

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted([*ROOT.glob("rules/*.cbd"), *ROOT.glob("examples/*.cbd"),
                *ROOT.glob("cbdsl/data/*.cbd")])


def test_registered_with_pygments():
    assert isinstance(get_lexer_by_name("cbdsl"), CbdslLexer)
    assert isinstance(get_lexer_for_filename("policy.cbd"), CbdslLexer)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_shipped_rule_files_lex_without_errors(path):
    text = path.read_text()
    tokens = list(CbdslLexer().get_tokens(text))
    assert not [value for kind, value in tokens if kind in Error]
    assert "".join(value for _, value in tokens).rstrip("\n") == text.rstrip("\n")


def test_tokens_have_the_expected_kinds():
    text = ('plateau: on epoch_end when val_loss stalls 5 do lr *= 0.2, '
            'print "lr {lr:.3g}"  # shrink')
    kinds = {value: kind for kind, value in CbdslLexer().get_tokens(text)}
    assert kinds["plateau"] in Name.Label
    assert kinds["on"] in Keyword and kinds["stalls"] in Keyword and kinds["do"] in Keyword
    assert kinds["epoch_end"] in Name.Function
    assert kinds["val_loss"] is Name
    assert kinds["{lr:.3g}"] in String.Interpol
