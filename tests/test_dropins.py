"""`cbdsl.callbacks` matches `keras.callbacks`: names, signatures, rule-file parameters."""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys

import keras
import pytest

import cbdsl
from cbdsl import callbacks as dropin

KERAS_NAMES = ["EarlyStopping", "ReduceLROnPlateau", "TerminateOnNaN", "LearningRateScheduler",
               "History", "LambdaCallback", "CSVLogger", "ModelCheckpoint", "RemoteMonitor",
               "ProgbarLogger", "SwapEMAWeights", "BackupAndRestore", "TensorBoard"]
RULE_FILES = {"EarlyStopping": "early_stopping", "ReduceLROnPlateau": "reduce_lr_on_plateau",
              "TerminateOnNaN": "terminate_on_nan",
              "LearningRateScheduler": "learning_rate_scheduler", "History": "history",
              "LambdaCallback": "lambda_callback", "BaseLogger": "base_logger",
              "CSVLogger": "csv_logger", "ModelCheckpoint": "model_checkpoint",
              "RemoteMonitor": "remote_monitor", "ProgbarLogger": "progbar_logger",
              "SwapEMAWeights": "swap_ema_weights", "BackupAndRestore": "backup_and_restore",
              "TensorBoard": "tensorboard"}


def reference(name: str):
    if name == "BaseLogger":
        if importlib.util.find_spec("tf_keras") is None:
            pytest.skip("Keras 2's BaseLogger lives in tf_keras (pip install 'cbdsl[test]')")
        import tf_keras

        return tf_keras.callbacks.BaseLogger
    return getattr(keras.callbacks, name)


def arguments(fn) -> list[tuple[str, object]]:
    return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()
            if p.kind is not p.VAR_KEYWORD]


@pytest.mark.parametrize("name", [*KERAS_NAMES, "BaseLogger"])
def test_dropin_has_the_keras_signature(name):
    expected = arguments(reference(name).__init__)[1:]
    assert arguments(getattr(dropin, name)) == expected


@pytest.mark.parametrize("name", [*KERAS_NAMES, "BaseLogger"])
def test_rule_file_parameters_are_the_keras_arguments(name):
    checked = cbdsl.check(dropin.rule_file(RULE_FILES[name]))
    (definition,) = [d for d in checked.definitions.values() if d.node is not None]
    keras_args = dict(arguments(reference(name).__init__)[1:])
    declared = list(definition.params)
    if any(info.type == "keywords" for info in definition.params.values()):
        # Keras's `**kwargs`: a `keywords` parameter, and those given through it after it
        rest = next(k for k, info in definition.params.items() if info.type == "keywords")
        declared = declared[:declared.index(rest)]
    assert declared == list(keras_args)
    for arg, default in keras_args.items():
        if default is inspect.Parameter.empty:
            continue
        ours = definition.params[arg].default
        assert ours == default or (default is None and ours in (None, {})), arg


def test_dropins_return_compiled_keras_callbacks_with_inspection_attributes():
    es = dropin.EarlyStopping(patience=3)
    assert isinstance(es, keras.callbacks.Callback)
    assert (es.wait, es.best, es.stopped_epoch, es.best_epoch) == (0, None, 0, 0)
    assert dropin.ReduceLROnPlateau().wait == 0
    hist = dropin.History()
    assert hist.history == {} and hist.epoch == []


def test_factor_of_one_or_more_is_refused_as_in_keras():
    with pytest.raises(ValueError) as ours:
        dropin.ReduceLROnPlateau(factor=1.0)
    with pytest.raises(ValueError) as theirs:
        keras.callbacks.ReduceLROnPlateau(factor=1.0)
    assert str(ours.value) == str(theirs.value)


def test_lambda_callback_keeps_other_keyword_arguments_as_attributes():
    cb = dropin.LambdaCallback(on_test_end=lambda logs: None, tag="x")
    assert cb.tag == "x" and not getattr(cb.on_test_end, "_is_default", False)
    # no batch hook unless given: Keras's async dispatch reads the instance's hooks
    assert getattr(cb.on_train_batch_end, "_is_default", False)
    assert getattr(cb.on_test_batch_end, "_is_default", False)


@pytest.mark.fit
def test_fit_returns_the_compiled_history():
    import numpy as np

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    history = dropin.History()
    x = np.ones((8, 2), "float32")
    returned = model.fit(x, x[:, :1], epochs=2, verbose=0, callbacks=[history])
    assert returned is history and model.history is history
    assert history.epoch == [0, 1] and len(history.history["loss"]) == 2


def test_callbacks_is_an_attribute_of_cbdsl_loaded_on_first_access():
    """`import cbdsl` then `cbdsl.callbacks.EarlyStopping` works, and `import cbdsl` alone
    still does not import Keras (a fresh interpreter, as a user's script starts)."""
    script = (
        "import sys\n"
        "import cbdsl\n"
        "assert 'keras' not in sys.modules, 'import cbdsl imported keras'\n"
        "assert 'cbdsl.callbacks' not in sys.modules, 'import cbdsl imported the drop-ins'\n"
        "assert 'callbacks' in dir(cbdsl)\n"
        "early = cbdsl.callbacks.EarlyStopping\n"
        "assert cbdsl.callbacks is sys.modules['cbdsl.callbacks']\n"
        "assert early is cbdsl.callbacks.EarlyStopping and callable(early)\n"
        "try:\n"
        "    cbdsl.no_such_name\n"
        "except AttributeError as error:\n"
        "    assert \"has no attribute 'no_such_name'\" in str(error), error\n"
        "else:\n"
        "    raise AssertionError('cbdsl.no_such_name did not raise')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
