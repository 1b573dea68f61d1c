"""`cbdsl fmt`: one canonical layout that means the same program, keeps every comment, and is
a fixed point; and the command line that rewrites, checks and diffs files."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from programs import programs

import cbdsl
from cbdsl.cli import main
from cbdsl.diagnostics import CbdslSyntaxError
from cbdsl.fmt import WIDTH, format_source

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted([*ROOT.glob("rules/*.cbd"), *ROOT.glob("examples/*.cbd"),
                  ROOT / "cbdsl/data/demo.cbd"])
PROPERTY = settings(max_examples=int(os.environ.get("CBDSL_FMT_EXAMPLES", "100")),
                    deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                          HealthCheck.filter_too_much])


def comments(text: str) -> list[str]:
    # rule files have no `#` inside strings here: a plain scan finds every comment
    return sorted(c.rstrip() for c in re.findall(r"#[^\n]*", text))


def strings_free_comments(text: str) -> list[str]:
    """The comments of a rule file, found with the parser's own tokens (strings may hold `#`)."""
    from cbdsl.fmt import _tokens
    from cbdsl.syntax.parser import lark_parser

    tree = lark_parser(keep_all_tokens=True).parse(text, start="start")
    found, last = [], 0
    for token, _ in _tokens(tree):
        found += re.findall(r"#[^\n]*", text[last:token.start_pos])
        last = token.end_pos
    found += re.findall(r"#[^\n]*", text[last:])
    return sorted(c.rstrip() for c in found)


# ------------------------------------------------------------------ properties


@PROPERTY
@given(programs())
def test_fmt_keeps_the_program_and_every_comment_and_is_idempotent(text):
    out = format_source(text)
    assert cbdsl.parse(out) == cbdsl.parse(text)
    assert format_source(out) == out
    assert strings_free_comments(out) == strings_free_comments(text)
    assert all(line == line.rstrip() for line in out.splitlines())
    assert out == "" or (out.endswith("\n") and not out.endswith("\n\n"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_shipped_rule_files_are_in_the_canonical_layout(path):
    text = path.read_text("utf-8")
    assert format_source(text, str(path)) == text, f"run: cbdsl fmt {path.relative_to(ROOT)}"


# ------------------------------------------------------------------ the layout


@pytest.mark.parametrize(("text", "expected"), [
    ("on   epoch_end  when val_loss stalls 5 do lr*=0.2", "on epoch_end when val_loss stalls 5 "
     "do lr *= 0.2\n"),
    ("on epoch_end when -x**2>=metric( 'a' )and not(y) do log [ 'k' ]=t [ 1 ], set t[ 2 ]=-1",
     "on epoch_end when -x ** 2 >= metric('a') and not (y) do log ['k'] = t[1], set t[2] = -1\n"),
    ("use keras.early_stopping(patience=3,)", "use keras.early_stopping(patience = 3)\n"),
    ("param k={0:0.1,5:0.01,}", "param k = {0: 0.1, 5: 0.01}\n"),
    ("callback c(a=1,b:float=none){\"doc\"\non epoch_end do stop}",
     'callback c(a = 1, b: float = none) {\n  "doc"\n  on epoch_end do stop\n}\n'),
    ("callback c{}", "callback c {\n}\n"),
    ("plateau:on epoch_end every 2 epochs priority 1 do for k,v in logs when v>1 do(print k)",
     "plateau: on epoch_end every 2 epochs priority 1 do for k, v in logs when v > 1 do "
     "(print k)\n"),
    ("", ""),
    ("\n\n   \n", ""),
], ids=["spacing", "operators", "trailing-comma", "table", "callback", "empty-callback",
        "label-for", "empty", "blank"])
def test_canonical_spacing(text, expected):
    assert format_source(text) == expected


def test_a_long_rule_breaks_before_when_and_do_then_between_actions():
    message = '"the learning rate is now {lr} and the best loss is {watch.best:.4f}"'
    text = ("on epoch_end when val_loss stalls 5 with (min_delta = 0.001, mode = min) as watch "
            f"do lr *= 0.5, print {message}, cooldown 3")
    assert format_source(text) == (
        "on epoch_end when val_loss stalls 5 with (min_delta = 0.001, mode = min) as watch\n"
        "  do lr *= 0.5,\n"
        f"     print {message},\n"
        "     cooldown 3\n")


def test_a_long_condition_breaks_between_its_terms_then_fills_its_lists():
    text = ("on epoch_end from epoch 10 when metric(monitor) stalls patience with (mode = mode, "
            "min_delta = min_delta, baseline = baseline, weights = keep) as watch and "
            "epoch > 0 and lr > 0.0001 do stop")
    out = format_source(text)
    assert out == (
        "on epoch_end from epoch 10\n"
        "  when metric(monitor) stalls patience with (mode = mode, min_delta = min_delta,\n"
        "                                             baseline = baseline, weights = keep) "
        "as watch\n"
        "    and epoch > 0\n"
        "    and lr > 0.0001\n"
        "  do stop\n")
    assert max(len(line) for line in out.splitlines()) <= WIDTH


def test_long_parameter_lists_fill_and_align_after_the_bracket():
    params = ", ".join(f"argument_{i} = {i}" for i in range(12))
    out = format_source(f"callback c({params}) {{ on epoch_end do stop }}")
    head = out.split(" {\n")[0].splitlines()
    assert head[0].startswith("callback c(argument_0 = 0, ")
    assert all(line.startswith(" " * len("callback c(")) and not line[11].isspace()
               for line in head[1:])
    assert all(len(line) <= WIDTH for line in head)
    assert cbdsl.parse(out) == cbdsl.parse(f"callback c({params}) {{ on epoch_end do stop }}")


def test_a_long_for_body_puts_each_action_on_its_own_line():
    text = ("on epoch_end do for name, value in logs when name in totals do (set totals[name] = "
            "value if name in stateful else totals[name] + value * size, log [name] = "
            "totals[name] / seen)")
    assert format_source(text) == (
        "on epoch_end\n"
        "  do for name, value in logs when name in totals do (\n"
        "       set totals[name] = value if name in stateful else totals[name] + value * size,\n"
        "       log [name] = totals[name] / seen)\n")


def test_comments_stay_with_what_they_sit_next_to():
    text = (
        "# header\n"
        "\n"
        "\n"
        "param patience = 5   # epochs\n"
        "# the policy\n"
        "callback shrink(factor = 0.2,  # how much\n"
        "                # the wait\n"
        "                patience = 5) {  # body\n"
        "  \"Shrink.\"\n"
        "  on epoch_end\n"
        "    # only when stuck\n"
        "    when val_loss stalls patience do lr *= factor,   # first\n"
        "      cooldown 2\n"
        "  # last words\n"
        "}  # end\n"
        "# bottom\n")
    assert format_source(text) == (
        "# header\n"
        "\n"
        "param patience = 5  # epochs\n"
        "# the policy\n"
        "callback shrink(factor = 0.2,  # how much\n"
        "                # the wait\n"
        "                patience = 5) {  # body\n"
        "  \"Shrink.\"\n"
        "  on epoch_end\n"
        "    # only when stuck\n"
        "    when val_loss stalls patience\n"
        "    do lr *= factor,  # first\n"
        "       cooldown 2\n"
        "  # last words\n"
        "}  # end\n"
        "# bottom\n")


def test_a_comment_inside_an_expression_moves_before_its_clause():
    text = "on epoch_end when loss > 1 and # big\n  epoch > 2 do stop\n"
    out = format_source(text)
    assert out == "on epoch_end when loss > 1 and epoch > 2  # big\n  do stop\n"
    assert format_source("param x = f(1,\n  # one\n  2)") == "# one\nparam x = f(1, 2)\n"


def test_a_hash_inside_a_string_is_not_a_comment():
    text = 'on epoch_end do print "#{epoch} # not a comment"  # a comment\n'
    assert format_source(text) == text


def test_syntax_errors_are_diagnostics_not_lark_tracebacks():
    with pytest.raises(CbdslSyntaxError) as info:
        format_source("on epoch_end when do stop", "p.cbd")
    assert str(info.value).startswith("p.cbd:1:19: error E100: unexpected 'do'")


# ---------------------------------------------------------------- command line


UGLY = "on epoch_end   when val_loss stalls 5 do lr*=0.2  # shrink\n"
PRETTY = "on epoch_end when val_loss stalls 5 do lr *= 0.2  # shrink\n"


def test_fmt_rewrites_files_in_place_and_folders_recursively(tmp_path, capsys):
    (tmp_path / "lib").mkdir()
    one, two = tmp_path / "a.cbd", tmp_path / "lib" / "b.cbd"
    one.write_text(UGLY)
    two.write_text(PRETTY)
    one.chmod(0o640)
    assert main(["fmt", str(tmp_path)]) == 0
    assert one.read_text() == PRETTY and two.read_text() == PRETTY
    assert stat.S_IMODE(one.stat().st_mode) == 0o640
    assert capsys.readouterr().err == f"reformatted {one}\n"
    assert not list(tmp_path.glob(".cbdsl-fmt-*"))


def test_fmt_check_and_diff_change_nothing_and_fail_when_something_would_change(tmp_path,
                                                                                capsys):
    path = tmp_path / "a.cbd"
    path.write_text(UGLY)
    assert main(["fmt", "--check", str(path)]) == 1
    assert capsys.readouterr().err == f"would reformat {path}\n"
    assert main(["fmt", "--diff", str(path)]) == 1
    shown = capsys.readouterr().out
    assert f"-{UGLY}" in shown and f"+{PRETTY}" in shown
    assert path.read_text() == UGLY
    path.write_text(PRETTY)
    assert main(["fmt", "--check", str(path)]) == 0


def test_fmt_leaves_a_file_with_syntax_errors_untouched(tmp_path, capsys):
    path = tmp_path / "bad.cbd"
    path.write_text("on epoch_end when do stop\n")
    assert main(["fmt", str(path)]) == 1
    assert f"{path}:1:19: error E100" in capsys.readouterr().err
    assert path.read_text() == "on epoch_end when do stop\n"


def test_fmt_usage_errors(tmp_path, capsys):
    assert main(["fmt", str(tmp_path / "missing.cbd")]) == 2
    assert "no such file or folder" in capsys.readouterr().err


def test_fmt_filters_standard_input_to_standard_output():
    done = subprocess.run([sys.executable, "-m", "cbdsl", "fmt", "-"], input=UGLY,
                          capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, PRETTY), done.stderr


def test_the_pre_commit_hooks_run_check_and_fmt_check():
    hooks = (ROOT / ".pre-commit-hooks.yaml").read_text()
    assert "entry: cbdsl check" in hooks and "entry: cbdsl fmt --check" in hooks


def test_a_long_conditional_breaks_before_each_else():
    text = ("on epoch_end do set totals = value_of_the_metric if name in stateful_metrics else "
            "totals + value * size if name in totals else value * size_of_the_batch")
    assert format_source(text) == (
        "on epoch_end\n"
        "  do set totals = value_of_the_metric if name in stateful_metrics\n"
        "         else totals + value * size if name in totals\n"
        "         else value * size_of_the_batch\n")
