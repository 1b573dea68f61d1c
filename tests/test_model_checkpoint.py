"""`rules/model_checkpoint.cbd` saves the files `keras.callbacks.ModelCheckpoint` saves.

Each fit runs Keras's class and the drop-in side by side in one callback list, each into its
own folder, so both see the same logs and save the same model at the same moments. After every
epoch (and every batch, where saving counts batches) a LambdaCallback records both folders'
listings: the expected names and events are whatever Keras did. Each file is loaded back and
must hold the weights of the file Keras wrote. Printed lines, warnings and errors are compared
with Keras's in separate fits.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.cli import main
from cbdsl.diagnostics import CbdslCheckError

RULE_FILE = Path(dropin.rule_file("model_checkpoint"))
BATCHES = 4  # per epoch: 48 samples, validation_split 0.25, batch_size 9


def tiny_model(steps_per_execution: int = 1) -> keras.Model:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="binary_crossentropy",
                  metrics=["accuracy"], steps_per_execution=steps_per_execution)
    return model


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((48, 4)).astype("float32")
    y = ((x[:, 0] + rng.normal(scale=0.3, size=48)) > 0.5).astype("float32")
    return x, y


def fit(callbacks: list, *, epochs: int = 4, validation: bool = True,
        steps_per_execution: int = 1) -> None:
    x, y = data()
    tiny_model(steps_per_execution).fit(x, y, batch_size=9, epochs=epochs, verbose=0, shuffle=False,
                     validation_split=0.25 if validation else 0.0, callbacks=callbacks)


def side_by_side(tmp_path: Path, filepath: str, *, per_batch: bool = False, epochs: int = 4,
                 validation: bool = True, steps_per_execution: int = 1,
                 **kwargs) -> tuple[list, list]:
    """Fit once with both callbacks; the listings of Keras's folder and of the drop-in's."""
    folders = tmp_path / "keras", tmp_path / "cbdsl"
    listings: tuple[list, list] = ([], [])

    def record(*_, **__):
        for folder, listing in zip(folders, listings, strict=True):
            listing.append(sorted(os.listdir(folder)) if folder.exists() else [])

    hooks = {"on_train_batch_end" if per_batch else "on_epoch_end": record}
    fit([keras.callbacks.ModelCheckpoint(str(folders[0] / filepath), **kwargs),
         dropin.ModelCheckpoint(str(folders[1] / filepath), **kwargs),
         keras.callbacks.LambdaCallback(**hooks)], epochs=epochs, validation=validation,
        steps_per_execution=steps_per_execution)
    assert_same_files(*folders)
    return listings


def weights_of(path: Path) -> list[np.ndarray]:
    if path.name.endswith(".weights.h5"):
        model = tiny_model()
        model.load_weights(path)
        return model.get_weights()
    return keras.models.load_model(path).get_weights()


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def assert_same_files(theirs: Path, ours: Path) -> None:
    """The same files (subfolders too), each loadable and holding the weights of Keras's."""
    names = files_under(theirs)
    assert files_under(ours) == names
    for name in names:
        for expected, got in zip(weights_of(theirs / name), weights_of(ours / name),
                                 strict=True):
            np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------- when and which file


@pytest.mark.fit
def test_every_epoch_with_epoch_and_metric_fields(tmp_path):
    theirs, ours = side_by_side(tmp_path, "m{epoch:02d}-{val_loss:.3f}.keras")
    assert ours == theirs
    assert [len(listing) for listing in theirs] == [1, 2, 3, 4]
    assert theirs[0][0].startswith("m01-")


@pytest.mark.fit
@pytest.mark.parametrize("name", ["last.keras", "last.h5"])
def test_one_file_overwritten_every_epoch(tmp_path, name):
    theirs, ours = side_by_side(tmp_path, name)
    assert ours == theirs == [[name]] * 4


@pytest.mark.fit
def test_save_weights_only(tmp_path):
    theirs, ours = side_by_side(tmp_path, "sub/w{epoch}.weights.h5", save_weights_only=True)
    assert ours == theirs == [["sub"]] * 4
    assert files_under(tmp_path / "cbdsl") == [f"sub/w{e}.weights.h5" for e in (1, 2, 3, 4)]


@pytest.mark.fit
@pytest.mark.parametrize("mode, monitor", [("min", "val_loss"), ("max", "val_accuracy"),
                                           ("max", "loss")])
def test_save_best_only_by_mode(tmp_path, mode, monitor):
    theirs, ours = side_by_side(tmp_path, "b{epoch}.keras", epochs=6, save_best_only=True,
                                monitor=monitor, mode=mode)
    assert ours == theirs
    assert 0 < len(theirs[-1]) < 6  # some epochs did not improve


@pytest.mark.fit
def test_save_best_only_in_auto_mode_follows_the_metric_direction(tmp_path):
    theirs, ours = side_by_side(tmp_path, "a{epoch}-{val_accuracy:.3f}.weights.h5", epochs=6,
                                save_best_only=True, save_weights_only=True,
                                monitor="val_accuracy")
    assert ours == theirs and theirs[-1]


@pytest.mark.fit
def test_save_best_only_overwrites_one_file_with_the_best_model(tmp_path):
    theirs, ours = side_by_side(tmp_path, "best.keras", epochs=6, save_best_only=True,
                                monitor="loss")
    assert ours == theirs == [["best.keras"]] * 6  # same weights: the best epoch's


@pytest.mark.fit
@pytest.mark.parametrize("threshold", [0.0, 0.67, 10.0])
def test_initial_value_threshold(tmp_path, threshold):
    theirs, ours = side_by_side(tmp_path, "t{epoch}.keras", epochs=5, save_best_only=True,
                                monitor="loss", initial_value_threshold=threshold)
    assert ours == theirs
    if threshold == 0.0:  # a loss never beats 0: nothing is saved
        assert theirs[-1] == []


@pytest.mark.fit
def test_save_freq_counts_batches_across_epochs(tmp_path):
    theirs, ours = side_by_side(tmp_path, "e{epoch}-b{batch}.keras", per_batch=True, epochs=3,
                                save_freq=3)
    assert ours == theirs
    assert theirs[-1] == ["e1-b3.keras", "e2-b2.keras", "e3-b1.keras", "e3-b4.keras"]


@pytest.mark.fit
@pytest.mark.parametrize("steps_per_execution", [2, 3])
def test_save_freq_counts_batches_run_together(tmp_path, steps_per_execution):
    theirs, ours = side_by_side(tmp_path, "e{epoch}-b{batch}.keras", per_batch=True, epochs=3,
                                save_freq=3, steps_per_execution=steps_per_execution)
    assert ours == theirs and theirs[-1]


@pytest.mark.fit
def test_save_freq_with_save_best_only_on_the_batch_loss(tmp_path):
    theirs, ours = side_by_side(tmp_path, "e{epoch}-b{batch}.weights.h5", per_batch=True,
                                epochs=3, save_freq=3, save_best_only=True, monitor="loss",
                                save_weights_only=True)
    assert ours == theirs and theirs[-1]


@pytest.mark.fit
@pytest.mark.parametrize("save_freq, validation", [("epoch", False), (3, True)])
def test_missing_monitor_warns_and_saves_as_keras(tmp_path, save_freq, validation):
    # val_loss: in no logs without validation data, and never in a batch's logs
    name = "m{epoch}.keras" if save_freq == "epoch" else "m{epoch}-{batch}.keras"
    caught = []
    for make, folder in ((keras.callbacks.ModelCheckpoint, "keras"),
                         (dropin.ModelCheckpoint, "cbdsl")):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            fit([make(str(tmp_path / folder / name), save_best_only=True, save_freq=save_freq)],
                epochs=2, validation=validation)
        caught.append([str(w.message) for w in seen if "save best" in str(w.message)])
    # two epochs; or eight batches, saved after the 3rd and the 6th
    assert caught[1] == caught[0] == ["Can save best model only with val_loss available."] * 2
    assert_same_files(tmp_path / "keras", tmp_path / "cbdsl")
    assert len(files_under(tmp_path / "cbdsl")) == 2


@pytest.mark.fit
def test_missing_monitor_is_not_read_without_save_best_only(tmp_path):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        fit([dropin.ModelCheckpoint(str(tmp_path / "m{epoch}.keras"))], epochs=2,
            validation=False)
    assert not [w for w in seen if "val_loss" in str(w.message)]
    assert files_under(tmp_path) == ["m1.keras", "m2.keras"]


# ----------------------------------------------------------------------------- verbose


def printed(capsys, tmp_path: Path, make, filepath: str, **kwargs) -> str:
    """What one fit with one checkpoint prints (paths relative to its own folder)."""
    folder = tmp_path / make.__module__.split(".")[0]
    folder.mkdir(exist_ok=True)
    capsys.readouterr()
    with contextlib.chdir(folder):
        fit([make(filepath, verbose=1, **kwargs)], epochs=5)
    return capsys.readouterr().out


@pytest.mark.fit
@pytest.mark.parametrize("kwargs", [
    {},
    {"save_best_only": True},
    {"save_best_only": True, "monitor": "val_accuracy", "initial_value_threshold": 0.5},
    {"save_freq": 3, "save_weights_only": True},
], ids=["every-epoch", "best-only", "best-only-threshold", "save-freq"])
def test_verbose_lines_are_keras_lines(capsys, tmp_path, kwargs):
    name = "w{epoch}.weights.h5" if kwargs.get("save_weights_only") else "m{epoch}.keras"
    expected = printed(capsys, tmp_path, keras.callbacks.ModelCheckpoint, name, **kwargs)
    ours = printed(capsys, tmp_path, dropin.ModelCheckpoint, name, **kwargs)
    assert ours == expected
    assert "saving model to" in expected


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("filepath, kwargs", [
    ("model.h5.weights", {"save_weights_only": True}),
    ("model.keras", {"save_weights_only": True}),
    ("model.weights", {}),
    ("model.txt", {}),
    ("model.keras", {"save_freq": "batch"}),
    ("model.keras", {"save_freq": 2.5}),
    ("model.txt", {"save_freq": "batch"}),  # save_freq is checked first
])
def test_construction_errors_are_keras_errors(filepath, kwargs):
    with pytest.raises(Exception) as theirs:
        keras.callbacks.ModelCheckpoint(filepath, **kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        dropin.ModelCheckpoint(filepath, **kwargs)
    assert type(theirs.value) is ValueError
    assert str(ours.value) == str(theirs.value)


def test_valid_paths_and_frequencies_are_accepted():
    for filepath, kwargs in [("m.keras", {}), ("m.h5", {}), ("w.weights.h5",
                             {"save_weights_only": True}), ("m.keras", {"save_freq": 7}),
                             (Path("m.keras"), {})]:
        keras.callbacks.ModelCheckpoint(filepath, **kwargs)
        assert isinstance(dropin.ModelCheckpoint(filepath, **kwargs), keras.callbacks.Callback)


@pytest.mark.fit
@pytest.mark.parametrize("filepath, kwargs", [("d.keras", {}),
                                              ("w.weights.h5", {"save_weights_only": True})])
def test_a_directory_is_the_same_error_as_keras(tmp_path, filepath, kwargs):
    errors = []
    for make, folder in ((keras.callbacks.ModelCheckpoint, "keras"),
                         (dropin.ModelCheckpoint, "cbdsl")):
        (tmp_path / folder / filepath).mkdir(parents=True)
        with pytest.raises(OSError) as info:
            fit([make(str(tmp_path / folder / filepath), **kwargs)], epochs=1)
        errors.append((info.value, str(tmp_path / folder / filepath)))
    (theirs, their_path), (ours, our_path) = errors
    assert str(ours).replace(our_path, "PATH") == str(theirs).replace(their_path, "PATH")
    assert str(theirs).startswith("Please specify a non-directory filepath for ModelCheckpoint")


@pytest.mark.fit
@pytest.mark.parametrize("filepath, kwargs", [("m{val_los:.2f}.keras", {}),
                                              ("m{batch}.keras", {}),
                                              ("m{val_loss}.keras", {"save_freq": 2})])
def test_a_path_field_the_logs_lack_ends_training_with_keras_message(tmp_path, filepath,
                                                                     kwargs):
    messages = []
    for make, folder in ((keras.callbacks.ModelCheckpoint, "keras"),
                         (dropin.ModelCheckpoint, "cbdsl")):
        # Keras raises a KeyError; the rule's `fail` a RuntimeError with the same message
        with pytest.raises(Exception) as info:
            fit([make(str(tmp_path / folder / filepath), **kwargs)], epochs=1)
        messages.append(info.value.args[0].replace(str(tmp_path / folder), "FOLDER"))
    assert messages[1] == messages[0]
    assert messages[0].startswith("Failed to format this callback filepath")
    assert not (tmp_path / "keras").exists() and not (tmp_path / "cbdsl").exists()


@pytest.mark.fit
def test_used_from_a_rule_file(tmp_path):
    path = tmp_path / "policy.cbd"
    path.write_text(f'use keras.model_checkpoint(filepath = "{tmp_path}/ck/{{epoch}}.keras", '
                    'save_freq = 5)')
    fit(cbdsl.compile(path), epochs=3)
    assert files_under(tmp_path / "ck") == ["2.keras", "3.keras"]  # after batches 5 and 10


# -------------------------------------------------------------------- the rule file itself


def test_dropin_has_the_keras_signature():
    def arguments(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

    assert arguments(dropin.ModelCheckpoint) == \
        arguments(keras.callbacks.ModelCheckpoint.__init__)[1:]
    (definition,) = [d for d in cbdsl.check(RULE_FILE).definitions.values()
                     if d.node is not None]
    keras_args = dict(arguments(keras.callbacks.ModelCheckpoint.__init__)[1:])
    assert list(definition.params) == list(keras_args)
    for name, default in keras_args.items():
        if default is not inspect.Parameter.empty:
            assert definition.params[name].default == default, name


def test_rule_file_is_formatted_and_checks_strictly(capsys):
    assert main(["fmt", "--check", str(RULE_FILE)]) == 0
    assert main(["check", "--strict", str(RULE_FILE)]) == 0


# ---------------------------------------------------------- the language features it reads


def run_rules(tmp_path: Path, source: str, *, epochs: int = 3, **params) -> list:
    path = tmp_path / "policy.cbd"
    path.write_text(source)
    callbacks = cbdsl.compile(path, **params)
    fit(callbacks, epochs=epochs)
    return callbacks


@pytest.mark.fit
def test_only_checks_a_tracker_where_its_condition_holds(tmp_path):
    (cb,) = run_rules(tmp_path, """
        var seen = 0
        on epoch_end when loss improves with (mode = "min", only = (epoch == 1)) as watch
          do set seen += 1
    """, epochs=4)
    assert cb.seen == 1  # the first (and only) check always improves
    assert cb.watch.best_epoch == 1 and cb.watch.value == cb.watch.best


@pytest.mark.fit
def test_only_holds_a_stalls_count_where_its_condition_is_false(tmp_path):
    (cb,) = run_rules(tmp_path, """
        on epoch_end when loss stalls 100 with (mode = "max", only = (epoch % 2 == 1)) as s
          do stop
    """, epochs=4)
    # checked after epochs 2 and 4 only: the first check sets the best, the second (a lower
    # loss, going the wrong way for max) counts one
    assert (cb.s.wait, cb.s.best_epoch) == (1, 1)


@pytest.mark.fit
def test_fill_type_format_and_endswith(tmp_path, capsys):
    run_rules(tmp_path, """
        param name = "e{epoch:02d}-{loss:.2f}.keras"
        on epoch_end once at epoch 1
          do print "{filled} {kind} {text} {ends}"
        var filled = ""
        var kind = ""
        var text = ""
        var ends = false
        on epoch_end once at epoch 1 priority 1
          do set filled = fill(name), set kind = type(name), set text = format(2 / 3, ".3f"),
             set ends = endswith(name, ".keras")
    """)
    out = capsys.readouterr().out.strip()
    assert out.startswith("e02-") and out.endswith(".keras str 0.667 True")


def test_the_new_functions_are_checked(tmp_path):
    bad = tmp_path / "bad.cbd"
    bad.write_text('var text = ""\n'
                   'on epoch_end when endswith(1, "x") do set text = format(1, 2)\n'
                   'on epoch_end when loss improves with only = "yes" do stop')
    with pytest.raises(CbdslCheckError) as info:
        cbdsl.check(bad)
    codes = [d.code for d in info.value.errors]
    assert "E203" in codes and "E211" in codes


def test_any_parameter_takes_any_value(tmp_path):
    path = tmp_path / "any.cbd"
    path.write_text('callback C(x: any = "a") { on epoch_end when x == "a" do stop }')
    for value in ("a", 3, 2.5, None, {"k": 1}):
        (cb,) = cbdsl.compile(path, x=value)
        assert cb.arguments["x"] == value
