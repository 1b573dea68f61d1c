"""What the rules say to the user, said as Keras's callbacks say it.

`print` goes through Keras's `io_utils.print_msg`: to standard output, or, once
`keras.config.disable_interactive_logging()` was called, to `absl.logging` (the logger Keras
uses) at INFO level. The unknown-mode warning reads as Keras's MonitorCallback's. Compiled rule
files and the code `explain --python` writes are compared with Keras's classes on the same
traces.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import keras
import pytest

import cbdsl
from cbdsl.dryrun import StubModel
from cbdsl.pythonize import pythonize

ROOT = Path(__file__).resolve().parent.parent
PLATEAU = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8]  # val_loss: flat from epoch 1, then 5


@pytest.fixture
def logged(caplog):
    """Interactive logging off for the test (as Keras's servers run), and the records that
    reach the logging module at INFO level and above."""
    was = keras.config.is_interactive_logging_enabled()
    keras.config.disable_interactive_logging()
    caplog.set_level(logging.INFO)
    try:
        yield caplog
    finally:
        if was:
            keras.config.enable_interactive_logging()


def drive(callback, losses: list[float]) -> None:
    """Call the hooks `fit` calls at train begin and end and at each epoch's begin and end,
    with `val_loss` (and `loss`) from `losses`; the model's learning rate starts at 0.1."""
    callback.set_model(StubModel(0.1))
    callback.set_params({"epochs": len(losses), "steps": None, "verbose": 0})
    callback.on_train_begin({})
    for epoch, loss in enumerate(losses):
        callback.on_epoch_begin(epoch, {})
        callback.on_epoch_end(epoch, {"loss": loss, "val_loss": loss})
    callback.on_train_end({})


def records(caplog, callback, losses: list[float]) -> list[tuple[str, int, str]]:
    """The log records of one callback driven over `losses`: logger, level, message."""
    caplog.clear()
    drive(callback, losses)
    return [(r.name, r.levelno, r.getMessage()) for r in caplog.records]


def plateau_rules():
    return cbdsl.compile("use keras.reduce_lr_on_plateau(patience = 1, verbose = 1)")[0]


def schedule(epoch, lr):
    return 0.1 / (epoch + 1)


def scheduler_rules():
    return cbdsl.compile(ROOT / "rules" / "learning_rate_scheduler.cbd",
                         schedule=schedule, verbose=1)[0]


# ------------------------------------------------------- print: stdout or absl logging


def test_reduce_lr_on_plateau_logs_what_keras_s_class_logs(logged):
    expected = records(logged, keras.callbacks.ReduceLROnPlateau(patience=1, verbose=1),
                       PLATEAU)
    assert expected and {name for name, _, _ in expected} == {"absl"}
    assert all("ReduceLROnPlateau reducing learning rate" in m for _, _, m in expected)
    assert records(logged, plateau_rules(), PLATEAU) == expected


def test_learning_rate_scheduler_logs_what_keras_s_class_logs(logged):
    expected = records(logged, keras.callbacks.LearningRateScheduler(schedule, verbose=1),
                       PLATEAU[:3])
    assert [level for _, level, _ in expected] == [logging.INFO] * 3
    assert records(logged, scheduler_rules(), PLATEAU[:3]) == expected


def test_with_interactive_logging_disabled_nothing_is_printed(logged, capsys):
    drive(plateau_rules(), PLATEAU)
    assert capsys.readouterr().out == ""
    assert logged.records


@pytest.mark.parametrize(("keras_callback", "rules", "losses"), [
    (lambda: keras.callbacks.ReduceLROnPlateau(patience=1, verbose=1), plateau_rules, PLATEAU),
    (lambda: keras.callbacks.LearningRateScheduler(schedule, verbose=1), scheduler_rules,
     PLATEAU[:3]),
], ids=["ReduceLROnPlateau", "LearningRateScheduler"])
def test_with_interactive_logging_on_the_lines_go_to_stdout_as_keras_s(
        keras_callback, rules, losses, capsys, caplog):
    assert keras.config.is_interactive_logging_enabled()
    caplog.set_level(logging.INFO)
    drive(keras_callback(), losses)
    expected = capsys.readouterr().out
    assert expected.count("\n") >= 3
    compiled = rules()
    drive(compiled, losses)
    assert capsys.readouterr().out == expected
    assert not caplog.records
    assert any("print" in firing.actions for firing in compiled.timeline)  # as before


def test_written_code_prints_as_keras_does(logged, capsys):
    """`explain --python` writes a `print_msg` helper of public Keras and absl."""
    path = ROOT / "rules" / "reduce_lr_on_plateau.cbd"
    namespace: dict = {"__name__": "written"}
    exec(compile(pythonize(cbdsl.check(path)), "<written>", "exec"), namespace)
    expected = records(logged, keras.callbacks.ReduceLROnPlateau(patience=1, verbose=1),
                       PLATEAU)
    written = namespace["ReduceLROnPlateau"](patience=1, verbose=1)
    assert records(logged, written, PLATEAU) == expected
    keras.config.enable_interactive_logging()
    drive(keras.callbacks.ReduceLROnPlateau(patience=1, verbose=1), PLATEAU)
    printed = capsys.readouterr().out
    drive(namespace["ReduceLROnPlateau"](patience=1, verbose=1), PLATEAU)
    assert capsys.readouterr().out == printed


# ------------------------------------------------------------ the unknown-mode warning


MONITORS = [("ModelCheckpoint", {"filepath": "model.keras"}), ("EarlyStopping", {}),
            ("ReduceLROnPlateau", {})]


def _warned(build) -> list[tuple[type, str]]:
    with pytest.warns(UserWarning) as caught:
        build()
    return [(w.category, str(w.message)) for w in caught]


@pytest.mark.parametrize(("name", "arguments"), MONITORS, ids=[m[0] for m in MONITORS])
def test_an_unknown_mode_is_warned_in_keras_s_words(name, arguments):
    text = f"{name} mode 'sideways' is unknown, fallback to auto mode."
    with pytest.warns(UserWarning, match=f"^{re.escape(text)}$"):
        getattr(keras.callbacks, name)(**arguments, mode="sideways")
    expected = _warned(lambda: getattr(keras.callbacks, name)(**arguments, mode="sideways"))
    assert expected == [(UserWarning, text)]
    rule_file = ROOT / "rules" / f"{cbdsl_name(name)}.cbd"
    assert _warned(lambda: cbdsl.compile(rule_file, **arguments, mode="sideways")) == expected
    used = f"use keras.{cbdsl_name(name)}(mode = \"sideways\"" + \
        "".join(f", {k} = \"{v}\"" for k, v in arguments.items()) + ")"
    assert _warned(lambda: cbdsl.compile(used)) == expected


@pytest.mark.parametrize("name", ["EarlyStopping", "ReduceLROnPlateau"])
def test_the_written_code_warns_in_keras_s_words(name):
    path = ROOT / "rules" / f"{cbdsl_name(name)}.cbd"
    namespace: dict = {"__name__": "written"}
    exec(compile(pythonize(cbdsl.check(path)), "<written>", "exec"), namespace)
    expected = _warned(lambda: getattr(keras.callbacks, name)(mode="sideways"))
    assert _warned(lambda: namespace[name](mode="sideways")) == expected


def cbdsl_name(keras_name: str) -> str:
    return {"ModelCheckpoint": "model_checkpoint", "EarlyStopping": "early_stopping",
            "ReduceLROnPlateau": "reduce_lr_on_plateau"}[keras_name]
