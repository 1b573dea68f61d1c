"""Files that rules write: models and weights saved whole, text, CSV rows; the writing process."""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from cbdsl.diagnostics import (
    CbdslRuntimeError,
    Diagnostic,
    KerasWorded,
)


class DirectoryPathError(KerasWorded, CbdslRuntimeError, OSError):
    """`save` was given the path of an existing directory: an `OSError`, as Keras's
    ModelCheckpoint raises, with its message."""


def save(model: Any, kind: str, path: str, where: str, owner: str = "ModelCheckpoint") -> None:
    """Save the model or its weights, creating the folder.

    The file is written beside its place under a hidden name and moved there once whole: a
    save that fails or is interrupted leaves no partial file under the name (and an earlier
    file of that name as it was).

    Raises:
        DirectoryPathError: `path` is an existing directory (an `OSError` worded as Keras's,
            `owner` naming the callback).
    """
    from keras.src.utils import file_utils

    if file_utils.isdir(path):
        raise DirectoryPathError(Diagnostic(
            "E403", f"Please specify a non-directory filepath for {owner}. Filepath used is an "
            f"existing directory: {path}", hint=where))
    folder, name = os.path.split(path)
    if folder and not file_utils.exists(folder):
        file_utils.makedirs(folder)
    suffixes = (".weights.h5",) if kind == "weights" else (".keras", ".h5")
    suffix = next((s for s in suffixes if name.endswith(s)), "")
    if not suffix or is_remote_path(path):  # Keras's own error names the path; no rename there
        _save_as(model, kind, path)
        return
    # one partial name per process: the processes of a multi-process job all save, as Keras's
    # ModelCheckpoint does, possibly to one path on a shared file system
    partial = os.path.join(folder, f".{name[:len(name) - len(suffix)]}.partial-{os.getpid()}"
                                   f"{suffix}")
    try:
        _save_as(model, kind, partial)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _save_as(model: Any, kind: str, path: str) -> None:
    if kind == "weights":
        model.save_weights(path, overwrite=True)
    else:
        model.save(path, overwrite=True)


def is_remote_path(path: str) -> bool:
    """Whether Keras reads `path` as remote storage (`gs://`, `/gcs`, ...): no rename there."""
    from keras.src.utils import file_utils

    return file_utils.is_remote_path(path)


def is_writer(model: Any = None) -> bool:
    """Whether this process writes files: the first process of a multi-process job.

    Under one process (a single device, `MirroredStrategy`, JAX `DataParallel` on one host) the
    callbacks run once per event whatever the replicas, so the one process writes. In a
    multi-process job (JAX on several hosts, `MultiWorkerMirroredStrategy`, torch.distributed)
    every process runs the callbacks and only the first writes: JAX process 0, torch rank 0,
    the TensorFlow chief, or worker 0 when the cluster has no chief.

    Args:
        model: the model being trained, whose TensorFlow strategy tells the worker apart when
            `fit` runs outside `strategy.scope()` (as it usually does); None looks only at the
            strategy in scope.

    Returns:
        True when this process writes.
    """
    jax = sys.modules.get("jax")
    if jax is not None and jax.process_count() > 1:
        return jax.process_index() == 0
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        strategy = tf.distribute.get_strategy() if tf.distribute.has_strategy() else \
            getattr(model, "_distribute_strategy", None)
        resolver = getattr(strategy, "cluster_resolver", None)
        if resolver is not None and resolver.task_type not in (None, "chief"):
            has_chief = "chief" in resolver.cluster_spec().as_dict()
            return not has_chief and resolver.task_type == "worker" and resolver.task_id == 0
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() \
            and torch.distributed.is_initialized():
        return torch.distributed.get_rank() == 0
    return True


def write_text(path: str, text: str, *, append: bool, where: str, model: Any = None) -> None:
    """`write` replaces a file's text; `append` adds the text and a newline. Folders are made.

    Only the writing process of a multi-process job writes (see `is_writer`, which reads
    `model`'s strategy).
    """
    if not is_writer(model):
        return
    if os.path.isdir(path):
        raise CbdslRuntimeError(Diagnostic(
            "E403", f"{where}: please specify a non-directory filepath; '{path}' is a directory"))
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    with open(path, "a" if append else "w", encoding="utf-8", newline="") as f:
        f.write(text + "\n" if append else text)


def csv_cell(value: Any) -> Any:
    """A value as Keras's CSVLogger writes it: text as it is, an iterable (but not a 0-d array)
    as a quoted list `"[a, b]"`, anything else as the csv module writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, Iterable) and not (isinstance(value, np.ndarray) and value.ndim == 0):
        return f'"[{", ".join(map(str, value))}]"'
    return value


def write_row(path: str, row: dict[str, Any] | None, *, separator: str = ",",
              header: bool = False, append: bool = True,
              handles: dict[str, Any] | None = None, model: Any = None) -> None:
    """`write row`: a table's values as one CSV line at the end of a file, as Keras's CSVLogger.

    The line is written by `csv.writer` in the Excel dialect with `separator` as delimiter
    (`"\r\n"` line ends, values quoted where needed), after a line of the table's keys when
    `header` is true. `append=False` empties the file first; `row=None` only opens the file
    (creating it). Folders are not created: a missing folder, a directory or an unwritable
    path raise Python's `OSError` (`FileNotFoundError`, `IsADirectoryError`,
    `PermissionError`), as Keras does. Only the writing process of a multi-process job writes
    (see `is_writer`, which reads `model`'s strategy).

    Given `handles` (a callback's resources), the file stays open between rows, as Keras's
    CSVLogger keeps it, under `csv_file`, with the latest row's writer under `writer`; each
    line is flushed whole, and `close_rows` closes the file when training ends.
    """
    if not is_writer(model):
        return
    if handles is not None:
        _kept_row(path, row, separator, header, append, handles)
        return
    with open(path, "a" if append else "w") as f:
        if row is None:
            return
        writer = csv.writer(f, dialect=_dialect(separator))
        if header:
            writer.writerow(list(row))
        writer.writerow([csv_cell(value) for value in row.values()])


def _kept_row(path: str, row: dict[str, Any] | None, separator: str, header: bool,
              append: bool, handles: dict[str, Any]) -> None:
    f = handles.get("csv_file")
    if not append or f is None or f.closed or f.name != path:
        close_rows(handles)
        if not append:
            open(path, "w").close()
        # kept open until training ends; "a": at the end, whatever else writes there
        f = handles["csv_file"] = open(path, "a")  # noqa: SIM115
    if row is None:
        return
    writer = handles["writer"] = csv.writer(f, dialect=_dialect(separator))
    if header:
        writer.writerow(list(row))
    writer.writerow([csv_cell(value) for value in row.values()])
    f.flush()


def close_rows(handles: dict[str, Any]) -> None:
    """Close the file `write row` keeps open (it stays readable as `csv_file`, closed)."""
    f = handles.get("csv_file")
    if f is not None and not f.closed:
        f.close()
    handles["writer"] = None


def _dialect(separator: str) -> type[csv.Dialect]:
    class Dialect(csv.excel):
        delimiter = separator

    return Dialect
