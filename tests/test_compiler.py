"""Compiled callbacks: hooks, state, ordering, filters, actions, against Keras on traces."""

from __future__ import annotations

import json
import math
import os
import warnings

import keras
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stub_model import StubModel, drive

import cbdsl
from cbdsl.diagnostics import (
    CbdslCheckError,
    CbdslCompileError,
    LearningRateNotSettableError,
    MetricDirectionError,
)

MISSION = "on epoch_end when val_loss stalls 5 do lr *= 0.2"


def trace_of(values, key="val_loss"):
    return [{"loss": 1.0, key: v} for v in values]


def hooks(cb):
    return sorted(k for k in type(cb).__dict__ if k.startswith("on_"))


# ------------------------------------------------------------------ hooks


def test_epoch_only_policy_overrides_no_batch_hook():
    (cb,) = cbdsl.compile(MISSION)
    assert isinstance(cb, keras.callbacks.Callback)
    assert hooks(cb) == ["on_epoch_end", "on_train_begin"]
    # Keras's async batch dispatch looks at exactly these defaults
    for name in ("on_batch_end", "on_train_batch_end", "on_test_batch_end",
                 "on_predict_batch_end", "on_train_batch_begin"):
        assert getattr(getattr(cb, name), "_is_default", False), name


def test_batch_rule_adds_only_its_hooks():
    (cb,) = cbdsl.compile("on train_batch_end when loss is not finite do stop")
    assert hooks(cb) == ["on_epoch_begin", "on_train_batch_end", "on_train_begin"]
    assert getattr(cb.on_test_batch_end, "_is_default", False)


def test_async_dispatch_stays_on_for_epoch_policy():
    from keras.src.callbacks.callback_list import CallbackList

    epoch_only = CallbackList(cbdsl.compile(MISSION))
    batchy = CallbackList(cbdsl.compile("on batch_end when loss is nan do stop"))
    if keras.backend.backend() in ("jax", "torch"):
        assert epoch_only._async_train is True
    assert batchy._async_train is False


# ---------------------------------------------------- the mission sentence


def test_mission_sentence_matches_reduce_lr_on_plateau_on_a_trace():
    values = [1.0, 0.9, 0.95, 0.93, 0.92, 0.91, 0.905, 0.95, 0.89, 0.9, 0.9, 0.9, 0.9, 0.9,
              0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.88]
    ours = drive(cbdsl.compile(MISSION), StubModel(), trace_of(values))
    theirs = drive([keras.callbacks.ReduceLROnPlateau(factor=0.2, patience=5, min_delta=0)],
                   StubModel(), trace_of(values))
    assert ours == theirs
    assert ours[0][-1] < 0.1  # it did reduce


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.sampled_from([1.0, 0.9, 0.8, 0.8 + 1e-9, 0.5, math.nan, math.inf]) |
                       st.floats(0, 2, allow_nan=False, width=32), min_size=1, max_size=30),
       patience=st.integers(0, 4))
def test_stalls_equals_reduce_lr_on_plateau_on_generated_traces(values, patience):
    text = f"on epoch_end when val_loss stalls {patience} do lr *= 0.5"
    ours = drive(cbdsl.compile(text), StubModel(), trace_of(values))
    theirs = drive([keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=patience,
                                                       min_delta=0)],
                   StubModel(), trace_of(values))
    assert ours == theirs


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.sampled_from([1.0, 0.9, 0.8, 0.8 + 1e-9, 0.5, math.nan]) |
                       st.floats(0, 2, allow_nan=False, width=32), min_size=1, max_size=30),
       patience=st.integers(0, 4), min_delta=st.sampled_from([0, 0.1, 1e-3]))
def test_stalls_and_stop_equals_early_stopping_on_generated_traces(values, patience, min_delta):
    text = (f"on epoch_end when val_loss stalls {patience} with min_delta = {min_delta} "
            "and epoch > 0 do stop")
    ours = drive(cbdsl.compile(text), StubModel(), trace_of(values))
    keras_es = keras.callbacks.EarlyStopping(patience=patience, min_delta=min_delta)
    theirs = drive([keras_es], StubModel(), trace_of(values))
    assert ours == theirs


def test_cooldown_holds_the_stall_counter():
    # `cooldown 1` = one quiet check = Keras's cooldown=2
    values = [1.0] * 12
    ours = drive(cbdsl.compile(
        "on epoch_end when val_loss stalls 1 do lr *= 0.5, cooldown 1"), StubModel(),
        trace_of(values))
    theirs = drive([keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=1, cooldown=2)],
                   StubModel(), trace_of(values))
    assert ours == theirs


# ------------------------------------------------------------------ state


def test_state_is_one_serializable_object_read_as_attributes():
    (cb,) = cbdsl.compile("var fired = 0\n"
                          "on epoch_end when val_loss stalls 2 as plateau do set fired += 1")
    drive([cb], StubModel(), trace_of([1.0, 0.5, 0.6, 0.7, 0.8]))
    # 0.6, 0.7 stall (fires, counter restarts), 0.8 stalls once more
    assert cb.wait == 1 and cb.best == 0.5 and cb.best_epoch == 1
    assert cb.plateau.best == 0.5
    assert cb.fired == 1
    data = json.loads(json.dumps(cb.state.to_dict()))
    (other,) = cbdsl.compile("var fired = 0\n"
                             "on epoch_end when val_loss stalls 2 as plateau do set fired += 1")
    other.state.load_dict(data)
    assert other.state.to_dict() == cb.state.to_dict()


def test_state_resets_at_train_begin():
    (cb,) = cbdsl.compile("on epoch_end when val_loss stalls 1 and epoch > 0 do stop")
    model = StubModel()
    drive([cb], model, trace_of([1.0, 2.0, 3.0]))
    assert cb.stopped_epoch == 1
    model.stop_training = False
    drive([cb], model, trace_of([1.0, 0.5]))
    assert cb.stopped_epoch == 0 and cb.best == 0.5


# ------------------------------------------------------------------ order


def test_rules_run_by_priority_then_file_order(capsys):
    text = """
    a: on epoch_end do print "a"
    b: on epoch_end priority 5 do print "b"
    c: on epoch_end do print "c"
    d: on epoch_end priority -1 do print "d"
    """
    (cb,) = cbdsl.compile(text)
    drive([cb], StubModel(), trace_of([1.0]))
    assert capsys.readouterr().out.split() == ["b", "a", "c", "d"]


def test_same_target_same_priority_is_an_error_but_priorities_order_it():
    bad = "on epoch_end when epoch < 5 do lr = 0.1\non epoch_end when epoch >= 5 do lr = 0.01"
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.compile(bad)
    assert exc.value.code == "E207"
    good = bad.replace("on epoch_end when epoch >= 5", "on epoch_end priority 1 when epoch >= 5")
    lrs, _ = drive(cbdsl.compile(good), StubModel(), trace_of([1.0] * 8))
    assert lrs == [0.1] * 5 + [0.01] * 3


# ---------------------------------------------------------------- filters


@pytest.mark.parametrize(("clause", "epochs"), [
    ("every 3", [2, 5, 8]),
    ("every 3 epochs", [2, 5, 8]),
    ("after 7", [7, 8, 9]),
    ("from epoch 8", [8, 9]),
    ("before epoch 2", [0, 1]),
    ("once at epoch 4", [4]),
    ("every 2 after 3 before epoch 8", [3, 5, 7]),
])
def test_filters_fire_at_the_documented_epochs(clause, epochs):
    (cb,) = cbdsl.compile(f"on epoch_end {clause} do log marked = 1")
    drive([cb], StubModel(), trace_of([1.0] * 10))
    assert [f.epoch for f in cb.timeline] == epochs


def test_step_filters_count_batches_across_epochs():
    (cb,) = cbdsl.compile("on train_batch_end every 3 steps do log k = step")
    model = StubModel()
    cb.set_model(model)
    cb.on_train_begin({})
    seen = []
    for epoch in range(2):
        cb.on_epoch_begin(epoch, {})
        for batch in range(4):
            logs = {"loss": 1.0}
            cb.on_train_batch_end(batch, logs)
            if "k" in logs:
                seen.append((epoch, batch, logs["k"]))
    # steps 3 and 6 (1-based), as ModelCheckpoint counts save_freq across epochs
    assert seen == [(0, 2, 2), (1, 1, 5)]


# ---------------------------------------------------------------- actions


def test_log_writes_into_the_logs_dict_and_print_uses_one_based_epochs(capsys):
    (cb,) = cbdsl.compile(
        'on epoch_end do log double = val_loss * 2, print "epoch {epoch}: {val_loss:.2f}"')
    model = StubModel()
    cb.set_model(model)
    cb.on_train_begin({})
    logs = {"val_loss": 0.25}
    cb.on_epoch_end(0, logs)
    assert logs["double"] == 0.5
    assert capsys.readouterr().out == "epoch 1: 0.25\n"


def test_restore_best_weights_restores_the_best_epoch():
    (cb,) = cbdsl.compile("on epoch_end when val_loss stalls 2 and epoch > 0 "
                          "do stop, restore best weights")
    model = StubModel()
    _, stopped = drive([cb], model, trace_of([1.0, 0.3, 0.5, 0.6, 0.7]))
    assert stopped == 3 and model.weights_version == 1


def test_save_model_writes_a_templated_path(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    template = str(tmp_path / "ckpt" / "e{epoch:02d}-{val_loss:.1f}.weights.h5")
    (cb,) = cbdsl.compile(f'on epoch_end every 2 do save weights "{template}"')
    drive([cb], model, trace_of([0.5, 0.4, 0.3, 0.2]))
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["e02-0.4.weights.h5", "e04-0.2.weights.h5"]


def test_a_template_field_naming_a_missing_metric_skips_the_rule_with_a_warning(capsys):
    (cb,) = cbdsl.compile('on epoch_end do print "{val_acc}"')
    cb.set_model(StubModel())
    cb.on_train_begin({})
    with pytest.warns(UserWarning, match="metric `val_acc` which is not available. "
                                         "Available metrics are: val_loss"):
        cb.on_epoch_end(0, {"val_loss": 1.0})
    assert capsys.readouterr().out == ""


def test_missing_metric_warns_with_available_metrics_and_skips_the_rule():
    (cb,) = cbdsl.compile("on epoch_end when val_acc stalls 1 with mode = max do stop")
    model = StubModel()
    with pytest.warns(UserWarning, match=r"`val_acc` which is not available. "
                                          r"Available metrics are: loss,val_loss"):
        drive([cb], model, trace_of([1.0, 2.0, 3.0]))
    assert not model.stop_training and cb.timeline == []


def test_mode_auto_on_an_unknown_metric_raises_like_keras():
    (cb,) = cbdsl.compile("on epoch_end when foo stalls 1 do stop")
    with pytest.raises(MetricDirectionError) as exc:
        drive([cb], StubModel(), [{"foo": 1.0}])
    assert isinstance(exc.value, ValueError)
    # a rule file has no `mode='max'` to pass: the error says what to write instead
    assert str(exc.value) == (
        "Policy callback received monitor=foo, but Keras isn't able to automatically determine "
        "whether that metric should be maximized or minimized. Write `with mode = \"max\"` "
        "after `stalls` or `improves` in the rule in order to monitor based on the highest "
        "metric value, or `with mode = \"min\"` in order to use the lowest value.")
    with pytest.raises(ValueError, match="isn't able to automatically determine"):
        drive([keras.callbacks.EarlyStopping(monitor="foo")], StubModel(), [{"foo": 1.0}])
    # a callback with a `mode` parameter words it as Keras does
    (cb,) = cbdsl.compile('callback C(monitor = "foo", mode = "auto") {\n'
                          "  on epoch_end when metric(monitor) stalls 1 with mode = mode do stop\n"
                          "}\nuse C()")
    with pytest.raises(MetricDirectionError, match=r"Pass `mode='max'` in order to monitor"):
        drive([cb], StubModel(), [{"foo": 1.0}])


def test_schedule_backed_optimizer_gives_a_type_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    (cb,) = cbdsl.compile("on epoch_end do lr *= 0.5")
    with pytest.raises(LearningRateNotSettableError) as exc:
        drive([cb], model, trace_of([1.0]))
    assert isinstance(exc.value, TypeError) and exc.value.code == "E401"


def test_set_variables_and_conditions_on_them():
    text = """
    var streak = 0
    on epoch_end when val_loss > 0.5 do set streak += 1
    on epoch_end priority -1 when streak >= 2 do stop
    """
    _, stopped = drive(cbdsl.compile(text), StubModel(), trace_of([0.6, 0.4, 0.7, 0.3]))
    assert stopped == 2


def test_functions_tables_and_conditional_expressions():
    text = """
    on epoch_begin do lr = lookup({1: 0.05, 3: 0.01}, epoch, lr)
    on epoch_end do log sched = piecewise({0: 1, 2: 2}, epoch),
                    log c = max(0.1, min(epoch, 2)) if epoch > 0 else -1
    """
    (cb,) = cbdsl.compile(text)
    model = StubModel(0.1)
    cb.set_model(model)
    cb.on_train_begin({})
    out = []
    for epoch in range(4):
        cb.on_epoch_begin(epoch, {})
        logs = {}
        cb.on_epoch_end(epoch, logs)
        out.append((model.optimizer.learning_rate, logs["sched"], logs["c"]))
    assert out == [(0.1, 1, -1), (0.05, 1, 1), (0.05, 2, 2), (0.01, 2, 2)]


# --------------------------------------------------------------- params


def test_compile_params_override_file_params():
    text = "param patience = 5\non epoch_end when val_loss stalls patience do lr *= 0.5"
    lrs, _ = drive(cbdsl.compile(text, patience=1), StubModel(), trace_of([1.0, 2.0]))
    assert lrs == [0.1, 0.05]
    with pytest.raises(CbdslCompileError) as exc:
        cbdsl.compile(text, patiense=1)
    assert exc.value.code == "E301" and "did you mean 'patience'?" in str(exc.value)
    with pytest.raises(CbdslCompileError, match="takes int, got str"):
        cbdsl.compile(text, patience="3")


def test_callback_definitions_are_used_with_arguments():
    text = """
    callback shrink(factor = 0.5, patience = 2) {
        "Shrink the learning rate on a plateau."
        on epoch_end when val_loss stalls patience do lr *= factor
    }
    use shrink(factor = 0.1, patience = 1)
    """
    (cb,) = cbdsl.compile(text)
    assert type(cb).__name__ == "Shrink" and cb.arguments == {"factor": 0.1, "patience": 1}
    lrs, _ = drive([cb], StubModel(), trace_of([1.0, 2.0]))
    assert lrs[-1] == pytest.approx(0.01)


def test_python_hooks_run_only_when_the_caller_passes_them():
    text = """
    callback hooks(on_epoch: python) {
        on epoch_end do call on_epoch(epoch, logs)
    }
    """
    (silent,) = cbdsl.compile(text)
    assert hooks(silent) == ["on_train_begin"]  # no hook passed: no epoch hook either
    seen = []
    (cb,) = cbdsl.compile(text, on_epoch=lambda epoch, logs: seen.append((epoch, dict(logs))))
    drive([cb], StubModel(), trace_of([0.5]))
    assert seen == [(0, {"loss": 1.0, "val_loss": 0.5})]
    with pytest.raises(CbdslCompileError) as exc:
        cbdsl.compile("param x = 1\non epoch_end when x > 0 do stop", x=print)
    assert exc.value.code == "E216"


HOOKED = """
callback notify(on_epoch: python = none, every_n = 1) {
    on epoch_end when (epoch + 1) % every_n == 0 do call on_epoch(epoch)
}
"""


def test_a_python_hook_reaches_a_used_callback_from_compile():
    seen = []
    (cb,) = cbdsl.compile(HOOKED + "use notify()", on_epoch=seen.append)
    drive([cb], StubModel(), trace_of([0.5, 0.4]))
    assert seen == [0, 1]
    # the file's own parameters are still its own, and the use's arguments stay its own
    callbacks = cbdsl.compile("param n = 2\n" + HOOKED + "use notify(every_n = n)",
                              on_epoch=seen.append, n=1)
    assert [c.arguments for c in callbacks] == [{"on_epoch": seen.append, "every_n": 1}]
    (unhooked,) = cbdsl.compile(HOOKED + "use notify()")
    assert hooks(unhooked) == ["on_train_begin"]  # no hook passed: the rule is dropped


def test_a_file_level_python_param_is_passed_on_with_use():
    text = ("param on_epoch: python = none\n" + HOOKED
            + "use notify(on_epoch = on_epoch)\nuse notify(every_n = 2)\n"
            "on epoch_end do call on_epoch(epoch + 100)")
    seen = []
    own, passed_on, unset = cbdsl.compile(text, on_epoch=seen.append)
    drive([own, passed_on, unset], StubModel(), trace_of([0.5, 0.4]))
    assert seen == [100, 0, 101, 1]  # in list order per epoch; the third use has no hook
    assert unset.arguments["on_epoch"] is None


def test_a_hook_several_used_callbacks_could_take_is_an_error():
    with pytest.raises(CbdslCompileError) as exc:
        cbdsl.compile(HOOKED + "use notify()\nuse notify(every_n = 2)", on_epoch=print)
    assert exc.value.code == "E301"
    assert ("'on_epoch' is a Python hook of several used callbacks (notify at line 5, notify "
            "at line 6)") in str(exc.value)
    assert "param on_epoch: python = none" in str(exc.value)
    with pytest.raises(CbdslCompileError, match="policy has no parameter 'on_epok'"):
        cbdsl.compile(HOOKED + "use notify()", on_epok=print)
    with pytest.raises(CbdslCompileError) as exc:  # a hook is not a value of another type
        cbdsl.compile("param on_epoch: python = none\non epoch_end do call on_epoch(1)",
                      on_epoch=3)
    assert exc.value.code == "E301"


def test_load_reads_a_policy_file(tmp_path):
    path = tmp_path / "policy.cbd"
    path.write_text(MISSION + "\n")
    (cb,) = cbdsl.load(path)
    (same,) = cbdsl.load(str(path))
    assert type(cb).__name__ == "Policy" and hooks(cb) == hooks(same)


def test_rule_text_is_never_evaluated_as_python(capsys):
    # a template cannot reach attributes, and a string is only ever a string
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.compile('on epoch_end do print "{lr.__class__}"')
    assert exc.value.code == "E215"
    (cb,) = cbdsl.compile('on epoch_end do print "__import__(\'os\').system(\'echo hi\')"')
    with warnings.catch_warnings():
        drive([cb], StubModel(), trace_of([1.0]))
    assert capsys.readouterr().out == "__import__('os').system('echo hi')\n"


# -------------------------------------------------- the functions table, run

@pytest.mark.parametrize("source,lrs", [
    ("on epoch_end do lr = max(lr)", [0.1, 0.1]),  # one argument: itself, not iterated
    ("on epoch_end do lr = min(lr, 0.05)", [0.05, 0.05]),
    ("on epoch_end do lr = round(lr * 1000, 1.0) / 1000", [0.1, 0.1]),  # an integral float
])
def test_functions_run_with_the_arities_the_table_allows(source, lrs):
    callbacks = cbdsl.compile(source)
    got, _ = drive(callbacks, StubModel(), trace_of([1.0, 0.9]))
    assert got == pytest.approx(lrs)


def test_round_to_a_fractional_number_of_digits_is_a_positioned_error():
    (cb,) = cbdsl.compile("on epoch_end do lr = round(lr, 1.5)")
    with pytest.raises(cbdsl.CbdslRuntimeError, match=r"round.*must be an integer"):
        drive([cb], StubModel(), trace_of([1.0]))
