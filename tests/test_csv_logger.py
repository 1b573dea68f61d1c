"""`rules/csv_logger.cbd` writes the file `keras.callbacks.CSVLogger` writes, byte for byte.

Each fit runs Keras's class and the drop-in side by side in one callback list, so both see the
same logs; the expected file is whatever Keras wrote. The `write row` action and the functions
the rule file reads (`sorted`, `startswith`, `file_empty`) are tested on their own below.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from tiny_fit import data, tiny_model

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.cli import main
from cbdsl.diagnostics import CbdslCheckError

RULE_FILE = Path(dropin.rule_file("csv_logger"))


def fit_side_by_side(tmp_path: Path, *, epochs=3, before=(), fits=1, model=None,
                     fit_args=None, **kwargs) -> tuple[bytes, bytes]:
    """Fit with Keras's CSVLogger and the drop-in in one callback list; both files' bytes.

    `before` are callbacks placed ahead of both loggers (to change the logs they see).
    """
    paths = tmp_path / "keras.csv", tmp_path / "cbdsl.csv"
    loggers = [keras.callbacks.CSVLogger(str(paths[0]), **kwargs),
               dropin.CSVLogger(str(paths[1]), **kwargs)]
    model = model or tiny_model()
    x, y = data()
    fit_args = {"validation_split": 0.25, **(fit_args or {})}
    for _ in range(fits):
        model.fit(x, y, batch_size=16, epochs=epochs, verbose=0,
                  callbacks=[*before, *loggers], **fit_args)
    return paths[0].read_bytes(), paths[1].read_bytes()


def lines(text: bytes) -> list[bytes]:
    assert text.endswith(b"\r\n")
    return text.split(b"\r\n")[:-1]


# ------------------------------------------------------------------- the interface


def test_dropin_has_the_keras_signature():
    ours = [(p.name, p.default) for p in inspect.signature(dropin.CSVLogger).parameters.values()]
    theirs = [(p.name, p.default) for p in
              inspect.signature(keras.callbacks.CSVLogger.__init__).parameters.values()][1:]
    assert ours == theirs == [("filename", inspect.Parameter.empty), ("separator", ","),
                              ("append", False)]


def test_rule_file_parameters_are_the_keras_arguments():
    checked = cbdsl.check(RULE_FILE)
    (definition,) = [d for d in checked.definitions.values() if d.node is not None]
    assert definition.name == "CSVLogger"
    keras_args = inspect.signature(keras.callbacks.CSVLogger.__init__).parameters
    assert list(definition.params) == [p for p in keras_args if p != "self"]
    assert definition.params["separator"].default == keras_args["separator"].default
    assert definition.params["append"].default is keras_args["append"].default


def test_rule_file_is_formatted_and_checks_clean(capsys):
    assert main(["fmt", "--check", str(RULE_FILE)]) == 0
    assert main(["check", "--strict", str(RULE_FILE)]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().err


def test_dropin_accepts_a_path_object(tmp_path):
    logger = dropin.CSVLogger(tmp_path / "log.csv")
    assert isinstance(logger, keras.callbacks.Callback)
    assert logger.arguments["filename"] == str(tmp_path / "log.csv")


# ------------------------------------------------------------------- real fits


@pytest.mark.fit
@pytest.mark.parametrize("epochs", [3, 5])
def test_same_file_as_keras(tmp_path, epochs):
    expected, ours = fit_side_by_side(tmp_path, epochs=epochs)
    assert ours == expected
    header, *rows = lines(expected)
    assert header == b"epoch,loss,mean_absolute_error,val_loss,val_mean_absolute_error"
    assert [row.split(b",")[0] for row in rows] == [str(e).encode() for e in range(epochs)]


@pytest.mark.fit
@pytest.mark.parametrize("separator", [";", "\t", " "])
def test_custom_separator(tmp_path, separator):
    expected, ours = fit_side_by_side(tmp_path, separator=separator)
    assert ours == expected
    assert lines(expected)[0].split(separator.encode())[:2] == [b"epoch", b"loss"]


@pytest.mark.fit
def test_without_validation_the_val_columns_are_na(tmp_path):
    expected, ours = fit_side_by_side(tmp_path, fit_args={"validation_split": 0.0})
    assert ours == expected
    header, *rows = lines(expected)
    assert header == b"epoch,loss,mean_absolute_error,val_loss,val_mean_absolute_error"
    assert all(row.endswith(b",NA,NA") for row in rows)


@pytest.mark.fit
def test_keys_appearing_or_vanishing_in_later_epochs(tmp_path):
    def change_logs(epoch, logs):
        if epoch == 0:
            logs["early"] = 0.5  # only in the first epoch: NA afterwards
        if epoch >= 1:
            logs["late"] = epoch * 1.5  # not a column: never written

    expected, ours = fit_side_by_side(
        tmp_path, epochs=4, before=[keras.callbacks.LambdaCallback(on_epoch_end=change_logs)])
    assert ours == expected
    header, *rows = lines(expected)
    assert b"early" in header and b"late" not in header
    assert [row.split(b",")[1] for row in rows] == [b"0.5", b"NA", b"NA", b"NA"]


@pytest.mark.fit
def test_lists_arrays_text_and_quoting(tmp_path):
    def change_logs(epoch, logs):
        logs["as_list"] = [epoch, 0.25]
        logs["as_array"] = np.arange(3, dtype="float32") + epoch
        logs["scalar_array"] = np.array(epoch * 0.5, dtype="float32")
        logs["text"] = f'say "hi", epoch {epoch}\n'
        logs["none"] = None

    expected, ours = fit_side_by_side(
        tmp_path, before=[keras.callbacks.LambdaCallback(on_epoch_end=change_logs)])
    assert ours == expected
    assert b'"""[0, 0.25]"""' in expected and b'"say ""hi"", epoch 0\n"' in expected


@pytest.mark.fit
def test_overwrites_without_append(tmp_path):
    (tmp_path / "keras.csv").write_text("old line\n")
    (tmp_path / "cbdsl.csv").write_text("old line\n")
    expected, ours = fit_side_by_side(tmp_path, fits=2)
    assert ours == expected
    assert b"old line" not in expected and len(lines(expected)) == 4  # the second fit only


@pytest.mark.fit
@pytest.mark.parametrize("existing", [None, "", "epoch,loss\r\n0,1.0\r\n"],
                         ids=["no-file", "empty-file", "non-empty-file"])
def test_append(tmp_path, existing):
    if existing is not None:
        for name in ("keras.csv", "cbdsl.csv"):
            (tmp_path / name).write_bytes(existing.encode())
    expected, ours = fit_side_by_side(tmp_path, append=True)
    assert ours == expected
    headers = [line for line in lines(expected) if line.startswith(b"epoch,")]
    assert len(headers) == 1  # a non-empty file keeps its own header and gets none


@pytest.mark.fit
def test_two_fits_in_a_row_in_append_mode(tmp_path):
    expected, ours = fit_side_by_side(tmp_path, append=True, fits=2, epochs=3)
    assert ours == expected
    assert len(lines(expected)) == 1 + 3 + 3  # one header, then both fits' epochs


@pytest.mark.fit
def test_two_fits_in_a_row_in_append_mode_with_a_custom_separator(tmp_path):
    expected, ours = fit_side_by_side(tmp_path, append=True, fits=2, separator=";")
    assert ours == expected


@pytest.mark.fit
def test_a_filename_with_braces_is_used_as_it_is(tmp_path):
    paths = tmp_path / "keras_{epoch}.csv", tmp_path / "cbdsl_{epoch}.csv"
    model, (x, y) = tiny_model(), data()
    model.fit(x, y, epochs=2, verbose=0, callbacks=[keras.callbacks.CSVLogger(str(paths[0])),
                                                    dropin.CSVLogger(str(paths[1]))])
    assert paths[1].read_bytes() == paths[0].read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cbdsl_{epoch}.csv", "keras_{epoch}.csv"]


@pytest.mark.fit
def test_a_separator_of_two_characters_is_the_same_error_as_keras(tmp_path):
    raised = []
    for logger in (keras.callbacks.CSVLogger(str(tmp_path / "k.csv"), separator="ab"),
                   dropin.CSVLogger(str(tmp_path / "c.csv"), separator="ab")):
        model, (x, y) = tiny_model(), data()
        with pytest.raises(TypeError, match="1-character string") as info:
            model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
        raised.append(str(info.value))
    assert raised[0] == raised[1]


# ------------------------------------------------------------------- bad paths


def train_begin_error(filename: str, **kwargs) -> tuple[type, type]:
    """The exception type each logger raises as a short fit begins."""
    model, (x, y) = tiny_model(), data()
    raised = []
    for logger in (keras.callbacks.CSVLogger(filename, **kwargs),
                   dropin.CSVLogger(filename, **kwargs)):
        with pytest.raises(OSError) as info:
            model.fit(x, y, epochs=1, verbose=0, callbacks=[logger])
        raised.append(type(info.value))
    return raised[0], raised[1]


@pytest.mark.fit
@pytest.mark.parametrize("append", [False, True])
def test_a_directory_is_the_same_error_as_keras(tmp_path, append):
    expected, ours = train_begin_error(str(tmp_path), append=append)
    assert ours is expected is IsADirectoryError


@pytest.mark.fit
@pytest.mark.parametrize("append", [False, True])
def test_a_missing_folder_is_the_same_error_as_keras(tmp_path, append):
    expected, ours = train_begin_error(str(tmp_path / "missing" / "log.csv"), append=append)
    assert ours is expected is FileNotFoundError
    assert not (tmp_path / "missing").exists()  # no folder is made


@pytest.mark.fit
@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="needs POSIX permissions that apply to this user")
def test_an_unwritable_folder_is_the_same_error_as_keras(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        expected, ours = train_begin_error(str(folder / "log.csv"))
    finally:
        folder.chmod(0o700)
    assert ours is expected is PermissionError


@pytest.mark.fit
@pytest.mark.skipif(os.name != "posix", reason="needs a POSIX /sys")
def test_a_read_only_system_folder_is_the_same_error_as_keras():
    # /sys refuses new files even to root, where the test above is skipped
    if os.path.exists("/sys/cbdsl.csv") or not os.path.isdir("/sys"):
        pytest.skip("no /sys to try")
    try:
        open("/sys/cbdsl.csv", "w").close()
    except PermissionError:
        pass
    else:  # pragma: no cover - an unusual system
        pytest.skip("/sys took a new file")
    expected, ours = train_begin_error("/sys/cbdsl.csv")
    assert ours is expected is PermissionError


@pytest.mark.fit
def test_a_file_as_folder_is_the_same_error_as_keras(tmp_path):
    (tmp_path / "plain").write_text("x")
    expected, ours = train_begin_error(str(tmp_path / "plain" / "log.csv"))
    assert ours is expected is NotADirectoryError


# ------------------------------------------------------- the language pieces it uses


def only_callback(text: str):
    (callback,) = cbdsl.compile(text)
    return callback


def run_events(callback, *events):
    """Call the callback's hooks: ("train_begin", logs) or ("epoch_end", epoch, logs)."""
    for name, *args in events:
        getattr(callback, f"on_{name}")(*args)


def test_write_row_writes_csv_lines_with_a_header_and_crlf(tmp_path):
    path = tmp_path / "rows.csv"
    callback = only_callback(f'''
        on epoch_end do write row {{"epoch": epoch, "loss": loss, "note": "a;b"}} to "{path}"
                     with (separator = ";", header = (epoch == 0))
    ''')
    run_events(callback, ("train_begin", {}), ("epoch_end", 0, {"loss": 0.5}),
               ("epoch_end", 1, {"loss": 0.25}))
    assert path.read_bytes() == b'epoch;loss;note\r\n0;0.5;"a;b"\r\n1;0.25;"a;b"\r\n'


def test_write_row_none_opens_the_file_and_append_false_empties_it(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("old\n")
    kept = only_callback(f'on train_begin do write row none to "{path}"')
    run_events(kept, ("train_begin", {}))
    assert path.read_text() == "old\n"
    emptied = only_callback(f'on train_begin do write row none to "{path}" with append = false')
    run_events(emptied, ("train_begin", {}))
    assert path.read_bytes() == b""
    made = tmp_path / "new.csv"
    run_events(only_callback(f'on train_begin do write row none to "{made}"'),
               ("train_begin", {}))
    assert made.exists() and made.read_bytes() == b""


def test_sorted_startswith_and_file_empty(tmp_path):
    empty, full = tmp_path / "empty.txt", tmp_path / "full.txt"
    empty.write_text("")
    full.write_text("x")
    callback = only_callback(f'''
        on epoch_end
          do log first = sorted(keys(logs))[0],
             log val = startswith("val_loss", "val_"),
             log plain = startswith("loss", "val_"),
             log empty = file_empty("{empty}"),
             log full = file_empty("{full}"),
             log missing = file_empty("{tmp_path / 'none.txt'}")
    ''')
    logs = {"b": 1, "a": 2}
    run_events(callback, ("train_begin", {}), ("epoch_end", 0, logs))
    assert (logs["first"], logs["val"], logs["plain"]) == ("a", True, False)
    assert (logs["empty"], logs["full"], logs["missing"]) == (True, False, True)


def test_write_row_errors_are_python_os_errors(tmp_path):
    callback = only_callback(f'on train_begin do write row none to "{tmp_path}"')
    with pytest.raises(IsADirectoryError):
        run_events(callback, ("train_begin", {}))


def test_write_row_needs_a_table_at_run_time(tmp_path):
    callback = only_callback(f'on epoch_end do write row lookup(logs, "a") to "{tmp_path}/x"')
    with pytest.raises(cbdsl.CbdslError, match="'write row' needs a table"):
        run_events(callback, ("train_begin", {}), ("epoch_end", 0, {"a": 1.5}))


@pytest.mark.parametrize("text, code", [
    ('on epoch_end do write row {"a": 1} to "f.csv" with seperator = ";"', "E210"),
    ('on epoch_end do write row {"a": 1} to "f.csv" with header = "yes"', "E211"),
    ('on epoch_end do write row {"a": 1} to "f.csv" with (append = true, append = false)',
     "E218"),
    ('on epoch_end do write row 3 to "f.csv"', "E221"),
    ('on epoch_end when startswith(loss, "val_") do stop', "E203"),
])
def test_write_row_is_checked(text, code):
    with pytest.raises(CbdslCheckError) as info:
        cbdsl.check(text)
    assert code in {d.code for d in info.value.diagnostics}


def test_append_is_still_an_action_and_now_also_a_name(tmp_path):
    path = tmp_path / "log.txt"
    callback = only_callback(f'''
        callback C(append = true) {{
          on epoch_end when append do append "line" to "{path}"
        }}
    ''')
    run_events(callback, ("train_begin", {}), ("epoch_end", 0, {}))
    assert path.read_text() == "line\n"
