"""Backups (BackupAndRestore): Keras's files plus every compiled callback's state, written whole.

The fit registry here knows which compiled callbacks train one model together, so that a
backup carries all their states and a resumed fit gives each its own back.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import uuid
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbdsl.diagnostics import CbdslRuntimeError, Diagnostic
from cbdsl.runtime.effects.base import _fail
from cbdsl.runtime.files import is_writer
from cbdsl.runtime.training import read_lr, write_lr


@dataclass
class Fit:
    """The compiled callbacks of one `fit`, in the order Keras calls them."""

    params: Any
    members: list[Any] = field(default_factory=list)
    restored: dict[str, dict[str, Any]] = field(default_factory=dict)  # states not yet given


_FITS: weakref.WeakKeyDictionary[Any, Fit] = weakref.WeakKeyDictionary()


def _key(index: int, cb: Any) -> str:
    return f"{index}:{type(cb).__name__}"


def _fingerprint(cb: Any) -> str:
    """What a saved state must match to be given back: the class, its variables and trackers,
    and its arguments (Python functions by name only)."""
    arguments = {k: getattr(v, "__qualname__", type(v).__name__) if callable(v) else repr(v)
                 for k, v in cb.arguments.items()}
    text = json.dumps([type(cb).__name__, sorted(cb.initial_variables), list(cb.tracker_names),
                       arguments], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def join_fit(cb: Any) -> None:
    """Called by every compiled callback as training begins: it joins this fit's list (a
    backup holds the state of each), and drops any backup left waiting by a failed fit."""
    cb.deferred = []
    fit = _fit_of(cb.model)
    if fit is None or fit.params is not cb.params:  # Keras gives one params dict per fit
        try:
            fit = _FITS[cb.model] = Fit(cb.params)
        except TypeError:  # no model, or one that cannot be weakly referenced: no registry
            return
    if cb not in fit.members:
        fit.members.append(cb)


def _fit_of(model: Any) -> Fit | None:
    try:
        return _FITS.get(model)
    except TypeError:  # a model that cannot be weakly referenced
        return None


def take_restored(cb: Any) -> None:
    """After its train-begin rules: the state a resumed backup holds for this callback."""
    fit = _fit_of(cb.model)
    if fit is not None and fit.restored and cb in fit.members:
        entry = fit.restored.pop(_key(fit.members.index(cb), cb), None)
        if entry is not None:
            _load_state(cb, entry)


@dataclass
class Capture:
    """The rules' state of one backup, written once the event's compiled callbacks have run."""

    dir: str
    stamp: str


def run_deferred(cb: Any) -> None:
    """Write the rules' state of the backups left for the end of this callback's event."""
    captures, cb.deferred = cb.deferred, []
    fit = _fit_of(cb.model)
    members = fit.members if fit else [cb]
    for capture in captures:
        if is_writer(cb.model):
            _write_state(cb.model, capture, members)



WEIGHTS = "latest.weights.h5"


METADATA = "training_metadata.json"  # Keras's names: either class resumes the other's backup


STATE = "cbdsl_state.npz"  # the rules' state (JSON) and their trackers' weight snapshots


PREVIOUS = ".bkp"


PARTIAL = "partial."  # a file being written, moved to its name once whole


def backup_store(cb: Any, *, where: str, dir: Any, epochs_done: Any, batch_index: Any = 0,
                 keep_previous: Any = False) -> str:
    """Back up as Keras's BackupAndRestore does, here and now: the weights (the optimizer's
    too) and the training metadata. The rules' state follows once the last compiled callback
    with rules for this event has run them, so that the states are all of this moment; a
    stamp ties it to these weights."""
    directory, stamp = str(dir), uuid.uuid4().hex
    if is_writer(cb.model):
        _write_keras_backup(cb.model, directory, int(epochs_done), int(batch_index),
                            bool(keep_previous), stamp, where)
    else:
        _save_elsewhere(cb.model)
    fit = _fit_of(cb.model)
    members = [m for m in (fit.members if fit else [cb]) if cb.event in m.rules_by_event]
    last = members[-1] if cb in members else cb
    last.deferred.append(Capture(directory, stamp))
    return f"back up epoch {int(epochs_done)} to {directory}"


def _write_keras_backup(model: Any, directory: str, epoch: int, batch: int,
                        keep_previous: bool, stamp: str, where: str) -> None:
    from keras.src.utils import file_utils

    try:
        if not file_utils.exists(directory):
            file_utils.makedirs(directory)
    except OSError as exc:
        raise CbdslRuntimeError(Diagnostic(
            "E405", f"cannot make the backup directory {directory!r}: {exc.strerror or exc}",
            hint=where)) from exc
    if keep_previous:
        for name in (WEIGHTS, METADATA, STATE):
            path = file_utils.join(directory, name)
            if file_utils.exists(path):
                file_utils.copy(path, path + PREVIOUS)
    _whole(directory, WEIGHTS, lambda path: model.save_weights(path, overwrite=True))
    text = json.dumps({"epoch": epoch, "batch": batch, "cbdsl": stamp})
    _whole(directory, METADATA, lambda path: _write(path, text))


def _save_elsewhere(model: Any) -> None:
    """Save the weights to a temporary folder and remove them: in a multi-process job every
    process takes part in saving (under JAX, `save_weights` is a collective that waits for
    each process), and only the first keeps the file, in the backup directory."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        model.save_weights(os.path.join(folder, WEIGHTS), overwrite=True)


def _whole(directory: str, name: str, write: Callable[[str], Any]) -> None:
    """`write(path)` for the file `name` of `directory`: on a local disk under a partial
    name first, then moved in, so a kill or a failure leaves the earlier file whole."""
    from keras.src.utils import file_utils

    target = file_utils.join(directory, name)
    if file_utils.is_remote_path(directory):  # object stores have no atomic rename
        if file_utils.exists(target):  # some remote file systems append to a file opened "w"
            file_utils.remove(target)
        write(target)
        return
    partial = os.path.join(directory, PARTIAL + name)
    try:
        write(partial)
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def _write(path: str, text: str) -> None:
    from keras.src.utils import file_utils

    with file_utils.File(path, "w") as f:
        f.write(text)


def _write_state(model: Any, capture: Capture, members: list[Any]) -> None:
    states, arrays = {}, {}
    for index, member in enumerate(members):
        key = _key(index, member)
        states[key] = {"fingerprint": _fingerprint(member),
                       "state": _encode(member.state.to_dict())}
        for tracker, snapshot in member.state.weights().items():
            for i, array in enumerate(snapshot):
                arrays[f"{key}/{tracker}/{i}"] = np.asarray(array)
    try:
        lr = read_lr(model)
    except Exception:  # a schedule: nothing to give back
        lr = None
    text = json.dumps({"stamp": capture.stamp, "learning_rate": lr, "callbacks": states})

    def write(path: str) -> None:
        from keras.src.utils import file_utils

        buffer = io.BytesIO()  # remote files cannot seek, as zip files need
        np.savez(buffer, state=np.array(text), **arrays)
        with file_utils.File(path, "wb") as f:
            f.write(buffer.getvalue())

    _whole(capture.dir, STATE, write)


def _encode(value: Any) -> Any:
    """JSON-ready state that keeps what JSON alone loses: tables with keys that are not
    strings, tuples, NumPy values."""
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"__cbdsl_items__": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, tuple):
        return {"__cbdsl_tuple__": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise CbdslRuntimeError(Diagnostic(
        "E405", f"a {type(value).__name__} in a callback's state cannot be backed up"))


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__cbdsl_items__"}:
            return {_hashable(_decode(k)): _decode(v) for k, v in value["__cbdsl_items__"]}
        if set(value) == {"__cbdsl_tuple__"}:
            return tuple(_decode(v) for v in value["__cbdsl_tuple__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _hashable(key: Any) -> Any:
    return tuple(key) if isinstance(key, list) else key


def backup_resume(cb: Any, *, where: str, dir: Any) -> str:
    """Resume from a backup, as Keras's BackupAndRestore does, and restore the rules' state."""
    from keras.src.utils import file_utils

    model, directory = cb.model, str(dir)
    if not model.built:
        raise _fail("To use the BackupAndRestore callback, you model must be built before you "
                    f"call `fit()`. Model {model} is unbuilt. You can build it beforehand by "
                    "calling it on a batch of data.", where)
    weights = file_utils.join(directory, WEIGHTS)
    try:
        return _resume(cb, directory)
    except OSError:
        # the latest backup cannot be read: the previous one, when it was kept
        if not file_utils.exists(weights + PREVIOUS):
            raise
        for name in (WEIGHTS, METADATA, STATE):
            path = file_utils.join(directory, name)
            if file_utils.exists(path + PREVIOUS):
                file_utils.copy(path + PREVIOUS, path)
            elif name != WEIGHTS and file_utils.exists(path):
                file_utils.remove(path)
        return _resume(cb, directory)


def _resume(cb: Any, directory: str) -> str:
    from keras.src.utils import file_utils

    model = cb.model
    weights = file_utils.join(directory, WEIGHTS)
    done = ""
    if file_utils.exists(weights):
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)  # its variables exist before loading
        model.load_weights(weights)
        done = f"restore weights from {directory}"
    metadata = file_utils.join(directory, METADATA)
    if not file_utils.exists(metadata):
        return done
    with file_utils.File(metadata, "r") as f:
        data = json.loads(f.read())
    model._initial_epoch = data["epoch"]  # what Keras's `fit` starts from
    _resume_rules(cb, directory, data.get("cbdsl"))
    return f"resume at epoch {data['epoch'] + 1} from {directory}"


def _resume_rules(cb: Any, directory: str, stamp: str | None) -> None:
    """Give each compiled callback of the fit the state the backup holds for it."""
    from keras.src.utils import file_utils

    path = file_utils.join(directory, STATE)
    if not file_utils.exists(path):
        return
    with file_utils.File(path, "rb") as f:
        stored = dict(np.load(io.BytesIO(f.read()), allow_pickle=False))
    data = json.loads(str(stored.pop("state")))
    if stamp is None or data.get("stamp") != stamp:
        warnings.warn(f"{type(cb).__name__}: the rules' state in {directory} is not that of "
                      "its latest backup (training stopped while it was written, or Keras's "
                      "BackupAndRestore wrote the backup): the compiled callbacks start "
                      "afresh", stacklevel=2)
        return
    if data.get("learning_rate") is not None:
        with contextlib.suppress(CbdslRuntimeError):  # a schedule: nothing to set
            write_lr(cb.model, data["learning_rate"], "backup.resume")
    fit = _fit_of(cb.model)
    members = fit.members if fit else []
    unmatched = []
    for key, entry in data.get("callbacks", {}).items():
        index, name = key.split(":", 1)
        member = members[int(index)] if int(index) < len(members) else None
        if member is cb:
            continue  # the resuming callback's own state starts afresh, as Keras's does
        restored = {"state": _decode(entry["state"]), "fingerprint": entry["fingerprint"],
                    "snapshots": _snapshots_of(key, stored)}
        if member is not None and type(member).__name__ == name:
            if _fingerprint(member) != entry["fingerprint"]:
                unmatched.append(name)
            else:
                _load_state(member, restored)
        elif fit is not None:
            fit.restored[key] = restored  # given as it begins (see `take_restored`)
    if unmatched:
        warnings.warn(f"{type(cb).__name__}: the backup in {directory} holds the state of "
                      f"other rules or arguments than {', '.join(unmatched)} now has: not "
                      "restored", stacklevel=2)


def _snapshots_of(key: str, arrays: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for name in sorted(arrays, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        owner, tracker, _ = name.split("/")
        if owner == key:
            out.setdefault(tracker, []).append(arrays[name])
    return out


def _load_state(cb: Any, entry: dict[str, Any]) -> None:
    if entry.get("fingerprint") not in (None, _fingerprint(cb)):
        warnings.warn(f"{type(cb).__name__}: the backup holds the state of other rules or "
                      "arguments: not restored", stacklevel=3)
        return
    cb.state.load_dict(entry["state"])
    for tracker, arrays in entry.get("snapshots", {}).items():
        if tracker in cb.state.trackers:
            cb.state.trackers[tracker].best_weights = list(arrays)


def backup_clear(cb: Any, *, where: str, dir: Any) -> str:
    """Remove a backup's files, then the directory if nothing else is left in it."""
    from keras.src.utils import file_utils

    directory = str(dir)
    fit = _fit_of(cb.model)
    for member in (fit.members if fit else [cb]):  # a backup stored earlier in this event:
        member.deferred = [c for c in member.deferred if c.dir != directory]  # cleared too
    if not is_writer(cb.model) or not file_utils.isdir(directory):
        return ""
    for name in (WEIGHTS, METADATA, STATE):
        for path in (file_utils.join(directory, name),
                     file_utils.join(directory, name + PREVIOUS),
                     file_utils.join(directory, PARTIAL + name)):
            if file_utils.exists(path):
                file_utils.remove(path)
    if not file_utils.listdir(directory):
        file_utils.rmtree(directory)
    return f"delete the backup in {directory}"
