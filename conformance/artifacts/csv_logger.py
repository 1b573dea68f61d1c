"""CSVLogger's scenarios: the files a fit leaves in the working folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.models import fit_regression, logs_editor, regression_model
from cbdsl.conformance.artifacts.spec import Artifact, ArtifactSpec, Run, Scenario


def folder_contents(folder: Path) -> dict[str, Any]:
    """`files`: each file under `folder` (subfolders too) and its text; `folders`: each
    subfolder."""
    files, folders = {}, []
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if path.is_dir():
            folders.append(name + "/")
        else:
            files[name] = path.read_bytes().decode("utf-8", "backslashreplace")
    return {"files": files, "folders": folders}


def csv_logger(run: Run, *, epochs: int = 3, fits: int = 1, validation: bool = True,
               edit_logs: Callable[[int, dict], None] | None = None,
               existing: Mapping[str, str] | None = None, filename: str = "log.csv",
               lock: str | None = None, **arguments: Any) -> Artifact:
    """Fit the regression model `fits` times with one logger; the working folder after.

    Args:
        edit_logs: changes the logs before the logger sees them (`on_epoch_end`).
        existing: files to write first (`{name: text}`).
        filename: the logger's file, in the working folder ("" is the folder itself).
        lock: a folder to make first and leave unwritable during the fit.
        arguments: the logger's other arguments (`separator`, `append`).
    """
    for name, text in (existing or {}).items():
        path = run.workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    locked = run.workdir / lock if lock else None
    if locked is not None:
        locked.mkdir()
        locked.chmod(0o500)
    model = regression_model()

    def work() -> None:
        logger = run.build(filename=run.path(filename), **arguments)
        for _ in range(fits):
            fit_regression(model, [*logs_editor(edit_logs), logger], epochs=epochs,
                           validation=validation)

    try:
        run.attempt(work)
    finally:
        if locked is not None:
            locked.chmod(0o700)
    return folder_contents(run.workdir)


def _early_and_late(epoch: int, logs: dict) -> None:
    if epoch == 0:
        logs["early"] = 0.5  # only in the first epoch: NA afterwards
    if epoch >= 1:
        logs["late"] = epoch * 1.5  # not a column: never written


def _values_of_every_kind(epoch: int, logs: dict) -> None:
    logs["as_list"] = [epoch, 0.25]
    logs["as_array"] = np.arange(3, dtype="float32") + epoch
    logs["scalar_array"] = np.array(epoch * 0.5, dtype="float32")
    logs["text"] = f'say "hi", epoch {epoch}\n'
    logs["none"] = None


def _user_cannot_write() -> str | None:
    if os.name != "posix":
        return "needs POSIX permissions"
    if os.geteuid() == 0:
        return "runs as root, whom folder permissions do not stop"
    return None


def _system_folder_refuses() -> str | None:
    if os.name != "posix" or not os.path.isdir("/sys"):
        return "needs a POSIX /sys"
    if os.path.exists("/sys/cbdsl.csv"):
        return "/sys/cbdsl.csv exists"
    try:
        open("/sys/cbdsl.csv", "w").close()
    except PermissionError:
        return None
    except OSError as error:
        return f"/sys refuses a new file with {type(error).__name__}, not PermissionError"
    return "/sys took a new file"


CSV = "csv_logger"
CSV_SCENARIOS = (
    Scenario("three_epochs", "three epochs with validation: the header, then a line an epoch",
             csv_logger, quick=True),
    Scenario("five_epochs", "five epochs", csv_logger, {"epochs": 5}),
    Scenario("separator_semicolon", "separator=';'", csv_logger, {"separator": ";"}),
    Scenario("separator_tab", "separator='\\t'", csv_logger, {"separator": "\t"}),
    Scenario("separator_space", "separator=' '", csv_logger, {"separator": " "}),
    Scenario("no_validation", "no validation data: a val_ column of NA for each metric",
             csv_logger, {"validation": False}),
    Scenario("keys_change", "a key only in the first epoch's logs (NA after), and one "
             "appearing later (never written)", csv_logger,
             {"epochs": 4, "edit_logs": _early_and_late}, quick=True),
    Scenario("values_and_quoting", "lists, arrays, a 0-d array, text with quotes and a "
             "newline, and None in the logs", csv_logger, {"edit_logs": _values_of_every_kind}),
    Scenario("overwrite", "an existing file is emptied, and a second fit starts it again",
             csv_logger, {"fits": 2, "existing": {"log.csv": "old line\n"}}),
    Scenario("append_no_file", "append=True with no file yet: a header", csv_logger,
             {"append": True}),
    Scenario("append_empty_file", "append=True to an empty file: a header", csv_logger,
             {"append": True, "existing": {"log.csv": ""}}),
    Scenario("append_to_lines", "append=True to a file with lines: no header", csv_logger,
             {"append": True, "existing": {"log.csv": "epoch,loss\r\n0,1.0\r\n"}},
             quick=True),
    Scenario("append_two_fits", "append=True over two fits: one header, both fits' lines",
             csv_logger, {"append": True, "fits": 2}),
    Scenario("append_two_fits_separator", "append=True over two fits with separator=';'",
             csv_logger, {"append": True, "fits": 2, "separator": ";"}),
    Scenario("braces_in_filename", "a filename with {epoch} in it is used as it is",
             csv_logger, {"filename": "log_{epoch}.csv", "epochs": 2}),
    Scenario("separator_two_characters", "separator='ab': csv's TypeError ends the fit",
             csv_logger, {"separator": "ab", "epochs": 1}),
    Scenario("filename_is_a_folder", "the filename is a folder: IsADirectoryError",
             csv_logger, {"filename": "", "epochs": 1}),
    Scenario("filename_is_a_folder_append", "the filename is a folder, append=True",
             csv_logger, {"filename": "", "epochs": 1, "append": True}),
    Scenario("missing_folder", "the file's folder is missing: FileNotFoundError, and no "
             "folder is made", csv_logger, {"filename": "missing/log.csv", "epochs": 1}),
    Scenario("missing_folder_append", "the file's folder is missing, append=True",
             csv_logger, {"filename": "missing/log.csv", "epochs": 1, "append": True}),
    Scenario("file_as_folder", "a file where the folder should be: NotADirectoryError",
             csv_logger, {"filename": "plain/log.csv", "epochs": 1,
                          "existing": {"plain": "x"}}),
    Scenario("unwritable_folder", "a folder this user cannot write to: PermissionError",
             csv_logger, {"filename": "locked/log.csv", "epochs": 1, "lock": "locked"},
             needs=_user_cannot_write),
    Scenario("read_only_system_folder", "/sys, which refuses new files even to root: "
             "PermissionError", csv_logger, {"filename": "/sys/cbdsl.csv", "epochs": 1},
             needs=_system_folder_refuses),
)

SPEC = ArtifactSpec(CSV, "CSVLogger", CSV_SCENARIOS)
