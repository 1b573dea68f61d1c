"""Recorded runs: CSVLogger files, History dumps and TensorBoard log directories, found by path."""

from __future__ import annotations

import csv
import glob
import json
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cbdsl.diagnostics import CbdslError, Diagnostic

EVENT_FILES = "events.out.tfevents.*"


class LogFormatError(CbdslError):
    """A training log that replay cannot read."""


@dataclass
class Run:
    """One recorded training run.

    Attributes:
        path: where it was read from (a file, or a TensorBoard log directory).
        epochs: its per-epoch logs, in order, as `on_epoch_end` received them.
        tensorboard: whether it was read from TensorBoard's event files.
    """

    path: str
    epochs: list[dict[str, float]]
    tensorboard: bool = False


def read_log(path: str | Path) -> list[dict[str, float]]:
    """Per-epoch logs from a CSVLogger file (`.csv`), a History dump (`.json`) or a TensorBoard
    log directory (the `train/` and `validation/` event files Keras's TensorBoard writes).

    A History dump is `{"loss": [...], ...}` (`history.history`) or `{"history": {...}}`.
    CSVLogger's `epoch` column is dropped and its `NA` cells left out. In a TensorBoard log
    directory, the `epoch_*` scalars are the logs: `train/`'s `epoch_loss` is `loss`,
    `validation/`'s is `val_loss`, `epoch_learning_rate` is `learning_rate`.

    Raises:
        LogFormatError: the file cannot be read or is none of these formats (E501).
    """
    path = Path(path)
    if path.is_dir():
        return read_tensorboard(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LogFormatError(Diagnostic("E501", f"cannot read {path}: {exc.strerror}")) from None
    except UnicodeDecodeError:
        raise LogFormatError(Diagnostic(
            "E501", f"{path}: not UTF-8 text; expected a CSVLogger file, a History JSON dump "
            "or a TensorBoard log directory")) from None
    if path.suffix.lower() == ".json" or text.lstrip().startswith("{"):
        return _from_history(text, path)
    return _from_csv(text, path)


def _from_history(text: str, path: Path) -> list[dict[str, float]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LogFormatError(Diagnostic(
            "E501", f"{path}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}")) from None
    if isinstance(data, dict) and isinstance(data.get("history"), dict):
        data = data["history"]
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise LogFormatError(Diagnostic(
            "E501", f"{path}: expected a History dump, {{\"loss\": [...], ...}}"))
    count = max((len(v) for v in data.values()), default=0)
    try:
        return [{k: float(v[i]) for k, v in data.items() if i < len(v) and v[i] is not None}
                for i in range(count)]
    except (TypeError, ValueError) as exc:
        raise LogFormatError(Diagnostic(
            "E501", f"{path}: a History value is not a number: {exc}")) from None


def _from_csv(text: str, path: Path) -> list[dict[str, float]]:
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or rows[0] is None:
        raise LogFormatError(Diagnostic("E501", f"{path}: no rows; expected a CSVLogger file"))
    epochs = []
    for line, row in enumerate(rows, start=2):
        logs = {}
        for key, value in row.items():
            if key in (None, "epoch") or value in (None, "", "NA"):
                continue
            try:
                logs[key] = float(value)
            except ValueError:
                raise LogFormatError(Diagnostic(
                    "E501", f"{path}:{line}: '{key}' is {value!r}, not a number")) from None
        epochs.append(logs)
    return epochs


def is_tensorboard_dir(path: Path) -> bool:
    """Whether `path` is a log directory of Keras's TensorBoard: event files in `train/` or
    `validation/`, or in the directory itself."""
    return any(next((path / sub).glob(EVENT_FILES), None) is not None
               for sub in ("train", "validation", "."))


def _tensorboard() -> tuple[Any, Any]:
    """TensorBoard's event file loader and `make_ndarray`, without TensorFlow.

    TensorBoard reads event files with TensorFlow when it can import it, and otherwise with
    its own stub; the `tensorboard.compat.notf` module is its switch to the stub (Bazel's
    `//tensorboard/compat:no_tensorflow`). The switch is set only when TensorFlow is not
    already loaded, so a process that has it keeps TensorBoard's usual reader.
    """
    if "tensorflow" not in sys.modules and "tensorboard.compat.notf" not in sys.modules:
        sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    return EventFileLoader, make_ndarray


def read_tensorboard(path: str | Path) -> list[dict[str, float]]:
    """Per-epoch logs from a TensorBoard log directory, read with TensorBoard's own reader.

    Raises:
        LogFormatError: no event files, no `epoch_*` scalars, or a file TensorBoard cannot
            read (E501).
    """
    path = Path(path)
    try:
        loader, make_ndarray = _tensorboard()
    except ImportError:
        raise LogFormatError(Diagnostic(
            "E501", f"{path}: reading TensorBoard logs needs the tensorboard package "
            "(pip install 'cbdsl[tensorboard]')")) from None
    steps: dict[int, dict[str, float]] = {}
    found = False
    for sub, prefix in (("train", ""), ("validation", "val_"), (".", "")):
        for file in sorted((path / sub).glob(EVENT_FILES)):
            found = True
            try:
                for event in loader(str(file)).Load():
                    for value in event.summary.value:
                        if not value.tag.startswith("epoch_"):
                            continue
                        number = (float(make_ndarray(value.tensor).item())
                                  if value.HasField("tensor") else float(value.simple_value))
                        steps.setdefault(int(event.step), {})[
                            prefix + value.tag.removeprefix("epoch_")] = number
            except Exception as exc:  # a truncated or foreign file: TensorBoard's own error
                raise LogFormatError(Diagnostic(
                    "E501", f"{file}: TensorBoard cannot read it: {exc}")) from None
    if not found:
        raise LogFormatError(Diagnostic(
            "E501", f"{path}: no event files in train/ or validation/; expected a TensorBoard "
            "log directory"))
    if not steps:
        raise LogFormatError(Diagnostic(
            "E501", f"{path}: no epoch_* scalars (Keras's TensorBoard writes epoch_loss, ...)"))
    return [steps[step] for step in sorted(steps)]


def find_runs(inputs: Iterable[str | Path]) -> tuple[list[str], list[tuple[str, str]]]:
    """The recorded runs that files, folders and glob patterns name, in order, each once.

    A file is one run; a TensorBoard log directory is one run; another folder holds runs:
    its `.csv` and `.json` files and its TensorBoard log directories, at any depth. A glob
    pattern (`runs/*/training.csv`, `logs/**`) is expanded, `**` across folders.

    Returns:
        The runs' paths, and `(input, reason)` for each input that names none.
    """
    found: dict[str, None] = {}
    missing: list[tuple[str, str]] = []
    for item in inputs:
        text = str(item)
        matches = sorted(glob.glob(text, recursive=True)) if glob.has_magic(text) else [text]
        if glob.has_magic(text) and not matches:
            missing.append((text, "the pattern matches no file or folder"))
        for match in matches:
            path = Path(match)
            if glob.has_magic(text) and (
                    (path.is_file() and path.suffix.lower() not in (".csv", ".json"))
                    or (path.name in ("train", "validation")
                        and is_tensorboard_dir(path.parent))):
                continue  # `logs/**`: a run's event files and subfolders are not runs
            if path.is_dir() and not is_tensorboard_dir(path):
                inside = _runs_in(path)
                if not inside and not glob.has_magic(text):
                    missing.append((match, "no CSVLogger, History or TensorBoard logs in it"))
                found.update(dict.fromkeys(inside))
            elif path.exists():
                found[str(path)] = None
            elif not glob.has_magic(text):
                missing.append((match, "no such file or folder"))
    return list(found), missing


def _runs_in(folder: Path) -> list[str]:
    runs: list[str] = []
    for path in sorted(folder.iterdir()):
        if path.is_dir():
            runs += [str(path)] if is_tensorboard_dir(path) else _runs_in(path)
        elif path.suffix.lower() in (".csv", ".json"):
            runs.append(str(path))
    return runs


def read_runs(inputs: Iterable[str | Path]) -> tuple[list[Run], list[tuple[str, str]]]:
    """Every run that `inputs` name (`find_runs`), read; a run that cannot be read is set
    aside with its path and the reason, and the others are read on.

    Returns:
        The runs read, and `(path, reason)` for each input or run that could not be.
    """
    paths, unreadable = find_runs(inputs)
    runs = []
    for path in paths:
        try:
            epochs = read_log(path)
        except LogFormatError as exc:
            unreadable.append((path, "; ".join(f"{d.code} {d.message}"
                                               for d in exc.diagnostics)))
            continue
        if not epochs:
            unreadable.append((path, "E501 no epochs recorded"))
            continue
        runs.append(Run(path, epochs, Path(path).is_dir()))
    return runs, unreadable
