"""The checker: each diagnostic it can emit, rendered exactly; every error of a file collected;
imports, uses and rule libraries resolved from files."""

from __future__ import annotations

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cbdsl
from cbdsl.checker import CheckedProgram
from cbdsl.diagnostics import CODES, CbdslCheckError, CbdslSyntaxError
from cbdsl.dryrun import StubModel


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    # libraries are looked up next to the file (or the working directory) and on CBDSL_PATH
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CBDSL_PATH", raising=False)


def check_error(source) -> CbdslCheckError:
    with pytest.raises(CbdslCheckError) as info:
        cbdsl.check(source)
    return info.value


def rendered(source) -> str:
    return str(check_error(source))


def warnings_of(source) -> str:
    checked = cbdsl.check(source)
    assert checked.warnings == checked.diagnostics
    return "\n".join(d.render() for d in checked.diagnostics)


# One (source, rendered) pair per diagnostic, each a single finding.
CASES = {
    # ------------------------------------------------------------- E201
    "E201-unknown-event": (
        "on epoch_ned when val_loss stalls 5 do lr *= 0.2",
        "<string>:1:4: error E201: unknown event 'epoch_ned'\n"
        "1 | on epoch_ned when val_loss stalls 5 do lr *= 0.2\n"
        "       ^^^^^^^^^ did you mean 'epoch_end'?"),
    "E201-no-close-event": (
        "on whenever do stop",
        "<string>:1:4: error E201: unknown event 'whenever'\n"
        "1 | on whenever do stop\n"
        "       ^^^^^^^^ events: train_begin, train_end, epoch_begin, epoch_end, "
        "train_batch_begin, train_batch_end, test_begin, test_end, test_batch_begin, "
        "test_batch_end, predict_begin, predict_end, predict_batch_begin, predict_batch_end, "
        "metric_missing"),
    # ------------------------------------------------------------- E202
    "E202-unknown-function": (
        "on epoch_end when mx(val_loss, 1) > 2 do stop",
        "<string>:1:19: error E202: unknown function 'mx'\n"
        "1 | on epoch_end when mx(val_loss, 1) > 2 do stop\n"
        "                      ^^ did you mean 'max'?"),
    # ------------------------------------------------------------- E203
    "E203-too-many": (
        "on epoch_end when abs(val_loss, 2) > 2 do stop",
        "<string>:1:19: error E203: 'abs' takes 1 argument, 2 given\n"
        "1 | on epoch_end when abs(val_loss, 2) > 2 do stop\n"
        "                      ^^^^^^^^^^^^^^^^"),
    "E203-too-few": (
        "on epoch_end when max() > 2 do stop",
        "<string>:1:19: error E203: 'max' takes 1 or more arguments, 0 given\n"
        "1 | on epoch_end when max() > 2 do stop\n"
        "                      ^^^^^"),
    "E203-range": (
        "on epoch_end do lr = log(lr, 2, 3)",
        "<string>:1:22: error E203: 'log' takes 1 to 2 arguments, 3 given\n"
        "1 | on epoch_end do lr = log(lr, 2, 3)\n"
        "                         ^^^^^^^^^^^^^"),
    "E203-keyword": (
        "on epoch_end do lr = max(lr, default = 1)",
        "<string>:1:30: error E203: 'max' takes no keyword arguments\n"
        "1 | on epoch_end do lr = max(lr, default = 1)\n"
        "                                 ^^^^^^^^^^^"),
    "E203-number-needed": (
        'on epoch_end do lr = sqrt("x")',
        "<string>:1:27: error E203: 'sqrt' needs numbers, got a str\n"
        '1 | on epoch_end do lr = sqrt("x")\n'
        "                              ^^^"),
    "E203-table-needed": (
        "on epoch_end do lr = lookup(3, epoch)",
        "<string>:1:29: error E203: 'lookup' needs a table first, got a int\n"
        "1 | on epoch_end do lr = lookup(3, epoch)\n"
        "                                ^ a table is written {3: 0.05, 6: 0.01}"),
    "E203-use-positional": (
        "callback a(p = 1) { on epoch_end do stop }\nuse a(1, 2)",
        "<string>:2:1: error E203: 'a' takes 1 argument, 2 given\n"
        "2 | use a(1, 2)\n"
        "    ^^^^^^^^^^^"),
    # ------------------------------------------------------------- E204
    "E204-fractional-patience": (
        "on epoch_end when val_loss stalls 2.5 do lr *= 0.2",
        "<string>:1:35: error E204: the patience of 'stalls' must be an integer, got 2.5\n"
        "1 | on epoch_end when val_loss stalls 2.5 do lr *= 0.2\n"
        "                                      ^^^"),
    "E204-whole-float-patience": (
        "on epoch_end when val_loss stalls 3.0 do stop",
        "<string>:1:35: error E204: the patience of 'stalls' must be an integer, got 3.0\n"
        "1 | on epoch_end when val_loss stalls 3.0 do stop\n"
        "                                      ^^^ use 3"),
    "E204-infinite-patience": (
        "on epoch_end when val_loss stalls -inf do stop",
        "<string>:1:35: error E204: the patience of 'stalls' must be an integer, got -inf\n"
        "1 | on epoch_end when val_loss stalls -inf do stop\n"
        "                                      ^^^^"),
    "E204-string-patience-param": (
        'param p = "five"\non epoch_end when val_loss stalls p do stop',
        "<string>:2:35: error E204: the patience of 'stalls' must be an integer, got 'five'\n"
        "2 | on epoch_end when val_loss stalls p do stop\n"
        "                                      ^"),
    "E204-every-zero": (
        "on epoch_end every 0 do stop",
        "<string>:1:20: error E204: every must be at least 1, got 0\n"
        "1 | on epoch_end every 0 do stop\n"
        "                       ^"),
    "E204-negative-after": (
        "on epoch_end after -1 do stop",
        "<string>:1:20: error E204: after must not be negative, got -1\n"
        "1 | on epoch_end after -1 do stop\n"
        "                       ^^"),
    "E204-bool-cooldown": (
        "on epoch_end when val_loss stalls 3 do cooldown true",
        "<string>:1:49: error E204: cooldown must be an integer, got True\n"
        "1 | on epoch_end when val_loss stalls 3 do cooldown true\n"
        "                                                    ^^^^"),
    # ------------------------------------------------------------- E205
    "E205-lr-in-predict": (
        "on predict_end do lr = 0.1",
        "<string>:1:19: error E205: 'assigning the learning rate' is not allowed in "
        "predict_end\n"
        "1 | on predict_end do lr = 0.1\n"
        "                      ^^^^^^^^ the learning rate is set in train events (train_*, "
        "epoch_*, train_batch_*)"),
    "E205-stop-at-train-end": (
        "on train_end do stop",
        "<string>:1:17: error E205: 'stop' is not allowed in train_end\n"
        "1 | on train_end do stop\n"
        "                    ^^^^ stop in epoch or batch events"),
    "E205-cooldown-without-stalls": (
        "on epoch_end do cooldown 2",
        "<string>:1:17: error E205: 'cooldown' needs a 'stalls' predicate in the same rule\n"
        "1 | on epoch_end do cooldown 2\n"
        "                    ^^^^^^^^^^ or name one: `cooldown N of TRACKER`"),
    "E223-negative-learning-rate": (
        "on epoch_end do lr = -1",
        "<string>:1:22: error E223: the learning rate must be finite and not negative, got -1\n"
        "1 | on epoch_end do lr = -1\n"
        "                         ^^"),
    "E223-constant-past-the-float-range": (
        "on epoch_end when 10 ** 10 ** 10 > 1 do stop",
        "<string>:1:19: error E223: this constant is beyond the float range (it would be inf)\n"
        "1 | on epoch_end when 10 ** 10 ** 10 > 1 do stop\n"
        "                      ^^^^^^^^^^^^^^ write inf, or a smaller number"),
    "E221-integer-format-of-a-float-metric": (
        'on epoch_end do print "{loss:03d}"',
        "<string>:1:23: error E221: template field '{loss:03d}': format 'd' takes an integer; "
        "'loss' is a number (Keras logs metrics as floats)\n"
        '1 | on epoch_end do print "{loss:03d}"\n'
        "                          ^^^^^^^^^^^^ show it rounded with {loss:03.0f}"),
    "E221-string-ordered-with-a-number": (
        'on epoch_end when epoch < "a" do stop',
        "<string>:1:19: error E221: '<' compares two numbers or two strings, not a string and "
        "a number\n"
        '1 | on epoch_end when epoch < "a" do stop\n'
        "                      ^^^^^^^^^^^"),
    "E221-minus-a-string": (
        'on epoch_end do log x = -"a"',
        "<string>:1:25: error E221: '-' needs a number, not a str\n"
        '1 | on epoch_end do log x = -"a"\n'
        "                            ^^^^"),
    "E221-string-grown-by-a-number": (
        'var s = "a"\non epoch_end do set s += 1',
        "<string>:2:17: error E221: '+' joins two strings, got str and int\n"
        "2 | on epoch_end do set s += 1\n"
        "                    ^^^^^^^^^^ make text with a template: fill(\"{x}\")"),
    "E221-initial-value-outside-the-domain": (
        'var x = int("a")\non epoch_end do log y = x',
        "<string>:1:9: error E221: int('a') fails: invalid literal for int() with base 10: "
        "'a'\n"
        '1 | var x = int("a")\n'
        "            ^^^^^^^^"),
    "E221-tracker-best-before-its-first-check": (
        "on epoch_end when loss stalls 2 as w do stop\non train_end do log x = w.best * 2",
        "<string>:2:25: error E221: '*' needs values, and 'w.best' is none until the tracker's "
        "first check\n"
        "2 | on train_end do log x = w.best * 2\n"
        "                            ^^^^^^ guard it: `when w.best != none and ...`, or write "
        "`w.best if w.best != none else 0`"),
    "E215-format-width-past-the-bound": (
        'on epoch_end do print "{loss:>1000000000}"',
        "<string>:1:23: error E215: template field '{loss:>1000000000}': the width "
        "1,000,000,000 of '>1000000000' is past 1000\n"
        '1 | on epoch_end do print "{loss:>1000000000}"\n'
        "                          ^^^^^^^^^^^^^^^^^^^^ fields are plain names with an optional "
        "format spec: {val_loss:.4f}"),
    "E206-cooldown-of-unknown-tracker": (
        "on epoch_end when loss stalls 2 as plateau do stop\non epoch_end do cooldown 2 of platea",
        "<string>:2:31: error E206: no tracker named 'platea'\n"
        "2 | on epoch_end do cooldown 2 of platea\n"
        "                                  ^^^^^^ did you mean 'plateau'?"),
    "E205-cooldown-of-improves": (
        "on epoch_end when loss improves as top do stop\non epoch_end do cooldown 2 of top",
        "<string>:2:31: error E205: 'top' is an 'improves' tracker; 'cooldown' holds a "
        "'stalls' one\n"
        "2 | on epoch_end do cooldown 2 of top\n"
        "                                  ^^^"),
    "E205-tracker-without-counter": (
        "on test_begin when val_loss stalls 3 do print 'x'",
        "<string>:1:20: error E205: 'stalls' needs a counter; test_begin has none\n"
        "1 | on test_begin when val_loss stalls 3 do print 'x'\n"
        "                       ^^^^^^^^^^^^^^^^^"),
    # ------------------------------------------------------------- E206
    "E206-undefined-state-variable": (
        "var hits = 0\non epoch_end when hits > 0 do set hit += 1",
        "<string>:2:35: error E206: no state variable named 'hit'\n"
        "2 | on epoch_end when hits > 0 do set hit += 1\n"
        "                                      ^^^ did you mean 'hits'?"),
    "E206-undeclared-state-variable": (
        "on epoch_end do set x = 1",
        "<string>:1:21: error E206: no state variable named 'x'\n"
        "1 | on epoch_end do set x = 1\n"
        "                        ^ declare it with `var x = 0`"),
    "E206-unknown-tracker-field-owner": (
        "on epoch_end when val_loss stalls 3 as plateau and plateu.wait > 1 do stop",
        "<string>:1:52: error E206: no tracker named 'plateu'\n"
        "1 | on epoch_end when val_loss stalls 3 as plateau and plateu.wait > 1 do stop\n"
        "                                                       ^^^^^^ did you mean 'plateau'?"),
    "E206-restore-of-unknown-tracker": (
        "on epoch_end when val_loss stalls 3 as s do restore best weights of t",
        "<string>:1:69: error E206: no tracker named 't'\n"
        "1 | on epoch_end when val_loss stalls 3 as s do restore best weights of t\n"
        "                                                                        ^"),
    "E206-restore-which": (
        "on epoch_end do restore best weights",
        "<string>:1:17: error E206: which best weights? name the tracker: "
        "`restore best weights of NAME`\n"
        "1 | on epoch_end do restore best weights\n"
        "                    ^^^^^^^^^^^^^^^^^^^^ give the predicate a name with `as NAME`"),
    "E206-no-callback": (
        "callback shrink() { on epoch_end do stop }\nuse shrnk()",
        "<string>:2:5: error E206: no callback named 'shrnk'\n"
        "2 | use shrnk()\n"
        "        ^^^^^ did you mean 'shrink'?"),
    # ------------------------------------------------------------- E207
    "E207-same-priority": (
        "on epoch_end when val_loss stalls 5 do lr *= 0.2\n"
        "on epoch_end every 10 do lr = 0.01",
        "<string>:2:26: error E207: two rules write lr at epoch_end in no declared order\n"
        "2 | on epoch_end every 10 do lr = 0.01\n"
        "                             ^^^^^^^^^ give one rule a priority, or merge the rules\n"
        "<string>:1:40: note: the other write is here"),
    "E207-equal-explicit-priorities": (
        "on epoch_end priority 2 do log k = 1\non epoch_end priority 2 do log k = 2",
        "<string>:2:28: error E207: two rules write logs['k'] at epoch_end in no declared "
        "order\n"
        "2 | on epoch_end priority 2 do log k = 2\n"
        "                               ^^^^^^^^^ give one rule a priority, or merge the rules\n"
        "<string>:1:28: note: the other write is here"),
    "E207-event-alias": (
        "on train_batch_end do lr = 1\non batch_end do lr = 2",
        "<string>:2:17: error E207: two rules write lr at train_batch_end in no declared order\n"
        "2 | on batch_end do lr = 2\n"
        "                    ^^^^^^ give one rule a priority, or merge the rules\n"
        "<string>:1:23: note: the other write is here"),
    "E207-two-used-callbacks": (
        "callback a() { on epoch_end do lr = 0.1 }\n"
        "callback b() { on epoch_end do lr = 0.2 }\n"
        "use a()\nuse b()",
        "<string>:4:1: error E207: 'a' and 'b' both write lr at epoch_end\n"
        "4 | use b()\n"
        "    ^^^^^^^ the later callback in the list would win silently: keep one writer per "
        "target and event, or order them: `use X(...) priority 1` runs X before the file's "
        "rules"),
    # ------------------------------------------------------------- E208
    "E208-unknown-target": (
        "on epoch_end do learn_rate = 0.1",
        "<string>:1:17: error E208: cannot assign to 'learn_rate'\n"
        "1 | on epoch_end do learn_rate = 0.1\n"
        "                    ^^^^^^^^^^ did you mean 'learning_rate'?"),
    "E208-state-variable": (
        "var hits = 0\non epoch_end when hits > 1 do hits = 1",
        "<string>:2:31: error E208: cannot assign to 'hits'\n"
        "2 | on epoch_end when hits > 1 do hits = 1\n"
        "                                  ^^^^ state variables are written with "
        "`set hits = ...`"),
    # ------------------------------------------------------------- E209
    "E209-callback-twice": (
        "callback a() { on epoch_end do stop }\ncallback a() { on epoch_end do stop }",
        "<string>:2:10: error E209: callback 'a' is defined twice\n"
        "2 | callback a() { on epoch_end do stop }\n"
        "             ^\n"
        "<string>:1:10: note: first defined here"),
    "E209-param-twice": (
        "param p = 1\nparam p = 2\non epoch_end when p > 1 do stop",
        "<string>:2:7: error E209: parameter 'p' is declared twice\n"
        "2 | param p = 2\n"
        "          ^"),
    "E209-variable-twice": (
        "var v = 1\nvar v = 2\non epoch_end when v > 0 do stop",
        "<string>:2:5: error E209: state variable 'v' is declared twice\n"
        "2 | var v = 2\n"
        "        ^"),
    "E209-tracker-twice": (
        "on epoch_end when val_loss stalls 3 as s do stop\n"
        "on epoch_end when val_auc improves as s do print 'x'",
        "<string>:2:39: error E209: 's' is already defined\n"
        "2 | on epoch_end when val_auc improves as s do print 'x'\n"
        "                                          ^"),
    # ------------------------------------------------------------- E222
    "E222-unknown-effect": (
        "on epoch_end do progres.update(1)",
        "<string>:1:17: error E222: unknown effect 'progres.update'\n"
        "1 | on epoch_end do progres.update(1)\n"
        "                    ^^^^^^^^^^^^^^^^^ did you mean 'progress.update'?"),
    # ------------------------------------------------------------- E210
    "E210-unknown-option": (
        "on epoch_end when val_loss stalls 3 with patience = 2 do stop",
        "<string>:1:42: error E210: 'stalls' has no option 'patience'\n"
        "1 | on epoch_end when val_loss stalls 3 with patience = 2 do stop\n"
        "                                             ^^^^^^^^ options: mode, min_delta, "
        "baseline, weights, only, keep"),
    "E210-option-did-you-mean": (
        "on epoch_end when val_auc improves with min_detla = 0.1 do stop",
        "<string>:1:41: error E210: 'improves' has no option 'min_detla'\n"
        "1 | on epoch_end when val_auc improves with min_detla = 0.1 do stop\n"
        "                                            ^^^^^^^^^ did you mean 'min_delta'?"),
    "E210-tracker-field": (
        "on epoch_end when val_loss stalls 3 as s and s.bst > 1 do stop",
        "<string>:1:48: error E210: trackers have no field 'bst'\n"
        "1 | on epoch_end when val_loss stalls 3 as s and s.bst > 1 do stop\n"
        "                                                   ^^^ did you mean 'best'?"),
    # ------------------------------------------------------------- E211
    "E211-bad-mode": (
        'on epoch_end when val_auc stalls 3 with mode = "maxx" do stop',
        "<string>:1:48: error E211: mode must be 'min', 'max' or 'auto', got 'maxx'\n"
        '1 | on epoch_end when val_auc stalls 3 with mode = "maxx" do stop\n'
        "                                                   ^^^^^^ did you mean 'max'?"),
    "E211-mode-not-a-string": (
        "on epoch_end when val_auc stalls 3 with mode = 1 do stop",
        "<string>:1:48: error E211: mode must be 'min', 'max' or 'auto', got 1\n"
        "1 | on epoch_end when val_auc stalls 3 with mode = 1 do stop\n"
        "                                                   ^"),
    "E211-option-type": (
        'on epoch_end when val_loss stalls 3 with min_delta = "a" do stop',
        "<string>:1:54: error E211: option 'min_delta' takes a number, not a str\n"
        '1 | on epoch_end when val_loss stalls 3 with min_delta = "a" do stop\n'
        "                                                         ^^^"),
    "E211-weights-option": (
        "on epoch_end when val_loss stalls 3 with weights = 1 as s do restore best weights",
        "<string>:1:52: error E211: option 'weights' takes true or false, not a int\n"
        "1 | on epoch_end when val_loss stalls 3 with weights = 1 as s do restore best weights\n"
        "                                                       ^"),
    "E211-weights-file-name": (
        'on epoch_end do save weights "w.h5"',
        "<string>:1:30: error E211: a weights file name must end in .weights.h5 "
        "(as Keras requires)\n"
        '1 | on epoch_end do save weights "w.h5"\n'
        "                                 ^^^^^^"),
    # ------------------------------------------------------------- E212
    "E212-unknown-param-did-you-mean": (
        "callback shrink(patience = 5) { on epoch_end when val_loss stalls patience do stop }\n"
        "use shrink(patienc = 3)",
        "<string>:2:12: error E212: 'shrink' has no parameter 'patienc'\n"
        "2 | use shrink(patienc = 3)\n"
        "               ^^^^^^^ did you mean 'patience'?"),
    "E212-missing-required": (
        "callback save_it(path: str) { on epoch_end do save model path }\nuse save_it()",
        "<string>:2:1: error E212: 'save_it' needs a value for 'path' (str)\n"
        "2 | use save_it()\n"
        "    ^^^^^^^^^^^^^"),
    "E212-given-twice": (
        "callback a(p = 1) { on epoch_end when p > 0 do stop }\nuse a(1, p = 2)",
        "<string>:2:10: error E212: parameter 'p' is given twice\n"
        "2 | use a(1, p = 2)\n"
        "             ^"),
    "E212-unknown-type": (
        'callback a(p: strng) { on epoch_end do print p }\nuse a("x")',
        "<string>:1:15: error E212: unknown parameter type 'strng'\n"
        '1 | callback a(p: strng) { on epoch_end do print p }\n'
        "                  ^^^^^ did you mean 'str'?"),
    # ------------------------------------------------------------- E213
    "E213-missing-import": (
        'import "common.cbd"\non epoch_end do stop',
        "<string>:1:8: error E213: cannot import 'common.cbd': no such file\n"
        '1 | import "common.cbd"\n'
        "           ^^^^^^^^^^^^"),
    # ------------------------------------------------------------- E214
    "E214-batch-in-epoch-event": (
        "on epoch_end when batch > 3 do stop",
        "<string>:1:19: error E214: 'batch' exists only in batch events, not in epoch_end\n"
        "1 | on epoch_end when batch > 3 do stop\n"
        "                      ^^^^^"),
    "E214-lr-in-predict": (
        "on predict_batch_end when lr > 1 do stop",
        "<string>:1:27: error E214: the learning rate is not read in predict events, not in "
        "predict_batch_end\n"
        "1 | on predict_batch_end when lr > 1 do stop\n"
        "                              ^^"),
    "E221-logs-compared-as-a-number": (
        "on epoch_end when logs > 1 do stop",
        "<string>:1:19: error E221: '>' compares numbers or strings, not a table\n"
        "1 | on epoch_end when logs > 1 do stop\n"
        "                      ^^^^"),
    # ------------------------------------------------------------- E215
    "E215-attribute-access": (
        'on epoch_end do print "{a.b}"',
        "<string>:1:23: error E215: template field '{a.b}': no tracker named 'a'\n"
        '1 | on epoch_end do print "{a.b}"\n'
        "                          ^^^^^^^ a dotted field reads a tracker: `X stalls 3 as "
        "plateau` gives {plateau.best_epoch}"),
    "E215-index-access": (
        'on epoch_end do save model "m{logs[0]}.keras"',
        "<string>:1:28: error E215: template field '{logs[0]}' must be a plain name or "
        "TRACKER.field\n"
        '1 | on epoch_end do save model "m{logs[0]}.keras"\n'
        "                               ^^^^^^^^^^^^^^^^^^ fields are plain names with an "
        "optional format spec: {val_loss:.4f}"),
    "E215-conversion": (
        'on epoch_end do warn "{epoch!r}"',
        "<string>:1:22: error E215: template field '{epoch!r}' uses a conversion; drop '!r'\n"
        '1 | on epoch_end do warn "{epoch!r}"\n'
        "                         ^^^^^^^^^^^ fields are plain names with an optional format "
        "spec: {val_loss:.4f}"),
    "E215-positional": (
        'on epoch_end do print "{}"',
        "<string>:1:23: error E215: template fields must be named: '{}' is not allowed\n"
        '1 | on epoch_end do print "{}"\n'
        "                          ^^^^ fields are plain names with an optional format spec: "
        "{val_loss:.4f}"),
    "E215-nested-spec": (
        'on epoch_end do print "{loss:{width}}"',
        "<string>:1:23: error E215: template field '{loss}' has a nested field in its format "
        "spec\n"
        '1 | on epoch_end do print "{loss:{width}}"\n'
        "                          ^^^^^^^^^^^^^^^^ fields are plain names with an optional "
        "format spec: {val_loss:.4f}"),
    "E215-unbalanced-brace": (
        'on epoch_end do print "{"',
        "<string>:1:23: error E215: malformed template: Single '{' encountered in format "
        "string\n"
        '1 | on epoch_end do print "{"\n'
        "                          ^^^ fields are plain names with an optional format spec: "
        "{val_loss:.4f}"),
    # ------------------------------------------------------------- E216
    "E216-call-without-hook-param": (
        "on epoch_end do call notify(logs)",
        "<string>:1:22: error E216: 'notify' is not a Python hook parameter\n"
        "1 | on epoch_end do call notify(logs)\n"
        "                         ^^^^^^ declare it as `NAME: python` in the callback's "
        "parameters; only the caller's Python code can fill it"),
    # ------------------------------------------------------------- E217
    "E217-batches-at-epoch-end": (
        "on epoch_end every 3 batches do stop",
        "<string>:1:22: error E217: 'every' counts 'batches', which epoch_end does not have\n"
        "1 | on epoch_end every 3 batches do stop\n"
        "                         ^^^^^^^ epoch counters exist in epoch and train events, "
        "batch counters in batch events, steps in train batch events"),
    "E217-no-counter-at-train-begin": (
        "on train_begin every 2 do stop",
        "<string>:1:16: error E217: 'every' counts a counter, which train_begin does not "
        "have\n"
        "1 | on train_begin every 2 do stop\n"
        "                   ^^^^^^^ epoch counters exist in epoch and train events, batch "
        "counters in batch events, steps in train batch events"),
    # ------------------------------------------------------------- E218
    "E218-option-twice": (
        'on epoch_end when val_loss stalls 3 with (mode = "min", mode = "max") do stop',
        "<string>:1:57: error E218: option 'mode' given twice\n"
        '1 | on epoch_end when val_loss stalls 3 with (mode = "min", mode = "max") do stop\n'
        "                                                            ^^^^"),
    # ------------------------------------------------------------- E219
    "E219-param-default-not-constant": (
        "param p = epoch + 1\non epoch_end when p > 1 do stop",
        "<string>:1:11: error E219: the default of 'p' must be a constant\n"
        "1 | param p = epoch + 1\n"
        "              ^^^^^^^^^ parameters are typed by constant defaults"),
    "E219-table-as-table-key": (
        "param p = {{1: 2}: 3}\non epoch_end when lookup(p, 1) > 1 do stop",
        "<string>:1:12: error E219: the default of 'p' must be a constant\n"
        "1 | param p = {{1: 2}: 3}\n"
        "               ^^^^^^ parameters are typed by constant defaults"),
    # ------------------------------------------------------------- E220
    "E220-auto-mode-needs-metric": (
        "on epoch_end when lr * 2 stalls 3 do stop",
        "<string>:1:19: error E220: mode 'auto' needs the subject to be a metric name\n"
        "1 | on epoch_end when lr * 2 stalls 3 do stop\n"
        '                      ^^^^^^ add `with mode = "min"` or `"max"`'),
    # ------------------------------------------------------------- E221
    "E221-lr-string": (
        'on epoch_end do lr = "fast"',
        "<string>:1:22: error E221: the learning rate must be a number, not a str\n"
        '1 | on epoch_end do lr = "fast"\n'
        "                         ^^^^^^"),
    "E221-condition-string": (
        'on epoch_end when "yes" do stop',
        "<string>:1:19: error E221: a condition must be true or false, not a str\n"
        '1 | on epoch_end when "yes" do stop\n'
        "                      ^^^^^"),
    "E221-tracker-as-value": (
        "on epoch_end when val_loss stalls 3 as s and s > 1 do stop",
        "<string>:1:46: error E221: 's' is a tracker; read one of its fields\n"
        "1 | on epoch_end when val_loss stalls 3 as s and s > 1 do stop\n"
        "                                                 ^ e.g. s.best, s.wait"),
    "E221-arithmetic-on-string": (
        'on epoch_end when "a" * 2 > 1 do stop',
        "<string>:1:19: error E221: '*' needs numbers, not a str\n"
        '1 | on epoch_end when "a" * 2 > 1 do stop\n'
        "                      ^^^"),
    "E221-template-not-string": (
        "on epoch_end do print 3",
        "<string>:1:23: error E221: a template must be a string\n"
        "1 | on epoch_end do print 3\n"
        "                          ^"),
    "E221-use-argument-type": (
        "callback a(factor = 0.5) { on epoch_end do lr *= factor }\nuse a(factor = \"x\")",
        "<string>:2:16: error E221: 'factor' takes float, got str\n"
        '2 | use a(factor = "x")\n'
        "                   ^^^"),
}


@pytest.mark.parametrize(("source", "expected"), list(CASES.values()), ids=list(CASES))
def test_rendered_diagnostic(source, expected):
    error = check_error(source)
    assert str(error) == expected
    (diag,) = error.diagnostics
    assert diag.code == expected.split(" error ")[1][:4]
    assert diag.code in CODES


def test_every_error_code_the_checker_emits_is_covered():
    emitted = {"E201", "E202", "E203", "E204", "E205", "E206", "E207", "E208", "E209", "E210",
               "E211", "E212", "E213", "E214", "E215", "E216", "E217", "E218", "E219", "E220",
               "E221", "E222", "E223"}
    covered = {name[:4] for name in CASES}
    assert emitted <= covered
    assert emitted == {c for c in CODES if c.startswith("E2")}


# ---------------------------------------------------------------- warnings


def test_w201_metric_name_close_to_a_known_one():
    assert warnings_of("on epoch_end when val_los > 1 do stop") == (
        "<string>:1:19: warning W201: 'val_los' is read as a log metric\n"
        "1 | on epoch_end when val_los > 1 do stop\n"
        "                      ^^^^^^^ did you mean 'val_loss'?")


def test_w201_offers_keras_names_for_abbreviated_metrics():
    # `val_acc` is one letter from `val_auc`, but Keras users mean the accuracy
    assert warnings_of("on epoch_end when val_acc > 0.9 do stop") == (
        "<string>:1:19: warning W201: 'val_acc' is read as a log metric\n"
        "1 | on epoch_end when val_acc > 0.9 do stop\n"
        "                      ^^^^^^^ did you mean 'val_accuracy'? Keras logs 'val_acc' only "
        "for a model compiled with metrics=['acc']")
    assert "did you mean 'accuracy'?" in warnings_of("on epoch_end when acc > 0.9 do stop")
    assert "'val_auc'" in warnings_of("on epoch_end when val_acu > 0.9 do stop")


def test_param_typo_in_a_stalls_count_is_an_error_at_check_time_reported_once():
    # the patience is needed before training starts: a name that is no parameter is refused
    # by `cbdsl check` (the compiler refused it before, after a clean check)
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check("param patience = 3\non epoch_end when val_loss stalls patienc do stop")
    found = [d for d in exc.value.diagnostics if d.code in ("E219", "W201")]
    assert [d.code for d in found] == ["E219", "W201"]
    assert found[0].render() == (
        "<string>:2:35: error E219: the patience of 'stalls' must be known before training "
        "starts\n"
        "2 | on epoch_end when val_loss stalls patienc do stop\n"
        "                                      ^^^^^^^ did you mean 'patience'?")


def test_w203_state_variable_never_read():
    assert warnings_of("var hits = 0\non epoch_end do set hits = 1") == (
        "<string>:1:5: warning W203: state variable 'hits' is never read\n"
        "1 | var hits = 0\n"
        "        ^^^^")


def test_warnings_alone_do_not_fail_the_check():
    checked = cbdsl.check("on epoch_end when val_acc_top > 1 do stop")
    assert isinstance(checked, CheckedProgram) and checked.diagnostics == []
    checked = cbdsl.check("on epoch_end when val_los > 1 do stop")
    assert [d.code for d in checked.warnings] == ["W201"]


def test_warnings_are_listed_with_the_errors():
    error = check_error("var hits = 0\non epoch_ned do set hits = 1")
    assert [(d.code, d.span.line) for d in error.diagnostics] == [("W203", 1), ("E201", 2)]
    assert [d.code for d in error.errors] == ["E201"]
    assert error.code == "E201"


# --------------------------------------------------------------- conflicts


def test_different_priorities_give_a_declared_order():
    checked = cbdsl.check("on epoch_end when val_loss stalls 5 do lr *= 0.2\n"
                          "on epoch_end priority 1 every 10 do lr = 0.01")
    assert checked.diagnostics == []
    cbdsl.check("on epoch_end priority -1 do lr = 1\non epoch_end priority 1 do lr = 2")


def test_writes_in_different_events_or_targets_do_not_conflict():
    cbdsl.check("on epoch_end do lr = 0.1\non epoch_begin do lr = 0.2\n"
                "on epoch_end do log a = 1\non epoch_end do log b = 1")


def test_one_rule_writing_a_target_twice_is_not_two_rules():
    cbdsl.check("on epoch_end do lr = 0.1, lr *= 0.5")
    cbdsl.check("on epoch_end, epoch_end do lr = 0.1")


def test_three_writers_give_two_conflicts():
    error = check_error("on epoch_end do lr = 1\non epoch_end do lr = 2\non epoch_end do lr = 3")
    assert [(d.code, d.span.line, d.related[0][2].line) for d in error.diagnostics] == [
        ("E207", 2, 1), ("E207", 3, 2)]


def test_compound_set_is_not_a_conflicting_write():
    cbdsl.check("var n = 0\non epoch_end do set n += 1\non epoch_end do set n += 2")
    error = check_error("var n = 0\non epoch_end when n > 0 do set n = 1\n"
                        "on epoch_end do set n = 2")
    assert error.diagnostics[0].message == (
        "two rules write 'n' at epoch_end in no declared order")


# ------------------------------------------------------ collecting everything


def test_all_errors_of_a_file_are_collected_in_source_order():
    source = ("on epoch_end do learn_rate = 0.1\n"        # E208, found by the action pass
              "on epoch_ned when val_loss > 1 do stop\n"  # E201, found by the event pass
              "on epoch_end when mx(val_loss) > 1 do stop\n")  # E202
    error = check_error(source)
    assert [(d.code, d.span.line, d.span.column) for d in error.diagnostics] == [
        ("E208", 1, 17), ("E201", 2, 4), ("E202", 3, 19)]
    assert str(error) == (
        "<string>:1:17: error E208: cannot assign to 'learn_rate'\n"
        "1 | on epoch_end do learn_rate = 0.1\n"
        "                    ^^^^^^^^^^ did you mean 'learning_rate'?\n"
        "<string>:2:4: error E201: unknown event 'epoch_ned'\n"
        "2 | on epoch_ned when val_loss > 1 do stop\n"
        "       ^^^^^^^^^ did you mean 'epoch_end'?\n"
        "<string>:3:19: error E202: unknown function 'mx'\n"
        "3 | on epoch_end when mx(val_loss) > 1 do stop\n"
        "                      ^^ did you mean 'max'?")


def test_several_errors_in_one_rule_are_all_reported():
    error = check_error("on epoch_end every 0 when batch > abs() do lr = 'x', set y = 1")
    assert [d.code for d in error.diagnostics] == ["E204", "E214", "E203", "E221", "E206"]
    assert [d.span.column for d in error.diagnostics] == sorted(
        d.span.column for d in error.diagnostics)


def test_errors_inside_callback_definitions_are_found_even_if_unused():
    error = check_error("callback a() {\n  on epoch_ned do stop\n}")
    assert [(d.code, d.span.line) for d in error.diagnostics] == [("E201", 2)]


def test_an_unknown_event_does_not_cascade():
    # the rule's other parts are not judged against an event that does not exist
    error = check_error("on epoch_ned every 3 batches when batch > 1 do lr = 0.1")
    assert [d.code for d in error.diagnostics] == ["E201"]


def test_an_unknown_param_type_does_not_cascade_into_type_errors():
    error = check_error('callback a(p: strng) { on epoch_end do print p }\nuse a("x")')
    assert [d.code for d in error.diagnostics] == ["E212"]


# ------------------------------------------------------------ clean files


CLEAN = [
    "on epoch_end when val_loss stalls 5 do lr *= 0.2",
    "on epoch_end when val_loss stalls 12 and epoch > 0 do restore best weights, stop",
    "on train_batch_end when loss is not finite do stop",
    'on epoch_end every 5 do save model "ckpt/e{epoch:03d}.keras"',
    'on epoch_end every 2 epochs do save weights "w/e{epoch}.weights.h5"',
    "on train_batch_end every 100 steps do print \"step {step}: {loss:.4f}\"",
    "on epoch_begin before epoch 3 do lr = 0.06 * (epoch + 1) / 3",
    "on epoch_begin once at epoch 7 do lr = piecewise({0: 0.1, 5: 0.01}, epoch)",
    "on epoch_end after 10 epochs when val_accuracy improves with mode = max do log best_acc = 1",
    "on epoch_end when val_loss stalls 3 with (min_delta = 1e-4, baseline = 0.5) "
    "as plateau and plateau.best < 1 do lr = max(lr * 0.5, 1e-6), cooldown 2",
    "on epoch_end when val_loss stalls 3 with weights = true as s "
    "do restore best weights of s, stop",
    "var hits = 0\non epoch_end when loss is nan or hits > 2 do set hits += 1",
    "param patience = 3\non epoch_end when metric(\"val_loss\") stalls patience do stop",
    "callback shrink(monitor = \"val_loss\", factor = 0.2, patience = 5, cooldown = 0) {\n"
    "    \"Shrink the learning rate when the monitored metric stops improving.\"\n"
    "    on epoch_end when metric(monitor) stalls patience do lr *= factor, cooldown cooldown\n"
    "}\nuse shrink(patience = 3)",
    "callback hooked(notify: python) { on epoch_end do call notify(logs, epoch) }",
]


@pytest.mark.parametrize("source", CLEAN)
def test_clean_files_yield_no_diagnostics(source):
    checked = cbdsl.check(source)
    assert checked.diagnostics == []


def test_shipped_demo_policy_is_clean():
    from cbdsl.cli import demo_policy_text

    assert cbdsl.check(demo_policy_text()).diagnostics == []


def test_checked_program_exposes_definitions_and_instances():
    checked = cbdsl.check("param patience = 3\n"
                          "callback a(p = 1) { on epoch_end when p > 0 do stop }\n"
                          "use a(p = 2)\n"
                          "on epoch_end when val_loss stalls patience do lr *= 0.5")
    assert list(checked.definitions) == ["a"]
    # the file's own rules are the first callback, named after the file ("policy" for text)
    assert [i.label for i in checked.instances] == ["policy", "a"]
    assert checked.main.params["patience"].default == 3
    assert checked.main.params["patience"].type == "int"
    assert checked.instances[1].args["p"] == cbdsl.parse("var x = 2").items[0].value


def test_check_takes_a_parsed_program_and_a_path(tmp_path):
    program = cbdsl.parse("on epoch_end do stop")
    assert cbdsl.check(program).program is program
    checked = cbdsl.check(program)
    assert cbdsl.check(checked) is checked
    path = tmp_path / "policy.cbd"
    path.write_text("on epoch_ned do stop\n")
    assert rendered(path) == (
        f"{path}:1:4: error E201: unknown event 'epoch_ned'\n"
        "1 | on epoch_ned do stop\n"
        "       ^^^^^^^^^ did you mean 'epoch_end'?")


# ------------------------------------------------------------- imports


def test_import_brings_rules_params_and_definitions(tmp_path):
    (tmp_path / "common.cbd").write_text(
        "param patience = 4\n"
        "callback guard() { on train_batch_end when loss is not finite do stop }\n"
        "on epoch_end when val_loss stalls patience do lr *= 0.5\n")
    policy = tmp_path / "policy.cbd"
    policy.write_text('import "common.cbd"\nuse guard()\n')
    checked = cbdsl.check(policy)
    assert checked.main.params["patience"].default == 4
    assert len(checked.main.rules) == 1
    assert [i.label for i in checked.instances] == ["policy", "guard"]


def test_import_is_relative_to_the_importing_file(tmp_path):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "a.cbd").write_text('import "b.cbd"\n')
    (tmp_path / "lib" / "b.cbd").write_text("on epoch_end do stop\n")
    policy = tmp_path / "policy.cbd"
    policy.write_text('import "lib/a.cbd"\n')
    assert len(cbdsl.check(policy).main.rules) == 1


def test_import_of_a_missing_file(tmp_path):
    policy = tmp_path / "policy.cbd"
    policy.write_text('on epoch_end do stop\nimport "lib/nothing.cbd"\n')
    assert rendered(policy) == (
        f"{policy}:2:8: error E213: cannot import 'lib/nothing.cbd': no such file\n"
        '2 | import "lib/nothing.cbd"\n'
        "           ^^^^^^^^^^^^^^^^^")


def test_import_cycle(tmp_path):
    a, b = tmp_path / "a.cbd", tmp_path / "b.cbd"
    a.write_text('# a\n\nimport "b.cbd"\non epoch_end do stop\n')
    b.write_text('on epoch_end when loss > 1 do print "b"\nimport "a.cbd"\n')
    assert rendered(a) == (
        f"{b}:2:1: error E213: import cycle: 'a.cbd' imports itself\n"
        '2 | import "a.cbd"\n'
        "    ^^^^^^^^^^^^^^\n"
        f"{a}:3:1: note: the cycle starts here")


def test_a_file_importing_itself(tmp_path):
    a = tmp_path / "a.cbd"
    a.write_text('on epoch_end do stop\nimport "a.cbd"\n')
    error = check_error(a)
    assert [(d.code, d.path, d.span.line) for d in error.diagnostics] == [("E213", str(a), 2)]
    assert error.diagnostics[0].related == (
        ("the cycle starts here", str(a), error.diagnostics[0].span),)


def test_errors_in_an_imported_file_name_that_file(tmp_path):
    (tmp_path / "common.cbd").write_text("on epoch_end do stop\non epoch_end do lr = 'x'\n")
    (tmp_path / "broken.cbd").write_text("on epoch_end do\n")
    policy = tmp_path / "policy.cbd"
    policy.write_text('import "common.cbd"\n')
    common = tmp_path / "common.cbd"
    assert rendered(policy) == (
        f"{common}:2:22: error E221: the learning rate must be a number, not a str\n"
        "2 | on epoch_end do lr = 'x'\n"
        "                         ^^^")
    policy.write_text('import "broken.cbd"\n')
    error = check_error(policy)
    assert [(d.code, d.path) for d in error.diagnostics] == [
        ("E102", str(tmp_path / "broken.cbd"))]


# ------------------------------------------------------- rule libraries


@pytest.fixture
def team_library(tmp_path):
    """A library folder `team/` with `x.cbd` defining `callback x(...)`, in its own root."""
    root = tmp_path / "libs"
    (root / "team").mkdir(parents=True)
    (root / "team" / "x.cbd").write_text(
        "callback x(patience = 3, factor = 0.5, monitor = \"val_loss\") {\n"
        "    \"Shrink the learning rate on a plateau.\"\n"
        "    on epoch_end when metric(monitor) stalls patience do lr *= factor\n"
        "}\n")
    (root / "team" / "more.cbd").write_text(
        "callback stopper(patience = 10) {\n"
        "    on epoch_end when val_loss stalls patience do stop\n"
        "}\n")
    # a broken file breaks no lookup that does not need it
    (root / "team" / "broken.cbd").write_text("callback broken() { on epoch_ned do stop }\n")
    return root


def test_use_resolves_a_library_on_cbdsl_path(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    checked = cbdsl.check("use team.x(patience = 2)\nuse team.stopper(4)")
    x, stopper = checked.instances
    assert x.label == "team.x" and x.definition.doc == "Shrink the learning rate on a plateau."
    assert x.definition.path == str(team_library / "team" / "x.cbd")
    assert list(x.args) == ["patience"]
    # a rule found in another file of the folder
    assert stopper.definition.name == "stopper" and list(stopper.args) == ["patience"]


def test_use_resolves_a_library_next_to_the_file(team_library):
    policy = team_library / "policy.cbd"
    policy.write_text("use team.x(factor = 0.1)\n")
    (instance,) = cbdsl.check(policy).instances
    assert instance.definition.name == "x" and list(instance.args) == ["factor"]


def test_use_of_unknown_library_param_with_did_you_mean(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    assert rendered("use team.x(patienc = 2)") == (
        "<string>:1:12: error E212: 'team.x' has no parameter 'patienc'\n"
        "1 | use team.x(patienc = 2)\n"
        "               ^^^^^^^ did you mean 'patience'?")


def test_use_with_wrong_argument_count_and_type(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    assert rendered('use team.x(1, 0.5, "val_loss", 4)') == (
        "<string>:1:1: error E203: 'team.x' takes 3 arguments, 4 given\n"
        '1 | use team.x(1, 0.5, "val_loss", 4)\n'
        "    ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^")
    assert rendered("use team.x(monitor = 3)") == (
        "<string>:1:22: error E221: 'monitor' takes str, got int\n"
        "1 | use team.x(monitor = 3)\n"
        "                         ^")


def test_use_of_unknown_library(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    assert rendered("use tema.x()") == (
        "<string>:1:5: error E206: no rule library named 'tema'\n"
        "1 | use tema.x()\n"
        "        ^^^^ did you mean 'team'?")
    assert rendered("use zzz.x()") == (
        "<string>:1:5: error E206: no rule library named 'zzz'\n"
        "1 | use zzz.x()\n"
        "        ^^^ libraries found: keras, team")


def test_use_of_unknown_rule_in_a_library(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    assert rendered("use team.stoper()") == (
        "<string>:1:10: error E206: library 'team' has no rule 'stoper'\n"
        "1 | use team.stoper()\n"
        "             ^^^^^^ did you mean 'stopper'?")
    assert rendered("use team.y()") == (
        "<string>:1:10: error E206: library 'team' has no rule 'y'\n"
        "1 | use team.y()\n"
        "             ^ it has: broken, more, x")


def test_unknown_rule_hint_names_rules_as_cbdsl_list_does(tmp_path, monkeypatch):
    (tmp_path / "acme").mkdir()
    (tmp_path / "acme" / "strict_stop.cbd").write_text(
        "callback StrictStop(patience = 2) { on epoch_end when val_loss stalls patience do stop }")
    (tmp_path / "acme" / "patient_stop.cbd").write_text(
        "callback PatientStop(patience = 9) { on epoch_end when val_loss stalls patience do stop }")
    monkeypatch.setenv("CBDSL_PATH", str(tmp_path))
    assert rendered("use acme.warmup()").endswith("it has: patient_stop, strict_stop")
    assert rendered("use acme.strict_stp()").endswith("did you mean 'strict_stop'?")
    assert rendered("use acme.StrictStp()").endswith("did you mean 'strict_stop'?")


def test_library_without_cbdsl_path_is_not_found(team_library):
    error = check_error("use team.x()")
    assert error.diagnostics[0].message == "no rule library named 'team'"


def test_errors_in_a_used_library_rule_name_the_library_file(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    broken = team_library / "team" / "broken.cbd"
    assert rendered("\nuse team.broken()") == (
        f"{broken}:1:24: error E201: unknown event 'epoch_ned'\n"
        "1 | callback broken() { on epoch_ned do stop }\n"
        "                           ^^^^^^^^^ did you mean 'epoch_end'?\n"
        "<string>:2:1: note: used here")


def test_two_used_library_callbacks_fighting_over_lr(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    error = check_error("use team.x()\nuse team.x(patience = 5)")
    assert [(d.code, d.span.line) for d in error.diagnostics] == [("E207", 2)]
    assert error.diagnostics[0].message == (
        "'team.x' and 'team.x' both write lr at epoch_end")


def test_keras_library_is_always_known():
    error = check_error("use keras.no_such_rule_here()")
    (diag,) = error.diagnostics
    assert diag.message == "library 'keras' has no rule 'no_such_rule_here'"


def test_syntax_error_in_a_library_is_reported(team_library, monkeypatch):
    monkeypatch.setenv("CBDSL_PATH", str(team_library))
    (team_library / "team" / "x.cbd").write_text("callback x( {\n")
    x = team_library / "team" / "x.cbd"
    assert rendered("use team.x()") == (
        f"{x}:1:13: error E100: unexpected '{{'; expected ')' or a name\n"
        "1 | callback x( {\n"
        "                ^\n"
        "<string>:1:1: note: used here")


def test_check_raises_syntax_errors_before_checking():
    with pytest.raises(CbdslSyntaxError):
        cbdsl.check("on epoch_ned do")


# ------------------------------ one generic walk, one definition of "known before training"

def test_a_variable_read_only_by_post_is_read():
    # every analysis walks the same children: `post`'s body and URL are read like any operand
    checked = cbdsl.check('var body = {"a": 1}\n'
                          'on epoch_end do post json body to "http://127.0.0.1:9/"')
    assert [d.code for d in checked.diagnostics] == []


def test_a_state_variable_that_starts_from_the_run_is_refused_by_check():
    # the compiler needs initial values before training starts; `cbdsl check` says so first
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check("var x = epoch\non epoch_end do set x = epoch, print \"{x}\"")
    (d,) = exc.value.diagnostics
    assert (d.code, d.span.line, d.span.column) == ("E219", 1, 9)
    assert "the initial value of 'x' must be known before training starts" in d.message


@pytest.mark.parametrize("source,what", [
    ("on epoch_end every epochs do stop", "every"),
    ("on epoch_end priority loss do stop", "priority"),
    ("on epoch_end when loss stalls 2 with min_delta = loss do stop", "option 'min_delta'"),
    ("callback C(p = 1) { on epoch_end every p do stop }\nuse C(p = epoch)", "argument 'p'"),
])
def test_values_the_compiler_needs_before_training_are_checked(source, what):
    with pytest.raises(CbdslCheckError, match=f"{what} must be known before training starts"):
        cbdsl.check(source)


def test_values_computed_from_parameters_are_known_before_training():
    checked = cbdsl.check("param p = 2\nvar x = max(p, 3) * 2\non epoch_end every p + 1 "
                          "do set x = x + 1, print \"{x}\"")
    (cb,) = cbdsl.compile(checked)
    assert cb.x == 6


# ---------------------------------------------------------------- requirements at use


def test_a_requirement_the_use_line_fails_is_e302_there_with_a_note():
    source = ("callback Shrink(factor = 0.1, patience = 2) {\n"
              '  require factor < 1.0 else "factor must be below 1, got {factor:.1f}"\n'
              "  on epoch_end when loss stalls patience do lr *= factor\n}\n"
              "use Shrink(factor = 2)\n")
    error = check_error(source)
    (diag,) = error.diagnostics
    assert (diag.code, diag.message, diag.span.line) == (
        "E302", "factor must be below 1, got 2.0", 5)
    assert diag.related[0][0] == "required by 'Shrink' here" and diag.related[0][2].line == 2


@pytest.mark.parametrize(("use", "name", "arguments"), [
    ("use keras.reduce_lr_on_plateau(factor = 1.5)", "ReduceLROnPlateau", {"factor": 1.5}),
    ('use keras.backup_and_restore(backup_dir = "")', "BackupAndRestore", {"backup_dir": ""}),
    ('use keras.backup_and_restore(backup_dir = "b", save_freq = "batch")', "BackupAndRestore",
     {"backup_dir": "b", "save_freq": "batch"}),
])
def test_built_in_requirements_are_checked_at_the_use_line(use, name, arguments):
    import keras

    error = check_error(use)
    assert [d.code for d in error.diagnostics] == ["E302"]
    with pytest.raises(ValueError) as keras_s:  # what Keras's class raises, in its words
        getattr(keras.callbacks, name)(**arguments)
    assert str(keras_s.value) == error.diagnostics[0].message


@pytest.mark.parametrize("use", [
    "use keras.reduce_lr_on_plateau(factor = 0.5)",
    "param f = 2.0\nuse keras.reduce_lr_on_plateau(factor = f)",  # the run may bind f anew
    'use keras.tensorboard(log_dir = "logs", profile_batch = 2)',  # reads backend()
])
def test_requirements_the_check_cannot_decide_are_left_to_the_build(use):
    assert cbdsl.check(use).diagnostics == []


# ---------------------------------------------------------------- order across composition


def test_a_use_priority_orders_a_used_callback_against_the_file_s_rules():
    source = ('use keras.reduce_lr_on_plateau(monitor = "loss", patience = 1) priority 1\n'
              "on epoch_end when epoch == 3 do lr *= 0.5\n")
    checked = cbdsl.check(source)
    assert [(i.label, i.priority) for i in checked.instances] == [
        ("keras.reduce_lr_on_plateau", 1), ("policy", 0)]
    callbacks = cbdsl.compile(source)
    assert [type(cb).__name__ for cb in callbacks] == ["ReduceLROnPlateau", "Policy"]
    unordered = source.replace(" priority 1", "")
    assert [d.code for d in check_error(unordered).diagnostics] == ["E207"]
    named = check_error(source.replace("priority 1", "priority x"))
    assert "E204" in {d.code for d in named.diagnostics}


def test_writers_whose_filters_never_hold_together_do_not_conflict():
    warmup = ("param w = 5\n"
              "on epoch_begin before epoch w do lr = 0.01 * (epoch + 1) / w\n"
              "on epoch_begin from epoch w do lr = 0.01 * 0.9 ** (epoch - w)\n")
    assert cbdsl.check(warmup).diagnostics == []
    assert cbdsl.check("on epoch_end once at epoch 2 do lr = 0.1\n"
                       "on epoch_end once at epoch 3 do lr = 0.2\n").diagnostics == []
    assert cbdsl.check("on epoch_end before epoch 3 do lr = 0.1\n"
                       "on epoch_end after 3 epochs do lr = 0.2\n").diagnostics == []
    for overlapping in ("on epoch_end before epoch 4 do lr = 0.1\n"
                        "on epoch_end after 3 epochs do lr = 0.2\n",
                        "on epoch_end every 2 epochs do lr = 0.1\n"
                        "on epoch_end every 3 epochs do lr = 0.2\n",
                        "param a = 2\nparam b = 3\n"
                        "on epoch_end before epoch a do lr = 0.1\n"
                        "on epoch_end from epoch b do lr = 0.2\n"):  # b may be bound below a
        assert [d.code for d in check_error(overlapping).diagnostics] == ["E207"], overlapping


# ---------------------------------------------------------------- lists and tables


@pytest.mark.parametrize(("source", "message"), [
    ('var t = {}\non epoch_end do log x = lookup(keys(t), 1, 0)',
     "'lookup' needs a table first, got a list"),
    ('var t = {}\non epoch_end do log x = keys(t)["a"]',
     "a list is indexed by an integer, not a str"),
    ("on epoch_end do log x = epoch[0]", "only tables, lists and strings have entries, not an int"),
    ("on epoch_end when keys(logs) do stop", "a condition must be true or false, not a list"),
    ("var s = split(\"a,b\", \",\")\non epoch_end do set s[0] = 1",
     "'s' is not a table; only a table has entries to set"),
])
def test_lists_are_told_from_tables(source, message):
    assert message in [d.message for d in check_error(source).diagnostics]


def test_lists_go_where_lists_go():
    source = ('var t = {"b": 2, "a": 1}\n'
              "on epoch_end do for k in sorted(keys(t)) do (log [k] = t[k]), "
              'log n = len(split("a,b", ",")), log first = sorted(keys(t))[0]\n')
    assert cbdsl.check(source).diagnostics == []
    (cb,) = cbdsl.compile(source)
    logs = {}
    cb.on_epoch_end(0, logs)
    assert logs == {"a": 1, "b": 2, "n": 2, "first": "a"}


# ------------------------------------------------- typed tables and lists, optional values


@pytest.mark.parametrize(("source", "message"), [
    ('var t = {}\non epoch_end do set t[epoch] = 1, set t["a"] = 2, log k = sorted(keys(t))',
     "'sorted' orders numbers or strings, and this holds numbers and strings"),
    ('var t = {}\non epoch_end do set t["a"] = "x", log y = t["a"] + 1',
     "'+' needs numbers, not a str"),
    ('var t = {1: 0.1, 2: 0.2}\non epoch_end do log y = t["a"]',
     "this table's keys are integers, so a str key is never in it"),
    ('param b: float = none\non epoch_end when loss < b do stop',
     "'<' compares values, and 'b' is none unless the callback is given one (its default is "
     "none)"),
    ("var x = 0\non epoch_end do set x = none\non epoch_end do log y = x + 1",
     "'+' needs values, and 'x' may be none (a value set to it may be)"),
    ("var x = 0\non epoch_end do set x = none\non epoch_end do set x += 1",
     "'+=' needs a value, and 'x' may be none (a value set to it may be)"),
    ("param t = {1: 0.1}\non epoch_end do lr = lookup(t, epoch)",
     "the learning rate must be a number, and this is none where the table has no such entry"),
    ('on epoch_end when loss stalls 2 as w do stop\non train_end do print "{w.best:.3f}"',
     "template field '{w.best:.3f}': format 'f' takes a number, and 'w.best' is none until "
     "the tracker's first check"),
    ('var x = 0\non epoch_end do set x = loss\non epoch_end do print "{x:03d}"',
     "template field '{x:03d}': format 'd' takes an integer; 'x' is a number (Keras logs "
     "metrics as floats)"),
    ('on epoch_end do log y = -lookup({"a": 1}, "b")',
     "'-' needs a number, and this is none where the table has no such entry"),
    ('on epoch_end do log y = log(-1)', "log(-1) fails: math domain error"),
    # an exposed attribute's expression is checked as a rule's
    ("callback C(d = 0) {\n  expose x = d()\n  on epoch_end do stop\n}\nuse C()",
     "unknown function 'd'"),
    ("callback C() {\n  expose x = w.best + 1\n  on epoch_end when loss stalls 2 as w do stop\n}"
     "\nuse C()", "'+' needs values, and 'w.best' is none until the tracker's first check"),
    # a call of the wrong arity is typed by the plain result, and refused for its arity
    ("on epoch_end do lr = piecewise()", "'piecewise' takes 2 to 3 arguments, 0 given"),
    ("on epoch_end do cooldown lookup(weights = 5)", "'lookup' takes 2 to 3 arguments, 0 given"),
    # a guard holds until an action sets the variable to what may be none
    ("var x = 0\non epoch_begin do set x = none\n"
     "on epoch_end when x != none do set x = lookup({1: 2}, epoch), log y = x + 1",
     "'+' needs values, and 'x' may be none (a value set to it may be)"),
    # the names a loop binds have the types of what it goes through
    ('var t = {"a": "x"}\non epoch_end do for k, v in t do (log [k] = v + 1)',
     "'+' needs numbers, not a str"),
    ('on epoch_end do for k in keys({"a": 1}) do (log y = k * 2)', "'*' needs numbers, not a str"),
])
def test_typed_collections_and_optionals_are_checked(source, message):
    assert message in [d.message for d in check_error(source).diagnostics]


@pytest.mark.parametrize("source", [
    # the tracker's own predicate, true, has checked a value
    "on epoch_end when val_loss stalls 2 as w do log x = w.best * 2",
    # a guard on the left of `and`, in the rule's condition, or in a conditional
    "on epoch_end when loss stalls 2 as w do stop\n"
    "on train_end when w.best != none and w.best < 1 do log x = w.best * 2",
    "on epoch_end when loss stalls 2 as w do stop\n"
    "on train_end do log x = (w.best if w.best != none else 0) + 1",
    "on epoch_end when loss stalls 2 as w do stop\n"
    "on train_end when w.best == none or w.best < 1 do log x = 1",
    "on epoch_end when loss stalls 2 as w do stop\n"
    'on train_end when not (w.best == none) do print "{w.best:.3f}"',
    "param b: float = none\non epoch_end when b != none and loss < b do stop",
    "var x = 0\non epoch_begin do set x = none\n"
    "on epoch_end when x != none do set x = 3, log y = x + 1",
    "param t = {1: 0.1}\non epoch_end do lr = lookup(t, epoch, lr)",
    # a step table from 0 always has a step for a counter
    "on epoch_begin do lr = piecewise({0: 0.1, 5: 0.01}, epoch)",
    # one kind of key, sorted; a string that writes a number, as an integer
    'var t = {}\non epoch_end do set t[epoch] = loss, log k = sorted(keys(t))[0]',
    'on epoch_end do log n = int(split("2,4", ",")[1]) + 1',
    'on epoch_end do for i, x in split("a,b", ",") do (log [x] = i + 1)',
    # a table filled in a loop takes the loop's keys
    'var v = {}\non epoch_end do for name in keys(logs) do (set v[name] = lookup(logs, name, 0)), '
    'log n = len(sorted(keys(v)))',
])
def test_guarded_and_well_typed_values_pass(source):
    assert [d for d in cbdsl.check(source).diagnostics if d.severity == "error"] == []


def test_an_optional_guarded_then_used_runs():
    source = ("on epoch_end when loss stalls 5 as w do stop\n"
              "on epoch_end when w.best != none do log twice = w.best * 2\n"
              'on epoch_end do log n = int(split("2,4", ",")[1]) + 1')
    (cb,) = cbdsl.compile(source)
    logs = {"loss": 0.5}
    cb.on_epoch_end(0, logs)
    assert logs["twice"] == 1.0 and logs["n"] == 5


_KEYS = {"int": "epoch", "str": '"k"', "float": "loss"}


@given(st.lists(st.sampled_from(sorted(_KEYS)), min_size=1, max_size=4))
@settings(max_examples=40, deadline=None)
def test_sorted_keys_are_accepted_exactly_when_they_order(kinds):
    """Generated programs: a table written with keys of the drawn kinds; `sorted(keys(t))` is
    accepted exactly when the keys are all numbers or all strings, and then runs."""
    sets = ", ".join(f"set t[{_KEYS[k]}] = 1" for k in kinds)
    source = f"var t = {{}}\non epoch_end do {sets}, log n = len(sorted(keys(t)))"
    orders = len({k == "str" for k in kinds}) == 1
    errors = [d for d in cbdsl.check(source).diagnostics if d.severity == "error"] \
        if orders else check_error(source).diagnostics
    assert (errors == []) == orders
    if orders:
        (cb,) = cbdsl.compile(source)
        logs = {"loss": 0.25}
        cb.on_epoch_end(3, logs)
        assert logs["n"] == len({_KEYS[k] for k in kinds})


_USES = {"arithmetic": "log y = {v} * 2", "order": "log y = {v} < 1",
         "format": 'print "{{{v}:.3f}}"', "rate": "lr = {v}"}
_GUARDS = {  # how the using rule is guarded, and whether that makes `w.best` present
    "none": ("", False), "condition": ("when w.best != none", True),
    "negated": ("when not (w.best == none)", True),
    # `or` guards its own right side (accepted there), not the rule's actions
    "or": ("when w.best == none or w.best > 0", False),
    "own predicate": ("when loss stalls 3 as w", True),
    "other predicate": ("when val_loss stalls 3 as v", False),
}


@given(st.sampled_from(sorted(_USES)), st.sampled_from(sorted(_GUARDS)),
       st.lists(st.sampled_from([0.5, None, 0.25]), min_size=1, max_size=4))
@settings(max_examples=60, deadline=None)
def test_a_tracker_best_is_accepted_exactly_where_guarded_and_then_runs(use, guard, losses):
    """Generated programs: `w.best` used in one of four ways under one of six guards is
    accepted exactly when the guard makes it present, and an accepted program never raises
    anything but a CbdslError, whatever the losses (None: the metric is missing)."""
    condition, present = _GUARDS[guard]
    tracker = "" if guard == "own predicate" else "on epoch_end when loss stalls 3 as w do stop\n"
    action = _USES[use].format(v="w.best")
    source = f"{tracker}on epoch_end {condition} do {action}\n"
    found = [d.message for d in cbdsl.check(source).diagnostics if d.severity == "error"] \
        if present else [d.message for d in check_error(source).diagnostics]
    assert (found == []) == present, (source, found)
    if present:
        (cb,) = cbdsl.compile(source)
        cb.set_model(StubModel(0.1))
        for epoch, loss in enumerate(losses):
            logs = {} if loss is None else {"loss": loss, "val_loss": loss}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    cb.on_epoch_end(epoch, logs)
            except cbdsl.CbdslError:
                pass
