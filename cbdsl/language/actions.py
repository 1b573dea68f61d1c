"""Actions as data: one object per action, with the events that allow it and its typed options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cbdsl.language.events import EVENTS, TRAIN_EVENTS


@dataclass(frozen=True)
class Option:
    """One `with (name = value)` option of an action or predicate.

    Attributes:
        name: as written.
        type: the type of value it takes: `str`, `number`, `bool`, `table`, or `any`.
        doc: what it does, with its default.
        default: the value when it is not given.
    """

    name: str
    type: str
    doc: str
    default: Any = None


@dataclass(frozen=True)
class Action:
    """An action a rule can take after `do`.

    Attributes:
        node: the name of its syntax node (`Assign`), which names its checker, compiler and
            Python-writer methods too.
        syntax: how it is written (`lr = expr`).
        doc: what it does, in one sentence.
        events: the events where it may run (None: every event).
        word: how an error names it (`'stop' is not allowed in train_end`).
        hint: where it may run, in words, for that error.
        options: its `with (...)` options, by name.
        handles: the Python objects it keeps open, readable as the callback's attributes
            under these names (Keras's, such as CSVLogger's `csv_file`); none before use.
    """

    node: str
    syntax: str
    doc: str
    events: frozenset[str] | None = None
    word: str = ""
    hint: str | None = None
    options: dict[str, Option] = field(default_factory=dict)
    handles: tuple[str, ...] = ()


POST_KINDS = ("json", "form")  # `post json|form BODY to URL`
POST_TIMEOUT = 5.0  # seconds, when no `timeout` option is given


def _options(*options: Option) -> dict[str, Option]:
    return {o.name: o for o in options}


_STOP_EVENTS = frozenset(e.name for e in EVENTS.values() if not (e.level == "run" and e.is_end))
_COOLDOWN_EVENTS = frozenset(e.name for e in EVENTS.values() if e.level != "run")

ACTIONS: dict[str, Action] = {
    a.node: a
    for a in [
        Action("Assign", "lr = expr, lr *= expr", "set the optimizer's learning rate",
               TRAIN_EVENTS, "assigning the learning rate",
               "the learning rate is set in train events (train_*, epoch_*, train_batch_*)"),
        Action("Stop", "stop", "stop training (or evaluation, or prediction) after this event",
               _STOP_EVENTS, "stop", "stop in epoch or batch events"),
        Action("Save", 'save model "template", save weights "template"',
               "save the model or its weights to a filled-in path"),
        Action("Restore", "restore best weights [of TRACKER]",
               "set the model's weights to those of a tracker's best check", TRAIN_EVENTS,
               "restore best weights", "weights are restored in train events"),
        Action("Log", "log key = expr, log [expr] = expr", "write a value into the event's logs"),
        Action("Print", 'print "template"', "print a filled-in message (Keras's print_msg)"),
        Action("Warn", 'warn "template"', "raise a Python warning with a filled-in message"),
        Action("Set", "set var = expr, set var[key] op expr", "change a state variable"),
        Action("Cooldown", "cooldown N [of TRACKER]",
               "skip the next N checks of the rule's (or the named) `stalls`",
               _COOLDOWN_EVENTS, "cooldown"),
        Action("CallPython", "call hook(args)",
               "call a Python function that the loading code passed in"),
        Action("Fail", 'fail "template"', "end training with a RuntimeError"),
        Action("Record", "record", "append the epoch and every log value to the history",
               frozenset({"epoch_end"}), "record"),
        Action("For", "for k[, v] in table [when cond] do (actions)",
               "run actions once per key (and value) of a table or list"),
        Action("WriteFile", "write TEXT to PATH, append TEXT to PATH",
               "replace a file's text, or add a line to it"),
        Action("WriteRow", "write row TABLE to FILE [with (...)]",
               "write a table's values as one CSV line at the end of a file",
               options=_options(
                   Option("separator", "str",
                          "the one character between values (default \",\")", ","),
                   Option("header", "bool",
                          "write a line of the table's keys before its values (default false)",
                          False),
                   Option("append", "bool", "false empties the file before writing "
                          "(default true)", True)),
               handles=("csv_file", "writer")),
        Action("Post", "post json|form BODY to URL [with (...)] [else MESSAGE]",
               "send an HTTP POST of a table (first process only, bounded in time)",
               options=_options(
                   Option("headers", "table",
                          "HTTP headers to send, as a table of strings (default none)"),
                   Option("timeout", "number", "seconds to wait to connect, and then between "
                          f"bytes of the answer (default {POST_TIMEOUT:g})", POST_TIMEOUT))),
        Action("Effect", "group.name(args)",
               "run one of the runtime's I/O primitives (see the effects)"),
    ]
}
