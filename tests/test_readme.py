"""The README's examples run as written: its rule files, its Python code and its transcripts."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import keras
import numpy as np
import pytest

import cbdsl
from cbdsl.cli import main
from cbdsl.conformance import case_paths, load_case
from cbdsl.conformance.pytest_plugin import MARKER, ConformanceCase
from cbdsl.pythonize import pythonize

README = Path(__file__).resolve().parent.parent / "README.md"
KINDS = {"cbdsl", "python", "sh", "toml", "text", "json", "lua"}


def blocks(kind: str | None = None) -> list[tuple[str, str, str]]:
    """The README's fenced blocks: `(info string, text, the paragraph before it)`."""
    found, paragraph, fence, ended = [], [], None, False
    for line in README.read_text(encoding="utf-8").split("\n"):
        if fence is None and line.startswith("```"):
            fence, body = line[3:], []
        elif fence is not None and line == "```":
            found.append((fence, "".join(f"{b}\n" for b in body), "\n".join(paragraph)))
            fence, paragraph = None, []
        elif fence is not None:
            body.append(line)
        elif line:
            paragraph, ended = ([line] if ended else [*paragraph, line]), False
        else:
            ended = True
    return [block for block in found if kind in (None, block[0])]


def policy() -> tuple[str, str]:
    """The README's policy file: its name (from its first comment) and its text."""
    text = blocks("cbdsl")[0][1]
    name = re.match(r"# (\S+\.cbd)\n", text)
    assert name, "the README's first rule file names itself in its first line"
    return name[1], text


def small_fit_data() -> dict:
    """A compiled regression model and its data, made on the spot."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5], [0.0]], dtype="float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return {"model": model, "x": x, "y": y}


def test_every_block_says_what_it_holds():
    kinds = [info for info, _, _ in blocks()]
    assert len(kinds) >= 15
    assert set(kinds) <= KINDS, "a README block without its kind (cbdsl, python, sh, toml, text, " \
        "json, lua)"
    for _, text, _ in blocks("text"):  # no rule file hides among the text blocks
        with pytest.raises(cbdsl.CbdslError):
            cbdsl.check(text)
    for _, text, _ in blocks("json"):  # editor settings
        json.loads(text)
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 on
    for _, text, _ in blocks("toml"):
        tomllib.loads(text)


@pytest.mark.parametrize("index", range(len(blocks("cbdsl"))))
def test_rule_files_check_clean_and_compile(index):
    _, text, _ = blocks("cbdsl")[index]
    checked = cbdsl.check(text)
    assert checked.diagnostics == []
    callbacks = cbdsl.compile(checked)
    assert callbacks and all(isinstance(cb, keras.callbacks.Callback) for cb in callbacks)


def test_python_examples_run_as_written(tmp_path, monkeypatch):
    """Every Python block, in order, in one namespace, beside the README's `policy.cbd`,
    with a small model and its data in `model`, `x` and `y`."""
    monkeypatch.chdir(tmp_path)
    name, text = policy()
    (tmp_path / name).write_text(text, encoding="utf-8")
    namespace = {"__name__": "readme", "MyEarlyStopping": keras.callbacks.EarlyStopping,
                 **small_fit_data()}
    ran = 0
    for _, code, _ in blocks("python"):
        if code.startswith(" "):
            continue  # an excerpt of written code: test_explain_python_excerpt
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(code, "README.md", "exec"), namespace)
        ran += 1
        for test in [v for k, v in list(namespace.items()) if k.startswith("test_")]:
            # a test for the conformance plugin: run it on its spec's cases
            (marker,) = [m for m in test.pytestmark if m.name == MARKER]
            spec = marker.args[0]
            for path in case_paths(spec):
                case = load_case(path)
                test(ConformanceCase(spec, case["name"], case))
            del namespace[test.__name__]
    assert ran >= 4
    # the policy compiled with its `param` value, as the README calls it
    (policy_cb,) = cbdsl.compile(name, patience=3)
    assert policy_cb.arguments == {"patience": 3}
    assert all(isinstance(cb, keras.callbacks.Callback) for cb in namespace["callbacks"])


def test_explain_python_excerpt_is_what_it_writes():
    (_, excerpt, before), = [b for b in blocks("python") if b[1].startswith(" ")]
    source = re.search(r"For the one-rule file\s+`([^`]+)`:", before)
    assert source, "the excerpt names the rule it was written from"
    written = pythonize(cbdsl.check(source[1]))
    pattern = re.escape(excerpt.rstrip("\n")).replace(re.escape("(...)"), r"\(.*?\)")
    assert re.search(pattern, written, re.S), written


def transcripts(command: str) -> list[list[str]]:
    """The lines of the README's transcripts of `$ cbdsl COMMAND ...`, the command first."""
    return [text.rstrip("\n").split("\n") for _, text, _ in blocks("text")
            if text.startswith(f"$ cbdsl {command} ")]


def test_check_transcript(tmp_path, monkeypatch, capsys):
    (lines,) = transcripts("check")
    assert lines[0] == "$ cbdsl check policy.cbd"
    name, text = policy()
    number, shown = re.match(r"(\d+) \| (.*)", lines[2]).groups()
    source = text.split("\n")
    source[int(number) - 1] = shown  # the policy with the line the transcript shows
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text("\n".join(source), encoding="utf-8")
    assert main(["check", name]) == 1
    out = capsys.readouterr().out
    assert out.split("\n")[:3] == lines[1:]


def test_explain_transcript(tmp_path, monkeypatch, capsys):
    (lines,) = transcripts("explain")
    name, text = policy()
    monkeypatch.chdir(tmp_path)
    (tmp_path / name).write_text(text, encoding="utf-8")
    assert main(lines[0].split()[2:]) == 0
    assert capsys.readouterr().out.rstrip("\n").split("\n") == lines[1:]
