"""ProgbarLogger, SwapEMAWeights, BackupAndRestore and TensorBoard as rule files: every
artifact scenario against the Keras class on this backend, and what the rules do beyond it.

The scenarios run on the other backends in `cbdsl conform`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import keras
import numpy as np
import pytest

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.conformance import artifacts
from cbdsl.conformance.artifacts import effects
from cbdsl.diagnostics import CbdslCheckError

EXAMPLES = Path(__file__).parents[1] / "examples"

CASES = [(spec.name, scenario.name) for spec in effects.EFFECT_SPECS
         for scenario in spec.scenarios]


@pytest.mark.parametrize(("spec", "scenario"), CASES, ids=[f"{a}-{b}" for a, b in CASES])
def test_rule_file_leaves_the_artifacts_of_the_keras_class(spec, scenario, tmp_path):
    result = artifacts.check(spec, scenario, folder=tmp_path)
    if result.status == "skipped":
        pytest.skip(result.reason)
    assert result.passed, result.divergence


def test_scenarios_show_what_they_are_about():
    """The artifacts are not empty agreement: each shows the behaviour it is named for."""
    bar = artifacts.check("progbar_logger", "verbose_1").expected["printed"]
    assert "Epoch 3/3" in bar and "val_loss" in bar
    backup = artifacts.check("backup_and_restore", "killed_and_resumed").expected
    assert backup["backup"]["training_metadata.json"] == {"epoch": 2, "batch": 0}
    assert backup["resumed"]["epochs"] == [2, 3, 4] and backup["left"] is None
    logs = artifacts.check("tensorboard", "every_other_batch").expected["logs"]
    steps = [step for step, _ in logs["train"]["summaries"]["epoch_loss"]]
    assert steps == [1]  # epochs 0 and 2 end on odd batch steps (3, 9): not recorded
    assert [s for s, _ in logs["train"]["summaries"]["batch_loss"]] == [2, 4, 6, 8]
    logs = artifacts.check("tensorboard", "custom_summary_eagerly").expected["logs"]
    custom = {run: [s for tag, values in logs[run]["summaries"].items()
                    if tag.endswith("custom_summary") for s, _ in values]
              for run in ("train", "validation")}
    # the model's own summaries at even steps: train batches 2-8, test batches 2 and 4-6
    # (validation's 3 steps, then evaluate's 4)
    assert custom == {"train": [2, 4, 6, 8], "validation": [2, 4, 6]}


def test_the_progress_display_replaces_keras_s_default_bar():
    logger = dropin.ProgbarLogger()
    assert isinstance(logger, keras.callbacks.ProgbarLogger)
    assert type(logger).on_epoch_begin is not keras.callbacks.ProgbarLogger.on_epoch_begin


@pytest.mark.parametrize(("spec", "scenario"), [("swap_ema_weights", "swap_on_epoch"),
                                                ("progbar_logger", "verbose_1")])
def test_rule_files_use_keras_s_classes_even_where_users_patch_keras_callbacks(
        spec, scenario, monkeypatch, tmp_path):
    """Users may put the drop-ins in Keras's namespace (`keras.callbacks.SwapEMAWeights =
    cbdsl.callbacks.SwapEMAWeights`): the effects take Keras's classes (SwapEMAWeights for its
    swaps, ProgbarLogger for `fit` to add no bar of its own) from the modules defining them."""
    owner = artifacts.ARTIFACT_SPECS[spec]
    reference = owner.reference()  # Keras's class, taken before the patch
    rule_file = os.path.join(os.path.dirname(__file__), "..", "rules", f"{spec}.cbd")

    class StandIn(keras.callbacks.Callback):
        def __init__(self, *args, **kwargs):
            raise AssertionError(f"keras.callbacks.{owner.keras_name} was used")

    monkeypatch.setattr(keras.callbacks, owner.keras_name, StandIn)
    result = artifacts.check(spec, scenario, lambda **kw: cbdsl.compile(rule_file, **kw)[0],
                             reference=reference, folder=tmp_path)
    assert result.passed, result.divergence


# ------------------------------------------------------------ BackupAndRestore


def _policy_spec(folder, module: str) -> dict:
    plateau = [f"{module}:ReduceLROnPlateau",
               {"monitor": "loss", "patience": 1, "factor": 0.5, "min_delta": 0.02}]
    return {"factory": "cbdsl.callbacks:BackupAndRestore", "arguments": {},
            "backup_dir": str(folder), "epochs": 9, "policies": [plateau]}


def test_a_killed_fit_resumes_with_the_rules_state_and_the_same_trace(tmp_path):
    """Killed (SIGKILL) as epoch 4 begins and started again: the rules' plateau counters come
    back with the backup, so learning rates and firings match an uninterrupted run's."""
    whole = effects.train(_policy_spec(tmp_path / "whole", "cbdsl.callbacks"), None)["trace"]
    resumed = effects.killed_then_resumed(_policy_spec(tmp_path / "cut", "cbdsl.callbacks"), 4)
    assert [t[0] for t in resumed] == list(range(9))
    assert resumed == whole
    assert any(t[2] for t in whole[4:])  # the policy acts after the kill


def test_keras_s_own_callbacks_start_afresh_after_a_resume(tmp_path):
    """Beside Keras's ReduceLROnPlateau the backup holds the weights and the epoch only: the
    resumed run's learning rates part from the uninterrupted run's."""
    whole = effects.train(_policy_spec(tmp_path / "whole", "keras.callbacks"), None)["trace"]
    resumed = effects.killed_then_resumed(_policy_spec(tmp_path / "cut", "keras.callbacks"), 4)
    assert [t[1] for t in resumed[:4]] == [t[1] for t in whole[:4]]
    assert [t[1] for t in resumed[4:]] != [t[1] for t in whole[4:]]


def _state_file(folder) -> dict:
    with np.load(folder / "cbdsl_state.npz", allow_pickle=False) as stored:
        return json.loads(str(stored["state"]))


def test_backup_holds_each_compiled_callback_s_state_after_its_rules_ran(tmp_path):
    """Listed before the policy, the backup still holds the policy's state of the epoch's
    end, stamped as the metadata is."""
    folder = tmp_path / "backup"
    model = effects._model()
    plateau = dropin.ReduceLROnPlateau(monitor="loss", patience=1, factor=0.5, min_delta=0.02)
    backup = dropin.BackupAndRestore(str(folder), delete_checkpoint=False)
    effects._fit(model, [backup, plateau], epochs=4)
    saved = _state_file(folder)
    metadata = json.loads((folder / "training_metadata.json").read_text())
    assert saved["stamp"] == metadata["cbdsl"] and metadata["epoch"] == 4
    assert saved["callbacks"]["1:ReduceLROnPlateau"]["state"] == plateau.state.to_dict()
    assert saved["learning_rate"] == pytest.approx(float(np.asarray(
        model.optimizer.learning_rate)))


def _failing_policy(fail_at: int):
    return cbdsl.compile(f"on epoch_end when epoch == {fail_at} do fail \"stop here\"")[0]


def test_a_fit_failing_after_the_backup_resumes_as_keras_and_its_rules_start_afresh(tmp_path):
    """A compiled callback after BackupAndRestore fails at epoch 1's end: the weights and
    epoch are backed up as Keras's class backs them up; the rules' state of that moment was
    never written, so a resumed fit says so and starts them afresh."""
    folders = {"keras": tmp_path / "keras", "cbdsl": tmp_path / "cbdsl"}
    for name, factory in (("keras", keras.callbacks.BackupAndRestore),
                          ("cbdsl", dropin.BackupAndRestore)):
        with pytest.raises(RuntimeError, match="stop here"):
            effects._fit(effects._model(), [factory(str(folders[name])), _failing_policy(1)])
    keras_meta = json.loads((folders["keras"] / "training_metadata.json").read_text())
    ours = json.loads((folders["cbdsl"] / "training_metadata.json").read_text())
    assert ours["epoch"] == keras_meta["epoch"] == 2
    assert _state_file(folders["cbdsl"])["stamp"] != ours["cbdsl"]
    # the failed fit's callback left nothing waiting: a later fit writes nothing there
    before = (folders["cbdsl"] / "training_metadata.json").read_bytes()
    effects._fit(effects._model(), [_failing_policy(99)], epochs=1)
    assert (folders["cbdsl"] / "training_metadata.json").read_bytes() == before
    plateau = dropin.ReduceLROnPlateau(monitor="loss", patience=1)
    with pytest.warns(UserWarning, match="is not that of its latest backup"):
        history = effects._fit(effects._model(), [dropin.BackupAndRestore(
            str(folders["cbdsl"])), plateau], epochs=4)
    assert history.epoch == [2, 3]


def test_a_policy_changed_between_kill_and_restart_starts_afresh_with_a_warning(tmp_path):
    folder = tmp_path / "backup"
    first = cbdsl.compile("var n = 0\non epoch_end do set n += 1")[0]
    effects._fit(effects._model(), [dropin.BackupAndRestore(str(folder),
                                                            delete_checkpoint=False), first])
    changed = cbdsl.compile("var n = 0\nvar m = 5\non epoch_end do set n += 1, set m += 1")[0]
    with pytest.warns(UserWarning, match="other rules or arguments"):
        effects._fit(effects._model(), [dropin.BackupAndRestore(str(folder)), changed],
                     epochs=5)
    assert (changed.n, changed.m) == (2, 7)  # epochs 3 and 4 only, from a fresh start
    same = cbdsl.compile("var n = 0\non epoch_end do set n += 1")[0]
    effects._fit(effects._model(), [dropin.BackupAndRestore(str(folder),
                                                            delete_checkpoint=False), same])
    effects._fit(effects._model(), [dropin.BackupAndRestore(str(folder)), same], epochs=5)
    assert same.n == 5  # 3 before the backup, 2 after


def test_state_keeps_its_types_through_a_backup(tmp_path):
    folder = tmp_path / "backup"
    text = ("var seen = {}\non epoch_end do set seen[epoch] = epoch * 2\n"
            "on epoch_end when epoch > 0 do log earlier = seen[epoch - 1]")
    policy = cbdsl.compile(text)[0]
    effects._fit(effects._model(), [dropin.BackupAndRestore(str(folder),
                                                            delete_checkpoint=False), policy])
    resumed = cbdsl.compile(text)[0]
    history = effects._fit(effects._model(), [dropin.BackupAndRestore(str(folder)), resumed],
                           epochs=5)
    assert resumed.seen == {0: 0, 1: 2, 2: 4, 3: 6, 4: 8}
    assert history.history["earlier"] == [4, 6]


def test_a_backup_cleared_after_it_is_stored_in_one_event_is_gone(tmp_path):
    """`backup.store` writes the rules' state once the event's rules have run; a
    `backup.clear` of the same directory later in that event clears that pending write too."""
    folder = tmp_path / "bk"
    (policy,) = cbdsl.compile(f'on epoch_end do backup.store("{folder}", epoch + 1), '
                              f'backup.clear("{folder}")')
    effects._fit(effects._model(), [policy], epochs=2)
    assert not folder.exists()


def test_backup_of_an_unbuilt_model_is_refused_as_keras_refuses(tmp_path):
    model = keras.Sequential([keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    x, y = np.zeros((4, 2), "float32"), np.zeros((4, 1), "float32")
    messages = []
    for factory in (keras.callbacks.BackupAndRestore, dropin.BackupAndRestore):
        with pytest.raises(ValueError) as error:
            model.fit(x, y, verbose=0, callbacks=[factory(str(tmp_path / factory.__module__))])
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "must be built before you call `fit()`" in messages[1]


@pytest.mark.parametrize("backup_dir", ["", None])
def test_an_empty_backup_dir_is_refused_as_keras_refuses(backup_dir):
    with pytest.raises(ValueError, match="Empty `backup_dir` argument passed"):
        keras.callbacks.BackupAndRestore(backup_dir)
    with pytest.raises(ValueError, match="Empty `backup_dir` argument passed"):
        dropin.BackupAndRestore(backup_dir)


def test_a_failed_write_leaves_the_previous_backup_whole(tmp_path, monkeypatch):
    """Each file is written beside its place and moved in: a failure mid-write (here the
    weights) leaves the last complete backup and no partial file."""
    folder = tmp_path / "backup"
    spec = _policy_spec(folder, "cbdsl.callbacks")
    spec.update(epochs=2, arguments={"delete_checkpoint": False})
    effects.train(spec, None)
    before = {name: (folder / name).read_bytes() for name in os.listdir(folder)}

    def broken(self, filepath, overwrite=True, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save_weights", broken)
    spec.update(epochs=3)
    with pytest.raises(OSError, match="disk full"):
        _fit_raising(spec)
    assert {name: (folder / name).read_bytes() for name in os.listdir(folder)} == before


def _fit_raising(spec: dict) -> None:
    model = effects._model()
    callback = dropin.BackupAndRestore(spec["backup_dir"], delete_checkpoint=False)
    effects._fit(model, [callback], epochs=spec["epochs"])


# ---------------------------------------------------------------- SwapEMAWeights


def _predict_each_epoch(swapper) -> tuple[list, list]:
    """Fit with a callback predicting at each epoch's end; the weights before and after."""
    model = effects._model(use_ema=True)
    x, _ = effects._data()
    before, after = [], []

    def predict(epoch, logs=None):
        before.append(effects._weights(model))
        model.predict(x[:4], verbose=0, callbacks=[swapper])
        after.append(effects._weights(model))

    effects._fit(model, [swapper, keras.callbacks.LambdaCallback(on_epoch_end=predict)])
    return before, after


def test_predict_leaves_the_averages_in_the_model_as_keras_does_unless_asked_not_to():
    keras_before, keras_after = _predict_each_epoch(keras.callbacks.SwapEMAWeights())
    assert keras_before != keras_after  # Keras's bug: training goes on from the averages
    ours = _predict_each_epoch(dropin.SwapEMAWeights())
    assert ours == (keras_before, keras_after)
    fixed = cbdsl.callback_class(str(EXAMPLES / "swap_ema_after_predict.cbd"))
    fixed_before, fixed_after = _predict_each_epoch(fixed())
    assert fixed_before == fixed_after
    assert fixed_before[0] == keras_before[0]


# ------------------------------------------------------------------- TensorBoard


def test_tensorboard_writes_nothing_extra_and_reads_back_the_logs(tmp_path):
    model = effects._model()
    log_dir = tmp_path / "logs"
    history = effects._fit(model, [dropin.TensorBoard(log_dir)], epochs=2)
    summaries = effects.read_logs(str(log_dir))
    train, validation = summaries["train"]["summaries"], summaries["validation"]["summaries"]
    assert [v for _, v in train["epoch_loss"]] == pytest.approx(history.history["loss"])
    assert [v for _, v in validation["epoch_loss"]] == pytest.approx(
        history.history["val_loss"])
    assert sorted(train) == ["epoch_learning_rate", "epoch_loss", "epoch_mae", "keras"]


@pytest.mark.parametrize("profile_batch", ["1,2,3", -1, (5, 2), "x", "3"])
def test_a_bad_profile_batch_is_refused(profile_batch):
    with pytest.raises(ValueError) as keras_error:
        keras.callbacks.TensorBoard(profile_batch=profile_batch)
    if profile_batch == "x":  # Keras's int("x") fails first, with Python's own message
        with pytest.raises((ValueError, cbdsl.CbdslError)):
            dropin.TensorBoard(profile_batch=profile_batch)
        return
    with pytest.raises(ValueError) as ours:
        dropin.TensorBoard(profile_batch=profile_batch)
    assert str(ours.value) == str(keras_error.value)


@pytest.mark.parametrize("profile_batch", ["2,4", " 2, 4", (2, 4), 3, 0])
def test_a_profile_batch_keras_takes_is_taken(profile_batch, tmp_path):
    """A range written as a string ("2,4") is read as Keras reads it, with int()."""
    keras.callbacks.TensorBoard(str(tmp_path / "k"), profile_batch=profile_batch)
    callback = dropin.TensorBoard(str(tmp_path / "d"), profile_batch=profile_batch)
    assert callback.profile_batch == profile_batch


def test_effects_are_checked_like_functions():
    with pytest.raises(CbdslCheckError) as error:
        cbdsl.check('on epoch_begin do backup.store("d", 1)\n'
                    'on epoch_end do tensorboard.scalar("d", "t", 1)\n'
                    'on epoch_end do ema.swap(1)\n'
                    'on epoch_end do progress.update(1, colour = 2)\n')
    found = [(d.code, d.message) for d in error.value.diagnostics]
    assert found == [
        ("E205", "'backup.store' is not allowed in epoch_begin"),
        ("E203", "'tensorboard.scalar' needs 'step'"),
        ("E203", "'ema.swap' takes at most 0 positional arguments, 1 given"),
        ("E203", "'progress.update' has no argument 'colour'"),
    ]


def test_a_failed_checkpoint_save_leaves_no_partial_file(tmp_path, monkeypatch):
    """ModelCheckpoint's file is written under a hidden name and moved in once whole: a save
    that fails halfway leaves the previous file as it was, and nothing else."""
    model = effects._model()
    path = tmp_path / "ck" / "best.weights.h5"
    effects._fit(model, [dropin.ModelCheckpoint(str(path), save_weights_only=True)], epochs=1)
    before = path.read_bytes()

    def broken(self, filepath, overwrite=True, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save_weights", broken)
    with pytest.raises(OSError, match="disk full"):
        effects._fit(model, [dropin.ModelCheckpoint(str(path), save_weights_only=True)],
                     epochs=1)
    assert os.listdir(path.parent) == ["best.weights.h5"]
    assert path.read_bytes() == before


def test_checkpoints_and_backups_go_to_remote_storage_as_keras_s_do():
    """`ram://` is TensorFlow's in-memory file system, a stand-in for `gs://` and the like:
    no rename there, so files are written in place through Keras's file utilities."""
    from keras.src.utils import file_utils

    path = "ram://cbdsl-test/ck/m.weights.h5"
    effects._fit(effects._model(), [dropin.ModelCheckpoint(path, save_weights_only=True)],
                 epochs=1)
    assert file_utils.exists(path)
    backup = "ram://cbdsl-test/backup"
    effects._fit(effects._model(), [dropin.BackupAndRestore(backup, delete_checkpoint=False),
                                    dropin.EarlyStopping(monitor="loss")], epochs=2)
    assert sorted(file_utils.listdir(backup)) == [
        "cbdsl_state.npz", "latest.weights.h5", "training_metadata.json"]
    history = effects._fit(effects._model(), [dropin.BackupAndRestore(backup)], epochs=3)
    assert history.epoch == [2] and not file_utils.exists(backup)


def test_len_and_removeprefix_check_their_arguments():
    with pytest.raises(CbdslCheckError, match="'len' needs a list, a table or a string"):
        cbdsl.check("on epoch_end when len(5) > 0 do stop")
    policy = cbdsl.compile("on epoch_end when len(metric(\"loss\")) > 0 do stop")[0]
    with pytest.raises(cbdsl.CbdslRuntimeError, match="len"):
        effects._fit(effects._model(), [policy], epochs=1)
