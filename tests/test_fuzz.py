"""Robustness: no input, however malformed, escapes `cbdsl.check` as anything but a CbdslError,
and every diagnostic it carries renders with a caret under its own line and column."""

from __future__ import annotations

import re
import time
from importlib import resources

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from programs import programs as grammar_programs

import cbdsl
from cbdsl import language
from cbdsl.checker import CheckedProgram
from cbdsl.diagnostics import CODES, CbdslCheckError, CbdslError, CbdslSyntaxError
from cbdsl.explain import explain
from cbdsl.fmt import format_source
from cbdsl.pythonize import pythonize
from cbdsl.syntax.parser import MAX_BRACKETS, MAX_BYTES, MAX_DEPTH, decode, read_source

FAST = settings(max_examples=250, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

SYNTAX_CODES = {"E100", "E101", "E102", "E103", "E104", "E105", "E106", "E213", "E218"}


@pytest.fixture(autouse=True, scope="module")
def _empty_working_directory(tmp_path_factory):
    # `use lib.x` looks for libraries in the working directory, `import` resolves from it, and
    # text ending in `.cbd` is read as a path: keep all of that inside an empty folder
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp_path_factory.mktemp("fuzz"))
        patch.delenv("CBDSL_PATH", raising=False)
        yield


# ------------------------------------------------------------------- oracle


def assert_well_formed(exc: CbdslError, text: str) -> None:
    """A CbdslError is complete: known codes, spans inside the text, carets where they say."""
    assert exc.diagnostics, "an error without diagnostics"
    assert any(d.severity == "error" for d in exc.diagnostics)
    if isinstance(exc, CbdslSyntaxError):
        assert len(exc.diagnostics) == 1 and exc.code in SYNTAX_CODES
    for d in exc.diagnostics:
        assert d.code in CODES, d
        rendered = d.render()
        head = rendered.split("\n", 1)[0]
        assert head.startswith(f"{d.location}: {d.severity} {d.code}: {d.message}")
        if d.span is None or d.source is None:
            continue
        lines = d.source.split("\n")
        assert 1 <= d.span.line <= len(lines), d
        assert d.span.column >= 1 and (d.span.end_line, d.span.end_column) >= (
            d.span.line, d.span.column), d
        if d.path == "<string>":
            assert d.source == text
            assert d.span.start <= len(text)
        if len(lines[d.span.line - 1]) <= 200:
            shown, carets = rendered.split("\n")[1:3]
            gutter = f"{d.span.line} | "
            assert shown.startswith(gutter)
            # the caret starts under the span's first column
            assert carets.index("^") == len(gutter) + d.span.column - 1, rendered


def outcome(text: str) -> CheckedProgram | CbdslError:
    """`cbdsl.check(text)`; anything raised but a CbdslError fails the test."""
    try:
        return cbdsl.check(text)
    except CbdslError as exc:
        assert_well_formed(exc, text)
        return exc


# ------------------------------------------------------------------ vocabulary

GRAMMAR = resources.files("cbdsl.grammar").joinpath("cbdsl.lark").read_text("utf-8")
KEYWORDS = sorted(set(re.findall(r'"([^"\s]+)"', GRAMMAR)))  # every literal of the grammar
NAMES = sorted({*language.EVENTS, *language.EVENT_ALIASES, *language.BUILTIN_NAMES,
                *language.FUNCTIONS,
                *language.TRACKER_FIELDS, *language.PARAM_TYPES, "val_loss", "loss", "val_accuracy",
                "epoch_ned", "mx", "x", "p", "s", "mode", "min_delta", "baseline", "keras",
                "team"})
NUMBERS = ["0", "1", "5", "2.5", "1e-4", ".5", "5.", "-1", "1e999", "99999999999999999999"]
STRINGS = ['"x"', "'min'", '"max"', '"{epoch}"', '"{a.b}"', '"{x!r}"', '"{"', '"}"', '"{}"',
           '"w.weights.h5"', '"m.keras"', '"\\n"', '"x.cbd"', "''"]
TOKENS = KEYWORDS + NAMES + NUMBERS + STRINGS + ["#", "# c\n", "\n", "@", "$", "`", "é", "\\"]
GRAMMAR_CHARS = sorted(set("".join(TOKENS) + " \t\n\r\f\"'#"))

MISSION = "on epoch_end when val_loss stalls 5 do lr *= 0.2"
VALID = [
    MISSION,
    resources.files("cbdsl").joinpath("data/demo.cbd").read_text("utf-8"),
    "on epoch_end when val_loss stalls 12 and epoch > 0 do restore best weights, stop\n"
    "on train_batch_end when loss is not finite do stop\n"
    'on epoch_end every 5 do save model "ckpt/e{epoch:03d}.keras"',
    "var hits = 0\nparam k = {0: 0.1, 5: 0.01}\n"
    "on epoch_begin from epoch 1 before epoch 9 do lr = piecewise(k, epoch), set hits += 1\n"
    "on epoch_end once at epoch 3 when hits > 1 or val_accuracy improves with mode = max "
    "as acc and acc.best > 0.5 do log best_acc = acc.best, print \"{best_acc:.3f}\"",
    'callback shrink(monitor = "val_loss", factor = 0.2, patience = 5, cooldown = 0, '
    "hook: python) {\n"
    '    "Shrink the learning rate."\n'
    "    on epoch_end priority 1 when metric(monitor) stalls patience with (min_delta = 1e-4,"
    " weights = true) as s do lr *= factor, cooldown cooldown, restore best weights of s\n"
    "    on train_batch_end every 10 steps do call hook(logs, now = step)\n"
    "}\n"
    "use shrink(patience = 3)\n"
    'import "common.cbd"\nuse team.x(1, k = 2)',
    "on epoch_end when -a ** 2 // 3 % 4 if not b is nan else c <= d < e do warn 'w'",
]


def tokens_of(text: str) -> list[str]:
    """The tokens of a rule file, comments dropped: joined with spaces, the same program."""
    return [t for t in re.findall(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|#[^\n]*'
                      r"|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|\w+|\*\*|//|<=|>="
                      r"|==|!=|[+*/-]=|\S", text) if not t.startswith("#")]


# ------------------------------------------------------------ any text at all


@FAST
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    outcome(text)


@FAST
@given(st.text(alphabet=st.sampled_from(GRAMMAR_CHARS), max_size=300))
def test_text_made_of_the_grammars_characters(text):
    outcome(text)


@FAST
@given(st.binary(max_size=400))
def test_arbitrary_bytes_decode_to_text_or_e103(data):
    try:
        text = decode(data)
    except CbdslSyntaxError as exc:
        (diag,) = exc.diagnostics
        assert diag.code == "E103"
        with pytest.raises(UnicodeDecodeError) as info:
            data.decode("utf-8")
        bad = info.value.start
        assert diag.message == f"byte 0x{data[bad]:02x} at offset {bad} is not UTF-8 text"
        assert diag.span.start == len(data[:bad].decode("utf-8"))  # offsets count characters
        assert_well_formed(exc, data.decode("utf-8", "replace"))
        return
    assert text == data.decode("utf-8")
    outcome(text)


@FAST
@given(st.lists(st.tuples(st.sampled_from(TOKENS), st.sampled_from([" ", " ", "\n", "", "\t"])),
                max_size=50))
def test_token_soup(pairs):
    outcome("".join(token + gap for token, gap in pairs))


# ------------------------------------------------------ mutations of valid text


@st.composite
def mutated(draw):
    source = draw(st.sampled_from(VALID))
    tokens = tokens_of(source)
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["delete", "insert", "duplicate", "swap", "chop",
                                     "replace", "replace"]))
        if kind == "replace":  # a word by another of its class: often still a valid program
            token = tokens[i]
            same = (NUMBERS if token[0].isdigit() else STRINGS if token[0] in "\"'"
                    else NAMES if token not in KEYWORDS and token[0].isalpha() else KEYWORDS)
            tokens[i] = draw(st.sampled_from(same))
        elif kind == "delete":
            del tokens[i]
        elif kind == "insert":
            tokens.insert(i, draw(st.sampled_from(TOKENS)))
        elif kind == "duplicate":
            tokens.insert(draw(st.integers(0, len(tokens))), tokens[i])
        elif kind == "swap" and i + 1 < len(tokens):
            tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
        elif kind == "chop" and len(tokens[i]) > 1:
            cut = draw(st.integers(1, len(tokens[i]) - 1))
            tokens[i] = tokens[i][:cut]
    return " ".join(tokens)


@FAST
@given(mutated())
def test_mutations_of_valid_programs(text):
    outcome(text)


def test_the_valid_programs_are_valid_syntax():
    for source in VALID:
        program = cbdsl.parse(source)
        assert program.items
        assert cbdsl.parse(" ".join(tokens_of(source))) == program


# ---------------------------------------------- syntactically valid programs


EVENTS = [*language.EVENTS, "batch_end", "epoch_ned"]
METRICS = ["val_loss", "loss", "val_accuracy", "val_los", "x", "p", "s", "hits", "cooldown"]
UNITS = ["epoch", "epochs", "batch", "batches", "step", "steps"]
FUNCS = [*language.FUNCTIONS, "mx"]


@st.composite
def programs(draw):
    """A list of tokens that the grammar accepts, with names right and wrong."""
    pick = lambda seq: draw(st.sampled_from(seq))  # noqa: E731
    chance = lambda: draw(st.booleans())  # noqa: E731

    def atom(depth):
        kind = draw(st.integers(0, 9 if depth > 0 else 5))
        if kind == 0:
            return [pick(["0", "1", "3", "5", "2.5", "1e-4", "100"])]
        if kind == 1:
            return [pick(['"min"', '"max"', '"x"', '"{epoch}"', '"{a.b}"', '"w.weights.h5"'])]
        if kind == 2:
            return [pick(["true", "false", "none", *UNITS])]
        if kind == 3:
            return [pick(["s", "plateau", "x"]), ".", pick(["best", "wait", "value", "bst"])]
        if kind in (4, 5):
            return [pick([*METRICS, "lr", "inf", "logs", "epoch"])]
        if kind == 6:
            out = [pick(FUNCS), "("]
            for _ in range(draw(st.integers(0, 3))):
                out += [*expr(depth - 1), ","]
            if chance():
                out += [pick(["k", "cooldown", "weights"]), "=", *expr(depth - 1)]
            return [*out, ")"]
        if kind == 7:
            out = ["{"]
            for _ in range(draw(st.integers(0, 2))):
                out += [*atom(depth - 1), ":", *expr(depth - 1), ","]
            return [*out, "}"]
        return ["(", *expr(depth - 1), ")"]

    def options(depth):
        out = []
        for _ in range(draw(st.integers(1, 3))):
            out += [pick(["mode", "min_delta", "baseline", "weights", "patience"]), "=",
                    *atom(depth - 1), ","]
        if len(out) == 4 and chance():  # one option may go without parentheses
            return ["with", *out[:-1]]
        return ["with", "(", *out, ")"]

    def expr(depth):
        if depth <= 0:
            return atom(0)
        kind = draw(st.integers(0, 11))
        sub = lambda: ["(", *expr(depth - 1), ")"]  # noqa: E731
        if kind == 0:
            return [*sub(), pick(["+", "-", "*", "/", "//", "%", "**"]), *sub()]
        if kind == 1:
            out = sub()
            for _ in range(draw(st.integers(1, 3))):
                out += [pick(["<", "<=", ">", ">=", "==", "!="]), *sub()]
            return out
        if kind == 2:
            return [*sub(), pick(["and", "or"]), *sub()]
        if kind == 3:
            return ["not", *sub()]
        if kind == 4:
            return [*sub(), "if", *sub(), "else", *sub()]
        if kind == 5:
            out = [*atom(depth - 1), "stalls", *atom(depth - 1)]
            if chance():
                out += options(depth)
            return [*out, "as", pick(["s", "plateau", "x"])] if chance() else out
        if kind == 6:
            out = [*atom(depth - 1), "improves"]
            if chance():
                out += options(depth)
            return [*out, "as", pick(["s", "best_y"])] if chance() else out
        if kind == 7:
            return [*atom(depth - 1), "is", *pick([["nan"], ["not", "nan"], ["finite"],
                                                   ["not", "finite"]])]
        if kind == 8:
            return [pick(["-", "+"]), *atom(depth - 1)]
        return atom(depth)

    def action():
        kind = draw(st.integers(0, 10))
        if kind == 0:
            return [pick(["lr", "learning_rate", "x"]), pick(["=", "+=", "-=", "*=", "/="]),
                    *expr(2)]
        if kind == 1:
            return ["save", pick(["model", "weights"]), *atom(1)]
        if kind == 2:
            return ["restore", "best", "weights", *(["of", pick(["s", "t"])] if chance() else [])]
        if kind == 3:
            return ["log", pick(["k", "lr"]), "=", *expr(2)]
        if kind == 4:
            return [pick(["print", "warn"]), *atom(1)]
        if kind == 5:
            return ["set", pick(["hits", "x"]), pick(["=", "+="]), *expr(2)]
        if kind == 6:
            return ["cooldown", *atom(1)]
        if kind == 7:
            out = ["call", pick(["hook", "notify"]), "("]
            if chance():
                out += ["logs", ",", "k", "=", *atom(1)]
            return [*out, ")"]
        return ["stop"]

    def rule():
        out = [pick(["a", "plateau"]), ":"] if chance() else []
        out += ["on", pick(EVENTS)]
        for _ in range(draw(st.integers(0, 1))):
            out += [",", pick(EVENTS)]
        for _ in range(draw(st.integers(0, 2))):
            out += pick([
                ["every", "(", *expr(1), ")", *([pick(UNITS)] if chance() else [])],
                ["after", "(", *expr(1), ")", *([pick(UNITS)] if chance() else [])],
                ["from", pick(UNITS), *atom(1)],
                ["before", pick(UNITS), *atom(1)],
                ["once", "at", pick(UNITS), *atom(1)],
            ])
        if chance():
            out += ["priority", *atom(1)]
        if draw(st.integers(0, 3)):
            out += ["when", *expr(3)]
        out += ["do", *action()]
        for _ in range(draw(st.integers(0, 2))):
            out += [",", *action()]
        return out

    def item(inner=False):
        kind = draw(st.integers(0, 9))
        if kind == 0 and not inner:
            return ["param", pick(["p", "patience", "k"]), "=", *expr(1)]
        if kind == 1:
            return ["var", pick(["hits", "x"]), "=", *expr(1)]
        if kind == 2 and not inner:
            out = ["callback", pick(["a", "b"]), "("]
            for _ in range(draw(st.integers(0, 3))):
                if chance():
                    out += [pick(["p", "m", "cooldown", "weights"]), "=", *atom(1), ","]
                else:
                    out += [pick(["hook", "f", "path"]), ":",
                            pick([*language.PARAM_TYPES, "strng"]), ","]
            out += [")", "{"]
            if chance():
                out.append('"doc"')
            for _ in range(draw(st.integers(0, 2))):
                out += item(inner=True)
            return [*out, "}"]
        if kind == 3 and not inner:
            out = ["use", *pick([["a"], ["b"], ["keras", ".", "x"], ["team", ".", "x"]]), "("]
            for _ in range(draw(st.integers(0, 2))):
                out += [*atom(1), ","]
            if chance():
                out += [pick(["p", "m", "patienc", "cooldown"]), "=", *atom(1)]
            return [*out, ")"]
        if kind == 4 and not inner:
            return ["import", pick(['"nothing.cbd"', '""', '"."'])]
        return rule()

    tokens = []
    for _ in range(draw(st.integers(1, 4))):
        tokens += item()
    return tokens


@FAST
@given(programs(), st.data())
def test_generated_programs_parse_and_check_with_check_errors_only(tokens, data):
    text = " ".join(tokens)
    program = cbdsl.parse(text)  # the generator writes only what the grammar accepts
    assert program.items
    result = outcome(text)
    assert isinstance(result, CheckedProgram | CbdslCheckError), result
    # the layout is free: newlines, tabs and comments between tokens change no node
    gaps = data.draw(st.lists(st.sampled_from(["\n", "\t", "  ", " # note\n", "\n\n  "]),
                              min_size=len(tokens), max_size=len(tokens)))
    laid_out = "".join(token + gap for token, gap in zip(tokens, gaps, strict=True))
    assert cbdsl.parse(laid_out) == program
    again = outcome(laid_out)
    assert type(again) is type(result)
    if isinstance(result, CbdslError):
        assert [(d.code, d.message) for d in again.diagnostics] == [
            (d.code, d.message) for d in result.diagnostics]


# ------------------------------------------------------------- pathological


@settings(FAST, max_examples=100)
@given(grammar_programs())
def test_programs_drawn_from_the_grammar_check_with_check_errors_only(text):
    # every production of the grammar, with the language's own names: the checker and the
    # compiler take all of them without an error that is not a CbdslError
    result = outcome(text)
    if isinstance(result, CbdslError):
        assert not isinstance(result, CbdslSyntaxError), result
        return
    try:
        cbdsl.compile(result)
    except CbdslError as exc:
        assert_well_formed(exc, text)


def _error(text: str) -> CbdslError:
    with pytest.raises(CbdslError) as info:
        cbdsl.check(text)
    assert_well_formed(info.value, text)
    return info.value


def _timed_error(text: str, limit: float = 30.0) -> CbdslError:
    # a guard against a blow-up (quadratic or worse), not a speed goal: those are measured by
    # bench/, and a loaded machine takes several seconds here
    start = time.perf_counter()
    error = _error(text)
    assert time.perf_counter() - start < limit
    return error


@pytest.mark.parametrize(("opening", "closing"), [
    ("(a + ", ")"),
    ("abs(", ")"),
    ("-(", ")"),
    ("not (", ")"),
    ("{1: ", "}"),
    ("(a if b else ", ")"),
])
def test_ten_thousand_nested_parentheses_are_e104(opening, closing):
    depth = 10_000
    text = f"on epoch_end when {opening * depth}a{closing * depth} > 0 do stop"
    error = _timed_error(text)
    (diag,) = error.diagnostics
    assert isinstance(error, CbdslSyntaxError)
    assert (diag.code, diag.message) == (
        "E104", f"brackets nested more than {MAX_BRACKETS} levels deep")
    assert diag.hint == "split it into smaller expressions or state variables"


@pytest.mark.parametrize("inner", ["val_loss", "-val_loss", "not not val_loss"])
def test_deep_nesting_is_e104_in_every_command(inner):
    # redundant parentheses make no node, but the formatter walks every token: refused alike
    for text in (f"on epoch_end when {'(' * 10_000}{inner}{')' * 10_000} > 1 do stop",
                 f"on epoch_end when {'-' * (MAX_DEPTH + 5)}1 > 0 do stop",
                 f"on epoch_end when {'not ' * (MAX_DEPTH + 5)}true do stop"):
        for command in (cbdsl.check, format_source, cbdsl.compile,
                        lambda t: explain(cbdsl.parse(t)), lambda t: pythonize(cbdsl.check(t))):
            with pytest.raises(CbdslSyntaxError) as info:
                command(text)
            assert info.value.code == "E104"


@pytest.mark.parametrize("depth", [MAX_BRACKETS, MAX_DEPTH // 2 - 2])
def test_nesting_just_within_the_bounds_works_in_every_command(depth):
    text = (f"on epoch_end when {'(' * depth}val_loss{')' * depth} > 1 do stop"
            if depth == MAX_BRACKETS else
            f"on epoch_end when {'-' * depth}val_loss > 1 do stop")
    assert cbdsl.check(text).diagnostics == []
    format_source(text)
    cbdsl.compile(text)
    explain(cbdsl.parse(text))
    pythonize(cbdsl.check(text))


def test_ten_thousand_unclosed_parentheses_are_e102():
    error = _timed_error("on epoch_end when " + "(" * 10_000)
    assert error.code == "E102"
    assert error.diagnostics[0].message == "unexpected end of input; expected an expression"


def test_ten_megabyte_input_is_e105_quickly(tmp_path):
    big = "# " + "x" * (10 * 2**20)
    start = time.perf_counter()
    for attempt in (lambda: cbdsl.check(big), lambda: cbdsl.parse(big),
                    lambda: decode(big.encode()), lambda: cbdsl.check(big + "\n" + MISSION)):
        with pytest.raises(CbdslSyntaxError) as info:
            attempt()
        (diag,) = info.value.diagnostics
        assert (diag.code, diag.message) == (
            "E105", f"rule file is larger than {MAX_BYTES // 1024} KiB")
    path = tmp_path / "big.cbd"
    path.write_text(big)
    with pytest.raises(CbdslSyntaxError) as info:
        read_source(path)
    assert info.value.code == "E105"
    with pytest.raises(CbdslSyntaxError) as info:
        cbdsl.check(path)
    assert str(info.value) == f"{path}: error E105: rule file is larger than 1024 KiB"
    assert time.perf_counter() - start < 2.0


def test_input_just_under_the_size_limit_is_read():
    text = MISSION + "\n# " + "x" * (MAX_BYTES - len(MISSION) - 3)
    assert len(text.encode()) == MAX_BYTES
    assert cbdsl.check(text).diagnostics == []


def test_five_thousand_nested_nots_are_e104():
    error = _timed_error("on epoch_end when " + "not " * 5000 + "loss > 1 do stop")
    assert error.code == "E104"


def test_three_thousand_term_sum_is_e104():
    error = _timed_error("on epoch_end when " + " + ".join(["a"] * 3000) + " > 1 do stop")
    assert error.code == "E104"


@pytest.mark.parametrize("join", [" and ", " or ", " * ", " ** ", " - "])
def test_three_thousand_term_chains_are_e104(join):
    assert _timed_error("on epoch_end when " + join.join(["a"] * 3000) + " > 1 do stop"
                        ).code == "E104"


def test_three_thousand_term_comparison_chain_is_flat_and_checks():
    # a comparison chain is one node with many links: no nesting to refuse
    text = "on epoch_end when " + " < ".join(["val_loss"] * 3000) + " do stop"
    checked = cbdsl.check(text)
    assert len(checked.main.rules[0].condition.rest) == 2999


@pytest.mark.parametrize(("opening", "closing"), [
    ("not ", ""), ("abs(", ")"), ("-", ""), ("(val_loss + ", ")"), ("{1: ", "}"),
])
def test_reasonable_nesting_is_accepted(opening, closing):
    text = f"param t = 1\non epoch_end when {opening * 50}val_loss{closing * 50} != 0 do stop"
    result = outcome(text)
    assert not isinstance(result, CbdslSyntaxError), result


def test_a_sum_of_fifty_terms_checks():
    text = "on epoch_end do lr = " + " + ".join(["lr"] * 50)
    assert cbdsl.check(text).diagnostics == []


def test_a_thousand_rules_check():
    text = "\n".join(f'on epoch_end when val_loss > {i} do print "{i}"' for i in range(1000))
    assert len(cbdsl.check(text).main.rules) == 1000


@pytest.mark.parametrize("text", [
    "\x00", "\ufeff" + MISSION, "\r\n" * 3 + "on", "on epoch_end do print '\\'", "'" * 7,
    "on epoch_end when val_loss stalls inf do stop",
    "on epoch_end when val_loss stalls 1e308 do stop",
    "on epoch_end priority {} do lr = 1\non epoch_end priority {} do lr = 2",
    "param p = {{1: 2}: 3}", "on epoch_end do lr = lookup({{}: 1}, 1)",
    "a\x00b.cbd", "x" * 5000 + ".cbd", "./.cbd",
    'import "\\0"', 'import ""', 'import "."', "use a.b.c.d()",
])
def test_corner_cases_raise_cbdsl_errors_only(text):
    result = outcome(text)
    assert isinstance(result, CheckedProgram | CbdslError)
