"""Diagnostics: stable codes, positions, caret rendering, and the cbdsl error classes."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

# Every diagnostic code cbdsl emits, with a one-line summary. Codes are stable:
# tools and tests may match on them. E1xx syntax, E2xx semantic, E3xx compile,
# E4xx runtime, W2xx semantic warnings.
CODES: dict[str, str] = {
    "E100": "unexpected token",
    "E101": "unexpected character",
    "E102": "unexpected end of input",
    "E103": "input is not UTF-8 text",
    "E104": "nested too deeply",
    "E105": "input too large",
    "E106": "invalid number",
    "E201": "unknown event",
    "E202": "unknown function",
    "E203": "wrong arguments",
    "E204": "count must be a non-negative integer",
    "E205": "action not allowed in this event",
    "E206": "undefined name",
    "E207": "two rules write the same target in one event",
    "E208": "unknown assignment target",
    "E209": "duplicate definition",
    "E210": "unknown option",
    "E211": "invalid option value",
    "E212": "invalid parameter",
    "E213": "import failed",
    "E214": "name not available in this event",
    "E215": "invalid template",
    "E216": "Python call not allowed",
    "E217": "filter unit does not fit the event",
    "E218": "clause given twice",
    "E219": "constant expected",
    "E220": "mode 'auto' needs a metric name",
    "E221": "type mismatch",
    "E222": "unknown effect",
    "E223": "value out of bounds",
    "E301": "invalid value passed to compile",
    "E302": "requirement not met",
    "E401": "learning rate cannot be set",
    "E402": "metric direction unknown",
    "E403": "template field not available",
    "E404": "Python hook failed",
    "E405": "effect failed",
    "E406": "file cannot be read or written",
    "E501": "training log unreadable",
    "E502": "policy failed during a replay",
    "E503": "sweep cannot be run",
    "E601": "rule cannot be written as plain Keras code (cbdsl explain --python)",
    "W201": "name is read as a metric",
    "W202": "callbacks defined but none used",
    "W203": "state variable never read",
}

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A region of source text: 1-based lines and columns, 0-based offsets.

    `end_line`/`end_column` point one past the last character, as Lark does.
    """

    line: int
    column: int
    end_line: int
    end_column: int
    start: int = 0
    end: int = 0

    @classmethod
    def point(cls, line: int, column: int, offset: int = 0) -> Span:
        return cls(line, column, line, column + 1, offset, offset + 1)

    def join(self, other: Span) -> Span:
        first, last = (self, other) if self <= other else (other, self)
        return Span(first.line, first.column, last.end_line, last.end_column,
                    first.start, last.end)


@dataclass(frozen=True)
class Diagnostic:
    """One finding about a rule file: code, message, position and optional hint.

    Args:
        code: a stable code from `CODES` (`E201`, `W201`, ...).
        message: what is wrong, in words.
        span: where; `None` for findings about the whole input.
        path: the file name shown in `path:line:col`.
        source: the full source text, used to show the offending line.
        hint: a short suggestion printed after the caret (a did-you-mean).
        related: other places involved, as `(message, path, span)` tuples.
    """

    code: str
    message: str
    span: Span | None = None
    path: str = "<string>"
    source: str | None = field(default=None, repr=False, compare=False)
    hint: str | None = None
    related: tuple[tuple[str, str, Span], ...] = ()

    @property
    def severity(self) -> str:
        return WARNING if self.code.startswith("W") else ERROR

    @property
    def location(self) -> str:
        if self.span is None:
            return self.path
        return f"{self.path}:{self.span.line}:{self.span.column}"

    def render(self) -> str:
        """Render as `path:line:col: error E201: message`, the line, and a caret."""
        head = f"{self.location}: {self.severity} {self.code}: {self.message}"
        lines = [head]
        lines.extend(_excerpt(self.source, self.span, self.hint))
        for message, path, span in self.related:
            lines.append(f"{path}:{span.line}:{span.column}: note: {message}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form, for editors and CI (`cbdsl check --format json`)."""
        out: dict[str, Any] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "path": self.path,
            "hint": self.hint,
        }
        if self.span is not None:
            out.update(line=self.span.line, column=self.span.column,
                       end_line=self.span.end_line, end_column=self.span.end_column)
        out["related"] = [
            {"message": m, "path": p, "line": s.line, "column": s.column,
             "end_line": s.end_line, "end_column": s.end_column}
            for m, p, s in self.related
        ]
        return out


def _excerpt(source: str | None, span: Span | None, hint: str | None) -> list[str]:
    """The source line of `span` with a caret under the span (its first line)."""
    if source is None or span is None:
        return [f"  = {hint}"] if hint else []
    # Lines are numbered by "\n" alone, as the parser numbers them (not str.splitlines,
    # which also breaks at \r, \f, \v, \x1c-\x1e, \x85, \u2028 and \u2029).
    lines = source.split("\n")
    if not 1 <= span.line <= len(lines):
        return [f"  = {hint}"] if hint else []
    text = lines[span.line - 1]
    if len(text) > 200:  # keep junk input readable: a window around the caret
        lo = max(0, span.column - 80)
        text, offset = text[lo:lo + 160], lo
    else:
        offset = 0
    # one column per character, as the parser counts them: tabs and other control
    # characters print as a space, so the caret stays under the span
    text = "".join(c if c.isprintable() else " " for c in text).rstrip()
    start = span.column - 1 - offset
    end = span.end_column - 1 - offset if span.end_line == span.line else len(text)
    width = max(1, min(end, len(text) + 1) - start)
    gutter = f"{span.line} | "
    caret = " " * len(gutter) + " " * start + "^" * width
    if hint:
        caret += f" {hint}"
    return [gutter + text, caret]


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """`did you mean 'x'?` for the closest candidate, or None."""
    match = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.7)
    return f"did you mean '{match[0]}'?" if match else None


def suggestion(hint: str | None) -> str | None:
    """The name a did-you-mean hint suggests (`'epoch_end'` from `did you mean 'epoch_end'?`),
    or None for any other hint: what an editor's quick fix puts in place of the name."""
    match = _DID_YOU_MEAN.match(hint or "")
    return match[1] if match else None


_DID_YOU_MEAN = re.compile(r"did you mean '([^']+)'\?$")


class CbdslError(Exception):
    """Base class of every error cbdsl raises about its input.

    Attributes:
        diagnostics: every finding, errors and warnings, in source order.
    """

    def __init__(self, diagnostics: Sequence[Diagnostic] | Diagnostic | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic("E000", diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__(self.render())

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == ERROR]

    @property
    def code(self) -> str:
        return (self.errors or self.diagnostics)[0].code

    def render(self) -> str:
        return "\n".join(d.render() for d in self.diagnostics)

    def located(self, path: str, source: str | None, span: Span | None) -> CbdslError:
        """This error, its diagnostics without a place put at `span` of `path` (a run-time
        error raised below the rule that ran it); itself when every one has a place."""
        if span is None or all(d.span is not None for d in self.diagnostics):
            return self
        placed = [d if d.span is not None else
                  Diagnostic(d.code, d.message, span, path, source, d.hint, d.related)
                  for d in self.diagnostics]
        return type(self)(placed)

    def __reduce__(self):  # picklable across processes
        return (type(self), (self.diagnostics,))


class CbdslSyntaxError(CbdslError):
    """The text is not a rule file: raised by `cbdsl.parse`."""


class CbdslCheckError(CbdslError):
    """The rule file parses but means nothing valid: raised by `cbdsl.check`."""


class CbdslCompileError(CbdslError):
    """The checked program cannot become callbacks: raised by `cbdsl.compile`."""


class CbdslRuntimeError(CbdslError):
    """A compiled rule failed while training (learning rate not settable, ...)."""


class KerasWorded:
    """An error that Keras raises too: its text is Keras's message alone, so that code
    matching on it works the same; the code and the rule stay in `diagnostics`."""

    diagnostics: list[Diagnostic]

    def __str__(self) -> str:
        return self.diagnostics[0].message


# The Python errors a run-time error can also be (their constructors take one message).
_WORDED_KINDS = (FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError,
                 PermissionError, OSError, OverflowError, ZeroDivisionError, ArithmeticError,
                 KeyError, IndexError, TypeError, ValueError, RuntimeError)


@functools.cache
def keras_worded(kind: type[Exception]) -> type[CbdslRuntimeError]:
    """The run-time error that is also `kind` (`IsADirectoryError`, `TypeError`): where
    Keras's class raises `kind` in the same place, a rule raises this, with Keras's text as its
    message and its code and position in `diagnostics`. A kind whose constructor does not take
    one message is taken as the nearest common one it derives from (`UnicodeDecodeError` as
    `ValueError`)."""
    for base in (kind, *(k for k in kind.__mro__ if k in _WORDED_KINDS), RuntimeError):
        worded = type(base.__name__, (KerasWorded, CbdslRuntimeError, base), {
            "__module__": __name__,
            "__doc__": f"A cbdsl run-time error that is a {base.__name__}, as Keras raises it."})
        try:
            worded(Diagnostic("E000", "probe"))
        except Exception:
            continue
        return worded
    raise AssertionError("RuntimeError takes a message")  # not reached


class LearningRateNotSettableError(KerasWorded, CbdslRuntimeError, TypeError):
    """The optimizer's learning rate is a schedule or a callable (as Keras: TypeError)."""


class MetricDirectionError(KerasWorded, CbdslRuntimeError, ValueError):
    """`mode='auto'` could not tell whether a metric should go up or down (as Keras)."""


class RequirementError(KerasWorded, CbdslCompileError, ValueError):
    """A callback's `require` clause refused its arguments (as Keras: ValueError)."""


class RuleFailure(RuntimeError):
    """A `fail "message"` action ended training; the message is the rendered template."""


class MissingKeyFailure(RuleFailure, KeyError):
    """A `fail` in an `on metric_missing` rule: a log key was missing, so the error is also a
    KeyError, as Python code indexing the logs raises (its text is the message's repr, as a
    KeyError's is)."""
