"""ModelCheckpoint's scenarios: each file saved during a fit, when, and the weights it holds."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.models import classifier_model, fit_classifier, make_classifier
from cbdsl.conformance.artifacts.spec import Artifact, ArtifactSpec, Run, Scenario


class _Saves:
    """Watches the working folder at every event of a fit: each file written (new or
    changed since the last look) is copied aside, to be loaded after the fit."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.seen: dict[str, tuple[int, int, int]] = {}
        self.saves: list[tuple[str, str, Path]] = []  # (event, file, copy)
        self.fit = 0
        self.epoch = 0

    def callback(self) -> Any:
        import keras

        def epoch_begin(epoch: int, logs: Any = None) -> None:
            self.epoch = epoch
            self.look(f"epoch {epoch} begin")

        return keras.callbacks.LambdaCallback(
            on_train_begin=lambda logs=None: self.look("train begin"),
            on_epoch_begin=epoch_begin,
            on_train_batch_end=lambda batch, logs=None: self.look(
                f"epoch {self.epoch} batch {batch} end"),
            on_epoch_end=lambda epoch, logs=None: self.look(f"epoch {epoch} end"),
            on_train_end=lambda logs=None: self.look("train end"))

    def look(self, event: str) -> None:
        if self.fit > 1:
            event = f"fit {self.fit} {event}"
        for path in sorted(self.run.workdir.rglob("*")):
            if not path.is_file():
                continue
            name = path.relative_to(self.run.workdir).as_posix()
            stat = path.stat()
            mark = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if self.seen.get(name) != mark:
                self.seen[name] = mark
                copy = self.run.scratch / str(len(self.saves)) / path.name
                copy.parent.mkdir()
                shutil.copy2(path, copy)
                self.saves.append((event, name, copy))

    def artifact(self) -> list[dict[str, Any]]:
        return [{"at": event, "file": name, "weights": _weights(copy)}
                for event, name, copy in self.saves]


_LOADED: dict[str, Any] = {}  # content digest -> weights, so an identical file loads once


def _weights(path: Path) -> Any:
    """The weights a saved file holds, as lists, loaded as Keras loads it; None for a file
    Keras does not read, the error's text for one it fails to load. A file whose content
    was loaded before in this process (the same bytes; for `.keras`, all but the save time
    in `metadata.json`) gives that load's result again."""
    import keras

    if not (path.name.endswith(".weights.h5") or path.suffix in (".keras", ".h5")):
        return None
    digest = _content_digest(path)
    if digest in _LOADED:
        return _LOADED[digest]
    try:
        if path.name.endswith(".weights.h5"):
            model = make_classifier()
            model.load_weights(path)
        else:
            model = keras.models.load_model(path)
        weights: Any = [np.asarray(w).tolist() for w in model.get_weights()]
    except Exception as error:
        weights = {"load_error": f"{type(error).__name__}: {error}"}
    if len(_LOADED) > 1000:
        _LOADED.clear()
    _LOADED[digest] = weights
    return weights


def _content_digest(path: Path) -> str:
    import hashlib
    import zipfile

    digest = hashlib.sha256(path.suffix.encode())
    if path.suffix == ".keras" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                if name != "metadata.json":
                    digest.update(name.encode() + b"\0" + archive.read(name))
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def model_checkpoint(run: Run, *, filepath: str, epochs: int = 4, validation: bool = True,
                     steps_per_execution: int = 1, fits: int = 1,
                     folders: tuple[str, ...] = (), **arguments: Any) -> Artifact:
    """Fit the classifier `fits` times with one checkpoint callback.

    Returns:
        `saves`: each file written, at which event (`epoch 0 end`, `epoch 1 batch 2 end`),
        and the weights it held then; `files`: the working folder's files at the end.

    Args:
        filepath: the checkpoint's path, in the working folder.
        folders: folders to make first.
        arguments: the callback's other arguments.
    """
    for name in folders:
        (run.workdir / name).mkdir(parents=True)
    saves = _Saves(run)
    model = classifier_model(steps_per_execution)

    def work() -> None:
        checkpoint = run.build(filepath=run.path(filepath), **arguments)
        for _ in range(fits):
            saves.fit += 1
            fit_classifier(model, [checkpoint, saves.callback()], epochs=epochs,
                           validation=validation)

    run.attempt(work)
    saves.look("after the fit")
    return {"saves": saves.artifact(),
            "files": sorted(p.relative_to(run.workdir).as_posix()
                            for p in run.workdir.rglob("*") if p.is_file())}


def _checkpoint(name: str, description: str, filepath: str, quick: bool = False,
                **params: Any) -> Scenario:
    return Scenario(name, description, model_checkpoint, {"filepath": filepath, **params},
                    quick=quick)


CHECKPOINT = "model_checkpoint"
CHECKPOINT_SCENARIOS = (
    _checkpoint("every_epoch", "every epoch, {epoch} and a metric in the name",
                "m{epoch:02d}-{val_loss:.3f}.keras", quick=True),
    _checkpoint("one_keras_file", "one .keras file, overwritten every epoch", "last.keras"),
    _checkpoint("one_h5_file", "one legacy .h5 file, overwritten every epoch", "last.h5"),
    _checkpoint("weights_only_subfolder", "save_weights_only into a subfolder it makes",
                "sub/w{epoch}.weights.h5", save_weights_only=True),
    _checkpoint("best_min_val_loss", "save_best_only, mode='min' on val_loss",
                "b{epoch}.keras", epochs=6, save_best_only=True, mode="min", quick=True),
    _checkpoint("best_max_val_accuracy", "save_best_only, mode='max' on val_accuracy",
                "b{epoch}.keras", epochs=6, save_best_only=True, monitor="val_accuracy",
                mode="max"),
    _checkpoint("best_max_loss", "save_best_only, mode='max' on loss (the wrong way)",
                "b{epoch}.keras", epochs=6, save_best_only=True, monitor="loss", mode="max"),
    _checkpoint("best_auto_accuracy", "save_best_only, mode='auto' on val_accuracy (max), "
                "weights only", "a{epoch}-{val_accuracy:.3f}.weights.h5", epochs=6,
                save_best_only=True, save_weights_only=True, monitor="val_accuracy"),
    _checkpoint("best_one_file", "save_best_only into one file: the best epoch's weights",
                "best.keras", epochs=6, save_best_only=True, monitor="loss"),
    _checkpoint("threshold_zero", "initial_value_threshold=0 on loss: never beaten",
                "t{epoch}.keras", epochs=5, save_best_only=True, monitor="loss",
                initial_value_threshold=0.0),
    _checkpoint("threshold_between", "initial_value_threshold=0.67 on loss",
                "t{epoch}.keras", epochs=5, save_best_only=True, monitor="loss",
                initial_value_threshold=0.67),
    _checkpoint("threshold_high", "initial_value_threshold=10 on loss", "t{epoch}.keras",
                epochs=5, save_best_only=True, monitor="loss", initial_value_threshold=10.0),
    _checkpoint("save_freq_batches", "save_freq=3 counts batches across epochs",
                "e{epoch}-b{batch}.keras", epochs=3, save_freq=3, quick=True),
    _checkpoint("save_freq_steps_2", "save_freq=3 with steps_per_execution=2",
                "e{epoch}-b{batch}.keras", epochs=3, save_freq=3, steps_per_execution=2),
    _checkpoint("save_freq_steps_3", "save_freq=3 with steps_per_execution=3",
                "e{epoch}-b{batch}.keras", epochs=3, save_freq=3, steps_per_execution=3),
    _checkpoint("save_freq_best_loss", "save_freq=3 and save_best_only on the batch loss",
                "e{epoch}-b{batch}.weights.h5", epochs=3, save_freq=3, save_best_only=True,
                monitor="loss", save_weights_only=True),
    _checkpoint("missing_monitor_epochs", "save_best_only on val_loss without validation "
                "data: a warning, and a save, every epoch", "m{epoch}.keras", epochs=2,
                validation=False, save_best_only=True),
    _checkpoint("missing_monitor_batches", "save_best_only on val_loss every 3 batches "
                "(never in a batch's logs): a warning and a save each time",
                "m{epoch}-{batch}.keras", epochs=2, save_best_only=True, save_freq=3),
    _checkpoint("missing_monitor_not_read", "without save_best_only a missing val_loss is "
                "not read", "m{epoch}.keras", epochs=2, validation=False),
    _checkpoint("verbose_every_epoch", "verbose=1, every epoch: the saving lines",
                "m{epoch}.keras", epochs=5, verbose=1),
    _checkpoint("verbose_best", "verbose=1, save_best_only: improved and did-not-improve "
                "lines", "m{epoch}.keras", epochs=5, verbose=1, save_best_only=True),
    _checkpoint("verbose_best_threshold", "verbose=1, save_best_only on val_accuracy above "
                "initial_value_threshold=0.5", "m{epoch}.keras", epochs=5, verbose=1,
                save_best_only=True, monitor="val_accuracy", initial_value_threshold=0.5),
    _checkpoint("verbose_save_freq", "verbose=1, save_freq=3, weights only",
                "w{epoch}.weights.h5", epochs=5, verbose=1, save_freq=3,
                save_weights_only=True),
    _checkpoint("refuses_h5_weights_suffix", "save_weights_only with a .h5.weights path: "
                "ValueError", "model.h5.weights", save_weights_only=True),
    _checkpoint("refuses_keras_weights_only", "save_weights_only with a .keras path: "
                "ValueError", "model.keras", save_weights_only=True),
    _checkpoint("refuses_weights_suffix", "a .weights path for the whole model: ValueError",
                "model.weights"),
    _checkpoint("refuses_txt", "a .txt path: ValueError", "model.txt"),
    _checkpoint("refuses_save_freq_batch", "save_freq='batch': ValueError", "model.keras",
                save_freq="batch"),
    _checkpoint("refuses_save_freq_float", "save_freq=2.5: ValueError", "model.keras",
                save_freq=2.5),
    _checkpoint("refuses_save_freq_first", "save_freq='batch' and a .txt path: the "
                "save_freq error comes first", "model.txt", save_freq="batch"),
    _checkpoint("path_is_a_folder", "the path is an existing folder: Keras's OSError",
                "d.keras", epochs=1, folders=("d.keras",)),
    _checkpoint("weights_path_is_a_folder", "the weights path is an existing folder",
                "w.weights.h5", epochs=1, folders=("w.weights.h5",), save_weights_only=True),
    _checkpoint("path_field_misspelt", "a field the logs lack ({val_los}) ends the fit",
                "m{val_los:.2f}.keras", epochs=1),
    _checkpoint("path_field_batch_per_epoch", "{batch} when saving every epoch ends the fit",
                "m{batch}.keras", epochs=1),
    _checkpoint("path_field_val_loss_per_batch", "{val_loss} when saving every 2 batches "
                "ends the fit", "m{val_loss}.keras", epochs=1, save_freq=2),
    _checkpoint("best_over_two_fits", "save_best_only over two fits of one callback, on loss "
                "with mode='max': the first fit's best is not beaten in the second",
                "b{epoch}.keras", epochs=2, fits=2, save_best_only=True, monitor="loss",
                mode="max"),
    _checkpoint("save_freq_over_two_fits", "save_freq=3 over two one-epoch fits of one "
                "callback", "f{epoch}-b{batch}.keras", epochs=1, fits=2, save_freq=3),
)

SPEC = ArtifactSpec(CHECKPOINT, "ModelCheckpoint", CHECKPOINT_SCENARIOS)
