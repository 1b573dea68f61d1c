"""Drop-ins are Keras's classes where code touches them: classes, signatures, subclassing,
attributes side by side with Keras's on a real fit, state writes and resets."""

from __future__ import annotations

import copy
import inspect
import io
from pathlib import Path

import keras
import numpy as np
import pytest
from backend_run import run_on_backend
from stub_model import StubModel

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.diagnostics import CbdslError

NAMES = ["EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN", "LearningRateScheduler",
         "History", "LambdaCallback", "CSVLogger", "ModelCheckpoint", "RemoteMonitor",
         "ProgbarLogger", "SwapEMAWeights", "BackupAndRestore", "TensorBoard"]


def _schedule(epoch, lr):
    return lr * 0.9


def arguments_for(name: str, tmp_path) -> dict:
    return {
        "EarlyStopping": dict(monitor="loss", patience=2, min_delta=0.01,
                              restore_best_weights=True),
        "ReduceLROnPlateau": dict(monitor="loss", patience=1, min_delta=0.5, cooldown=1),
        "LearningRateScheduler": dict(schedule=_schedule),
        "CSVLogger": dict(filename=str(tmp_path / "log.csv")),
        "ModelCheckpoint": dict(filepath=str(tmp_path / "m.weights.h5"), monitor="loss",
                                save_weights_only=True, save_best_only=True),
        "RemoteMonitor": dict(root="http://127.0.0.1:9"),
        "BackupAndRestore": dict(backup_dir=str(tmp_path / "backup")),
        "TensorBoard": dict(log_dir=str(tmp_path / "tb")),
    }.get(name, {})


# Attributes Keras's class stores that the drop-in does not hold alike (yet), with why. The
# tests below fail when one of these starts to agree, or another starts to differ.
KNOWN_AT_CONSTRUCTION: dict[str, set[str]] = {}
KNOWN_AFTER_FIT = KNOWN_AT_CONSTRUCTION


def public(cb) -> dict:
    return {k: v for k, v in vars(cb).items()
            if not k.startswith("_") and k not in ("model", "params")}


def differing(theirs, ours) -> set[str]:
    out = set()
    for name, value in public(theirs).items():
        try:
            mine = getattr(ours, name)
        except AttributeError:
            out.add(name)
            continue
        if isinstance(value, list) and value and hasattr(value[0], "shape"):
            same = len(value) == len(mine) and all(np.array_equal(a, b)
                                                   for a, b in zip(value, mine, strict=True))
        elif isinstance(value, io.IOBase):  # a handle: the same file, open or closed alike
            same = type(mine) is type(value) and (mine.name, mine.closed) == (
                value.name, value.closed)
        elif isinstance(value, keras.utils.Progbar):
            same = type(mine) is type(value) and mine.target == value.target
        else:
            same = value == mine or value is mine
        if not same:
            out.add(name)
    return out


@pytest.mark.parametrize("name", NAMES)
def test_every_drop_in_is_a_subclass_of_keras_s_own_class(name):
    cls = getattr(dropin, name)
    original = getattr(keras.src.callbacks, name)
    assert isinstance(cls, type) and issubclass(cls, original)
    assert issubclass(cls, keras.callbacks.Callback)
    assert cls.__module__ == "cbdsl.callbacks" and cls.__name__ == name
    assert cls.__doc__.startswith(cbdsl.check(dropin.rule_file(
        dropin._catalog()[name])).definitions[name].doc)


@pytest.mark.parametrize("name", NAMES)
def test_constructor_signature_is_keras_s(name):
    ours = inspect.signature(getattr(dropin, name))
    theirs = inspect.signature(getattr(keras.src.callbacks, name))
    assert ours == theirs


def test_a_bad_call_is_python_s_type_error():
    with pytest.raises(TypeError, match="unexpected keyword argument 'patiense'"):
        dropin.EarlyStopping(patiense=3)
    with pytest.raises(TypeError, match="missing a required argument: 'schedule'"):
        dropin.LearningRateScheduler()


@pytest.mark.parametrize("name", NAMES)
def test_constructor_arguments_read_as_keras_stores_them(name, tmp_path):
    args = arguments_for(name, tmp_path)
    theirs = getattr(keras.callbacks, name)(**args)
    ours = getattr(dropin, name)(**args)
    assert differing(theirs, ours) == KNOWN_AT_CONSTRUCTION.get(name, set())
    assert isinstance(ours, getattr(keras.src.callbacks, name))


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    return model


@pytest.mark.fit
@pytest.mark.parametrize("name", ["EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN",
                                  "LearningRateScheduler", "History", "LambdaCallback",
                                  "ModelCheckpoint"])
def test_attributes_agree_with_keras_s_after_every_epoch_of_a_real_fit(name, tmp_path):
    x = np.random.RandomState(0).rand(64, 3).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    seen = {}
    for side, module in (("keras", keras.callbacks), ("cbdsl", dropin)):
        cb = getattr(module, name)(**arguments_for(name, tmp_path))  # one after the other
        snapshots = []
        probe = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs, cb=cb, out=snapshots: out.append(
                {k: copy.copy(getattr(cb, k, "<missing>")) for k in _watched(name)}))
        history = _model().fit(x, y, epochs=5, batch_size=16, verbose=0, callbacks=[cb, probe])
        seen[side] = (cb, snapshots, history.history)
    (theirs, their_steps, their_history), (ours, our_steps, our_history) = \
        seen["keras"], seen["cbdsl"]
    assert our_history == their_history  # the same model, data and seed: the same numbers
    assert our_steps == their_steps
    assert differing(theirs, ours) == KNOWN_AFTER_FIT.get(name, set())


def _watched(name: str) -> list[str]:
    return {"EarlyStopping": ["wait", "best", "stopped_epoch", "best_epoch"],
            "ReduceLROnPlateau": ["wait", "best"],
            "History": ["epoch"],
            "ModelCheckpoint": ["best"]}.get(name, [])


@pytest.mark.parametrize("name,writes,reset", [
    ("EarlyStopping", {"best": 0.1, "wait": 3, "stopped_epoch": 4, "best_epoch": 2},
     ["best", "wait", "stopped_epoch", "best_epoch", "best_weights"]),
    ("ReduceLROnPlateau", {"best": 0.1, "wait": 3, "cooldown_counter": 2},
     ["best", "wait", "cooldown_counter"]),
])
def test_state_writes_take_effect_and_train_begin_resets_as_keras(name, writes, reset):
    theirs = getattr(keras.callbacks, name)(monitor="loss")
    ours = getattr(dropin, name)(monitor="loss")
    for cb in (theirs, ours):
        for key, value in writes.items():
            setattr(cb, key, value)
    assert {k: getattr(ours, k) for k in writes} == writes
    for cb in (theirs, ours):
        cb.set_model(StubModel())
        cb.on_train_begin()
    assert {k: getattr(ours, k) for k in reset} == {k: getattr(theirs, k) for k in reset}


def test_a_written_wait_is_the_wait_the_rules_count_from():
    # patience 3 from a written wait of 2: the next epoch without improvement stops
    cb = dropin.EarlyStopping(monitor="loss", patience=3)
    model = StubModel()
    cb.set_model(model)
    cb.set_params({"epochs": 5, "steps": 1, "verbose": 0})
    cb.on_train_begin()
    cb.on_epoch_end(0, {"loss": 1.0})
    cb.on_epoch_end(1, {"loss": 1.0})
    cb.wait = 2
    cb.on_epoch_end(2, {"loss": 1.0})
    assert model.stop_training and cb.stopped_epoch == 2


@pytest.mark.parametrize("written_at,count", [(1, 3), (3, 0), (4, 2), (2, 5), (6, 1), (7, 1)])
def test_a_written_cooldown_counter_is_the_cooldown_the_rules_hold(written_at, count):
    # a cooldown begun, cut short or lengthened by a write: the same rates and counters as
    # Keras's class on the same logs
    losses = [1.0, 1.0, 1.0, 0.9, 1.0, 1.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0]
    traces = []
    for cls in (keras.callbacks.ReduceLROnPlateau, dropin.ReduceLROnPlateau):
        cb = cls(monitor="loss", patience=1, cooldown=2, factor=0.5)
        model = StubModel(learning_rate=1.0)
        cb.set_model(model)
        cb.set_params({"epochs": len(losses), "steps": 1, "verbose": 0})
        cb.on_train_begin()
        trace = []
        for epoch, loss in enumerate(losses):
            if epoch == written_at:
                cb.cooldown_counter = count
            cb.on_epoch_end(epoch, {"loss": loss})
            trace.append((float(model.optimizer.learning_rate), cb.wait, cb.cooldown_counter))
        traces.append(trace)
    assert traces[1] == traces[0]


@pytest.mark.parametrize("name", ["EarlyStopping", "ReduceLROnPlateau", "ModelCheckpoint"])
def test_monitor_op_once_fixed_stays_for_the_next_fit(name, tmp_path):
    args = {"filepath": str(tmp_path / "m.weights.h5"),
            "save_weights_only": True} if name == "ModelCheckpoint" else {}
    model = _model()
    ops = []
    for cls in (getattr(keras.callbacks, name), getattr(dropin, name)):
        cb = cls(monitor="val_accuracy", mode="max", **args)
        cb.set_model(model)
        cb.set_params({"epochs": 2, "steps": 1, "verbose": 0})
        cb.on_train_begin()
        cb.on_epoch_end(0, {"val_accuracy": 0.5})
        cb.on_train_end()
        cb.on_train_begin()  # the next fit
        ops.append(cb.monitor_op)
    assert ops[0] is ops[1] is keras.ops.greater


def test_lambda_callback_s_functions_are_its_hooks_as_keras_sets_them():
    def hooks(calls):
        return {name: (lambda *a, name=name, **k: calls.append((name, a[:1])))
                for name in ("on_epoch_end", "on_train_begin", "on_test_begin", "on_batch_end")}

    made = []
    for cls in (keras.callbacks.LambdaCallback, dropin.LambdaCallback):
        calls = []
        given = hooks(calls)
        cb = cls(**given)
        made.append((cb, calls))
        assert all(getattr(cb, name) is fn for name, fn in given.items())
        x = np.ones((8, 3), "float32")
        _model().fit(x, x[:, :1], epochs=2, batch_size=4, validation_split=0.5, verbose=0,
                     callbacks=[cb])
    (theirs, their_calls), (ours, our_calls) = made
    assert our_calls == their_calls and ("on_batch_end", (0,)) in our_calls
    assert {k for k in public(theirs) if not hasattr(ours, k)} == set()


def test_a_written_argument_binds_anew():
    cb = dropin.EarlyStopping(monitor="loss", patience=10)
    cb.patience = 1
    model = StubModel()
    cb.set_model(model)
    cb.set_params({"epochs": 5, "steps": 1, "verbose": 0})
    cb.on_train_begin()
    for epoch in range(3):
        cb.on_epoch_end(epoch, {"loss": 1.0})
        if model.stop_training:
            break
    assert cb.patience == 1 and model.stop_training and cb.stopped_epoch == 1


@pytest.mark.fit
def test_subclassing_calls_the_rules_through_super(tmp_path):
    class Stopper(dropin.EarlyStopping):
        def __init__(self):
            super().__init__(monitor="loss", patience=1, min_delta=10.0)
            self.epochs_seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.epochs_seen.append(epoch)
            super().on_epoch_end(epoch, logs)

    cb = Stopper()
    assert isinstance(cb, keras.callbacks.EarlyStopping) and cb.patience == 1
    assert str(inspect.signature(Stopper)) == "()"  # its own constructor's
    x = np.ones((8, 3), "float32")
    _model().fit(x, x[:, :1], epochs=6, verbose=0, callbacks=[cb])
    assert cb.epochs_seen == [0, 1] and cb.stopped_epoch == 1


def test_isinstance_over_a_callback_list_finds_the_drop_in():
    callbacks = [dropin.ReduceLROnPlateau(), dropin.EarlyStopping(), dropin.History()]
    found = [c for c in callbacks if isinstance(c, keras.callbacks.EarlyStopping)]
    assert found == [callbacks[1]]
    # Keras's fit adds no History of its own beside the drop-in one
    from keras.src.callbacks.callback_list import CallbackList

    listed = CallbackList(callbacks, add_history=True, model=_model())
    assert sum(isinstance(c, keras.callbacks.History) for c in listed.callbacks) == 1


def test_unfitted_drop_ins_deep_copy_and_repr(tmp_path):
    cb = dropin.ModelCheckpoint(tmp_path / "m.keras")  # a path-like, as Keras takes it
    twin = copy.deepcopy(cb)
    assert type(twin) is type(cb) and twin.filepath == str(tmp_path / "m.keras")
    twin.best = 3.0
    assert cb.best is None and twin.best == 3.0
    assert repr(cb).startswith("ModelCheckpoint(filepath=")


def test_callback_class_builds_any_library_callback(tmp_path):
    EarlyStopping = cbdsl.callback_class("keras.early_stopping")
    assert inspect.signature(EarlyStopping) == inspect.signature(dropin.EarlyStopping)
    policy = tmp_path / "team.cbd"
    policy.write_text('callback Shrink(patience = 3, factor = 0.5) {\n'
                      '  "Halve the rate on a plateau."\n'
                      '  on epoch_end when loss stalls patience do lr *= factor\n}\n'
                      'callback Other(x = 1) { on epoch_end when loss > x do stop }\n')
    Shrink = cbdsl.callback_class(f"{policy}:Shrink")
    assert str(inspect.signature(Shrink)) == "(patience=3, factor=0.5)"
    assert Shrink.__doc__.startswith("Halve the rate on a plateau.")
    cb = Shrink(patience=1)
    model = StubModel(learning_rate=0.1)
    cb.set_model(model)
    cb.set_params({"epochs": 3, "steps": 1, "verbose": 0})
    cb.on_train_begin()
    for epoch in range(2):
        cb.on_epoch_end(epoch, {"loss": 1.0})
    assert model.optimizer.learning_rate == pytest.approx(0.05) and cb.wait == 0
    with pytest.raises(CbdslError, match="more than one callback"):
        cbdsl.callback_class(policy)
    with pytest.raises(CbdslError, match="no callback named 'Nope'"):
        cbdsl.callback_class(f"{policy}:Nope")
    with pytest.raises(CbdslError, match="no rule library named 'nolib'"):
        cbdsl.callback_class("nolib.rule")


@pytest.mark.fit
def test_a_codebase_switched_wholesale_trains_with_every_drop_in(tmp_path, monkeypatch):
    # `keras.callbacks.X = cbdsl.callbacks.X` for every name at once: nothing of cbdsl builds
    # itself through the patched namespace, and one real fit runs them all together
    for name in NAMES:
        monkeypatch.setattr(keras.callbacks, name, getattr(dropin, name))
    x = np.random.RandomState(0).rand(32, 3).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, use_ema=True), loss="mse")
    args = {name: arguments_for(name, tmp_path) for name in NAMES}
    args["RemoteMonitor"] = dict(root="http://127.0.0.1:9")  # nothing listens: warns, goes on
    callbacks = [getattr(keras.callbacks, name)(**args[name]) for name in NAMES]
    assert all(type(cb).__module__ == "cbdsl.callbacks" for cb in callbacks)
    with pytest.warns(UserWarning):
        history = model.fit(x, y, validation_split=0.25, epochs=3, batch_size=8, verbose=0,
                            callbacks=callbacks)
    assert isinstance(history, dropin.History) and len(history.history["loss"]) >= 1
    assert (tmp_path / "log.csv").exists() and (tmp_path / "m.weights.h5").exists()
    assert any((tmp_path / "tb").rglob("events.out.tfevents.*"))


WORKER = Path(__file__).with_name("dropin_attributes_worker.py")


@pytest.mark.fit
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_attributes_agree_with_keras_s_on_the_other_backends(backend):
    # this file's process runs one backend; every class again on each other one
    result = run_on_backend([str(WORKER)], backend, timeout=600, cwd=WORKER.parent)
    for name, found in result["differing"].items():
        assert set(found["construct"]) == KNOWN_AT_CONSTRUCTION.get(name, set()), name
        assert set(found["fit"]) == KNOWN_AFTER_FIT.get(name, set()), name
