"""The effects: progress bars, EMA swaps, backups and TensorBoard summaries, run by rule actions.

Each effect is called as `IMPLEMENTATIONS[name](cb, where=..., **arguments)` with the arguments
the checker bound (see `cbdsl.vocab.EFFECTS`), and returns the text its firing shows in the
timeline ("" for none). Rule files decide when and with what; an effect does the I/O, with
Keras's and TensorFlow's own utilities where they have one. Keras is imported on first use.
"""

from __future__ import annotations

import json
import os
import shutil
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cbdsl.diagnostics import CbdslRuntimeError, Diagnostic, KerasWorded
from cbdsl.runtime import is_writer


class EffectError(KerasWorded, CbdslRuntimeError, ValueError):
    """An effect could not run, for a reason Keras's callback gives in the same words
    (a ValueError, as Keras raises)."""


def _resources(cb: Any) -> dict[str, Any]:
    """What a callback's effects keep open between events: the bar, writers (not state)."""
    return cb.__dict__.setdefault("resources", {})


def _fail(message: str, where: str) -> EffectError:
    return EffectError(Diagnostic("E405", message, hint=where))


# ---------------------------------------------------------------- progress


def progress_start(cb: Any, *, where: str, target: Any, verbose: Any = 1) -> str:
    from keras.utils import Progbar

    # every metric shown as it is, as Keras's ProgbarLogger asks (stateless_metrics=set())
    _resources(cb)["progbar"] = Progbar(target=target, verbose=verbose, unit_name="step",
                                        stateless_metrics=set())
    return ""


def progress_update(cb: Any, *, where: str, current: Any, values: Any = None,
                    finalize: Any = False, target: Any = None, verbose: Any = 1) -> str:
    bar = _resources(cb).get("progbar")
    if bar is None:
        progress_start(cb, where=where, target=target, verbose=verbose)
        bar = _resources(cb)["progbar"]
    if finalize and target is not None:
        bar.target = target
    bar.update(current, list((values or {}).items()), finalize=bool(finalize))
    return ""


def progress_display_base() -> type:
    """A base that marks a compiled callback as the fit's progress display.

    Keras adds its own `ProgbarLogger` to `fit` unless a callback is one; a callback whose
    rules draw the bar takes its place. Only the type is borrowed: every hook is
    `Callback`'s no-op, so the class's behaviour is its rules'.
    """
    import keras

    base, plain = keras.callbacks.ProgbarLogger, keras.callbacks.Callback
    names = [k for k, v in vars(base).items()
             if callable(v) and (k.startswith("on_") or k in ("__init__", "set_params"))]
    return type("ProgressDisplay", (base,), {k: getattr(plain, k) for k in names})


# --------------------------------------------------------------------- EMA


def _ema_swapper(cb: Any, where: str) -> Any:
    """Keras's own SwapEMAWeights, used for its swap arithmetic (bit-exact on each backend)."""
    import keras

    optimizer = cb.model.optimizer
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    if not hasattr(optimizer, "optimizers") and \
            not hasattr(optimizer, "_model_variables_moving_average"):
        raise _fail("SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. "
                    f"Received: use_ema={getattr(optimizer, 'use_ema', False)}", where)
    swapper = _resources(cb).get("ema")
    if swapper is None:
        swapper = _resources(cb)["ema"] = keras.callbacks.SwapEMAWeights()
    swapper.set_model(cb.model)
    return swapper


def ema_swap(cb: Any, *, where: str) -> str:
    _ema_swapper(cb, where)._swap_variables()
    return "swap EMA weights"


def ema_finalize(cb: Any, *, where: str) -> str:
    _ema_swapper(cb, where)._finalize_ema_values()
    return "EMA weights set to the model's"


# ------------------------------------------------------------------ backups

WEIGHTS = "latest.weights.h5"
METADATA = "training_metadata.json"  # Keras's names: either class resumes the other's backup
SNAPSHOTS = "cbdsl_weights.npz"  # the weights snapshots of `restore best weights` trackers
PREVIOUS = ".bkp"


@dataclass
class Fit:
    """The compiled callbacks of one `fit`, in the order Keras calls them."""

    params: Any
    members: list[Any] = field(default_factory=list)
    pending: dict[str, dict[str, Any]] = field(default_factory=dict)  # states to load on join

    def key(self, cb: Any) -> str:
        return f"{self.members.index(cb)}:{type(cb).__name__}"


_FITS: weakref.WeakKeyDictionary[Any, Fit] = weakref.WeakKeyDictionary()


def join_fit(cb: Any) -> None:
    """Called at train begin by every compiled callback: joins this fit's list, and takes
    the state a restored backup left for it."""
    try:
        fit = _FITS.get(cb.model)
    except TypeError:  # a model that cannot be weakly referenced: no backups of rule state
        return
    if fit is None or fit.params is not cb.params:  # Keras gives one params dict per fit
        fit = _FITS[cb.model] = Fit(cb.params)
    if cb not in fit.members:
        fit.members.append(cb)
    entry = fit.pending.pop(fit.key(cb), None)
    if entry is not None:
        _load_state(cb, entry)


@dataclass
class Backup:
    dir: str
    epoch: int
    batch: int
    keep_previous: bool
    where: str


def backup_store(cb: Any, *, where: str, dir: Any, epochs_done: Any, batch_index: Any = 0,
                 keep_previous: Any = False) -> str:
    """Back up once every compiled callback of the fit has run this event.

    The weights, the epoch and the rules' state are written together, after the last
    compiled callback with rules for this event has run them, so that the states saved are
    all of the same moment, whatever the order of the callbacks.
    """
    backup = Backup(str(dir), int(epochs_done), int(batch_index), bool(keep_previous), where)
    fit = _FITS.get(cb.model)
    members = [m for m in (fit.members if fit else [cb]) if cb.event in m.rules_by_event]
    last = members[-1] if members and cb in members else cb
    last.__dict__.setdefault("deferred", []).append(backup)
    if last is cb:
        return f"back up epoch {backup.epoch} to {backup.dir}"
    return f"back up epoch {backup.epoch} to {backup.dir} (after {type(last).__name__})"


def run_deferred(cb: Any) -> None:
    """Write the backups left for the end of this callback's event."""
    backups, cb.deferred = cb.deferred, []
    fit = _FITS.get(cb.model)
    for backup in backups:
        _write_backup(cb.model, backup, fit.members if fit else [])


def _write_backup(model: Any, backup: Backup, members: list[Any]) -> None:
    if not is_writer():
        return
    directory = backup.dir
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise CbdslRuntimeError(Diagnostic(
            "E405", f"cannot make the backup directory {directory!r}: {exc.strerror}",
            hint=backup.where)) from exc
    weights, metadata = os.path.join(directory, WEIGHTS), os.path.join(directory, METADATA)
    if backup.keep_previous:
        for path in (weights, metadata, os.path.join(directory, SNAPSHOTS)):
            if os.path.exists(path):
                shutil.copyfile(path, path + PREVIOUS)
    states, snapshots = {}, {}
    for index, member in enumerate(members):
        key = f"{index}:{type(member).__name__}"
        states[key] = member.state.to_dict()
        for tracker, arrays in member.state.weights().items():
            for i, array in enumerate(arrays):
                snapshots[f"{key}/{tracker}/{i}"] = np.asarray(array)
    # each file is written beside its place and moved there: a kill leaves the old one whole
    temporary = os.path.join(directory, "partial." + WEIGHTS)
    model.save_weights(temporary, overwrite=True)
    os.replace(temporary, weights)
    if snapshots:
        with open(os.path.join(directory, "partial.npz"), "wb") as f:
            np.savez(f, **snapshots)
        os.replace(os.path.join(directory, "partial.npz"), os.path.join(directory, SNAPSHOTS))
    text = json.dumps({"epoch": backup.epoch, "batch": backup.batch, "cbdsl": states},
                      default=_plain)
    with open(os.path.join(directory, "partial.json"), "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(os.path.join(directory, "partial.json"), metadata)


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be backed up")


def backup_resume(cb: Any, *, where: str, dir: Any) -> str:
    """Resume from a backup, as Keras's BackupAndRestore does, and restore the rules' state."""
    model, directory = cb.model, str(dir)
    if not model.built:
        raise _fail("To use the BackupAndRestore callback, you model must be built before you "
                    f"call `fit()`. Model {model} is unbuilt. You can build it beforehand by "
                    "calling it on a batch of data.", where)
    weights = os.path.join(directory, WEIGHTS)
    try:
        return _restore(cb, directory)
    except OSError:
        # the latest backup cannot be read: the previous one, when it was kept
        if not os.path.exists(weights + PREVIOUS):
            raise
        for name in (WEIGHTS, METADATA, SNAPSHOTS):
            path = os.path.join(directory, name)
            if os.path.exists(path + PREVIOUS):
                shutil.copyfile(path + PREVIOUS, path)
            elif name != WEIGHTS and os.path.exists(path):
                os.remove(path)
        return _restore(cb, directory)


def _restore(cb: Any, directory: str) -> str:
    model = cb.model
    weights = os.path.join(directory, WEIGHTS)
    done = ""
    if os.path.exists(weights):
        optimizer = model.optimizer
        if optimizer is not None and not optimizer.built:
            optimizer.build(model.trainable_variables)  # its variables exist before loading
        model.load_weights(weights)
        done = f"restore weights from {directory}"
    metadata = os.path.join(directory, METADATA)
    if not os.path.exists(metadata):
        return done
    with open(metadata, encoding="utf-8") as f:
        data = json.loads(f.read())
    model._initial_epoch = data["epoch"]  # what Keras's `fit` starts from
    states = data.get("cbdsl") or {}
    if states:
        snapshots = os.path.join(directory, SNAPSHOTS)
        arrays = dict(np.load(snapshots)) if os.path.exists(snapshots) else {}
        for key, entry in states.items():
            entry["snapshots"] = _snapshots_of(key, arrays)
        fit = _FITS.get(model)
        for key, entry in states.items():
            member = _member(fit, key)
            if member is cb:
                continue  # the restoring callback's own state starts afresh, as Keras's
            if member is not None:
                _load_state(member, entry)
            elif fit is not None:
                fit.pending[key] = entry
    return f"resume at epoch {data['epoch'] + 1} from {directory}"


def _snapshots_of(key: str, arrays: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    out: dict[str, list[np.ndarray]] = {}
    for name in sorted(arrays, key=lambda k: (k.rsplit("/", 1)[0], int(k.rsplit("/", 1)[1]))):
        owner, tracker, _ = name.split("/")
        if owner == key:
            out.setdefault(tracker, []).append(arrays[name])
    return out


def _member(fit: Fit | None, key: str) -> Any:
    if fit is None:
        return None
    index, name = key.split(":", 1)
    if int(index) < len(fit.members) and type(fit.members[int(index)]).__name__ == name:
        return fit.members[int(index)]
    return None


def _load_state(cb: Any, entry: dict[str, Any]) -> None:
    cb.state.load_dict(entry)
    for tracker, arrays in entry.get("snapshots", {}).items():
        if tracker in cb.state.trackers:
            cb.state.trackers[tracker].best_weights = list(arrays)


def backup_clear(cb: Any, *, where: str, dir: Any) -> str:
    """Remove a backup's files, then the directory if nothing else is left in it."""
    directory = str(dir)
    if not is_writer() or not os.path.isdir(directory):
        return ""
    for name in (WEIGHTS, METADATA, SNAPSHOTS):
        for path in (os.path.join(directory, name), os.path.join(directory, name + PREVIOUS)):
            if os.path.exists(path):
                os.remove(path)
    if not os.listdir(directory):
        os.rmdir(directory)
    return f"delete the backup in {directory}"


# --------------------------------------------------------------- TensorBoard


def _summary() -> Any:
    try:
        import tensorflow.summary as summary
    except ImportError:
        raise ImportError("TensorBoard summaries are written with TensorFlow: "
                          "pip install tensorflow (tensorflow-cpu)") from None
    return summary


def _writer(cb: Any, directory: str) -> Any:
    writers = _resources(cb).setdefault("writers", {})
    if directory not in writers:
        writers[directory] = _summary().create_file_writer(directory)
    return writers[directory]


def tensorboard_scalar(cb: Any, *, where: str, dir: Any, tag: Any, value: Any,
                       step: Any) -> str:
    with _writer(cb, str(dir)).as_default():
        _summary().scalar(str(tag), value, step=step)
    return ""


def tensorboard_histograms(cb: Any, *, where: str, dir: Any, step: Any,
                           images: Any = False) -> str:
    """Every weight of every layer as a histogram (and an image), as Keras's TensorBoard."""
    writer, summary = _writer(cb, str(dir)), _summary()
    with writer.as_default():
        for layer in cb.model.layers:
            for weight in layer.weights:
                name = weight.path.replace(":", "_")
                summary.histogram(f"{name}/histogram", weight, step=step)
                if images:
                    image = _weight_image(weight)
                    if image is not None:
                        summary.image(f"{name}/image", image, step=step)
        writer.flush()
    return f"histograms at step {step}"


def _weight_image(weight: Any) -> np.ndarray | None:
    """A weight as a batch of images: as Keras's TensorBoard lays biases, kernels, filters."""
    from keras import backend, ops

    image = ops.squeeze(weight)
    shape = image.shape
    if len(shape) == 1:  # a bias
        image = ops.reshape(image, [1, shape[0], 1, 1])
    elif len(shape) == 2:  # a dense kernel, wider than tall
        if shape[0] > shape[1]:
            image = ops.transpose(image)
            shape = image.shape
        image = ops.reshape(image, [1, shape[0], shape[1], 1])
    elif len(shape) == 3:  # a convolution's kernel
        if backend.image_data_format() == "channels_last":
            image = ops.transpose(image, [2, 0, 1])
            shape = image.shape
        image = ops.reshape(image, [shape[0], shape[1], shape[2], 1])
    image = ops.convert_to_numpy(image)
    return image if image.ndim == 4 and image.shape[-1] in (1, 3, 4) else None


def tensorboard_model_config(cb: Any, *, where: str, dir: Any) -> str:
    """The model's configuration at step 0, for the conceptual graph (Sequential, Functional)."""
    from keras.src.callbacks.tensorboard import keras_model_summary

    if type(cb.model).__name__ not in ("Functional", "Sequential"):
        return ""
    with _writer(cb, str(dir)).as_default():
        keras_model_summary("keras", cb.model, step=0)
    return "model summary"


def tensorboard_graph(cb: Any, *, where: str, dir: Any) -> str:
    train_fn = getattr(cb.model, "train_function", None)
    if not hasattr(train_fn, "function_spec"):  # a traced TensorFlow function only
        return ""
    fn = getattr(train_fn, "_concrete_stateful_fn", None) or \
        train_fn._concrete_variable_creation_fn
    with _writer(cb, str(dir)).as_default():
        _summary().graph(fn.graph)
    return "train graph"


def tensorboard_projector(cb: Any, *, where: str, dir: Any, metadata: Any = None) -> str:
    """The projector's configuration for the Embedding layers, as Keras's TensorBoard writes."""
    from google.protobuf import text_format
    from keras.layers import Embedding
    from tensorboard.plugins import projector

    config = projector.ProjectorConfig()
    left = dict(metadata) if isinstance(metadata, dict) else None
    for layer in cb.model.layers:
        if isinstance(layer, Embedding):
            embedding = config.embeddings.add()
            embedding.tensor_name = "layer_with_weights-0/embeddings/.ATTRIBUTES/VARIABLE_VALUE"
            if isinstance(metadata, str):
                embedding.metadata_path = metadata
            elif left is not None and layer.name in left:
                embedding.metadata_path = left.pop(layer.name)
    if left:
        raise _fail("Unrecognized `Embedding` layer names passed to "
                    "`keras.callbacks.TensorBoard` `embeddings_metadata` argument: "
                    f"{left.keys()}", where)
    os.makedirs(str(dir), exist_ok=True)
    with open(os.path.join(str(dir), "projector_config.pbtxt"), "w") as f:
        f.write(text_format.MessageToString(config))
    return "projector config"


def tensorboard_trace(cb: Any, *, where: str, dir: Any, on: Any, step: Any = 0) -> str:
    """Start the profiler's trace, or stop it and write it (as `batch_<step>`)."""
    from keras import backend

    summary = _summary()
    if on:
        summary.trace_on(graph=True, profiler=False)
        backend.tensorboard.start_trace(str(dir))
        return "trace on"
    with _writer(cb, str(dir)).as_default():
        summary.trace_export(name=f"batch_{int(step)}", step=int(step))
    backend.tensorboard.stop_trace(save=True)
    return f"trace written at step {step}"


def tensorboard_close(cb: Any, *, where: str) -> str:
    for writer in _resources(cb).pop("writers", {}).values():
        writer.close()
    return ""


IMPLEMENTATIONS: dict[str, Callable[..., str]] = {
    "progress.start": progress_start,
    "progress.update": progress_update,
    "ema.swap": ema_swap,
    "ema.finalize": ema_finalize,
    "backup.store": backup_store,
    "backup.resume": backup_resume,
    "backup.clear": backup_clear,
    "tensorboard.scalar": tensorboard_scalar,
    "tensorboard.histograms": tensorboard_histograms,
    "tensorboard.model_config": tensorboard_model_config,
    "tensorboard.graph": tensorboard_graph,
    "tensorboard.projector": tensorboard_projector,
    "tensorboard.trace": tensorboard_trace,
    "tensorboard.close": tensorboard_close,
}
