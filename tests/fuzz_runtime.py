"""Run-time fuzzing: policies that `cbdsl check` accepts, driven through a real Keras model."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import io
import json
import math
import multiprocessing
import os
import random
import re
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # `programs`, when run as a script
    sys.path.insert(0, str(HERE))

SOFT_LIMIT_S = 5.0  # one program past this is a hang, stopped where it is
HARD_LIMIT_S = 20.0  # a worker silent this long is stuck outside Python: killed
MEMORY_HEADROOM = 1 << 30  # bytes a program may allocate beyond the worker's own

# ----------------------------------------------------------------------------- vocabulary

METRICS = ["loss", "val_loss", "mae", "val_mae", "accuracy", "val_accuracy"]
NUMBER_POOL = ["0", "-1", "1", "2", "3", "0.5", "1e308", "1e-308", "10 ** 400", "10 ** 20",
               "99999999999999999999", "4294967296", "0.0", "1e-4", "7", "1e400", "2.5"]
SPECS = ["", ".3f", "03d", "+.2e", ">8", "g", "%", ",", "x", "s", "c", "05.1f", "=^9", "b", "n"]
STRING_POOL = ['"{loss:03d}"', '"{loss:>1000000000}"', '"{x.__class__}"', '"{epoch}"', '""',
               '"min"', '"max"', '"auto"', '"m.keras"', '"w.weights.h5"', '"out/"', '"."',
               '"{loss:.3f}"', '"val_loss"', '"loss"', '"0.1 * 0.9 ** epoch"', '"{}"', '"{"',
               '","', '";;"', '"tb"', '"{epoch:,}"', '"{loss:%}"', '"{lr:x}"', '"{epoch:c}"',
               '"{batch:=^20}"', '"e{epoch:02d}-{val_loss:.2f}.keras"', '"a b"', '"\\n"',
               '"{missing}"', '"{available}"', '"lr * 2"', '"epoch"', '"1e999"']
SEPARATORS = ['","', '" "', '""']
VALUES = [0.5, 0.25, 1.0, 0.0, -0.0, -1.0, -3.5, math.nan, math.inf, -math.inf, 1e308, 3.4e38,
          1e-320, 3, 0, -2, 10**20, 2**63]


def _numpy_values() -> list[Any]:
    import numpy as np

    return [np.float32(0.125), np.float64(2.0), np.int64(4), np.float32("nan")]


# ------------------------------------------------------------------------------ sources


@cache
def corpus() -> dict[str, str]:
    """The policies mutants are made from: rule files, examples and the fuzz corpus."""
    paths = [*sorted((ROOT / "rules").glob("*.cbd")), *sorted((ROOT / "examples").glob("*.cbd")),
             *sorted((HERE / "fuzz_corpus").glob("*.cbd")), ROOT / "cbdsl" / "data" / "demo.cbd"]
    return {f"{p.parent.name}/{p.name}": _confined(p.read_text("utf-8")) for p in paths}


def _confined(text: str) -> str:
    # URL paths are absolute; a mutant may use one as a file path: make them relative
    return text.replace('"/publish/epoch/end/"', '"publish/epoch/end/"').replace(
        "localhost:9000", "127.0.0.1:9")


def lex(text: str) -> list[tuple[str, str]]:
    """(kind, text) of every token, whitespace and comments included, by cbdsl's own lexer."""
    from cbdsl.syntax.parser import lark_parser

    return [(t.type, str(t)) for t in lark_parser().lex(text, dont_ignore=True)]


def _kind(token_type: str) -> str:
    if token_type in ("NAME", "NUMBER", "STRING", "WS", "COMMENT"):
        return token_type
    return "WORD"


# Words and operators that can stand for each other.
SWAPS = [["<", "<=", ">", ">=", "==", "!="], ["+", "-", "*", "/", "//", "%", "**"],
         ["=", "+=", "-=", "*=", "/="], ["and", "or"], ["true", "false", "none"],
         ["every", "after"], ["model", "weights"], ["epoch", "epochs", "batch", "batches", "step",
                                                    "steps"], ["print", "warn", "fail"],
         ["stalls", "improves"], ["json", "form"], ["in", "not in"], ["finite", "nan"]]


@cache
def known_names() -> tuple[str, ...]:
    """Names of the language that lex as names (not reserved words)."""
    from cbdsl import language

    words = {*language.EVENTS, *language.EVENT_ALIASES, *language.BUILTIN_NAMES,
             *language.FUNCTIONS, *language.TRACKER_FIELDS, *METRICS, "x", "watch", "plateau",
             "patience", "monitor", "factor", "keras"}
    return tuple(sorted(w for w in words if lex(w)[0][0] == "NAME"))


def mutate(text: str, rng: random.Random, count: int | None = None) -> str:
    """A token-level mutant: numbers, names and strings replaced, tokens dropped or doubled."""
    tokens = lex(text)
    solid = [i for i, (kind, _) in enumerate(tokens) if kind not in ("WS", "COMMENT")]
    if not solid:
        return text
    own = {k: [v for kind, v in tokens if _kind(kind) == k] for k in ("NAME", "STRING")}
    for _ in range(count or rng.choice([1, 1, 1, 2, 2, 3])):
        i = rng.choice(solid)
        kind, value = tokens[i]
        op = rng.random()
        if op < 0.06:
            tokens[i] = ("WS", " ")
        elif op < 0.1:
            tokens[i] = (kind, f"{value} {value}")
        elif kind == "NUMBER":
            tokens[i] = (kind, rng.choice(NUMBER_POOL))
        elif kind == "NAME":
            tokens[i] = (kind, rng.choice(own["NAME"] if rng.random() < 0.5 else known_names()))
        elif kind == "STRING":
            tokens[i] = (kind, rng.choice(own["STRING"] if rng.random() < 0.3 else STRING_POOL))
        else:
            group = next((g for g in SWAPS if value in g), None)
            if group is not None:
                tokens[i] = (kind, rng.choice(group))
            elif op < 0.2:  # another word of the file
                tokens[i] = (kind, tokens[rng.choice(solid)][1])
    return "".join(value for _, value in tokens)


def corpus_mutant(rng: random.Random) -> str:
    """A mutant of one policy of the corpus."""
    sources = corpus()
    return mutate(sources[rng.choice(sorted(sources))], rng)


class PolicyWriter:
    """Writes a policy from a seeded random source, from the language's own vocabulary, shaped
    so that the checker accepts most of what it writes."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.params: dict[str, str] = {}  # name: type
        self.vars: dict[str, str] = {}
        self.trackers: list[str] = []
        self.hooks: list[str] = []
        self.count = 0

    def pick(self, options: list[Any]) -> Any:
        return self.rng.choice(options)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def fresh(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    # -- expressions, typed and placed in an event

    def number(self, event: str, depth: int = 0) -> str:
        from cbdsl import language

        ev = language.resolve_event(event)
        if depth >= 3 or self.chance(0.4):
            atoms = [self.pick([*NUMBER_POOL[:9], "0.1", "5", "100"]), self.pick(METRICS),
                     "epochs", "stopped_epoch"]
            if ev.phase == "train" and event != "train_begin":
                atoms.append("epoch")
            if ev.level == "batch":
                atoms.append("batch")
                if ev.phase == "train":
                    atoms.append("step")
            if ev.phase != "predict":
                atoms += ["lr", "iterations"]
            atoms += [n for n, t in {**self.params, **self.vars}.items() if t == "num"]
            atoms += [f"{t}.{self.pick(['best', 'wait', 'value', 'best_epoch'])}"
                      for t in self.trackers]
            return self.pick(atoms)
        d = depth + 1
        form = self.rng.randrange(9)
        if form == 0:
            return f"({self.number(event, d)} {self.pick(['+', '-', '*', '/', '//', '%', '**'])}" \
                   f" {self.number(event, d)})"
        if form == 1:
            return f"-{self.number(event, d)}"
        if form == 2:
            fn = self.pick(["abs", "exp", "sqrt", "floor", "ceil", "round", "cos", "sin", "tanh",
                            "float", "float32", "int", "log"])
            return f"{fn}({self.number(event, d)})"
        if form == 3:
            fn = self.pick(["min", "max", "pow", "round", "log"])
            return f"{fn}({self.number(event, d)}, {self.number(event, d)})"
        if form == 4:
            return f"clip({self.number(event, d)}, {self.number(event, d)}, " \
                   f"{self.number(event, d)})"
        if form == 5:
            return f"({self.number(event, d)} if {self.boolean(event, d)} " \
                   f"else {self.number(event, d)})"
        if form == 6:
            return f"lookup({self.table(event, d)}, {self.key()}, {self.number(event, d)})"
        if form == 7:
            return f"len({self.pick([self.table(event, d), self.string(event, d)])})"
        return f'metric({self.pick([self.string(event, d), repr(self.pick(METRICS))])})'

    def key(self) -> str:
        return self.pick(['"loss"', '"a"', "0", "1", "3", '"val_loss"'])

    def boolean(self, event: str, depth: int = 0) -> str:
        d = depth + 1
        form = self.rng.randrange(10 if depth < 3 else 4)
        if form == 0:
            return f"{self.number(event, d)} {self.pick(['<', '<=', '>', '>=', '==', '!='])} " \
                   f"{self.number(event, d)}"
        if form == 1:
            test = self.pick(["nan", "not nan", "finite", "not finite"])
            return f"{self.number(event, d)} is {test}"
        if form == 2:
            return f'has({self.pick(["loss", "val_loss", "size", "x"])!r})'.replace("'", '"')
        if form == 3:
            return self.pick(["true", "false"] + [n for n, t in {**self.params, **self.vars}.items()
                                                  if t == "bool"])
        if form == 4:
            return f"not {self.boolean(event, d)}"
        if form == 5:
            return f"({self.boolean(event, d)} {self.pick(['and', 'or'])} {self.boolean(event, d)})"
        if form == 6:
            return f"{self.key()} {self.pick(['in', 'not in'])} {self.table(event, d)}"
        if form == 7:
            fn = self.pick(["startswith", "endswith"])
            return f"{fn}({self.string(event, d)}, {self.string(event, d)})"
        if form == 8:
            return f"file_empty({self.path()})"
        return f"{self.string(event, d)} == {self.string(event, d)}"

    def string(self, event: str, depth: int = 0) -> str:
        d = depth + 1
        form = self.rng.randrange(9 if depth < 3 else 1)
        if form == 0:
            return self.pick([*STRING_POOL, '"loss"', '"x"', '"a,b"'])
        if form == 1:
            return f'format({self.number(event, d)}, "{self.pick(SPECS)}")'
        if form == 2:
            return f"json({self.pick([self.number(event, d), self.table(event, d), 'logs'])})"
        if form == 3:
            return f"type({self.pick([self.number(event, d), self.string(event, d)])})"
        if form == 4:
            return f"path({self.string(event, d)}, {self.string(event, d)})"
        if form == 5:
            return f"removeprefix({self.string(event, d)}, {self.string(event, d)})"
        if form == 6:
            return f"({self.string(event, d)} + {self.string(event, d)})"
        if form == 7:
            return f"fill({self.template(event)})"
        return self.pick(["backend()", "available"] + [n for n, t in
                                                       {**self.params, **self.vars}.items()
                                                       if t == "str"])

    def table(self, event: str, depth: int = 0) -> str:
        d = depth + 1
        form = self.rng.randrange(6 if depth < 3 else 2)
        if form == 0:
            entries = ", ".join(f"{self.key()}: {self.number(event, d)}"
                                for _ in range(self.rng.randrange(3)))
            return "{" + entries + "}"
        if form == 1:
            return self.pick(["logs"] + [n for n, t in {**self.params, **self.vars}.items()
                                         if t == "table"])
        if form == 2:
            return f"split({self.string(event, d)}, {self.pick(SEPARATORS)})"
        if form == 3:
            return f"keys({self.table(event, d)})"
        if form == 4:
            return f"sorted(keys({self.table(event, d)}))"
        return "{" + f'"loss": {self.number(event, d)}, "epoch": {self.number(event, d)}' + "}"

    def template(self, event: str) -> str:
        from cbdsl import language

        ev = language.resolve_event(event)
        fields = [*METRICS[:3], "lr", "available", *list(self.params), *list(self.vars)]
        if event == "metric_missing":
            fields.append("missing")
        if ev.phase == "train" and event != "train_begin":
            fields.append("epoch")
        if ev.level == "batch":
            fields.append("batch")
        fields += [f"{t}.{self.pick(['best', 'wait', 'best_epoch'])}" for t in self.trackers]
        parts = [self.pick(["e", "loss=", "", "out/", " "])]
        for _ in range(self.rng.randrange(1, 3)):
            spec = self.pick(SPECS)
            parts.append("{" + self.pick(fields) + (f":{spec}" if spec else "") + "}")
        return '"' + "".join(parts) + '"'

    def path(self) -> str:
        return self.pick(['"out.txt"', '"d/x.txt"', '"log.csv"', '"."', '"out"', '""',
                          '"d/e{epoch}.txt"'])

    def any_value(self, event: str) -> str:
        return self.pick([self.number, self.string, self.boolean, self.table])(event, 1)

    # -- actions, as each event allows them

    def action(self, event: str, stalls: bool, depth: int = 0) -> str:
        from cbdsl import language

        ev = language.resolve_event(event)
        options: list[Callable[[], str]] = [
            lambda: f"log {self.fresh('k')} = {self.any_value(event)}",
            lambda: f"log [{self.string(event, 1)}] = {self.number(event, 1)}",
            lambda: f"print {self.template(event)}",
            lambda: f"warn {self.template(event)}",
            lambda: f"write {self.string(event, 1)} to {self.path()}",
            lambda: f"append {self.string(event, 1)} to {self.path()}",
            lambda: f"write row {self.table(event, 1)} to {self.path()}"
                    + self.pick(["", " with header = true", ' with separator = ";"',
                                 ' with (separator = "", append = false)',
                                 " with append = (1 > 2)"]),
            lambda: f"post {self.pick(['json', 'form'])} {self.table(event, 1)} to "
                    '"http://127.0.0.1:9/x" with timeout = '
                    + self.pick(["0.5", "0", "-1", "1e308"])
                    + self.pick(["", ' else warn "down"', ' else print "down {available}"']),
            lambda: self.pick(['save model "m{epoch}.keras"', 'save model "m.h5"',
                               'save weights "w/e{epoch:02d}.weights.h5"',
                               'save weights "{loss:.2f}.weights.h5"', 'save model "m.keras"',
                               'save model "{lr:.0e}/m.keras"', 'save weights "x.weights.h5"']),
            lambda: self.pick(["progress.start(steps)", "progress.start(3, verbose = 2)",
                               "progress.update(1, values = logs)",
                               "progress.update(2, values = logs, finalize = true, target = 2)",
                               "ema.swap()", "ema.finalize()", 'backup.clear("bk")',
                               f'tensorboard.scalar("tb", "x", {self.number(event, 2)}, 0)',
                               'tensorboard.push_writer("tb", 1)', "tensorboard.pop_writer()",
                               'tensorboard.histograms("tb", 0)', "tensorboard.close()",
                               'tensorboard.model_config("tb")']),
        ]
        if self.vars:
            name = self.pick(sorted(self.vars))
            kind = self.vars[name]
            value = {"num": self.number, "str": self.string, "bool": self.boolean,
                     "table": self.table}[kind](event, 1)
            op = self.pick(["=", "+=", "-=", "*=", "/="]) if kind == "num" else "="
            options.append(lambda: f"set {name} {op} {value}")
            if kind == "table":
                options.append(lambda: f"set {name}[{self.key()}] "
                                       f"{self.pick(['=', '+='])} {self.number(event, 1)}")
        if ev.phase == "train" and event not in ("train_end",):
            options.append(lambda: f"lr {self.pick(['=', '*=', '+=', '-=', '/='])} "
                                   f"{self.number(event, 1)}")
            if self.trackers:
                options.append(lambda: f"restore best weights of {self.pick(self.trackers)}")
        if not ev.is_end or ev.level != "run":
            options.append(lambda: "stop")
        if event == "epoch_end":
            options.append(lambda: "record")
            options.append(lambda: f'backup.store("bk", {self.number(event, 2)})')
        if event == "train_begin":
            options.append(lambda: 'backup.resume("bk")')
        if stalls:
            options.append(lambda: f"cooldown {self.pick(['1', '0', '2', '-1', '1e308'])}")
        if self.hooks:
            options.append(lambda: f"call {self.pick(self.hooks)}({self.any_value(event)}, "
                                   f"logs = {self.table(event, 1)})")
        if self.chance(0.04):
            return f"fail {self.template(event)}"
        if depth == 0 and self.chance(0.12):
            names = self.pick([["k"], ["k", "v"]])
            loop = f"for {', '.join(names)} in {self.table(event, 1)}"
            if self.chance(0.3):
                loop += f" when {self.boolean(event, 1)}"
            inner = ", ".join(self.action(event, stalls, 1)
                              for _ in range(self.rng.randrange(1, 3)))
            return f"{loop} do ({inner})"
        return self.pick(options)()

    def predicate(self, event: str) -> tuple[str, bool]:
        subject = self.pick([self.pick(METRICS), self.pick(METRICS),
                             f'metric("{self.pick(METRICS)}")', self.number(event, 2)])
        opts = []
        if subject not in METRICS and not subject.startswith("metric("):
            opts.append("mode = " + self.pick(['"min"', '"max"']))
        for name, values in [("mode", ['"min"', '"max"', '"auto"', '"up"']),
                             ("min_delta", ["0", "0.1", "-1", "1e308"]),
                             ("baseline", ["0.5", "none", "-1"]), ("weights", ["true", "false"]),
                             ("keep", ["true", "false"]),
                             ("only", [f"({self.boolean(event, 2)})"])]:
            if self.chance(0.2) and not (opts and name == "mode"):
                opts.append(f"{name} = {self.pick(values)}")
        with_ = "" if not opts else (f" with {opts[0]}" if len(opts) == 1
                                     else f" with ({', '.join(opts)})")
        alias = ""
        if self.chance(0.5):
            alias = self.fresh("t")
            self.trackers.append(alias)
            alias = f" as {alias}"
        if self.chance(0.6):
            count = self.pick(['0', '1', '2', '3', '1', '-1'])
            return f"{subject} stalls {count}{with_}{alias}", True
        return f"{subject} improves{with_}{alias}", False

    def rule(self) -> str:
        from cbdsl import language

        events = [e for e in language.EVENTS] + list(language.EVENT_ALIASES)
        event = self.pick(["epoch_end"] * 6 + ["train_batch_end"] * 2 + events)
        ev = language.resolve_event(event)
        text = ""
        if self.chance(0.2):
            text += f"{self.fresh('rule')}: "
        text += f"on {event}"
        if self.chance(0.15):
            same = [e for e in language.EVENTS.values()
                    if e.level == ev.level and e.phase == ev.phase and e.name != ev.name]
            if same:
                text += f", {self.pick(same).name}"
        if self.chance(0.3) and ev.level in ("epoch", "batch"):
            units = [("epoch", "epochs")] if ev.level == "epoch" else [("batch", "batches")]
            if ev.level == "batch" and ev.phase == "train":
                units.append(("step", "steps"))
            unit, units_word = self.pick(units)
            n = self.pick(["0", "1", "2", "3", "3", "2", "1e308", "99999999999999999999"])
            text += self.pick([f" every {self.pick(['1', '2', '3'])}"
                               + self.pick(["", f" {units_word}"]),
                               f" after {n}" + self.pick(["", f" {units_word}"]),
                               f" from {unit} {n}", f" before {unit} {n}",
                               f" once at {unit} {n}"])
        if self.chance(0.1):
            text += f" priority {self.pick(['1', '-1', '2', '99999999999999999999'])}"
        stalls = False
        if self.chance(0.75):
            cond = self.boolean(event)
            if self.chance(0.45) and ev.level in ("epoch", "batch"):
                predicate, stalls = self.predicate(event)
                cond = predicate if self.chance(0.5) else f"{predicate} and {cond}"
            text += f" when {cond}"
        actions = [self.action(event, stalls) for _ in range(self.rng.randrange(1, 4))]
        text += " do " + ", ".join(actions)
        return text

    def declaration(self, keyword: str) -> tuple[str, str]:
        """A new parameter or variable: its name and constant value."""
        kind = self.pick(["num", "num", "str", "bool", "table"])
        name = self.fresh("p" if keyword == "param" else "v")
        value = {"num": self.pick(NUMBER_POOL[:8]), "str": self.pick(STRING_POOL),
                 "bool": self.pick(["true", "false"]),
                 "table": self.pick(["{}", '{0: 0.1, 2: 0.01}', '{"a": 1}'])}[kind]
        (self.params if keyword == "param" else self.vars)[name] = kind
        return name, value

    def variable(self) -> str:
        name, value = self.declaration("var")
        return f"{'keep ' if self.chance(0.2) else ''}var {name} = {value}"

    def library_use(self) -> str:
        defn = library_definitions()
        name = self.pick(sorted(defn))
        args = []
        for param, kind in defn[name]:
            if kind == "required" or self.chance(0.3):
                args.append(f"{param} = {self.library_value(param, kind)}")
        return f"use keras.{name}({', '.join(args)})"

    def library_value(self, name: str, kind: str) -> str:
        if name in ("filepath", "filename"):
            return self.pick(['"m.keras"', '"log.csv"', '"w.weights.h5"', '"e{epoch}.keras"',
                              '"{val_loss:.2f}.keras"', '"d/"'])
        if name in ("backup_dir", "log_dir"):
            return self.pick(['"bk"', '"tb"', '""', '"."'])
        if name == "monitor":
            return self.pick(['"val_loss"', '"loss"', '"accuracy"', '"x"'])
        if name == "mode":
            return self.pick(['"min"', '"max"', '"auto"', '"up"'])
        if name == "schedule":
            return self.pick(['{0: 0.1, 2: 0.01}', '"0.1 * 0.9 ** epoch"', '"lr * 2"', '{}'])
        return {"int": self.pick(["0", "1", "2", "-1"]),
                "float": self.pick(["0", "0.5", "1.5", "1e308", "-1"]),
                "bool": self.pick(["true", "false"]), "str": self.pick(STRING_POOL),
                "table": self.pick(["{}", '{"a": "b"}']),
                "any": self.pick(['"epoch"', "1", "2", '"batch"', "true", '"0,1"', "0"])
                }.get(kind, self.pick(["none", "1", '"x"']))

    def program(self) -> str:
        if self.chance(0.25):  # a callback definition, with hooks, checks and attributes
            return self.definition()
        items = ["param {} = {}".format(*self.declaration("param"))
                 for _ in range(self.rng.randrange(3))]
        items += [self.variable() for _ in range(self.rng.randrange(3))]
        items += [self.rule() for _ in range(self.rng.randrange(1, 5))]
        if self.chance(0.2):
            items.append(self.library_use())
        return "\n".join(items) + "\n"

    def definition(self) -> str:
        name = self.fresh("Cb")
        self.hooks = ["hook"] if self.chance(0.5) else []
        params = [f"{h}: python" for h in self.hooks] + [
            "{} = {}".format(*self.declaration("param")) for _ in range(self.rng.randrange(3))]
        body = [self.variable() for _ in range(self.rng.randrange(3))]
        body += [self.rule() for _ in range(self.rng.randrange(1, 4))]
        numbers = [p for p, t in self.params.items() if t == "num"]
        if numbers and self.chance(0.4):
            p = self.pick(numbers)
            body.append(f'require {p} >= {self.pick(["0", "1"])} else "bad {p}: {{{p}}}"')
        if self.vars and self.chance(0.4):
            body.append(f"expose {self.fresh('attr')} = {self.pick(sorted(self.vars))}")
        if self.trackers and self.chance(0.3):
            body.append(f"expose {self.fresh('attr')} = {self.pick(self.trackers)}."
                        f"{self.pick(['wait', 'best', 'direction'])}")
        lines = [f"callback {name}({', '.join(params)}) {{", *[f"  {b}" for b in body], "}"]
        if self.chance(0.85):
            lines.append(f"use {name}()")
        return "\n".join(lines) + "\n"


@cache
def library_definitions() -> dict[str, list[tuple[str, str]]]:
    """The built-in library's rule files: (parameter, type or `required`) of each."""
    from cbdsl.checker import REQUIRED
    from cbdsl.checker.resolve import resolve_definition

    out = {}
    for path in sorted((ROOT / "rules").glob("*.cbd")):
        definition = resolve_definition(f"keras.{path.stem}", None)
        out[path.stem] = [(name, "required" if info.default is REQUIRED else info.type)
                          for name, info in definition.params.items()
                          if info.type not in ("python", "keywords")]
    return out


def written_policy(rng: random.Random) -> str:
    """A policy the `PolicyWriter` writes from `rng`."""
    return PolicyWriter(rng).program()


def program_cases() -> Any:
    """Hypothesis strategy of `(kind, text, seed)`: written policies, corpus mutants and
    programs drawn from the grammar, with the seed of the trace and arguments they run with."""
    from hypothesis import strategies as st
    from programs import programs as grammar_programs

    seeds = st.integers(0, 2**63 - 1)

    def by_kind(share: int) -> Any:
        if share < 5:
            return st.tuples(st.just("grammar"), grammar_programs())
        if share < 50:
            return st.tuples(st.just("mutant"), seeds.map(lambda s: corpus_mutant(
                random.Random(s))))
        return st.tuples(st.just("written"), seeds.map(lambda s: written_policy(
            random.Random(s))))

    return st.tuples(st.integers(0, 99).flatmap(by_kind), seeds).map(
        lambda pair: (pair[0][0], pair[0][1], pair[1]))


# ------------------------------------------------------------------------------ sandbox


class SandboxViolation(BaseException):
    """A program wrote outside its folder: the harness refused it (not a finding)."""


class ProgramTimeout(BaseException):
    """A program ran past the soft limit: raised where it was."""


_SANDBOX: dict[str, Any] = {"root": None, "port": 9}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_PATH_EVENTS = {"os.remove", "os.rmdir", "os.rename", "os.mkdir", "os.truncate", "os.chmod",
                "shutil.rmtree", "shutil.copyfile", "shutil.move", "os.symlink", "os.link",
                "os.utime", "os.chown"}


def _inside(path: Any) -> bool:
    if isinstance(path, int):
        return True
    path = os.fsdecode(path)
    full = os.path.realpath(os.path.join(os.getcwd(), path))
    root = _SANDBOX["root"]
    return full == root or full.startswith(root + os.sep) or full == os.devnull


def _audit(event: str, args: tuple) -> None:
    if _SANDBOX["root"] is None:
        return
    if event == "open":
        path, mode, flags = args
        writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
            mode is None and flags & _WRITE_FLAGS)
        if writing and path is not None and not _inside(path):
            raise SandboxViolation(f"write to {path!r}")
    elif event in _PATH_EVENTS:
        for path in args[:2]:
            if isinstance(path, str | bytes | os.PathLike) and not _inside(path):
                raise SandboxViolation(f"{event} {path!r}")
    elif event == "socket.connect":
        address = args[1]
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "::1")
                and address[1] == _SANDBOX["port"]):
            raise ConnectionRefusedError(f"the fuzzer refuses connections to {address!r}")
    elif event == "socket.getaddrinfo" and args[0] not in ("127.0.0.1", "localhost", "::1"):
        raise socket.gaierror(f"the fuzzer resolves no host ({args[0]!r})")


def _refuse_outside(path: Any, what: str) -> None:
    if _SANDBOX["root"] is not None and isinstance(path, str | bytes | os.PathLike) \
            and not _inside(path):
        raise SandboxViolation(f"{what} {path!r}")


def _guard_native_writers() -> None:
    """The writers that open files outside Python (no audit event): HDF5 files, TensorFlow's
    event files and profiles, checked against the program's folder as they start."""
    import h5py
    from keras.src import backend

    init = h5py.File.__init__

    def h5_file(self: Any, name: Any, mode: str = "r", *args: Any, **kwargs: Any) -> None:
        if mode != "r":
            _refuse_outside(name, "HDF5 file")
        init(self, name, mode, *args, **kwargs)

    h5py.File.__init__ = h5_file
    with contextlib.suppress(ImportError):
        import tensorflow.summary as summary

        create = summary.create_file_writer

        def writer(logdir: Any, *args: Any, **kwargs: Any) -> Any:
            _refuse_outside(logdir, "event files in")
            return create(logdir, *args, **kwargs)

        for module in list(sys.modules.values()):  # each module that exports it
            if getattr(module, "create_file_writer", None) is create:
                module.create_file_writer = writer
    start = getattr(backend.tensorboard, "start_trace", None)
    if start is not None:
        def start_trace(logdir: Any, *args: Any, **kwargs: Any) -> Any:
            _refuse_outside(logdir, "a profile in")
            return start(logdir, *args, **kwargs)

        backend.tensorboard.start_trace = start_trace


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Sink(io.TextIOBase):
    """Standard output for programs: everything written is dropped."""

    def write(self, text: str) -> int:
        return len(text)

    def isatty(self) -> bool:
        return False


def _data_size() -> int:
    with open("/proc/self/status") as f:
        found = re.search(r"VmData:\s+(\d+)", f.read())
    return int(found.group(1)) * 1024 if found else 0


# ------------------------------------------------------------------------- the harness


@dataclass
class Outcome:
    """What one program did: `rejected`, `clean`, `cbdsl` (an allowed error), `documented`
    (a Python error the language reference documents), `internal`, or `sandbox`."""

    kind: str
    stage: str = ""  # check, compile, or the hook that raised
    code: str = ""  # the diagnostic code of a CbdslError
    error: str = ""  # the exception's type
    message: str = ""
    frame: str = ""  # the innermost cbdsl frame: file:line (function)
    origin: str = ""  # the innermost frame of all
    trace: str = ""
    style: str = ""  # of the logs: `fit` or `raw` (see Trace)

    @property
    def key(self) -> str:
        return f"{self.error} at {self.frame}"


# Python errors the language reference lets through, by where they leave cbdsl.
# (None now: the file, web and Keras errors a rule meets are CbdslErrors of the same type.)
DOCUMENTED: list[tuple[str, tuple[str, ...], str]] = []


def _documented(exc: BaseException, frame: str) -> bool:
    names = {c.__name__ for c in type(exc).__mro__}
    where = re.sub(r":\d+ ", " ", frame)
    return any(error in names and where in frames for error, frames, _ in DOCUMENTED)


def _frames(exc: BaseException) -> tuple[str, str, str]:
    import cbdsl

    package = os.path.dirname(cbdsl.__file__) + os.sep
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if f.filename.startswith(package)]

    def shown(f: traceback.FrameSummary) -> str:
        name = f.filename[len(package):] if f.filename.startswith(package) else \
            "/".join(Path(f.filename).parts[-2:])
        return f"{name}:{f.lineno} ({f.name})"

    if isinstance(exc, RecursionError) and ours:  # the frame that recurs, not the deepest
        counts = Counter((f.filename, f.lineno) for f in ours)
        ours = [max(reversed(ours), key=lambda f: counts[f.filename, f.lineno])]
    inner = shown(ours[-1]) if ours else "(no cbdsl frame)"
    origin = shown(frames[-1]) if frames else "(none)"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-12))
    return inner, origin, text[-4000:]


def _describe(exc: BaseException, stage: str) -> Outcome:
    from cbdsl.diagnostics import CbdslError, RuleFailure

    frame, origin, trace = _frames(exc)
    error = type(exc).__name__
    try:
        message = str(exc)[:400]
    except Exception as inner:
        message = f"<str() failed: {type(inner).__name__}>"
    if isinstance(exc, SandboxViolation):
        return Outcome("sandbox", stage, error=error, message=message, frame=frame)
    if isinstance(exc, CbdslError):
        return Outcome("cbdsl", stage, code=exc.code, error=error, message=message, frame=frame)
    if isinstance(exc, RuleFailure):
        return Outcome("cbdsl", stage, code="fail", error=error, message=message, frame=frame)
    kind = "documented" if _documented(exc, frame) else "internal"
    return Outcome(kind, stage, error=error, message=message, frame=frame, origin=origin,
                   trace=trace)


def _hook(*args: Any, **kwargs: Any) -> None:
    """A caller's Python hook: takes anything, does nothing."""


def _schedule(epoch: Any, lr: Any = 0.01) -> float:
    """A caller's Python schedule, as Keras's LearningRateScheduler calls it."""
    return 0.01


def _one_arg_schedule(epoch: Any) -> float:
    return 0.02


def argument(kind: str, name: str, seed: int, required: bool) -> tuple[bool, Any]:
    """A value for one parameter, from its declared type; the same for the same seed and name,
    whatever else a program holds (so that a minimised program runs as the original did)."""
    rng = random.Random(f"{seed}:{name}")
    if kind == "python":
        return True, _hook
    if not required and rng.random() < 0.7:
        return False, None
    pools: dict[str, list[Any]] = {
        "int": [0, 1, 2, 3, -1, 10**6, 2**63],
        "float": [0.0, 0.5, 1.0, -1.0, 1e-4, 1e308, math.nan, math.inf],
        "str": ["x", "", "out/m.keras", "w.weights.h5", "log.csv", "{epoch}", "val_loss", "loss",
                "min", "max", "auto", "tb", "epoch", "0.1 * 0.9 ** epoch", "e{epoch:03d}.keras"],
        "bool": [True, False],
        "table": [{}, {0: 0.1, 2: 0.01}, {"a": 1}, ["loss", "mae"]],
        "schedule": [{0: 0.1, 2: 0.01}, "0.1 * 0.9 ** epoch", "lr * 0.5", _schedule,
                     _one_arg_schedule],
        "keywords": [{}, {"on_test_end": _hook}],
    }
    pools["any"] = pools["int"] + pools["str"] + pools["bool"] + [None, 0.5]
    return True, rng.choice(pools.get(kind, pools["any"]))


def arguments_for(checked: Any, seed: int) -> dict[str, Any]:
    """Values for the parameters `cbdsl.compile` takes: the file's own, or its one callback's."""
    from cbdsl.checker import REQUIRED

    only = [d for d in checked.definitions.values()
            if d.path == checked.program.path and d.node is not None]
    target = only[0] if not checked.instances and len(only) == 1 else checked.main
    values = {}
    for name, info in target.params.items():
        given, value = argument(info.type, name, seed, info.default is REQUIRED)
        if given:
            values[name] = value
    return values


@dataclass
class Trace:
    """The logs a program is driven with: per epoch, two train batches, validation, the end.

    `style` is `fit` for logs as Keras 3's `fit` passes them (dicts of Python floats), `raw`
    for logs as a direct caller or Keras 2 may pass them (None, ints, NumPy scalars).
    """

    style: str
    epochs: int
    params: dict[str, Any]
    batches: list[list[dict[str, Any] | None]]
    validation: list[list[dict[str, Any]]]
    epoch_logs: list[dict[str, Any]]
    none_logs: bool
    refit: bool


def make_trace(seed: int, style: str | None = None) -> Trace:
    """Logs with NaN, infinities, missing keys, ties, ints, zeros, negative and huge values."""
    rng = random.Random(seed)
    drawn_style = "fit" if rng.random() < 0.75 else "raw"
    style = style or drawn_style
    values = VALUES + (_numpy_values() if style == "raw" else [])
    last = [0.5]

    def value() -> Any:
        if rng.random() < 0.3:  # a tie with the previous value
            return last[0]
        last[0] = rng.choice(values) if rng.random() < 0.5 else round(rng.uniform(0, 2), 3)
        return last[0] if style == "raw" else float(last[0])

    def logs(prefix: str = "", extra: tuple[str, ...] = ()) -> dict[str, Any]:
        out = {}
        for name in ("loss", "mae", "accuracy", *extra):
            if rng.random() < 0.85:
                out[prefix + name] = value()
        return out

    epochs = rng.choice([1, 2, 3, 4])
    params = {"epochs": epochs, "steps": rng.choice([2, 2, None]),
              "verbose": rng.choice([0, 1, 2])}
    if rng.random() < 0.1:
        params["metrics"] = ["loss", "mae", "val_loss"]
    batches = [[logs(extra=("size",)) if rng.random() < 0.95 or style == "fit" else None
                for _ in range(2)] for _ in range(epochs)]
    validation = [[logs() for _ in range(2)] for _ in range(epochs)]
    epoch_logs = [{**logs(), **(logs("val_") if rng.random() < 0.8 else {})}
                  for _ in range(epochs)]
    none_logs = rng.random() < 0.5 and style == "raw"
    return Trace(style, epochs, params, batches, validation, epoch_logs, none_logs,
                 rng.random() < 0.25)


class Harness:
    """One small compiled Keras model, reused by every program, and the sandbox it runs in."""

    def __init__(self) -> None:
        import keras
        import numpy as np

        self.model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        self.model.compile(optimizer=keras.optimizers.SGD(0.01, use_ema=True), loss="mse",
                           metrics=["mae"])
        self.model.optimizer.build(self.model.trainable_variables)
        self.weights = self.model.get_weights()
        self.optimizer_values = [np.array(v) for v in self.model.optimizer.variables]
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="cbdsl-fuzz-"))
        atexit.register(self.close)
        _SANDBOX["port"] = _closed_port()
        sys.addaudithook(_audit)
        _guard_native_writers()
        self.stdout = _Sink()

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def reset(self) -> None:
        model = self.model
        model.set_weights(self.weights)
        for variable, value in zip(model.optimizer.variables, self.optimizer_values,
                                   strict=True):
            variable.assign(value)
        model.optimizer.learning_rate = 0.01
        model.stop_training = False
        model.stop_evaluating = False
        model.stop_predicting = False
        model.history = None

    @contextlib.contextmanager
    def sandbox(self, limit_s: float) -> Iterator[None]:
        """A fresh folder, the sandbox on, output dropped, warnings off, time and memory
        bounded; all put back afterwards."""
        home = os.getcwd()
        folder = os.path.join(self.root, "p")
        old_limit = resource.getrlimit(resource.RLIMIT_DATA)
        old_handler = signal.getsignal(signal.SIGALRM)
        old_tempdir = tempfile.tempdir

        def expire(signum: int, frame: Any) -> None:
            raise ProgramTimeout(f"still running after {limit_s} s")

        try:
            os.mkdir(folder)
            os.chdir(folder)
            tempfile.tempdir = folder
            _SANDBOX["root"] = folder
            resource.setrlimit(resource.RLIMIT_DATA, (_data_size() + MEMORY_HEADROOM,
                                                      old_limit[1]))
            signal.signal(signal.SIGALRM, expire)
            signal.setitimer(signal.ITIMER_REAL, limit_s)
            with contextlib.redirect_stdout(self.stdout), contextlib.redirect_stderr(
                    self.stdout), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old_handler)
            resource.setrlimit(resource.RLIMIT_DATA, old_limit)
            _SANDBOX["root"] = None
            tempfile.tempdir = old_tempdir
            os.chdir(home)
            shutil.rmtree(folder, ignore_errors=True)

    def run(self, text: str, seed: int, limit_s: float = SOFT_LIMIT_S,
            style: str | None = None) -> Outcome:
        """Check, compile and drive one program; its outcome, classified."""
        import cbdsl
        from cbdsl.diagnostics import CbdslError

        self.reset()
        stage, trace = "check", None
        try:
            with self.sandbox(limit_s):
                try:
                    checked = cbdsl.check(text)
                except CbdslError as exc:
                    return Outcome("rejected", stage, code=exc.code)
                stage = "compile"
                callbacks = cbdsl.compile(checked, **arguments_for(checked, seed))
                trace = make_trace(seed, style)
                for fit in range(2 if trace.refit else 1):
                    stage = self.drive(callbacks, trace, fit)
                stage = "attributes"
                for cb in callbacks:
                    for name in getattr(cb, "exposed", {}):
                        getattr(cb, name)
                    cb.state.to_dict()
                    repr(cb)
        except (Exception, ProgramTimeout, SandboxViolation) as exc:
            outcome = _describe(exc, getattr(exc, "_fuzz_stage", stage))
            outcome.style = trace.style if trace is not None else ""
            return outcome
        return Outcome("clean", style=trace.style)

    def drive(self, callbacks: list[Any], trace: Trace, fit: int) -> str:
        """Call the hooks in `fit`'s order, then an evaluation and a prediction."""
        import numpy as np

        model = self.model
        model.stop_training = False

        def each(hook: str, *args: Any) -> None:
            for cb in callbacks:
                try:
                    getattr(cb, hook)(*args)
                except BaseException as exc:
                    where = f"fit {fit}: {hook}" + (f"({args[0]})" if args and
                                                     isinstance(args[0], int) else "")
                    with contextlib.suppress(Exception):
                        exc._fuzz_stage = where
                    raise

        empty = (lambda: None) if trace.none_logs else dict
        for cb in callbacks:
            cb.set_model(model)
            cb.set_params(dict(trace.params))
        each("on_train_begin", empty())
        logs: dict[str, Any] | None = None
        for epoch in range(trace.epochs):
            each("on_epoch_begin", epoch, empty())
            for batch, batch_logs in enumerate(trace.batches[epoch]):
                each("on_train_batch_begin", batch, empty())
                each("on_train_batch_end", batch, None if batch_logs is None
                     else dict(batch_logs))
                if model.stop_training:
                    break
            self.evaluate(each, trace.validation[epoch])
            logs = dict(trace.epoch_logs[epoch])
            each("on_epoch_end", epoch, logs)
            if model.stop_training:
                break
        each("on_train_end", logs)
        self.evaluate(each, trace.validation[0])
        model.stop_predicting = False
        each("on_predict_begin", empty())
        for batch in range(2):
            each("on_predict_batch_begin", batch, empty())
            each("on_predict_batch_end", batch, {"outputs": np.zeros((2, 1), "float32")})
            if getattr(model, "stop_predicting", False):
                break
        each("on_predict_end", empty())
        return "attributes"

    def evaluate(self, each: Callable[..., None], batches: list[dict[str, Any]]) -> None:
        self.model.stop_evaluating = False
        each("on_test_begin", {})
        for batch, logs in enumerate(batches):
            each("on_test_batch_begin", batch, {})
            each("on_test_batch_end", batch, dict(logs))
            if getattr(self.model, "stop_evaluating", False):
                break
        each("on_test_end", dict(batches[-1]))


_HARNESS: list[Harness] = []


def harness() -> Harness:
    """The harness of this process, built on first use."""
    if not _HARNESS:
        _HARNESS.append(Harness())
    return _HARNESS[0]


def run_program(text: str, *, seed: int, limit_s: float = SOFT_LIMIT_S,
                style: str | None = None) -> Outcome:
    """`cbdsl.check` the program; if accepted, compile it with its required parameters filled
    by type and drive its callbacks over a trace made from `seed` (logs as `fit` passes them,
    or as a direct caller may: `style`), on the shared model."""
    return harness().run(text, seed, limit_s, style)


# ----------------------------------------------------------------------------- minimiser


def _tidy(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.split("\n") if line.strip())


def _ddmin(items: list[Any], joiner: Callable[[list[Any]], str],
           still: Callable[[str], bool], deadline: float) -> list[Any]:
    """Delta debugging: drop ever smaller chunks of `items` while the failure persists."""
    chunk = max(1, len(items) // 2)
    while items and time.monotonic() < deadline:
        removed = False
        start = 0
        while start < len(items) and time.monotonic() < deadline:
            trial = items[:start] + items[start + chunk:]
            if trial and still(joiner(trial)):
                items, removed = trial, True
            else:
                start += chunk
        if chunk == 1 and not removed:
            break
        chunk = max(1, chunk // 2) if not removed else chunk
    return items


class _Tokens:
    """A program as its tokens (layout kept), rendered with some of its tokens left out."""

    def __init__(self, text: str):
        self.tokens = [t for t in lex(text) if t[0] != "COMMENT"]
        self.solid = [i for i, (kind, _) in enumerate(self.tokens) if kind != "WS"]
        self.values = {i: v for i, (_, v) in enumerate(self.tokens)}

    def render(self, keep: list[int]) -> str:
        kept, out = set(keep), []
        skipping = False
        for i, (kind, _) in enumerate(self.tokens):
            if kind == "WS":
                space = self.values[i]
                if skipping:  # keep the line break, if any
                    space = space[space.find("\n"):] if "\n" in space else ""
                if "\n" not in space and out and out[-1][-1:] == " ":
                    space = ""
                out.append(space)
                skipping = False
            elif i in kept:
                out.append(self.values[i])
                skipping = False
            else:  # a dropped token takes the space after it along
                skipping = bool(out) and out[-1][-1:].isspace()
        return _tidy("".join(out))

    def pairs(self, keep: list[int]) -> Iterator[tuple[int, int]]:
        """Matching brackets among the kept tokens."""
        opened: list[int] = []
        for i in keep:
            value = self.values[i]
            if value in ("(", "[", "{"):
                opened.append(i)
            elif value in (")", "]", "}") and opened:
                yield opened.pop(), i


def minimise(text: str, still: Callable[[str], bool], budget_s: float = 30.0) -> str:
    """The smallest program found for which `still` holds (the same failure from the same
    place): comments dropped, then lines, tokens and bracket pairs cut and literals made
    plainer, over again while it shrinks."""
    deadline = time.monotonic() + budget_s
    try:
        tokens = _Tokens(text)
    except Exception:
        return "\n".join(_ddmin(text.split("\n"), "\n".join, still, deadline))
    if still(tokens.render(tokens.solid)):
        text = tokens.render(tokens.solid)
    while time.monotonic() < deadline:
        before = text
        text = "\n".join(_ddmin(text.split("\n"), "\n".join, still, deadline))
        tokens = _Tokens(text)
        keep = _ddmin(tokens.solid, tokens.render, still, deadline)
        changed = True
        while changed and time.monotonic() < deadline:
            changed = False
            for left, right in list(tokens.pairs(keep)):
                trial = [i for i in keep if i not in (left, right)]
                if still(tokens.render(trial)):
                    keep, changed = trial, True
                    break
        for i in list(keep):  # plainer numbers and strings, where the failure stays
            if time.monotonic() >= deadline:
                break
            kind, value = tokens.tokens[i]
            for replacement in {"NUMBER": ["0", "1"], "STRING": ['""', '"x"']}.get(kind, []):
                if replacement == tokens.values[i]:
                    break
                tokens.values[i] = replacement
                if still(tokens.render(keep)):
                    break
                tokens.values[i] = value
        text = _pretty(tokens.render(keep))
        if len(text) >= len(before):
            break
    return text


def _pretty(text: str) -> str:
    """One space between tokens on a line, none inside brackets or before commas."""
    out: list[str] = []
    for kind, value in lex(text):
        if kind == "WS" and "\n" not in value:
            value = " "
        if kind == "WS" and (not out or out[-1][-1:] in ("(", "[", "{", "\n")) \
                and "\n" not in value:
            continue  # no space after an opening bracket, nor one alone at a line's start
        if value in (")", "]", "}", ",", ".") and out and out[-1] == " ":
            out.pop()
        if out and out[-1] == "." and kind == "WS":
            continue
        out.append(value)
    return _tidy("".join(out))


def with_fit_logs(text: str, seed: int, outcome: Outcome, tries: int = 20) -> int | None:
    """A seed whose trace in `fit` style (logs as Keras 3's `fit` passes them) makes `text`
    fail as `outcome` did, or None: whether the failure needs a direct caller's logs."""
    for candidate in range(seed, seed + tries):
        again = run_program(text, seed=candidate, style="fit")
        if again.kind == "internal" and again.key == outcome.key:
            return candidate
    return None


def minimise_finding(text: str, seed: int, outcome: Outcome, budget_s: float = 30.0) -> str:
    """`minimise` for an internal error: the same exception type from the same cbdsl frame."""
    limit = min(SOFT_LIMIT_S, 2.0) if outcome.error == "ProgramTimeout" else SOFT_LIMIT_S

    def still(candidate: str) -> bool:
        again = run_program(candidate, seed=seed, limit_s=limit)
        return again.kind == "internal" and again.key == outcome.key

    return minimise(text, still, budget_s)


# ------------------------------------------------------------------------- fuzzing runs


@dataclass
class Finding:
    """One distinct internal error: its type and frame, and a minimal program raising it."""

    error: str
    frame: str
    message: str
    origin: str
    stage: str
    program: str
    minimal: str
    seed: int
    kind: str
    count: int = 1
    trace: str = ""
    style: str = ""
    fit_seed: int | None = None  # a seed whose logs as Keras 3's fit passes them fail too

    @property
    def key(self) -> str:
        return f"{self.error} at {self.frame}"


@dataclass
class Tally:
    """Counts of a run, and its distinct internal errors."""

    drawn: int = 0
    accepted: int = 0
    clean: int = 0
    rejected: Counter = field(default_factory=Counter)
    cbdsl: Counter = field(default_factory=Counter)
    documented: Counter = field(default_factory=Counter)
    sandbox: int = 0
    internal: Counter = field(default_factory=Counter)
    findings: dict[str, Finding] = field(default_factory=dict)
    seconds: float = 0.0  # wall clock, from the first worker ready
    minimising: float = 0.0  # worker seconds spent minimising
    jobs: int = 1

    @property
    def rate(self) -> float:
        """Accepted programs per second of fuzzing (minimisation left out)."""
        fuzzing = self.seconds - self.minimising / self.jobs
        return self.accepted / fuzzing if fuzzing > 0 else 0.0

    def add(self, kind: str, outcome: Outcome) -> None:
        self.drawn += 1
        if outcome.kind == "rejected":
            self.rejected[f"{kind}:{outcome.code}"] += 1
            return
        self.accepted += 1
        if outcome.kind == "clean":
            self.clean += 1
        elif outcome.kind == "cbdsl":
            self.cbdsl[outcome.code] += 1
        elif outcome.kind == "documented":
            self.documented[outcome.key] += 1
        elif outcome.kind == "sandbox":
            self.sandbox += 1
        else:
            self.internal[outcome.key] += 1

    def merge(self, finding: Finding) -> None:
        known = self.findings.get(finding.key)
        if known is None or len(finding.minimal) < len(known.minimal):
            finding.count = self.internal[finding.key]
            self.findings[finding.key] = finding

    def summary(self) -> str:
        lines = [f"drawn {self.drawn}, accepted {self.accepted}, clean {self.clean}, "
                 f"sandbox refusals {self.sandbox}",
                 f"{self.seconds:.0f} s with {self.jobs} jobs ({self.minimising:.0f} worker-s "
                 f"minimising): {self.rate:.1f} accepted programs/s while fuzzing",
                 "rejected by kind:code: " + _top(self.rejected),
                 "cbdsl errors by code: " + _top(self.cbdsl),
                 "documented Python errors: " + _top(self.documented),
                 f"internal errors: {sum(self.internal.values())} "
                 f"({len(self.internal)} distinct)"]
        lines += [f"  {n:6d}  {key}" for key, n in self.internal.most_common()]
        return "\n".join(lines)

    def describe_findings(self) -> str:
        out = []
        for f in self.findings.values():
            out.append(f"{f.error}: {f.message}\n  raised at {f.frame} (innermost: {f.origin}), "
                       f"{f.stage}, seed {f.seed}\n  minimal program:\n"
                       + "\n".join(f"    {line}" for line in f.minimal.splitlines()))
        return "\n\n".join(out)

    def to_json(self) -> dict[str, Any]:
        return {"drawn": self.drawn, "accepted": self.accepted, "clean": self.clean,
                "seconds": round(self.seconds, 1), "jobs": self.jobs,
                "minimising_seconds": round(self.minimising, 1),
                "accepted_per_second": round(self.rate, 2),
                "rejected": dict(self.rejected), "cbdsl_errors": dict(self.cbdsl),
                "documented": dict(self.documented), "sandbox": self.sandbox,
                "internal": dict(self.internal),
                "findings": [asdict(f) for f in self.findings.values()]}


def _top(counter: Counter, n: int = 12) -> str:
    return ", ".join(f"{k} {v}" for k, v in counter.most_common(n)) or "none"


def fuzz_batch(examples: int, seed: int, on_result: Callable[[str, str, int, Outcome], None],
               before: Callable[[str, str, int], None] | None = None) -> None:
    """Draw `examples` programs with hypothesis (from `seed`) and run each."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as seeded

    @seeded(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(program_cases())
    def draw(case: tuple[str, str, int]) -> None:
        kind, text, trace_seed = case
        if before is not None:
            before(kind, text, trace_seed)
        on_result(kind, text, trace_seed, run_program(text, seed=trace_seed))

    draw()


def warm_up() -> None:
    """Run the corpus once: first uses of Keras's savers and summary writers import slowly."""
    for i, text in enumerate(corpus().values()):
        run_program(text, seed=i, limit_s=60.0)


def _worker(index: int, seed: int, batch: int, minimise_s: float, minimise_total: float,
            conn: Any) -> None:
    """A worker process: draws and runs programs until told to stop, reporting each."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    seen: set[str] = set()
    spent = [0.0]
    warm_up()
    conn.send(("ready",))

    def before(kind: str, text: str, trace_seed: int) -> None:
        conn.send(("start", kind, text, trace_seed))

    def on_result(kind: str, text: str, trace_seed: int, outcome: Outcome) -> None:
        conn.send(("done", kind, outcome))
        if outcome.kind == "internal" and outcome.key not in seen:
            seen.add(outcome.key)
            began = time.monotonic()
            budget = min(minimise_s, max(0.0, minimise_total - spent[0]))
            small = minimise_finding(text, trace_seed, outcome, budget) if budget else text
            spent[0] += time.monotonic() - began
            conn.send(("finding", Finding(
                outcome.error, outcome.frame, outcome.message, outcome.origin, outcome.stage,
                text, small, trace_seed, kind, trace=outcome.trace, style=outcome.style,
                fit_seed=with_fit_logs(small, trace_seed, outcome)), time.monotonic() - began))
        if conn.poll() and conn.recv() == "stop":
            harness().close()
            os._exit(0)  # from inside hypothesis's run: nothing more to report

    for n in range(10**9):
        fuzz_batch(batch, hash((seed, index, n)) & (2**32 - 1), on_result, before)


def fuzz(*, accepted: int | None = None, drawn: int | None = None, minutes: float | None = None,
         jobs: int = 1, seed: int = 0, batch: int = 200, minimise_s: float = 30.0,
         minimise_total: float = math.inf, progress: bool = False) -> Tally:
    """Run worker processes until `accepted` programs were accepted, `drawn` drawn, or
    `minutes` passed; a worker stuck past the hard limit is killed and its program recorded."""
    context = multiprocessing.get_context("spawn")
    tally = Tally(jobs=jobs)
    workers: dict[int, Any] = {}
    current: dict[int, tuple[str, str, int, float]] = {}
    started = time.monotonic()
    clock_from: list[float] = []
    spawned = 0

    ready: set[int] = set()

    def spawn(index: int) -> None:
        nonlocal spawned
        ready.discard(index)
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(
            index, seed + 7919 * spawned, batch, minimise_s, minimise_total, child), daemon=True)
        spawned += 1
        process.start()
        child.close()
        workers[index] = (process, parent)
        current.pop(index, None)

    def done() -> bool:
        if accepted is not None and tally.accepted >= accepted:
            return True
        if drawn is not None and tally.drawn >= drawn:
            return True
        return minutes is not None and time.monotonic() - started > minutes * 60

    for index in range(jobs):
        spawn(index)
    last_line = 0.0
    try:
        while not done():
            for index, (process, conn) in list(workers.items()):
                busy = current.get(index)
                if busy is not None and time.monotonic() - busy[3] > HARD_LIMIT_S:
                    process.kill()
                    process.join()
                    _record_stuck(tally, busy, "worker stuck past the hard limit (killed)")
                    spawn(index)
                    continue
                if not process.is_alive() and not conn.poll():
                    if busy is not None:
                        _record_stuck(tally, busy, f"worker died (exit {process.exitcode})")
                    elif index not in ready:
                        raise RuntimeError(f"a fuzzing worker failed to start "
                                           f"(exit {process.exitcode})")
                    spawn(index)
                    continue
                while conn.poll():
                    try:
                        message = conn.recv()
                    except (EOFError, OSError):
                        break
                    if message[0] == "ready":
                        ready.add(index)
                        if not clock_from:
                            clock_from.append(time.monotonic())
                    elif message[0] == "start":
                        current[index] = (*message[1:], time.monotonic())
                    elif message[0] == "done":
                        current.pop(index, None)
                        tally.add(message[1], message[2])
                    elif message[0] == "finding":
                        tally.merge(message[1])
                        tally.minimising += message[2]
            tally.seconds = time.monotonic() - (clock_from[0] if clock_from else started)
            if progress and time.monotonic() - last_line > 5:
                last_line = time.monotonic()
                print(f"\r[{tally.seconds:6.0f} s] drawn {tally.drawn} accepted {tally.accepted} "
                      f"({tally.accepted / max(tally.seconds, 1e-9):.1f}/s) clean {tally.clean} "
                      f"cbdsl {sum(tally.cbdsl.values())} internal {sum(tally.internal.values())}"
                      f" ({len(tally.internal)} distinct)", end="", file=sys.stderr, flush=True)
            time.sleep(0.01)
    except KeyboardInterrupt:
        pass
    finally:
        for _, conn in workers.values():
            with contextlib.suppress(OSError, BrokenPipeError):
                conn.send("stop")
        _drain(workers, tally)
        if progress:
            print(file=sys.stderr)
    return tally


def _drain(workers: dict[int, Any], tally: Tally) -> None:
    """Let each worker finish the finding it is minimising, then stop it."""
    deadline = time.monotonic() + 60
    for process, conn in workers.values():
        while process.is_alive() and time.monotonic() < deadline:
            if conn.poll(0.1):
                try:
                    message = conn.recv()
                except (EOFError, OSError):
                    break
                if message[0] == "finding":
                    tally.merge(message[1])
                    tally.minimising += message[2]
        process.kill()
        process.join()


def _record_stuck(tally: Tally, busy: tuple[str, str, int, float], why: str) -> None:
    kind, text, trace_seed, _ = busy
    outcome = Outcome("internal", "run", error="Hang", message=why, frame="(outside Python)")
    tally.add(kind, outcome)
    tally.merge(Finding("Hang", outcome.frame, why, "", "run", text, text, trace_seed, kind))


# ---------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--programs", type=int, default=10_000,
                        help="stop once this many accepted programs have run")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this long")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the JSON report here")
    parser.add_argument("--minimise-seconds", type=float, default=30.0)
    parser.add_argument("--replay", default=None,
                        help="run one program (a .cbd file) with --seed and show its outcome")
    parser.add_argument("--style", choices=["fit", "raw"], default=None,
                        help="with --replay: logs as Keras 3's fit passes them, or raw")
    args = parser.parse_args(argv)
    if args.replay:
        outcome = run_program(Path(args.replay).read_text("utf-8"), seed=args.seed,
                              style=args.style)
        shown = {k: v for k, v in asdict(outcome).items() if v and k != "trace"}
        print(json.dumps(shown, indent=2))
        print(outcome.trace, end="")
        return 0 if outcome.kind != "internal" else 1
    tally = fuzz(accepted=args.programs, minutes=args.minutes, jobs=args.jobs, seed=args.seed,
                 minimise_s=args.minimise_seconds, progress=True)
    print(tally.summary())
    if tally.findings:
        print("\n" + tally.describe_findings())
    if args.out:
        Path(args.out).write_text(json.dumps(tally.to_json(), indent=2, default=str), "utf-8")
    return 1 if tally.internal else 0


if __name__ == "__main__":
    sys.exit(main())
