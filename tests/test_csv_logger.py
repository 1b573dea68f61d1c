"""`rules/csv_logger.cbd` writes the file `keras.callbacks.CSVLogger` writes, byte for byte.

The real fits are the `csv_logger` scenarios of `cbdsl.conformance.artifacts`, which
`cbdsl conform` runs too: each fits once with Keras's class and once with the drop-in, in
fresh folders, and the folders must hold the same files (the same error, where the fit
fails). The checks below also say what Keras's file shows in each scenario. The `write row`
action and the functions the rule file reads (`sorted`, `startswith`, `file_empty`) are
tested on their own further down.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import keras
import pytest

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.cli import main
from cbdsl.conformance import artifacts
from cbdsl.diagnostics import CbdslCheckError

RULE_FILE = Path(dropin.rule_file("csv_logger"))
SPEC = artifacts.ARTIFACT_SPECS["csv_logger"]
HEADER = "epoch,loss,mean_absolute_error,val_loss,val_mean_absolute_error"


def lines(text: str) -> list[str]:
    assert text.endswith("\r\n")
    return text.split("\r\n")[:-1]


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


def logged(artifact: dict) -> list[str]:
    """The lines of the log file a scenario left."""
    return lines(artifact["files"]["log.csv"])


def header_and_epochs(count: int):
    def check(artifact: dict) -> None:
        header, *rows = logged(artifact)
        assert header == HEADER
        assert [row.split(",")[0] for row in rows] == [str(e) for e in range(count)]
    return check


def separated_by(separator: str):
    def check(artifact: dict) -> None:
        assert logged(artifact)[0].split(separator)[:2] == ["epoch", "loss"]
    return check


def na_validation_columns(artifact: dict) -> None:
    header, *rows = logged(artifact)
    assert header == HEADER
    assert rows and all(row.endswith(",NA,NA") for row in rows)


def early_column_late_key(artifact: dict) -> None:
    header, *rows = logged(artifact)
    assert "early" in header and "late" not in header
    assert [row.split(",")[1] for row in rows] == ["0.5", "NA", "NA", "NA"]


def quoted_values(artifact: dict) -> None:
    text = artifact["files"]["log.csv"]
    assert '"""[0, 0.25]"""' in text and '"say ""hi"", epoch 0\n"' in text


def second_fit_only(artifact: dict) -> None:
    assert "old line" not in artifact["files"]["log.csv"]
    assert len(logged(artifact)) == 4


def one_header(artifact: dict) -> None:
    # a non-empty file keeps its own header and gets none
    assert len([line for line in logged(artifact) if line.startswith("epoch,")]) == 1


def both_fits_under_one_header(artifact: dict) -> None:
    assert len(logged(artifact)) == 1 + 3 + 3
    one_header(artifact)


def name_kept(artifact: dict) -> None:
    assert list(artifact["files"]) == ["log_{epoch}.csv"]


def raised(kind: str, message: str = ""):
    def check(artifact: dict) -> None:
        assert artifact["error"]["type"] == kind
        assert message in artifact["error"]["message"]
    return check


def raised_without_making_a_folder(artifact: dict) -> None:
    raised("FileNotFoundError")(artifact)
    assert artifact["folders"] == [] and artifact["files"] == {}


# what Keras's artifact shows in each scenario (the drop-in's must equal it)
SHOWS = {
    "three_epochs": header_and_epochs(3),
    "five_epochs": header_and_epochs(5),
    "separator_semicolon": separated_by(";"),
    "separator_tab": separated_by("\t"),
    "separator_space": separated_by(" "),
    "no_validation": na_validation_columns,
    "keys_change": early_column_late_key,
    "values_and_quoting": quoted_values,
    "overwrite": second_fit_only,
    "append_no_file": one_header,
    "append_empty_file": one_header,
    "append_to_lines": one_header,
    "append_two_fits": both_fits_under_one_header,
    "append_two_fits_separator": separated_by(";"),
    "braces_in_filename": name_kept,
    "separator_two_characters": raised("TypeError", "1-character string"),
    "filename_is_a_folder": raised("IsADirectoryError"),
    "filename_is_a_folder_append": raised("IsADirectoryError"),
    "missing_folder": raised_without_making_a_folder,
    "missing_folder_append": raised_without_making_a_folder,
    "file_as_folder": raised("NotADirectoryError"),
    "unwritable_folder": raised("PermissionError"),
    "read_only_system_folder": raised("PermissionError"),
}


def test_every_scenario_says_what_it_shows():
    assert list(SHOWS) == [s.name for s in SPEC.scenarios]


@pytest.mark.fit
@pytest.mark.parametrize("name", list(SHOWS))
def test_same_file_as_keras(tmp_path, name):
    result = artifacts.check("csv_logger", name, folder=tmp_path)
    if result.status == "skipped":
        pytest.skip(result.reason)
    assert result.passed, result.divergence
    SHOWS[name](result.expected)
    if result.expected["error"]:  # the same exception class, not a subclass
        assert result.actual["error"]["type"] == result.expected["error"]["type"]


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
