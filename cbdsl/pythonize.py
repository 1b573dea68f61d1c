"""`cbdsl explain --python`: a rule file as the hand-written Keras callback code it means."""

from __future__ import annotations

import keyword
import os
import re
import string
import textwrap
from dataclasses import dataclass, field, replace
from typing import Any

from cbdsl import language as vocab
from cbdsl.checker import REQUIRED, CheckedProgram, Definition
from cbdsl.checker.order import filter_counter
from cbdsl.checker.templates import template_fields
from cbdsl.checker.trackers import metric_name_of
from cbdsl.diagnostics import CbdslCompileError, Diagnostic
from cbdsl.syntax import nodes as n
from cbdsl.syntax.walk import flat_actions, walk

WIDTH = 100  # the longest line written (the project's own ruff line length)

__all__ = ["NotExpressibleError", "pythonize"]


class NotExpressibleError(CbdslCompileError):
    """A rule uses a feature that plain Keras callback code cannot say faithfully (E601)."""


def pythonize(checked: CheckedProgram) -> str:
    """Write a checked program as plain, runnable Keras callback classes.

    Every `callback` definition of the file (and every definition its `use`
    statements name) becomes one `keras.callbacks.Callback` subclass whose
    `__init__` takes the same parameters with the same defaults; the file's own
    top-level rules become one more class, named after the file. Each hook method
    holds the rules of its event in the order they run, each under a comment with
    the rule's source line. The code calls nothing of cbdsl: only Keras, NumPy and
    the standard library.

    Example:

    ```python
    pathlib.Path("policy_callbacks.py").write_text(pythonize(cbdsl.check("policy.cbd")))
    from policy_callbacks import Policy  # reviewed, then imported like any module
    model.fit(x, y, callbacks=[Policy()])
    ```

    Args:
        checked: a `CheckedProgram` from `cbdsl.check`.

    Returns:
        The Python module's source text.

    Raises:
        NotExpressibleError: a rule needs a feature that Python code written by
            hand cannot express faithfully; the diagnostic (E601) names the feature
            and points at the rule.
    """
    return _Module(checked).write()


# ----------------------------------------------------------------- code values

# Python operator precedence, lowest first (only the levels the writer uses).
TERNARY, OR, AND, NOT, CMP, ADD, MUL, UNARY, POW, ATOM = 1, 2, 3, 4, 5, 10, 11, 12, 13, 16
_BIN_PREC = {"+": ADD, "-": ADD, "*": MUL, "/": MUL, "//": MUL, "%": MUL, "**": POW}


@dataclass(frozen=True)
class Code:
    """A Python expression: its text, precedence, and (for `and`/`or` chains) its operands."""

    text: str
    prec: int = ATOM
    op: str | None = None
    parts: tuple[str, ...] = ()

    def at(self, prec: int) -> str:
        """The text, parenthesized when it binds looser than `prec` needs."""
        return self.text if self.prec >= prec else f"({self.text})"


def _chain(op: str, codes: list[Code]) -> Code:
    """`a and b and c` (or `or`), flattening operands that are chains of the same operator."""
    if len(codes) == 1:
        return codes[0]
    prec = AND if op == "and" else OR
    parts: list[str] = []
    for code in codes:
        for part in code.parts if code.op == op else (code.at(prec + 1),):
            if part in parts and _NONE_TEST.match(part):
                continue  # `x is not None and x is not None`: one guard says it
            parts.append(part)
    if len(parts) == 1:
        return Code(parts[0], CMP)
    return Code(f" {op} ".join(parts), prec, op, tuple(parts))


_NONE_TEST = re.compile(r"^[\w.\[\]'\"]+ is (not )?None$")


def py_str(text: str, quote: str = '"') -> str:
    """A Python string literal for `text`, in `quote` quotes where that needs no escape."""
    body = "".join(_escape(c, quote) for c in text)
    return f"{quote}{body}{quote}"


def _escape(c: str, quote: str) -> str:
    if c == "\\":
        return "\\\\"
    if c == quote:
        return "\\" + c
    if c == "\n":
        return "\\n"
    if c == "\t":
        return "\\t"
    if c == "\r":
        return "\\r"
    if not c.isprintable():
        return f"\\x{ord(c):02x}" if ord(c) < 256 else f"\\u{ord(c):04x}" if ord(c) < 65536 \
            else f"\\U{ord(c):08x}"
    return c


# ------------------------------------------------------------------ statements


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
        cond = _chain("and", [stmt.branches[0][0], inner.branches[0][0]])
        stmt = If([(cond, inner.branches[0][1])])
    return stmt


def render(stmts: list, indent: int) -> list[str]:
    """Lay statements out as lines of source, `indent` spaces deep."""
    out: list[str] = []
    pad = " " * indent
    for stmt in stmts:
        if isinstance(stmt, Line):
            out += _wrap_statement(stmt.text, indent)
        elif isinstance(stmt, StrCall):
            out += _wrap_statement(
                _call_with_string(stmt.prefix, stmt.message, stmt.suffix, indent), indent)
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


def _wrap_statement(text: str, indent: int) -> list[str]:
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


# ---------------------------------------------------------------- templates


_FORMATTER = string.Formatter()


def _string_code(pieces: list[tuple[str, str]], indent: int, prefix: str, suffix: str) -> str:
    """`prefix` + a string (f-string when it has fields) + `suffix`, split into adjacent
    literals over several lines when one line would be too long.

    `pieces` are `("lit", raw text)` and `("field", "expr" or "expr:spec")`.
    """
    one = _literal(_tokens(pieces))
    if len(" " * indent + prefix + one + suffix) <= WIDTH:
        return prefix + one + suffix
    chunks = _pack(_tokens(pieces), WIDTH - indent - 4)
    if len(_literal(chunks[-1]) + suffix) > WIDTH - indent - 4:  # the suffix ends the last
        chunks[-1:] = _pack(chunks[-1], WIDTH - indent - 4 - len(suffix))
    head = prefix.rstrip()
    body = [f"    {_literal(chunk)}" for chunk in chunks]
    body[-1] += suffix
    return "\n".join([head, *body])


def _pack(tokens: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
    """Tokens packed greedily into literals of at most `width` characters."""
    chunks: list[list[tuple[str, str]]] = [[]]
    for token in tokens:
        if chunks[-1] and len(_literal([*chunks[-1], token])) > width:
            chunks.append([])
        chunks[-1].append(token)
    return chunks


def _tokens(pieces: list[tuple[str, str]]) -> list[tuple[str, str]]:
    tokens = []
    for kind, text in pieces:
        if kind == "lit":
            tokens += [("lit", word) for word in re.findall(r"\S*\s*", text) if word]
        else:
            tokens.append((kind, text))
    return tokens


def _literal(tokens: list[tuple[str, str]]) -> str:
    is_f = any(kind == "field" for kind, _ in tokens)
    body = []
    for kind, text in tokens:
        if kind == "field":
            body.append("{" + text + "}")
        else:
            escaped = "".join(_escape(c, '"') for c in text)
            body.append(escaped.replace("{", "{{").replace("}", "}}") if is_f else escaped)
    return ("f" if is_f else "") + '"' + "".join(body) + '"'


# ------------------------------------------------------------------- helpers

HELPERS: dict[str, str] = {
    "is_improvement": '''
def is_improvement(value, best, direction, min_delta=0):
    """Whether `value` beats `best` by more than `min_delta` (its sign ignored), compared
    as Keras's callbacks compare: with `keras.ops` in the backend's float precision.
    Nothing to beat yet (`best` is None): the first value always improves."""
    if best is None:
        return True
    if direction == "max":
        return bool(keras.ops.greater(value - abs(min_delta), best))
    return bool(keras.ops.less(value + abs(min_delta), best))
''',
    "piecewise": '''
def piecewise(table, x, default=None):
    """A step schedule: the value of the largest key of `table` not above `x`, else
    `default`."""
    keys = [key for key in table if key <= x]
    return table[max(keys)] if keys else default
''',
    "call_schedule": '''
def call_schedule(schedule, *args, name="schedule"):
    """The rate a schedule gives for `args` (`epoch`, `lr`): a table {epoch: rate} is a step
    schedule (the current rate before its first epoch); a function is called as Keras's
    LearningRateScheduler calls it, `schedule(epoch, lr)`, else `schedule(epoch)`."""
    if isinstance(schedule, dict):
        return piecewise(schedule, *args)
    try:
        rate = schedule(*args)
    except TypeError:  # a schedule of the epoch alone
        rate = schedule(args[0])
    if not isinstance(rate, (float, np.float32, np.float64)):
        raise ValueError(f"The output of the `{name}` function should be a float. Got: {rate}")
    return rate
''',
    "file_empty": '''
def file_empty(path):
    """Whether no file is at `path` or the file there holds no text (its first line is
    empty), as Keras's CSVLogger reads a file it is to append to."""
    if not os.path.exists(path):
        return True
    with open(path) as f:
        return not f.readline()
''',
    "write_row": '''
def csv_field(value, separator):
    """A value as Keras's CSVLogger has the csv module write it: text as it is, an iterable
    (but not a 0-d array) as a list in quotes, None as nothing; quoted when it holds the
    separator, a quote or a line end, its quotes doubled (the Excel dialect)."""
    if isinstance(value, str):
        text = value
    elif hasattr(value, "__iter__") and not (isinstance(value, np.ndarray) and value.ndim == 0):
        text = '"[' + ", ".join(map(str, value)) + ']"'
    elif value is None:
        text = ""
    else:
        text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in (separator, '"', "\\r", "\\n")):
        text = '"' + text.replace('"', '""') + '"'
    return text


def write_row(path, row, separator=",", header=False, append=True):
    """A table's values as one CSV line (Excel dialect, "\\r\\n" line ends) at the end of
    the file, after a line of its keys when `header`; `append=False` empties the file
    first, and a row of None only opens it. Folders are not made."""
    with open(path, "a" if append else "w") as f:
        if row is None:
            return
        lines = [list(row)] if header else []
        lines.append(list(row.values()))
        for line in lines:
            fields = [csv_field(value, separator) for value in line]
            if fields == [""]:
                fields = ['""']
            f.write(separator.join(fields) + "\\r\\n")
''',
}
HELPER_NEEDS = {"call_schedule": ("piecewise",)}
HELPER_IMPORTS = {"is_improvement": {"keras"}, "call_schedule": {"numpy"}, "piecewise": set(),
                  "file_empty": {"os"}, "write_row": {"numpy"}}

# Hook methods in the order `fit`, `evaluate` and `predict` call them.
HOOK_ORDER = ("train_begin", "epoch_begin", "train_batch_begin", "train_batch_end", "epoch_end",
              "train_end", "test_begin", "test_batch_begin", "test_batch_end", "test_end",
              "predict_begin", "predict_batch_begin", "predict_batch_end", "predict_end")
# What keras.callbacks.Callback already has: parameters and state must not hide these.
CALLBACK_ATTRS = frozenset({
    "model", "params", "validation_data", "set_model", "set_params", "_model",
    *(e.hook for e in vocab.EVENTS.values() if e.hook), "on_batch_begin", "on_batch_end",
})
# Local names the writer itself uses in hook methods.
RESERVED_LOCALS = frozenset({
    "self", "epoch", "batch", "logs", "lr", "missing", "filepath", "f", "in_cooldown",
    "math", "json", "os", "sys", "time", "warnings", "keras", "np", "is_improvement", "piecewise",
    "call_schedule", "file_empty", "write_row", "csv_field", "abs", "min", "max", "round",
    "float", "int", "bool", "list", "dict", "sorted",
    "str", "print", "len", "isinstance", "enumerate", "format", "type", "super", "None",
    "True", "False",
})
_MATH = {"exp", "log", "sqrt", "floor", "ceil", "cos", "sin", "tanh", "pow"}


def _class_name(name: str) -> str:
    if name[:1].isupper():
        return name
    return "".join(part.capitalize() for part in name.split("_")) or "Policy"


def _trackers(rule: n.Rule) -> list[n.Stalls | n.Improves]:
    return [x for x in walk(rule.condition) if isinstance(x, n.Stalls | n.Improves)]


def _identifier(name: str, taken: set[str] | frozenset[str], suffix: str = "_value") -> str:
    base = name if name.isidentifier() and not keyword.iskeyword(name) else (
        re.sub(r"\W", "_", name).strip("_") or "value")
    if base[0].isdigit():
        base = "m_" + base
    if base in taken or keyword.iskeyword(base):
        base += suffix
    candidate, k = base, 2
    while candidate in taken:
        candidate, k = f"{base}_{k}", k + 1
    return candidate


# -------------------------------------------------------------------- module


class _Module:
    """The whole file: imports, helpers, one class per definition, the file's callbacks."""

    def __init__(self, checked: CheckedProgram):
        self.checked = checked
        self.imports: set[str] = set()
        self.helpers: set[str] = set()
        self.sources = self._rule_sources()

    def _rule_sources(self) -> dict[int, tuple[str, str]]:
        """Where each rule was written (its file and text), for the comments above rules."""
        found: dict[int, tuple[str, str]] = {}
        program = self.checked.program
        for item in program.items:
            if isinstance(item, n.Rule):
                found[id(item)] = (program.path, program.source)
        for definition in self.checked.definitions.values():
            if definition.node is not None:
                for part in definition.node.body:
                    found.setdefault(id(part), (definition.path, definition.source))
        # rules of imported files: the checker parsed them itself; find each by its place
        imported = {}
        for path, source, rule in _imported_rules(program):
            imported[(rule.span.start, rule.span.end, rule)] = (path, source)
        for rule in self.checked.main.rules:
            if id(rule) not in found:
                key = (rule.span.start, rule.span.end, rule)
                if key in imported:
                    found[id(rule)] = imported[key]
        return found

    def definitions(self) -> list[tuple[Definition, str]]:
        checked, program = self.checked, self.checked.program
        chosen: list[Definition] = []
        for definition in checked.definitions.values():
            if definition.path == program.path and definition.node is not None:
                chosen.append(definition)
        for instance in checked.instances:
            if instance.definition is not checked.main and instance.definition not in chosen:
                chosen.append(instance.definition)
        if checked.main.rules:
            chosen.append(checked.main)
        named: list[tuple[Definition, str]] = []
        seen: dict[str, Definition] = {}
        for definition in chosen:
            name = _class_name(definition.name)
            if name in seen:
                raise NotExpressibleError(Diagnostic(
                    "E601", f"two callbacks would be classes named '{name}' "
                    f"('{seen[name].name}' and '{definition.name}')",
                    None, definition.path))
            seen[name] = definition
            named.append((definition, name))
        return named

    def write(self) -> str:
        named = self.definitions()
        classes = [_ClassWriter(self, d, name).write() for d, name in named]
        factory = self.factory(dict((id(d), name) for d, name in named))
        program = self.checked.program
        head = [f'"""Keras callbacks written out from {_shown_path(program.path)}.',
                "",
                "Plain Keras code, one class per callback, by `cbdsl explain --python`: it "
                "runs without cbdsl.",
                '"""', ""]
        helpers = set(self.helpers)
        for name in list(helpers):
            helpers.update(HELPER_NEEDS.get(name, ()))
        for name in helpers:
            self.imports |= HELPER_IMPORTS[name]
        std = sorted(m for m in self.imports
                     if m in ("json", "math", "os", "sys", "time", "warnings"))
        third = [line for key, line in (("keras", "import keras"),
                                        ("numpy", "import numpy as np")) if key in self.imports]
        lines = head + [f"import {m}" for m in std]
        if std and third:
            lines.append("")
        lines += third
        body = [textwrap.dedent(HELPERS[h]).strip("\n") for h in HELPERS if h in helpers]
        body += classes
        if factory:
            body.append(factory)
        text = "\n".join(lines).rstrip("\n") + "\n"
        for part in body:
            text += "\n\n" + part.rstrip("\n") + "\n"
        return text

    def factory(self, names: dict[int, str]) -> str | None:
        """`make_callbacks(...)`: the callbacks the file's `use` statements make, in order."""
        checked = self.checked
        if not any(i.definition is not checked.main for i in checked.instances):
            return None
        main = checked.main
        writer = _ClassWriter(self, main, names.get(id(main), "Main"))
        params = writer.signature()
        calls = []
        for instance in checked.instances:
            cls = names[id(instance.definition)]
            if instance.definition is main:
                args = [f"{p}={writer.local_param[p]}" for p in main.params]
            else:
                scope = writer.init_scope()
                args = [f"{k}={writer.expr(v, scope).text}" for k, v in instance.args.items()]
            calls.append(f"{cls}({', '.join(args)})")
        lines = [f"def make_callbacks({params}):",
                 '    """The callbacks the rule file makes, in order, for '
                 '`model.fit(callbacks=...)`."""']
        lines += _wrap_statement(f"return [{', '.join(calls)}]", 4)
        return "\n".join(lines)


# -------------------------------------------------------------------- scopes


@dataclass
class _Scope:
    """What names mean where code is being written: one event of one rule, or `__init__`."""

    event: vocab.Event | None
    where: n.Node | None = None  # the rule (for error positions)
    epoch: str | None = None
    batch: str | None = None
    step: str | None = None
    logs: str = "logs"
    quote: str = '"'
    params: str = "self"  # "self": parameters are attributes; "local": __init__ arguments
    metric_locals: dict[str, str] = field(default_factory=dict)
    guards: frozenset[str] = frozenset()
    locals: dict[str, str] = field(default_factory=dict)
    results: dict[int, str] = field(default_factory=dict)
    handler: bool = False

    def inner(self, **changes: Any) -> _Scope:
        copy = replace(self, **changes)
        copy.metric_locals = dict(copy.metric_locals)
        copy.locals = dict(copy.locals)
        return copy


@dataclass
class _Tracker:
    """A `stalls`/`improves` predicate and the attributes that hold its state."""

    node: n.Stalls | n.Improves
    name: str
    rule: n.Rule
    attrs: dict[str, str]  # field -> attribute name: wait best best_epoch value ...
    keeps: bool | n.Expr = False  # keep weight snapshots: always, never, or as an option says
    cooled: bool = False  # some `cooldown` action of its rule sets it
    runtime_direction: bool = False
    static_direction: str | None = None


# ------------------------------------------------------------------- classes


class _ClassWriter:
    """One definition as one `keras.callbacks.Callback` subclass."""

    def __init__(self, module: _Module, definition: Definition, class_name: str):
        self.module, self.d, self.class_name = module, definition, class_name
        self.params = definition.params
        self.rules = list(enumerate(definition.rules))
        self.variables = {v.name.name: v for v in definition.variables}
        self.taken: set[str] = set(CALLBACK_ATTRS) | {"_resolve_direction", "_metric_missing"}
        self.records = any(isinstance(a, n.Record) for r in definition.rules
                           for a in flat_actions(r.actions))
        if self.records:
            self.taken |= {"history", "epoch"}
        self.attr: dict[str, str] = {}
        self.local_param: dict[str, str] = {}
        for name, info in self.params.items():
            if keyword.iskeyword(name) or name == "self":
                raise self.error(f"the parameter '{name}' cannot be a Python argument name",
                                 info.node)
            self.local_param[name] = name
            suffix = "_fn" if info.type in ("python", "schedule") else "_value"
            self.attr[name] = self.alloc(name, suffix)
        for name in self.variables:
            self.attr[name] = self.alloc(name, "_var")
        self.stopped_epoch: str | None = None
        self.uses: set[str] = set()  # current_epoch, steps, stopped_epoch
        self.trackers: dict[int, _Tracker] = {}
        self.tracker_by_name: dict[str, _Tracker] = {}
        from cbdsl.checker.trackers import restored_trackers

        self.restored = restored_trackers([rule for _, rule in self.rules])
        self.mode_checks: dict[str, None] = {}  # parameters used as a tracker's mode
        self._collect_trackers()

    # -- names
    def alloc(self, name: str, suffix: str) -> str:
        chosen = _identifier(name, self.taken, suffix)
        self.taken.add(chosen)
        return chosen

    def error(self, message: str, node: n.Node | None) -> NotExpressibleError:
        path, source = self.d.path, self.d.source
        if node is not None and id(node) in self.module.sources:
            path, source = self.module.sources[id(node)]
        span = getattr(node, "span", None)
        return NotExpressibleError(Diagnostic(
            "E601", f"cannot write as plain Keras code: {message}",
            span if span is not None and span.line else None, path, source,
            hint="the compiled callback (cbdsl.compile) runs it"))

    def _collect_trackers(self) -> None:
        from cbdsl.checker.trackers import tracker_name

        found = []
        for index, rule in self.rules:
            nodes = _trackers(rule)
            for k, node in enumerate(nodes):
                name = tracker_name(node, index, k, rule)
                found.append((node, name, rule, k, len(nodes)))
        single = len(found) == 1
        fields = ("wait", "best", "best_epoch", "value", "best_weights", "cooldown_counter",
                  "direction")
        for node, name, rule, k, count in found:
            if single:
                prefix = ""
            elif node.alias is not None:
                prefix = node.alias.name + "_"
            elif rule.label is not None:
                prefix = rule.label.name + ("_" if count == 1 else f"_{k}_")
            else:
                prefix = f"rule{rule.span.line}_" + ("" if count == 1 else f"{k}_")
            attrs = {f: self.alloc(prefix + f, "_") for f in fields}
            tracker = _Tracker(node, name, rule, attrs)
            options = {o.name.name: o.value for o in node.options}
            if "only" in options:
                raise self.error("the tracker option 'only'", node)
            weights = options.get("weights")
            if weights is None:
                tracker.keeps = name in self.restored
            elif isinstance(weights, n.Bool):
                tracker.keeps = weights.value
            else:
                tracker.keeps = weights
            tracker.cooled = isinstance(node, n.Stalls) and any(
                isinstance(a, n.Cooldown) for a in rule.actions)
            self.trackers[id(node)] = tracker
            self.tracker_by_name[name] = tracker
            if any(e.name == "metric_missing" for e in rule.events):
                raise self.error("a 'stalls'/'improves' predicate in a metric_missing rule",
                                 node)
            self._direction(tracker, options)

    def _direction(self, tracker: _Tracker, options: dict[str, n.Expr]) -> None:
        mode = options.get("mode")
        metric = metric_name_of(tracker.node.subject, self.params)
        if mode is None or isinstance(mode, n.String):
            value = mode.value if isinstance(mode, n.String) else "auto"
            if value in ("min", "max"):
                tracker.static_direction = value
                return
            if metric not in (None, "<param>") and metric.removeprefix("val_") == "loss":
                tracker.static_direction = "min"
                return
        elif isinstance(mode, n.Name) and mode.id in self.params:
            self.mode_checks[mode.id] = None
        else:
            raise self.error("a 'mode' that is neither a string nor a parameter", mode)
        tracker.runtime_direction = True

    # -- the class
    def write(self) -> str:
        self.module.imports.add("keras")
        hooks = self.hooks()  # written first: they tell which state the class keeps
        init = self.init_method()
        doc = (self.d.doc or f"The rules of {self.d.name}.").strip()
        program = self.module.checked.program.path
        origin = _shown_path(self.d.path) if self.d.path == program else \
            os.path.basename(self.d.path)
        lines = [f"class {self.class_name}(keras.callbacks.Callback):"]
        lines += _docstring([*doc.splitlines(), "", f"Written out from {origin}."], 4)
        return "\n\n".join(["\n".join(lines), init, *hooks])

    def signature(self) -> str:
        parts, star = [], False
        seen_default = False
        for name, info in self.params.items():
            default = info.default
            if default is REQUIRED:
                if seen_default and not star:
                    parts.append("*")
                    star = True
                parts.append(self.local_param[name])
                continue
            seen_default = True
            shown = "None" if isinstance(default, dict) else _literal_value(default)
            parts.append(f"{self.local_param[name]}={shown}")
        return ", ".join(parts)

    def init_scope(self) -> _Scope:
        return _Scope(None, params="local", logs="{}")

    def init_method(self) -> str:
        params = self.signature()
        head = _wrap_def(f"def __init__(self{', ' if params else ''}{params}):", 4)
        stmts: list = [Line("super().__init__()")]
        scope = self.init_scope()
        for requirement in self.d.requirements:
            cond = self.expr(requirement.condition, scope, boolean=True)
            message = self.template(requirement.message, scope, requirement, in_init=True)
            stmts.append(If([(Code(f"not {cond.at(NOT)}", NOT),
                              [StrCall("raise ValueError(", message, ")")])]))
        for name in self.mode_checks:
            local = self.local_param[name]
            self.module.imports.add("warnings")
            warn = _string_code([("lit", f"{self.d.name}: mode '"), ("field", local),
                                 ("lit", "' is unknown, fallback to auto mode.")], 12,
                                "warnings.warn(", ", stacklevel=2)")
            stmts.append(If([(Code(f'{local} not in ("auto", "min", "max")', CMP),
                              [Line(warn), Line(f'{local} = "auto"')])]))
        for name, info in self.params.items():
            local = self.local_param[name]
            if info.type == "schedule":
                stmts.append(If([(Code(f"isinstance({local}, str)"), [Line(
                    "raise TypeError(\n"
                    f'    "{name}: a schedule given as text needs cbdsl; pass a function such '
                    'as "\n'
                    '    "`lambda epoch, lr: 0.1 * 0.9 ** epoch` or a table {epoch: rate}")')])]))
            if isinstance(info.default, dict):
                value = _literal_value(info.default)
                stmts.append(If([(Code(f"{local} is None", CMP), [Line(f"{local} = {value}")])]))
            stmts.append(Line(f"self.{self.attr[name]} = {local}"))
        state = self.state_lines(initial=True)
        if state:
            stmts += state
        return "\n".join([head, *render(stmts, 8)])

    def state_lines(self, initial: bool) -> list:
        """The state every `fit` starts from (also set in `__init__`)."""
        out: list = []
        if self.records:
            if initial:
                out.append(Line("self.history = {}  # kept across fit calls, as Keras's History"))
            out.append(Line("self.epoch = []"))
        if "stopped_epoch" in self.uses:
            out.append(Line("self.stopped_epoch = 0"))
        if "current_epoch" in self.uses:
            out.append(Line("self._current_epoch = 0"))
        if "steps" in self.uses:
            out.append(Line("self._steps = 0  # train batches so far, across epochs"))
            out.append(Line("self._last_batch = None"))
        for name, var in self.variables.items():
            if var.kept and not initial:
                continue  # `keep var`: set once, kept across fit calls
            scope = _Scope(None, params="self", logs="{}")
            value = self.expr(var.value, scope)
            text = value.text
            if isinstance(var.value, n.Name) and var.value.id in self.params and \
                    self.params[var.value.id].type in ("table", "none", "any"):
                text = f"dict({text})" if self.params[var.value.id].type == "table" else text
            out.append(Line(f"self.{self.attr[name]} = {text}"))
        for tracker in self.trackers.values():
            if not initial and any(o.name.name == "keep" and isinstance(o.value, n.Bool)
                                   and o.value.value for o in tracker.node.options):
                continue  # `with keep = true`: kept across fit calls
            a = tracker.attrs
            used = self.tracker_fields_used(tracker)
            if isinstance(tracker.node, n.Stalls) or "wait" in used:
                out.append(Line(f"self.{a['wait']} = 0"))
            out.append(Line(f"self.{a['best']} = None"))
            out.append(Line(f"self.{a['best_epoch']} = 0"))
            if "value" in used:
                out.append(Line(f"self.{a['value']} = None"))
            if tracker.keeps is not False or tracker.name in self.restored:
                out.append(Line(f"self.{a['best_weights']} = None"))
            if tracker.cooled:
                out.append(Line(f"self.{a['cooldown_counter']} = 0"))
            if tracker.runtime_direction:
                out.append(Line(f"self.{a['direction']} = None  # \"min\" or \"max\", set at "
                                "the first check"))
        return out

    def tracker_fields_used(self, tracker: _Tracker) -> set[str]:
        used = set()
        for _, rule in self.rules:
            nodes = [rule.condition, *_action_exprs(rule.actions)]
            for expr in nodes:
                for node in walk(expr):
                    if isinstance(node, n.Attribute) and node.value.name == tracker.name:
                        used.add(node.attr.name)
                    if isinstance(node, n.String):
                        for f in template_fields(node.value):
                            if f.startswith(tracker.name + "."):
                                used.add(f.split(".", 1)[1])
        return used

    # -- hooks
    def hooks(self) -> list[str]:
        by_event: dict[str, list[tuple[int, int, n.Rule]]] = {}
        for index, rule in self.rules:
            priority = self.priority(rule)
            for ident in rule.events:
                event = vocab.resolve_event(ident.name)
                by_event.setdefault(event.name, []).append((-priority, index, rule))
        for rules in by_event.values():
            rules.sort(key=lambda item: (item[0], item[1]))
        handlers = [r for _, _, r in by_event.pop("metric_missing", [])]
        self.handler_args: list[str] = []
        self.has_handlers = bool(handlers)  # a handler reading a missing metric calls itself
        handler = self.handler_method(handlers) if handlers else None
        bodies: dict[str, list] = {}
        for event_name in vocab.EVENTS:
            if event_name in by_event:
                bodies[event_name] = self.event_body(vocab.EVENTS[event_name],
                                                     [r for _, _, r in by_event[event_name]])
        # state reset, counters, the History hand-over
        reset = self.state_lines(initial=False)
        if reset:
            begin = bodies.get("train_begin", [])
            bodies["train_begin"] = [Comment("Each fit starts afresh."), *reset,
                                     *([Blank()] if begin else []), *begin]
        if "current_epoch" in self.uses:
            bodies["epoch_begin"] = [Line("self._current_epoch = epoch"),
                                     *bodies.get("epoch_begin", [])]
        if "steps" in self.uses:
            count = [Comment("Count train batches across epochs, as ModelCheckpoint counts "
                             "them (steps_per_execution included)."),
                     If([(Code("self._last_batch is None or batch <= self._last_batch", OR),
                          [Line("self._steps += batch + 1")])],
                        [Line("self._steps += batch - self._last_batch")]),
                     Line("self._last_batch = batch")]
            existing = bodies.get("train_batch_end", [])
            bodies["train_batch_end"] = [*count, *([Blank()] if existing else []), *existing]
        if self.records:
            bodies["train_end"] = [*bodies.get("train_end", []),
                                   Line("self.model.history = self  # what fit returns")]
        methods = []
        for event_name in HOOK_ORDER:
            if event_name not in bodies:
                continue
            event = vocab.EVENTS[event_name]
            body = bodies[event_name]
            if event.level == "epoch":
                args = "epoch, logs=None"
            elif event.level == "batch":
                args = "batch, logs=None"
            else:
                args = "logs=None"
            methods.append("\n".join([f"    def {event.hook}(self, {args}):",
                                       *render(body, 8)]))
        if handler is not None:
            methods.append(handler)
        if any(t.runtime_direction for t in self.trackers.values()):
            methods.append(textwrap.indent(_RESOLVE_DIRECTION.strip("\n"), "    "))
        return methods

    def priority(self, rule: n.Rule) -> int:
        if rule.priority is None:
            return 0
        value = rule.priority.value
        if isinstance(value, n.Number) and isinstance(value.value, int):
            return value.value
        if isinstance(value, n.Unary) and value.op == "-" and isinstance(value.operand, n.Number):
            return -int(value.operand.value)
        raise self.error("a priority given by a parameter (the order of the rules must be "
                         "known when the code is written)", rule.priority)

    def event_body(self, event: vocab.Event, rules: list[n.Rule]) -> list:
        # Python hooks get the logs as Keras passes them (None included); the rules read
        # them as a dict
        logs = "log_values" if any(_passes_logs(rule) for rule in rules) else "logs"
        body: list = []
        prologue: list = []
        uses_logs = False
        for rule in rules:
            stmts, needs_logs, resolve = self.rule_code(rule, event, logs)
            uses_logs |= needs_logs
            prologue += resolve
            if body:
                body.append(Blank())
            body += stmts
        head: list = []
        if uses_logs:
            head.append(Line(f"{logs} = {{}} if logs is None else logs"))
        head += prologue
        if head:
            head.append(Blank())
        return head + body

    def scope_for(self, event: vocab.Event, rule: n.Rule, logs: str) -> _Scope:
        epoch = batch = step = None
        if event.level == "epoch":
            epoch = "epoch"
        elif event.phase == "train" and (event.level == "batch" or event.name == "train_end"):
            epoch = "self._current_epoch"
        if event.level == "batch":
            batch = "batch"
            if event.phase == "train":  # counted at batch end: at its begin, the batch to run
                step = "self._steps" if event.name == "train_batch_begin" else "self._steps - 1"
        if event.level == "signal":
            epoch = "epoch" if "epoch" in self.handler_args else None
            batch = "batch" if "batch" in self.handler_args else None
        return _Scope(event, rule, epoch, batch, step, logs=logs,
                      handler=event.level == "signal")

    # -- one rule
    def rule_code(self, rule: n.Rule, event: vocab.Event, logs: str = "logs"
                  ) -> tuple[list, bool, list]:
        """The statements of one rule in one event, whether they read the logs as a dict,
        and the statements the hook must run first (resolving `mode="auto"`)."""
        scope = self.scope_for(event, rule, logs)
        self._needs_logs = False
        comment = self.rule_comment(rule)
        trackers = [self.trackers[id(t)] for t in _trackers(rule)]
        # a rule whose actions are all calls of Python hooks the caller did not pass is not run
        calls = [a for a in rule.actions if isinstance(a, n.CallPython)]
        guard = None
        if calls and len(calls) == len(rule.actions):
            names = list(dict.fromkeys(a.func.name for a in calls))
            guard = _chain("or", [Code(f"self.{self.attr[name]} is not None", CMP)
                                  for name in names])
        # filters
        filters = [self.filter_code(f, rule, event, scope) for f in rule.filters]
        # the values the trackers check, and the metrics the condition reads
        subject_reads: list[tuple[str, str]] = []  # (key, local)
        for tracker in trackers:
            reads, conditional = self.metric_reads(tracker.node.subject, scope)
            if conditional:
                raise self.error("a metric read on only some paths of a 'stalls'/'improves' "
                                 "subject", conditional[0])
            for key in reads:
                if key not in scope.metric_locals:
                    local = self.metric_local(key, scope)
                    scope.metric_locals[key] = local
                    subject_reads.append((key, local))
        core: list = []
        reads_lr = self.reads_lr(rule)
        lr_first = reads_lr and (any(self.reads_lr_in(t.node.subject) for t in trackers)
                                 or self.reads_lr_in(rule.condition))
        if lr_first:
            core.append(_LR_READ)
        raw_elsewhere = self.raw_metric_keys(rule, scope)
        for tracker in trackers:
            core += self.tracker_update(tracker, scope, trackers, raw_elsewhere)
        # the condition, as groups of `and`-ed parts: the metrics a group reads are read (and
        # reported missing) only once the groups before it have passed, as the rule runs
        groups = self.condition_groups(rule, scope)
        conditions = [(reads, _chain("and", [self.expr(c, scope, boolean=True) for c in parts]))
                      for reads, parts in groups]
        actions = self.actions(rule.actions, scope, rule, guarded_calls=guard is None)
        if not lr_first and reads_lr and actions:
            actions.insert(0, _LR_READ)
        if not any(isinstance(a, n.Stop) for a in rule.actions):
            for tracker in trackers:
                if isinstance(tracker.node, n.Stalls):
                    actions.append(Line(f"self.{tracker.attrs['wait']} = 0  "
                                        "# acted on: count afresh"))
        inner = actions
        last = core[-1] if core else None
        if len(conditions) == 1 and not conditions[0][0] and isinstance(last, If) and \
                last.orelse is None and last.branches[0][0].text == conditions[0][1].text:
            last.branches[0][1].extend(actions)  # `when x improves`: act on the improvement
            conditions = []
            inner = []
        for reads, cond in reversed(conditions):
            inner = self.missing_chain(reads, [If([(cond, inner)])], scope, rule)
        inner = core + inner
        inner = self.missing_chain(subject_reads, inner, scope, rule)
        if filters:
            inner = [If([(_chain("and", filters), inner)])]
        if guard is not None:
            inner = [If([(guard, inner)])]
        resolve: list = []
        for tracker in trackers:
            if tracker.runtime_direction and not scope.handler:
                attr = f"self.{tracker.attrs['direction']}"
                mode = self.option_code(tracker.node, "mode", scope) or '"auto"'
                metric = metric_name_of(tracker.node.subject, self.params)
                if metric == "<param>":
                    monitor = self.expr(tracker.node.subject.args[0], scope).text
                else:
                    monitor = py_str(metric) if metric else "None"
                stmt: list = [If([(Code(f"{attr} is None", CMP), [
                    Comment('mode="auto" resolves at the first check, as in Keras'),
                    Line(f"{attr} = self._resolve_direction({mode}, {monitor})")])])]
                if guard is not None:
                    stmt = [If([(guard, stmt)])]
                resolve += stmt
        return [Comment(comment), *inner], self._needs_logs, resolve

    def condition_groups(self, rule: n.Rule, scope: _Scope
                         ) -> list[tuple[list[tuple[str, str]], list[n.Expr]]]:
        """The rule's condition split at its top-level `and`s into groups, each with the
        metrics it reads first (a new group starts where a part reads a new metric)."""
        if rule.condition is None:
            return []
        parts: list[n.Expr] = []
        stack = [rule.condition]
        while stack:
            node = stack.pop()
            if isinstance(node, n.BoolOp) and node.op == "and":
                stack += [node.right, node.left]
            elif isinstance(node, n.Compare) and len(node.rest) > 1 and \
                    self.metric_reads(node, scope)[1]:
                # `a < b < val_loss` reads val_loss only once `a < b` holds: one link a part
                operands = [node.first, *(x for _, x in node.rest)]
                stack += [n.Compare(operands[i], ((op, operands[i + 1]),), node.span)
                          for i, (op, _) in reversed(list(enumerate(node.rest)))]
            else:
                parts.append(node)
        groups: list[tuple[list[tuple[str, str]], list[n.Expr]]] = []
        guards = scope.guards
        for part in parts:
            always, sometimes = self.metric_reads(part, scope.inner(guards=guards))
            if sometimes:
                raise self.error(
                    f"the metric read '{_source_text(sometimes[0], self.source_of(rule))}' "
                    "happens only when the part of the condition before it lets it (guard it "
                    "with has(...), or move it into a part of its own joined by `and`)",
                    sometimes[0])
            new = [key for key in always if key not in scope.metric_locals]
            if new and groups:
                groups.append(([], []))
            if not groups:
                groups.append(([], []))
            for key in new:
                local = self.metric_local(key, scope)
                scope.metric_locals[key] = local
                groups[-1][0].append((key, local))
            groups[-1][1].append(part)
            guards = guards | self.has_guards(part, scope)
        return groups

    def has_guards(self, expr: n.Expr, scope: _Scope) -> frozenset[str]:
        """The metrics an `and`-ed part proves present: `has("x")`."""
        if isinstance(expr, n.Call) and expr.func.name == "has" and "has" not in self.params:
            return frozenset({self.has_key(expr, scope)})
        return frozenset()

    def source_of(self, rule: n.Node) -> str:
        return self.module.sources.get(id(rule), (self.d.path, self.d.source))[1]

    def rule_comment(self, rule: n.Rule) -> str:
        path, source = self.module.sources.get(id(rule), (self.d.path, self.d.source))
        text = _source_text(rule, source)
        where = f"line {rule.span.line}" if path == self.d.path else \
            f"{os.path.basename(path)}, line {rule.span.line}"
        return f"{where}: {text}"

    def filter_code(self, f: n.Filter, rule: n.Rule, event: vocab.Event, scope: _Scope) -> Code:
        counter = filter_counter(f.unit.name if f.unit else None, event)
        count = self.expr(f.at if isinstance(f, n.Once) else f.count, scope)
        index = {"epoch": scope.epoch, "batch": scope.batch, "step": scope.step}.get(counter)
        if index is None:
            raise self.error(f"a '{type(f).__name__.lower()}' filter on a counter "
                             f"{event.name} does not have here", f)
        if counter == "epoch" and index == "self._current_epoch":
            self.uses.add("current_epoch")
        if counter == "step":
            self.uses.add("steps")
        guard = ""
        if scope.handler:
            guard = f"{index} is not None and "
        if isinstance(f, n.Every):
            if index == "self._steps - 1":
                text = f"self._steps % {count.at(MUL + 1)} == 0"
            else:
                text = f"({index} + 1) % {count.at(MUL + 1)} == 0"
        elif isinstance(f, n.After):
            text = f"{index} >= {count.at(CMP + 1)}"
        elif isinstance(f, n.Before):
            text = f"{index} < {count.at(CMP + 1)}"
        else:
            text = f"{index} == {count.at(CMP + 1)}"
        if guard:
            return Code(guard + text, AND, "and", (f"{index} is not None", text))
        return Code(text, CMP)

    def missing_chain(self, reads: list[tuple[str, str]], rest: list, scope: _Scope,
                      rule: n.Rule) -> list:
        """`x = logs.get("x")` for each read, then: a missing one is reported, else `rest`."""
        if not reads:
            return rest
        self._needs_logs = True
        lines: list = [Line(f"{local} = {scope.logs}.get({self.key_code(key, scope)})")
                       for key, local in reads]
        branches = [(Code(f"{local} is None", CMP), self.missing(key, scope, rule))
                    for key, local in reads]
        return [*lines, If(branches, rest or None)]

    def missing(self, key: str, scope: _Scope, rule: n.Rule) -> list:
        code = self.key_code(key, scope)
        if self.has_handlers:
            args = [code, scope.logs]
            for name in self.handler_args:
                args.append(getattr(scope, name) or "None")
            return [Line(f"self._metric_missing({', '.join(args)})")]
        self.module.imports.add("warnings")
        metric = ("lit", key) if not key.startswith("@") else (
            "field", self.key_code(key, scope.inner(quote="'")))
        pieces = [("lit", f"{self.class_name} (rule at line {rule.span.line}) is conditioned "
                          "on metric `"), metric,
                  ("lit", "` which is not available. Available metrics are: "),
                  ("field", f"','.join({scope.logs})"), ("lit", ".")]
        return [Line(_string_code(pieces, 16, "warnings.warn(", ", stacklevel=2)"))]

    def handler_method(self, rules: list[n.Rule]) -> str:
        """`_metric_missing(...)`: the `on metric_missing` rules, run instead of the warning."""
        event = vocab.EVENTS["metric_missing"]
        needed = set()
        for rule in rules:
            for node in [*_rule_exprs(rule)]:
                for sub in walk(node):
                    if isinstance(sub, n.Name) and sub.id in ("epoch", "batch"):
                        needed.add(sub.id)
                    if isinstance(sub, n.String):
                        needed |= {f for f in template_fields(sub.value) if f in ("epoch",
                                                                                  "batch")}
            for f in rule.filters:
                needed.add(filter_counter(f.unit.name if f.unit else None, event) or "epoch")
            if any(isinstance(a, n.Stop) for a in flat_actions(rule.actions)):
                needed.add("epoch")
        if "step" in needed:
            raise self.error("a 'step' filter in a metric_missing rule", rules[0])
        self.handler_args = [a for a in ("epoch", "batch") if a in needed]
        body: list = []
        uses_logs = False
        for rule in rules:
            stmts, needs_logs, _ = self.rule_code(rule, event)
            uses_logs |= needs_logs
            if body:
                body.append(Blank())
            body += stmts
        args = ", ".join(["missing", "logs", *self.handler_args])
        lines = [f"    def _metric_missing(self, {args}):",
                 '        """Runs where a rule reads a metric the logs lack (`missing`), '
                 'instead of the rule."""']
        lines += render(body, 8)
        return "\n".join(lines)

    # -- metric reads
    def key_code(self, key: str, scope: _Scope) -> str:
        if key.startswith("@"):
            return key[1:] if scope.quote == '"' else key[1:].replace('"', "'")
        return py_str(key, scope.quote)

    def metric_local(self, key: str, scope: _Scope) -> str:
        taken = {*RESERVED_LOCALS, *scope.metric_locals.values(), *scope.locals.values()}
        if key.startswith("@"):
            return _identifier("current", taken)
        return _identifier(key, taken)

    def metric_key(self, node: n.Node, scope: _Scope) -> str | None:
        """The read a node makes of the logs, as a key (`val_loss`, `@self.monitor`), or None."""
        if isinstance(node, n.Name):
            if self.is_metric_name(node.id, scope):
                return node.id
            return None
        if isinstance(node, n.Call) and node.func.name == "metric" and \
                node.func.name not in self.params:
            arg = node.args[0]
            if isinstance(arg, n.String):
                return arg.value
            return "@" + self.expr(arg, scope.inner(quote='"')).text
        return None

    def is_metric_name(self, name: str, scope: _Scope) -> bool:
        return not (name in scope.locals or name in self.params or name in self.variables
                    or name in vocab.BUILTIN_NAMES)

    def metric_reads(self, expr: n.Expr | None, scope: _Scope) -> tuple[list[str], list[n.Node]]:
        """The metrics `expr` reads on every evaluation (in order), and the reads that happen
        only on some paths without a `has(...)` guard."""
        always: list[str] = []
        sometimes: list[n.Node] = []

        def has_keys(e, positive: bool) -> set[str]:
            if positive and isinstance(e, n.Call) and e.func.name == "has":
                return {self.has_key(e, scope)}
            if positive and isinstance(e, n.BoolOp) and e.op == "and":
                return has_keys(e.left, True) | has_keys(e.right, True)
            if not positive and isinstance(e, n.Unary) and e.op == "not":
                return has_keys(e.operand, True)
            if not positive and isinstance(e, n.BoolOp) and e.op == "or":
                return has_keys(e.left, False) | has_keys(e.right, False)
            return set()

        def visit(e, conditional: bool, guards: frozenset[str]) -> None:
            if e is None:
                return
            key = self.metric_key(e, scope)
            if key is not None:
                if key in guards:
                    pass
                elif conditional:
                    sometimes.append(e)
                elif key not in always:
                    always.append(key)
                if isinstance(e, n.Call):
                    for arg in e.args:
                        visit(arg, conditional, guards)
                return
            if isinstance(e, n.BoolOp):
                visit(e.left, conditional, guards)
                visit(e.right, True, guards | has_keys(e.left, e.op == "and"))
            elif isinstance(e, n.Conditional):
                visit(e.cond, conditional, guards)
                visit(e.then, True, guards | has_keys(e.cond, True))
                visit(e.orelse, True, guards | has_keys(e.cond, False))
            elif isinstance(e, n.Compare):
                visit(e.first, conditional, guards)
                for i, (_, right) in enumerate(e.rest):
                    visit(right, conditional or i > 0, guards)
            elif isinstance(e, n.Stalls | n.Improves):
                return  # its subject is read before the condition
            elif isinstance(e, n.Unary):
                visit(e.operand, conditional, guards)
            elif isinstance(e, n.BinOp):
                visit(e.left, conditional, guards)
                visit(e.right, conditional, guards)
            elif isinstance(e, n.Call):
                for arg in (*e.args, *(k.value for k in e.keywords)):
                    visit(arg, conditional, guards)
            elif isinstance(e, n.Table):
                for k, v in e.entries:
                    visit(k, conditional, guards)
                    visit(v, conditional, guards)
            elif isinstance(e, n.Index):
                visit(e.value, conditional, guards)
                visit(e.key, conditional, guards)
            elif isinstance(e, n.IsNan | n.IsFinite):
                visit(e.subject, conditional, guards)

        visit(expr, False, scope.guards)
        return always, sometimes

    def has_key(self, call: n.Call, scope: _Scope) -> str:
        arg = call.args[0]
        if isinstance(arg, n.String):
            return arg.value
        return "@" + self.expr(arg, scope.inner(quote='"')).text

    def raw_metric_keys(self, rule: n.Rule, scope: _Scope) -> set[str]:
        """Metrics a rule reads as logged (not as its trackers' float values): in its
        condition outside the trackers' subjects, and in its actions."""
        keys: set[str] = set()
        stack = [rule.condition]
        while stack:
            node = stack.pop()
            if node is None or isinstance(node, n.Stalls | n.Improves):
                continue
            key = self.metric_key(node, scope)
            if key is not None:
                keys.add(key)
            stack += _children(node)
        for expr in _action_exprs(rule.actions):
            for node in walk(expr):
                key = self.metric_key(node, scope)
                if key is not None:
                    keys.add(key)
                if isinstance(node, n.String):
                    keys |= set(template_fields(node.value))
        return keys

    def reads_logs(self, expr: n.Expr, scope: _Scope) -> bool:
        """Whether an argument of a Python hook reads the logs other than passing them."""
        return any(self.metric_key(node, scope) is not None or (
            isinstance(node, n.Call) and node.func.name == "has") for node in walk(expr))

    # -- learning rate
    def reads_lr_in(self, expr) -> bool:
        for node in walk(expr):
            if isinstance(node, n.Name) and node.id in ("lr", "learning_rate") and \
                    node.id not in self.params and node.id not in self.variables:
                return True
            if isinstance(node, n.String) and any(
                    f in ("lr", "learning_rate") and f not in self.params and
                    f not in self.variables for f in template_fields(node.value)):
                return True
        return False

    def reads_lr(self, rule: n.Rule) -> bool:
        if self.reads_lr_in(rule.condition) or any(self.reads_lr_in(t.subject)
                                                   for t in _trackers(rule)):
            return True
        return any(self.reads_lr_in(e) for e in _action_exprs(rule.actions)) or any(
            isinstance(a, n.Assign) and a.op != "=" for a in flat_actions(rule.actions))

    # -- trackers
    def option_code(self, node, name: str, scope: _Scope) -> str | None:
        for option in node.options:
            if option.name.name == name:
                return self.expr(option.value, scope).text
        return None

    def tracker_update(self, tracker: _Tracker, scope: _Scope, trackers: list[_Tracker],
                       raw_elsewhere: set[str]) -> list:
        node, a = tracker.node, tracker.attrs
        many = len(trackers) > 1
        short = tracker.name if not tracker.name.count("#") else tracker.name.replace("#", "_")
        stalls = isinstance(node, n.Stalls)
        result = (f"{_identifier(short, set())}_" if many else "") + (
            "stalled" if stalls else "improved")
        scope.results[id(node)] = result
        out: list = []
        text = _source_text(node, self.source_of(tracker.rule))
        if stalls:
            out.append(Comment(f"`{text}`: Keras's patience, counted before comparing"))
        else:
            out.append(Comment(f"`{text}`: whether it beats its best so far"))
        # the value checked
        key = self.metric_key(node.subject, scope)
        if key is not None:
            local = scope.metric_locals[key]
            if key in raw_elsewhere:
                value = f"float({local})"
            else:
                out.append(Line(f"{local} = float({local})"))
                value = local
        elif isinstance(node.subject, n.Name) and node.subject.id in ("lr", "learning_rate") \
                and node.subject.id not in self.params:
            value = "lr"
        else:
            value = _identifier((short + "_" if many else "") + "value",
                                set(RESERVED_LOCALS) | set(scope.metric_locals.values()))
            out.append(Line(f"{value} = float({self.expr(node.subject, scope).text})"))
        if "value" in self.tracker_fields_used(tracker):
            out.append(Line(f"self.{a['value']} = {value}"))
        direction = py_str(tracker.static_direction) if tracker.static_direction else \
            f"self.{a['direction']}"
        min_delta = self.option_code(node, "min_delta", scope)
        baseline_node = next((o.value for o in node.options if o.name.name == "baseline"), None)
        baseline = self.option_code(node, "baseline", scope)
        baseline_may_be_none = baseline_node is not None and not isinstance(
            baseline_node, n.Number | n.Unary) and not (
            isinstance(baseline_node, n.Name) and baseline_node.id == "inf")
        if isinstance(baseline_node, n.NoneLit):
            baseline = None
        self.module.helpers.add("is_improvement")

        def improvement(reference: str) -> str:
            args = [value, reference, direction] + ([min_delta] if min_delta else [])
            return f"is_improvement({', '.join(args)})"

        epoch = scope.epoch or "0"
        if epoch == "self._current_epoch":
            self.uses.add("current_epoch")
        on_best = [Line(f"self.{a['best']} = {value}"),
                   Line(f"self.{a['best_epoch']} = {epoch}")]
        snapshot = Line(f"self.{a['best_weights']} = self.model.get_weights()")
        if tracker.keeps is True:
            on_best.append(snapshot)
        elif tracker.keeps is not False:
            on_best.append(If([(self.expr(tracker.keeps, scope, boolean=True), [snapshot])]))
        if stalls:
            if tracker.cooled:
                cooldown = f"self.{a['cooldown_counter']}"
                in_cooldown = ("" if not many else _identifier(short, set()) + "_") + \
                    "in_cooldown"
                out += [Line(f"{in_cooldown} = {cooldown} > 0"),
                        If([(Code(in_cooldown), [Line(f"{cooldown} -= 1"),
                                                 Line(f"self.{a['wait']} = 0")])],
                           [Line(f"self.{a['wait']} += 1")])]
            else:
                out.append(Line(f"self.{a['wait']} += 1"))
            if baseline is None:
                on_best.append(Line(f"self.{a['wait']} = 0"))
            else:
                beats = Code(improvement(baseline))
                if baseline_may_be_none:
                    beats = _chain("or", [Code(f"{baseline} is None", CMP), beats])
                on_best.append(If([(beats, [Line(f"self.{a['wait']} = 0")])]))
            count = self.expr(node.count, scope)
            stalled = Code(f"self.{a['wait']} >= {count.at(CMP + 1)}", CMP)
            if tracker.cooled:
                stalled = _chain("and", [Code(f"not {in_cooldown}", NOT), stalled])
            out.append(If([(Code(improvement(f"self.{a['best']}")),
                            [*on_best, Line(f"{result} = False")])],
                          [Line(f"{result} = {stalled.text}")]))
        else:
            if baseline is not None:
                first = Code(f"self.{a['best']} is None", CMP)
                if baseline_may_be_none:
                    first = _chain("and", [first, Code(f"{baseline} is not None", CMP)])
                out.append(If([(first, [Line(f"self.{a['best']} = {baseline}")])]))
            best = f"self.{a['best']}"
            out.append(Line(f"{result} = {improvement(best)}"))
            out.append(If([(Code(result), on_best)]))
        return out

    # -- actions
    def actions(self, actions, scope: _Scope, rule: n.Rule, *, guarded_calls: bool) -> list:
        out: list = []
        flat = list(actions)
        for i, action in enumerate(flat):
            later = flat[i + 1:]
            out += self.action(action, scope, rule, guarded_calls, later)
        return out

    def action(self, action, scope: _Scope, rule: n.Rule, guarded_calls: bool,
               later: list) -> list:
        if isinstance(action, n.Assign):
            value = self.expr(action.value, scope)
            if action.op == "=":
                new = value.text
            else:
                op = action.op[0]
                new = f"lr {op} {value.at(_BIN_PREC[op] + 1)}"
                if op == "/" and not _nonzero(action.value):
                    new = f"lr / {value.at(MUL + 1)} if {value.at(CMP + 1)} != 0 else math.nan"
                    self.module.imports.add("math")
            out = [Line(f"self.model.optimizer.learning_rate = {new}")]
            if any(self.reads_lr_in(e) for e in _action_exprs(later)) or any(
                    isinstance(a, n.Assign) and a.op != "=" for a in flat_actions(later)) or \
                    self._in_loop:
                out.append(_LR_READ)
            return out
        if isinstance(action, n.Stop):
            flag = {"train": "stop_training", "test": "stop_evaluating",
                    "predict": "stop_predicting"}[scope.event.phase]
            out = [Line(f"self.model.{flag} = True")]
            if scope.epoch is not None:
                self.uses.add("stopped_epoch")
                if scope.epoch == "self._current_epoch":
                    self.uses.add("current_epoch")
                out.append(Line(f"self.stopped_epoch = {scope.epoch}"))
            return out
        if isinstance(action, n.Save):
            self.module.imports.add("os")
            path = self.template(action.path, scope, rule)
            call = "self.model.save_weights" if action.kind == "weights" else "self.model.save"
            return [*_fills(path), StrCall("filepath = ", path, ""),
                    Line('os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)'),
                    Line(f"{call}(filepath, overwrite=True)")]
        if isinstance(action, n.Restore):
            if action.tracker is not None:
                tracker = self.tracker_by_name[action.tracker.name]
            else:
                here = _trackers(rule)
                tracker = self.trackers[id(here[0])] if here else \
                    self.tracker_by_name[next(iter(self.restored))]
            weights = f"self.{tracker.attrs['best_weights']}"
            return [If([(Code(f"{weights} is not None", CMP),
                         [Line(f"self.model.set_weights({weights})")])])]
        if isinstance(action, n.Log):
            self._needs_logs = True
            value = self.expr(action.value, scope)
            key = py_str(action.key.name) if action.key is not None else \
                self.expr(action.key_expr, scope).text
            if action.key is not None:
                scope.metric_locals.pop(action.key.name, None)
            else:
                scope.metric_locals.clear()
            return [Line(f"{scope.logs}[{key}] = {value.text}")]
        if isinstance(action, n.Print | n.Warn | n.Fail):
            message = self.template(action.template, scope, rule)
            if isinstance(action, n.Print):
                return [StrCall("print(", message, ")")]
            if isinstance(action, n.Warn):
                self.module.imports.add("warnings")
                return [StrCall("warnings.warn(", message, ", stacklevel=2)")]
            # in `on metric_missing` a log key was missing: a KeyError, as the compiled rule's
            kind = "KeyError" if all(e.name == "metric_missing" for e in rule.events) \
                else "RuntimeError"
            return [StrCall(f"raise {kind}(", message, ")")]
        if isinstance(action, n.Set):
            target = f"self.{self.attr[action.var.name]}"
            if action.index is not None:
                target += f"[{self.expr(action.index, scope).text}]"
            value = self.expr(action.value, scope)
            if action.op == "/=" and not _nonzero(action.value):
                pass  # Python's ZeroDivisionError, as the compiled rule raises it
            return [Line(f"{target} {action.op} {value.text}")]
        if isinstance(action, n.Cooldown):
            count = self.expr(action.count, scope)
            return [Line(f"self.{self.trackers[id(t)].attrs['cooldown_counter']} = {count.text}")
                    for t in _trackers(rule) if isinstance(t, n.Stalls)]
        if isinstance(action, n.CallPython):
            fn = f"self.{self.attr[action.func.name]}"
            needed, raw = self._needs_logs, scope.inner(logs="logs")  # as Keras passes them
            args = [self.expr(a, raw).text for a in action.args]
            args += [f"{k.name.name}={self.expr(k.value, raw).text}" for k in action.keywords]
            self._needs_logs = needed or any(self.reads_logs(a, scope) for a in (
                *action.args, *(k.value for k in action.keywords)))
            scope.metric_locals.clear()  # the hook may change the logs
            call = Line(f"{fn}({', '.join(args)})")
            if guarded_calls:
                return [If([(Code(f"{fn} is not None", CMP), [call])])]
            return [call]
        if isinstance(action, n.Record):
            self._needs_logs = True
            return [Line(f"self.epoch.append({scope.epoch})"),
                    Block(f"for key, value in {scope.logs}.items():",
                          [Line("self.history.setdefault(key, []).append(value)")]),
                    Line("self.model.history = self")]
        if isinstance(action, n.WriteFile):
            self.module.imports.add("os")
            path = self.template(action.path, scope, rule)
            text = self.expr(action.text, scope)
            if not self.is_str(action.text):
                text = Code(f"str({text.text})")
            mode = "a" if action.mode == "append" else "w"
            written = f"{text.at(ADD + 1)} + \"\\n\"" if action.mode == "append" else text.text
            return [*_fills(path),
                    Comment("In a multi-process job, the compiled rule writes from the first "
                            "process only."),
                    StrCall("filepath = ", path, ""),
                    Line('os.makedirs(os.path.dirname(filepath) or ".", exist_ok=True)'),
                    Block(f'with open(filepath, "{mode}", encoding="utf-8", newline="") as f:',
                          [Line(f"f.write({written})")])]
        if isinstance(action, n.WriteRow):
            self.module.helpers.add("write_row")
            path, row = self.expr(action.file, scope), self.expr(action.row, scope)
            options = "".join(f", {o.name.name}={self.expr(o.value, scope).text}"
                              for o in action.options)
            return [Line(f"write_row({path.text}, {row.text}{options})")]
        if isinstance(action, n.Post):
            return self.post(action, scope, rule, guarded_calls)
        if isinstance(action, n.For):
            return self.loop(action, scope, rule, guarded_calls)
        if isinstance(action, n.Effect):
            raise self.error(f"the effect '{action.full_name}' is cbdsl's runtime", action)
        raise self.error(f"the action '{type(action).__name__}'", action)

    def post(self, action: n.Post, scope: _Scope, rule: n.Rule, guarded_calls: bool) -> list:
        """`post json|form BODY to URL`: `requests.post`, bounded by a timeout."""
        options = {o.name.name: self.expr(o.value, scope).text for o in action.options}
        headers = options.get("headers", "None")
        timeout = options.get("timeout", repr(vocab.POST_TIMEOUT))
        body = self.expr(action.body, scope).text
        sent = f"json={body}" if action.kind.name == "json" else body
        message = py_str(f"{self.d.name} requires the `requests` library.")
        url = self.expr(action.url, scope).text
        call = Line(f"requests.post({url}, {sent}, headers={headers}, timeout={timeout})")
        out = [Block("try:", [Line("import requests")]),
               Block("except ImportError:", [Line(f"raise ImportError({message}) from None")])]
        if action.otherwise is None:
            return [*out, call]
        otherwise = self.action(action.otherwise, scope, rule, guarded_calls, [])
        return [*out, Block("try:", [call]),
                Block("except requests.exceptions.RequestException:", otherwise)]

    _in_loop = False

    def loop(self, loop: n.For, scope: _Scope, rule: n.Rule, guarded_calls: bool) -> list:
        names = [i.name for i in loop.names]
        kind = self.iterable_kind(loop.iterable)
        if kind is None:
            raise self.error("a 'for' over a value that is neither a known table nor a list",
                             loop.iterable)
        iterable = self.expr(loop.iterable, scope)
        if self.may_be_none(loop.iterable):
            iterable = Code(f"{iterable.at(OR + 1)} or {'{}' if kind == 'dict' else '[]'}", OR)
        body_scope = scope.inner()
        read = self.names_read_in(loop)
        taken = set(RESERVED_LOCALS) | set(scope.metric_locals.values()) | set(
            scope.locals.values()) | {self.attr[p] for p in self.params}
        targets = []
        for name in names:
            local = _identifier(name, taken, "_")
            if name not in read:
                local = "_" + local
            body_scope.locals[name] = local
            taken.add(local)
            targets.append(local)
        writes_into = self.writes_into(loop, loop.iterable)
        if kind == "dict":
            source = f"{iterable.at(ATOM)}.items()" if len(names) == 2 else iterable.text
        else:
            source = f"enumerate({iterable.text})" if len(names) == 2 else iterable.text
        if writes_into:
            source = f"list({source})"
        previous = self._in_loop
        self._in_loop = True
        try:
            actions: list = []
            for i, action in enumerate(loop.actions):
                actions += self.action(action, body_scope, rule, guarded_calls,
                                       list(loop.actions[i + 1:]))
            if loop.condition is not None:
                cond = self.expr(loop.condition, body_scope, boolean=True)
                actions = [If([(cond, actions)])]
        finally:
            self._in_loop = previous
        if any(isinstance(a, n.Log | n.CallPython) for a in flat_actions(loop.actions)):
            scope.metric_locals.clear()
        return [Block(f"for {', '.join(targets)} in {source}:", actions)]

    def names_read_in(self, loop: n.For) -> set[str]:
        found = set()
        for expr in [loop.condition, *_action_exprs(loop.actions)]:
            for node in walk(expr):
                if isinstance(node, n.Name):
                    found.add(node.id)
                elif isinstance(node, n.String):
                    found |= set(template_fields(node.value))
        return found

    def writes_into(self, loop: n.For, iterable: n.Expr) -> bool:
        for action in flat_actions(loop.actions):
            if isinstance(iterable, n.Name) and iterable.id == "logs" and isinstance(
                    action, n.Log | n.CallPython):
                return True
            if isinstance(iterable, n.Name) and isinstance(action, n.Set) and \
                    action.var.name == iterable.id:
                return True
        return False

    def iterable_kind(self, expr: n.Expr) -> str | None:
        if isinstance(expr, n.Table):
            return "dict"
        if isinstance(expr, n.Call) and expr.func.name in ("keys", "sorted"):
            return "list"
        if isinstance(expr, n.Name):
            if expr.id in self.params:
                return "dict" if self.params[expr.id].type == "table" else None
            if expr.id in self.variables:
                value = self.variables[expr.id].value
                if isinstance(value, n.Table):
                    return "dict"
                if isinstance(value, n.Call) and value.func.name == "keys":
                    return "list"
                return None
            if expr.id == "logs":
                return "dict"
            if expr.id == "metrics":
                return "list"
        return None

    def may_be_none(self, expr: n.Expr) -> bool:
        """Whether a value may be None at run time (then `<` and `in` need a guard)."""
        if isinstance(expr, n.NoneLit):
            return True
        if isinstance(expr, n.Attribute):
            return expr.attr.name in ("best", "value")
        if isinstance(expr, n.Name):
            if expr.id in self.params:
                info = self.params[expr.id]
                return info.default is None or info.type in ("python", "schedule", "none")
            if expr.id in self.variables:
                var = self.variables[expr.id]
                if isinstance(var.value, n.NoneLit):
                    return True
                return any(isinstance(a, n.Set) and a.var.name == expr.id and isinstance(
                    a.value, n.NoneLit) for _, r in self.rules for a in flat_actions(r.actions))
            return expr.id in ("steps", "metrics")
        return isinstance(expr, n.Call) and expr.func.name in ("lookup", "piecewise")

    def is_str(self, expr: n.Expr) -> bool:
        if isinstance(expr, n.String):
            return True
        if isinstance(expr, n.Call) and expr.func.name == "json":
            return True
        if isinstance(expr, n.Name) and expr.id in self.params:
            return self.params[expr.id].type == "str"
        return False

    # -- templates
    def template(self, expr: n.Expr, scope: _Scope, rule: n.Node, in_init: bool = False
                 ) -> list[tuple[str, str]] | Code:
        """A message or path template: the pieces of an f-string, or an expression."""
        if isinstance(expr, n.String):
            text = expr.value
            pieces: list[tuple[str, str]] = []
            fq = scope.inner(quote="'")
            for literal, name, spec, _ in _FORMATTER.parse(text):
                if literal:
                    pieces.append(("lit", literal))
                if name is None:
                    continue
                value = self.field(name, fq, rule, in_init)
                if spec and any(c in spec for c in "{}'\"\\\n"):
                    raise self.error(f"the format spec of '{{{name}:{spec}}}'", expr)
                pieces.append(("field", value + (f":{spec}" if spec else "")))
            return pieces
        if isinstance(expr, n.Name) and expr.id in self.params:
            # a template passed as an argument: filled as ModelCheckpoint fills its filepath
            attr = self.local_param[expr.id] if in_init else f"self.{self.attr[expr.id]}"
            args = []
            if scope.epoch is not None:
                args.append(f"epoch={scope.epoch} + 1")
            if scope.batch is not None:
                args.append(f"batch={scope.batch} + 1")
            if not in_init:
                self._needs_logs = True
                args.append(f"**{scope.logs}")
            return Code(f"{attr}.format({', '.join(args)})")
        raise self.error("a template computed by an expression (write it as a string)", expr)

    def field(self, name: str, scope: _Scope, rule: n.Node, in_init: bool) -> str:
        """A template field as Python: 1-based epoch and batch numbers, as Keras prints them."""
        if in_init:
            return self.local_param[name]
        if name in scope.locals:
            return scope.locals[name]
        if name == "epoch" and scope.epoch is not None:
            if scope.epoch == "self._current_epoch":
                self.uses.add("current_epoch")
            return f"{scope.epoch} + 1"
        if name == "batch" and scope.batch is not None:
            return f"{scope.batch} + 1"
        if name == "stopped_epoch":
            self.uses.add("stopped_epoch")
            return "self.stopped_epoch + 1"
        if "." in name:
            tracker_name, attr = name.split(".", 1)
            tracker = self.tracker_by_name[tracker_name]
            value = f"self.{tracker.attrs[attr]}"
            return f"{value} + 1" if attr == "best_epoch" else value
        if name in ("epoch", "batch") and name not in self.params and \
                name not in self.variables:
            raise self.error(f"the template field '{{{name}}}' in {scope.event.name}, which "
                             f"has no {name}", rule)
        return self.expr(n.Name(name), scope).text

    # -- expressions
    def expr(self, e: n.Expr, scope: _Scope, boolean: bool = False) -> Code:
        method = getattr(self, f"x_{type(e).__name__}")
        return method(e, scope, boolean)

    def x_Number(self, e, scope, boolean) -> Code:
        text = repr(e.value)
        return Code(text, UNARY if text.startswith("-") else ATOM)

    def x_String(self, e, scope, boolean) -> Code:
        return Code(py_str(e.value, scope.quote))

    def x_Bool(self, e, scope, boolean) -> Code:
        return Code("True" if e.value else "False")

    def x_NoneLit(self, e, scope, boolean) -> Code:
        return Code("None")

    def x_Table(self, e, scope, boolean) -> Code:
        items = [f"{self.expr(k, scope).text}: {self.expr(v, scope).text}"
                 for k, v in e.entries]
        return Code("{" + ", ".join(items) + "}")

    def x_Name(self, e, scope, boolean) -> Code:
        name = e.id
        if name in scope.locals:
            return Code(scope.locals[name])
        if name in self.params:
            if scope.params == "local":
                return Code(self.local_param[name])
            return Code(f"self.{self.attr[name]}")
        if name in self.variables:
            return Code(f"self.{self.attr[name]}")
        q = scope.quote
        if name == "epoch":
            if scope.epoch is None:
                raise self.error("'epoch' where the event has none", e)
            if scope.epoch == "self._current_epoch":
                self.uses.add("current_epoch")
            return Code(scope.epoch)
        if name == "batch":
            if scope.batch is None:
                raise self.error("'batch' where the event has none", e)
            return Code(scope.batch)
        if name == "step":
            if scope.step is None:
                raise self.error("'step' where the event has none", e)
            self.uses.add("steps")
            return Code(scope.step, ADD)
        if name in ("lr", "learning_rate"):
            return Code("lr")
        if name in ("epochs", "steps", "verbose", "metrics"):
            return Code(f"self.params.get({q}{name}{q})")
        if name == "inf":
            self.module.imports.add("math")
            return Code("math.inf")
        if name == "logs":
            if scope.logs == "logs":
                self._needs_logs = True
            return Code(scope.logs)
        if name == "available":
            self._needs_logs = True
            return Code(f"{q},{q}.join({scope.logs})")
        if name == "stopped_epoch":
            self.uses.add("stopped_epoch")
            return Code("self.stopped_epoch")
        if name == "missing":
            return Code("missing")
        if name == "iterations":
            return Code("int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))")
        return self.metric(name, scope)

    def metric(self, key: str, scope: _Scope) -> Code:
        if key in scope.metric_locals:
            return Code(scope.metric_locals[key])
        self._needs_logs = True
        return Code(f"{scope.logs}[{self.key_code(key, scope)}]")

    def x_Attribute(self, e, scope, boolean) -> Code:
        tracker = self.tracker_by_name[e.value.name]
        return Code(f"self.{tracker.attrs[e.attr.name]}")

    def x_Index(self, e, scope, boolean) -> Code:
        return Code(f"{self.expr(e.value, scope).at(ATOM)}[{self.expr(e.key, scope).text}]")

    def x_Unary(self, e, scope, boolean) -> Code:
        if e.op == "not":
            if isinstance(e.operand, n.Call) and e.operand.func.name == "has" and \
                    "has" not in self.params:
                has = self.expr(e.operand, scope, boolean=True)
                return Code(has.text.removesuffix(" is not None") + " is None", CMP)
            operand = self.expr(e.operand, scope, boolean=True)
            return Code(f"not {operand.at(NOT)}", NOT)
        operand = self.expr(e.operand, scope, boolean)
        if e.op == "+":
            return operand
        return Code(f"-{operand.at(UNARY)}", UNARY)

    def x_BinOp(self, e, scope, boolean) -> Code:
        prec = _BIN_PREC[e.op]
        left, right = self.expr(e.left, scope), self.expr(e.right, scope)
        if e.op == "**":
            text = f"{left.at(POW + 1)} ** {right.at(UNARY)}"
        else:
            text = f"{left.at(prec)} {e.op} {right.at(prec + 1)}"
        if e.op in ("/", "//", "%") and not _nonzero(e.right):
            # the rule language divides by zero into NaN rather than stopping training
            self.module.imports.add("math")
            return Code(f"({text} if {right.at(CMP + 1)} != 0 else math.nan)")
        return Code(text, prec)

    def x_Compare(self, e, scope, boolean) -> Code:
        """A comparison chain. As in the rule language, an ordering with None is false and
        `in` None is false: operands that may be None are guarded."""
        operands = [e.first, *(x for _, x in e.rest)]
        codes = [self.expr(x, scope) for x in operands]
        links, plain = [], True
        for i, (op, _) in enumerate(e.rest):
            left, right = operands[i], operands[i + 1]
            lc, rc = codes[i].at(CMP + 1), codes[i + 1].at(CMP + 1)
            if op in ("==", "!=") and (isinstance(left, n.NoneLit) or
                                       isinstance(right, n.NoneLit)):
                other = lc if isinstance(right, n.NoneLit) else rc
                links.append(Code(f"{other} {'is' if op == '==' else 'is not'} None", CMP))
                plain = False
                continue
            link = Code(f"{lc} {op} {rc}", CMP)
            if op in ("<", "<=", ">", ">="):
                guards = [c for x, c in ((left, lc), (right, rc)) if self.may_be_none(x)]
                if guards:
                    plain = False
                    link = _chain("and", [*(Code(f"{g} is not None", CMP) for g in guards),
                                          link])
            elif op in ("in", "not in") and self.may_be_none(right):
                plain = False
                link = _chain("and", [Code(f"{rc} is not None", CMP), link]) if op == "in" \
                    else _chain("or", [Code(f"{rc} is None", CMP), link])
            links.append(link)
        if len(links) == 1:
            return links[0]
        if plain:  # a Python chain: each operand evaluated once, left to right
            text = codes[0].at(CMP + 1) + "".join(
                f" {op} {codes[i + 1].at(CMP + 1)}" for i, (op, _) in enumerate(e.rest))
            return Code(text, CMP)
        return _chain("and", links)

    def x_BoolOp(self, e, scope, boolean) -> Code:
        code = _chain(e.op, [self.expr(e.left, scope, True), self.expr(e.right, scope, True)])
        return code if boolean else Code(f"bool({code.text})")

    def x_Conditional(self, e, scope, boolean) -> Code:
        then = self.expr(e.then, scope, boolean)
        cond = self.expr(e.cond, scope, True)
        orelse = self.expr(e.orelse, scope, boolean)
        return Code(f"{then.at(OR)} if {cond.at(OR)} else {orelse.at(TERNARY)}", TERNARY)

    def x_Stalls(self, e, scope, boolean) -> Code:
        return Code(scope.results[id(e)])

    x_Improves = x_Stalls

    def x_IsNan(self, e, scope, boolean) -> Code:
        self.module.imports.add("math")
        test = f"math.isnan({self.expr(e.subject, scope).text})"
        return Code(f"not {test}", NOT) if e.negated else Code(test)

    def x_IsFinite(self, e, scope, boolean) -> Code:
        self.module.imports.add("math")
        test = f"math.isfinite({self.expr(e.subject, scope).text})"
        return Code(f"not {test}", NOT) if e.negated else Code(test)

    def x_Call(self, e, scope, boolean) -> Code:
        name = e.func.name
        q = scope.quote
        if name in self.params:
            info = self.params[name]
            fn = self.local_param[name] if scope.params == "local" else f"self.{self.attr[name]}"
            args = [self.expr(a, scope).text for a in e.args]
            if info.type == "schedule":
                self.module.helpers.add("call_schedule")
                extra = [] if name == "schedule" else [f"name={py_str(name, q)}"]
                return Code(f"call_schedule({', '.join([fn, *args, *extra])})")
            return Code(f"{fn}({', '.join(args)}) if {fn} is not None else None", TERNARY)
        if name == "metric":
            key = self.metric_key(e, scope)
            return self.metric(key, scope)
        if name == "has":
            self._needs_logs = True
            key = self.has_key(e, scope)
            return Code(f"{scope.logs}.get({self.key_code(key, scope)}) is not None", CMP)
        args = [self.expr(a, scope) for a in e.args]
        texts = [a.text for a in args]
        if name in _MATH:
            self.module.imports.add("math")
            return Code(f"math.{name}({', '.join(texts)})")
        if name == "clip":
            x, lo, hi = texts
            return Code(f"min(max({x}, {lo}), {hi})")
        if name == "float32":
            self.module.imports.add("numpy")
            return Code(f"float(np.float32({texts[0]}))")
        if name == "lookup":
            return Code(f"{args[0].at(ATOM)}.get({', '.join(texts[1:])})")
        if name == "piecewise":
            self.module.helpers.add("piecewise")
            return Code(f"piecewise({', '.join(texts)})")
        if name == "json":
            self.module.imports.add("json")
            return Code(f"json.dumps({texts[0]})")
        if name == "item":
            self.module.imports.add("numpy")
            x = args[0]
            return Code(f"{x.at(ATOM)}.item() if isinstance({x.text}, np.ndarray | np.generic) "
                        f"else {x.at(TERNARY + 1)}", TERNARY)
        if name in ("keys", "sorted"):
            arg, call = e.args[0], "list" if name == "keys" else "sorted"
            if name == "keys":  # `x or ()` only where x may be none or not a table
                known = (isinstance(arg, n.Name) and arg.id == "logs") or (
                    self.iterable_kind(arg) == "dict" and not self.may_be_none(arg))
            else:
                known = not self.may_be_none(arg)
            return Code(f"{call}({texts[0]})" if known
                        else f"{call}({args[0].at(OR + 1)} or ())")
        if name == "startswith":
            return Code(f"{args[0].at(ATOM)}.startswith({texts[1]})")
        if name == "file_empty":
            self.module.helpers.add("file_empty")
            return Code(f"file_empty({texts[0]})")
        if name in ("min", "max", "abs", "round", "float", "int", "len"):  # Python's own
            return Code(f"{name}({', '.join(texts)})")
        if name == "backend":
            return Code("keras.backend.backend()")
        if name == "profiler_available":
            self.module.imports.add("sys")
            return Code('(keras.backend.backend() == "tensorflow" or (keras.backend.backend() '
                        '== "jax" and sys.version_info >= (3, 12)))')
        if name == "now":
            self.module.imports.add("time")
            return Code("time.time()")
        if name == "path":
            self.module.imports.add("os")
            return Code(f"os.path.join({', '.join(texts)})")
        if name == "removeprefix":
            return Code(f"{args[0].at(ATOM)}.removeprefix({texts[1]})")
        if name == "split":
            return Code(f"{args[0].at(ATOM)}.split({texts[1]})")
        raise self.error(f"the function '{name}'", e)


# ------------------------------------------------------------------ pieces

_LR_READ = Line("lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))")

_RESOLVE_DIRECTION = '''
def _resolve_direction(self, mode, monitor):
    """"min" or "max": `mode="auto"` as Keras resolves it. A loss goes down; another metric
    goes the way the model's compiled metric of that name goes."""
    if mode in ("min", "max"):
        return mode
    name = (monitor or "").removeprefix("val_")
    direction = "min" if name == "loss" else None
    for group in getattr(self.model, "metrics", None) or []:
        for metric in getattr(group, "metrics", []):  # the compiled metrics
            if getattr(metric, "name", None) == name and hasattr(metric, "_direction"):
                direction = "max" if metric._direction == "up" else "min"
    if direction is None:
        raise ValueError(
            f"{type(self).__name__} callback received monitor={monitor}, but Keras isn't able "
            "to automatically determine whether that metric should be maximized or minimized. "
            "Pass `mode='max'` in order to monitor based on the highest metric value, or pass "
            "`mode='min'` in order to use the lowest value.")
    return direction
'''


def _fills(path: list | Code) -> list:
    if isinstance(path, Code):
        return [Comment("The path's {epoch} and metric fields are filled in, as ModelCheckpoint "
                        "fills its filepath.")]
    return []


def _nonzero(expr: n.Expr) -> bool:
    """Whether an expression is a number literal other than zero (a safe divisor)."""
    if isinstance(expr, n.Unary) and expr.op in "+-":
        return _nonzero(expr.operand)
    return isinstance(expr, n.Number) and expr.value != 0


def _call_with_string(prefix: str, message: list[tuple[str, str]] | Code, suffix: str,
                      indent: int) -> str:
    if isinstance(message, Code):
        return prefix + message.text + suffix
    return _string_code(message, indent, prefix, suffix)


def _literal_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, str):
        return py_str(value)
    if isinstance(value, float) and value == float("inf"):
        return "float(\"inf\")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal_value(k)}: {_literal_value(v)}"
                               for k, v in value.items()) + "}"
    return repr(value)


def _source_text(node: n.Node, source: str) -> str:
    span = node.span
    if source and span.end > span.start:
        text = " ".join(source[span.start:span.end].split())
        return re.sub(r"([(\[{]) | ([)\]}])", r"\1\2", text)
    return f"the rule at line {span.line}"


def _children(node) -> list:
    t = type(node)
    if t in (n.BinOp, n.BoolOp):
        return [node.left, node.right]
    if t is n.Unary:
        return [node.operand]
    if t is n.Compare:
        return [node.first, *(e for _, e in node.rest)]
    if t is n.Conditional:
        return [node.then, node.cond, node.orelse]
    if t in (n.Call, n.CallPython):
        return [*node.args, *(k.value for k in node.keywords)]
    if t is n.Table:
        return [x for pair in node.entries for x in pair]
    if t in (n.IsNan, n.IsFinite):
        return [node.subject]
    if t is n.Index:
        return [node.value, node.key]
    return []


def _action_exprs(actions) -> list:
    exprs = []
    for action in flat_actions(actions):
        for attr in ("value", "path", "template", "count", "index", "key_expr", "iterable",
                     "condition", "text"):
            value = getattr(action, attr, None)
            if isinstance(value, n.Node):
                exprs.append(value)
        if isinstance(action, n.CallPython):
            exprs += [*action.args, *(k.value for k in action.keywords)]
    return exprs


def _passes_logs(rule: n.Rule) -> bool:
    """Whether a rule hands `logs` to a Python hook."""
    return any(isinstance(node, n.Name) and node.id == "logs"
               for a in flat_actions(rule.actions) if isinstance(a, n.CallPython)
               for arg in (*a.args, *(k.value for k in a.keywords)) for node in walk(arg))


def _rule_exprs(rule: n.Rule) -> list:
    return [rule.condition, *_action_exprs(rule.actions)]


def _docstring(lines: list[str], indent: int) -> list[str]:
    pad = " " * indent
    lines = [line.replace('"""', '\\"\\"\\"') for line in lines]
    if len(lines) == 1:
        return [f'{pad}"""{lines[0]}"""']
    return [f'{pad}"""{lines[0]}', *[f"{pad}{line}" if line else "" for line in lines[1:]],
            f'{pad}"""']


def _wrap_def(line: str, indent: int) -> str:
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


def _imported_rules(program: n.Program, seen: set[str] | None = None):
    """(path, source, rule) for each rule of the files `program` imports, recursively."""
    from cbdsl.diagnostics import CbdslError
    from cbdsl.syntax.parser import parse, read_source

    seen = set() if seen is None else seen
    base = os.path.dirname(os.path.abspath(program.path)) if program.path != "<string>" \
        else os.getcwd()
    for item in program.items:
        if not isinstance(item, n.Import):
            continue
        target = os.path.abspath(os.path.join(base, item.path.value))
        if target in seen:
            continue
        seen.add(target)
        try:
            imported = parse(read_source(target), target)
        except (CbdslError, OSError):
            continue
        for part in imported.items:
            if isinstance(part, n.Rule):
                yield target, imported.source, part
        yield from _imported_rules(imported, seen)


def _shown_path(path: str) -> str:
    """A rule file's path as given, or its name alone when that is long (a library's)."""
    return path if len(path) <= 60 else os.path.basename(path)
