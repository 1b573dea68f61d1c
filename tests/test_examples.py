"""The Keras documentation's custom callbacks as rule files (examples/), against the originals."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from guide_callbacks import (
    CustomCallback,
    CustomLearningRateScheduler,
    EarlyStoppingAtMinLoss,
    LossAndErrorPrintingCallback,
    batch_print_callback,
    json_logging_callback,
    lr_schedule,
)
from hypothesis import given, settings
from hypothesis import strategies as st

import cbdsl
from cbdsl.conformance import StubModel, drive
from cbdsl.conformance.driver import equal

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str, **params):
    (callback,) = cbdsl.compile(EXAMPLES / f"{name}.cbd", **params)
    return callback


def test_every_example_checks_clean():
    for path in sorted(EXAMPLES.glob("*.cbd")):
        checked = cbdsl.check(path)
        assert not checked.diagnostics, path


@settings(max_examples=300, deadline=None)
@given(losses=st.lists(st.integers(1, 12).map(lambda i: i / 4), min_size=1, max_size=12),
       patience=st.integers(0, 3))
def test_early_stopping_at_min_loss_on_generated_traces(losses, patience):
    trace = [{"logs": {"loss": v}} for v in losses]
    outcomes = [drive(make(patience=patience), trace, model=StubModel(),
                      fit_params={"epochs": len(trace), "steps": 1, "verbose": 0}).to_json()
                for make in (EarlyStoppingAtMinLoss, lambda **p: example(
                    "early_stopping_at_min_loss", **p))]
    guide, rules = outcomes
    assert equal(guide["events"], rules["events"])
    for key in ("weights", "wait", "stopped_epoch"):
        assert equal(guide["final"][key], rules["final"][key]), key


def get_model():
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((784,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.1),
                  loss="mean_squared_error", metrics=["mean_absolute_error"])
    return model


def mnist_like():
    rng = np.random.default_rng(0)
    x = rng.random((320, 784)).astype("float32")
    y = (x[:, :10].sum(axis=1) + rng.normal(size=320)).astype("float32")
    return x, y


def run(callbacks, capsys, *, epochs, evaluate=False, predict=False, **fit):
    model = get_model()
    x, y = mnist_like()
    lrs = []
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: lrs.append(
        float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
    capsys.readouterr()
    model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=[*callbacks, probe],
              **fit)
    if evaluate:
        model.evaluate(x[:128], y[:128], batch_size=64, verbose=0, callbacks=callbacks)
    if predict:
        model.predict(x[:128], batch_size=64, verbose=0, callbacks=callbacks)
    weights = [w.tolist() for w in model.get_weights()]
    return capsys.readouterr().out, lrs, weights


@pytest.mark.fit
def test_guide_early_stopping_and_printing_on_a_real_fit(capsys):
    guide = run([LossAndErrorPrintingCallback(), EarlyStoppingAtMinLoss()], capsys,
                epochs=30, steps_per_epoch=5)
    rules = run([example("loss_and_error_printing"), example("early_stopping_at_min_loss")],
                capsys, epochs=30, steps_per_epoch=5)
    assert rules == guide
    assert "early stopping" in guide[0] and "Up to batch 4" in guide[0]


@pytest.mark.fit
def test_guide_learning_rate_schedule_on_a_real_fit(capsys):
    guide = run([LossAndErrorPrintingCallback(), CustomLearningRateScheduler(lr_schedule)],
                capsys, epochs=14, steps_per_epoch=5)
    rules = run([example("loss_and_error_printing"), example("custom_learning_rate_scheduler")],
                capsys, epochs=14, steps_per_epoch=5)
    assert rules == guide
    assert guide[1][3] == pytest.approx(0.05) and guide[1][12] == pytest.approx(0.001)


@pytest.mark.fit
def test_guide_custom_callback_on_fit_evaluate_and_predict(capsys):
    guide = run([CustomCallback()], capsys, epochs=2, evaluate=True, predict=True)
    rules = run([example("custom_callback")], capsys, epochs=2, evaluate=True, predict=True)
    assert rules == guide
    assert "...Predicting: end of batch 1; got log keys: ['outputs']" in guide[0]


@pytest.mark.fit
def test_json_logging_writes_the_same_lines(tmp_path, capsys):
    run([json_logging_callback(tmp_path / "guide.json")], capsys, epochs=3)
    run([example("json_logging", path=str(tmp_path / "rules.json"))], capsys, epochs=3)
    guide = (tmp_path / "guide.json").read_text()
    assert (tmp_path / "rules.json").read_text() == guide
    assert guide.count("\n") == 3 and guide.startswith('{"epoch": 0, "loss": ')


@pytest.mark.fit
def test_batch_print_prints_each_batch_index(capsys):
    guide = run([batch_print_callback()], capsys, epochs=2)
    rules = run([example("batch_print")], capsys, epochs=2)
    assert rules == guide
    assert guide[0].splitlines()[:3] == ["0", "1", "2"]

