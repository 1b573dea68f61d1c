"""The constructs the built-in rule files need: loops, tables, require, fail, record, schedules."""

from __future__ import annotations

import warnings

import keras
import pytest
from stub_model import StubModel

import cbdsl
from cbdsl.diagnostics import (
    CbdslCheckError,
    CbdslCompileError,
    CbdslSyntaxError,
    RequirementError,
    RuleFailure,
)


def run_epochs(cb, logs_per_epoch, model=None):
    model = model or StubModel()
    cb.set_model(model)
    cb.set_params({"epochs": len(logs_per_epoch), "steps": 1, "verbose": 0,
                   "metrics": ["loss", "acc"]})
    cb.on_train_begin({})
    out = []
    for epoch, logs in enumerate(logs_per_epoch):
        cb.on_epoch_begin(epoch, {})
        logs = dict(logs)
        cb.on_epoch_end(epoch, logs)
        out.append(logs)
    cb.on_train_end({})
    return out


# ------------------------------------------------------------------ for loops


def test_for_goes_through_a_table_with_keys_and_values():
    (cb,) = cbdsl.compile("""
        var total = 0
        on epoch_end do for name, value in logs when name != "skip" do (set total += value),
                        log total = total
    """)
    (logs,) = run_epochs(cb, [{"a": 1.5, "b": 2.0, "skip": 100.0}])
    assert logs["total"] == 3.5


def test_for_writes_computed_log_keys_and_table_entries():
    (cb,) = cbdsl.compile("""
        var doubled = {}
        on epoch_end do for name in metrics do (set doubled[name] = logs[name] * 2),
                        for name, value in doubled do (log [name + "_x2"] = value)
    """)
    (logs,) = run_epochs(cb, [{"loss": 0.25, "acc": 0.5}])
    assert logs == {"loss": 0.25, "acc": 0.5, "loss_x2": 0.5, "acc_x2": 1.0}
    assert cb.doubled == {"loss": 0.5, "acc": 1.0}


def test_in_and_not_in_test_table_keys():
    (cb,) = cbdsl.compile("""
        callback c(watch = {"loss": true}) {
          on epoch_end when "loss" in watch and "acc" not in watch do log hit = 1
        }
    """)
    (logs,) = run_epochs(cb, [{"loss": 1.0}])
    assert logs["hit"] == 1


def test_index_of_a_missing_key_is_a_clear_runtime_error():
    (cb,) = cbdsl.compile("on epoch_end do log x = logs[\"nope\"]")
    with pytest.raises(cbdsl.CbdslRuntimeError, match="no entry 'nope'"):
        run_epochs(cb, [{"loss": 1.0}])


def test_loop_names_are_scoped_to_the_loop():
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check("""
            callback c(k = 1) {
              on epoch_end do for k in logs do (log y = 1)
            }
        """)
    assert exc.value.code == "E209"
    # outside the loop, the loop's name is a metric again (and W201-free: it is read nowhere)
    (cb,) = cbdsl.compile("on epoch_end do for key in logs do (log seen = 1), log done = 2")
    (logs,) = run_epochs(cb, [{"loss": 1.0}])
    assert logs["done"] == 2


def test_table_comparisons_and_for_over_a_number_are_refused():
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check("on epoch_end do for k in 3 do (log y = 1)")
    assert "'for' needs a table or a list" in str(exc.value)
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check("var t = 1\non epoch_end do set t[\"a\"] = 1")
    assert "'t' is not a table" in str(exc.value)


# ----------------------------------------------------------- require / fail


def test_require_refuses_arguments_with_a_value_error():
    source = """
        callback c(factor = 0.1) {
          require factor < 1.0 else "c does not support factor >= 1.0. Received factor={factor}"
          on epoch_end do lr *= factor
        }
    """
    assert cbdsl.compile(source, factor=0.5)
    with pytest.raises(ValueError, match=r"^c does not support factor >= 1.0. Received "
                                         r"factor=1.5$") as exc:
        cbdsl.compile(source, factor=1.5)
    assert isinstance(exc.value, RequirementError) and exc.value.code == "E302"


def test_require_reads_only_parameters():
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check('callback c(x = 1) {\n  require val_loss < x else "no"\n'
                    '  on epoch_end do stop\n}')
    assert exc.value.code == "E219"
    assert "a requirement reads only parameters, not 'val_loss'" in str(exc.value)


def test_fail_raises_a_runtime_error_with_the_rendered_message():
    (cb,) = cbdsl.compile('on epoch_end when loss > 1 do fail "loss {loss} at epoch {epoch}"')
    with pytest.raises(RuntimeError, match=r"^loss 2\.0 at epoch 2$") as exc:
        run_epochs(cb, [{"loss": 0.5}, {"loss": 2.0}])
    assert isinstance(exc.value, RuleFailure)


# ------------------------------------------------------------- metric_missing


def test_metric_missing_replaces_the_default_warning():
    (cb,) = cbdsl.compile("""
        on epoch_end when val_loss stalls 2 do stop
        on metric_missing do warn "no {missing}; have {available}"
    """)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_epochs(cb, [{"loss": 1.0, "acc": 0.5}])
    assert [str(w.message) for w in caught] == ["no val_loss; have loss,acc"]


def test_an_action_reading_a_missing_metric_skips_the_whole_rule_with_the_warning(capsys):
    (cb,) = cbdsl.compile('on epoch_end do lr *= 0.5, print "val_loss {val_loss:.2f}", '
                          'log halved = lr / 2')
    model = StubModel(0.1)
    with pytest.warns(UserWarning, match="metric `val_loss` which is not available. "
                                         "Available metrics are: loss"):
        logs = run_epochs(cb, [{"loss": 1.0}], model=model)
    # nothing of the rule ran: not the learning rate change before the print, nor the log
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)
    assert "halved" not in logs[0] and capsys.readouterr().out == ""
    logs = run_epochs(cb, [{"loss": 1.0, "val_loss": 0.5}], model=model)
    assert capsys.readouterr().out == "val_loss 0.50\n"


def test_a_missing_metric_in_an_action_goes_to_metric_missing_rules():
    (cb,) = cbdsl.compile("""callback c(path = "x") {
        on epoch_end do append json({"loss": loss}) to path
        on metric_missing do log skipped = 1
    }""", path="unused.jsonl")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logs = run_epochs(cb, [{"acc": 1.0}])
    assert logs[0]["skipped"] == 1


def test_a_read_guarded_inside_an_action_does_not_skip_the_rule(capsys):
    (cb,) = cbdsl.compile('on epoch_end do print "epoch {epoch}", '
                          'log v = val_loss if has("val_loss") else -1')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        logs = run_epochs(cb, [{"loss": 1.0}])
    assert logs[0]["v"] == -1 and capsys.readouterr().out == "epoch 1\n"


def test_missing_is_only_readable_in_metric_missing():
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check('on epoch_end do print "{missing}"\non epoch_end when missing == 1 do stop')
    assert "'missing' exists only in metric_missing" in str(exc.value)


# ---------------------------------------------------------------- record


def test_record_builds_a_history_kept_across_fits():
    (cb,) = cbdsl.compile("on epoch_end do record")
    model = StubModel()
    run_epochs(cb, [{"loss": 1.0}, {"loss": 0.5}], model)
    assert cb.history == {"loss": [1.0, 0.5]} and cb.epoch == [0, 1]
    assert model.history is cb
    run_epochs(cb, [{"loss": 0.25}], model)
    assert cb.history == {"loss": [1.0, 0.5, 0.25]} and cb.epoch == [0]  # as Keras's History


# ------------------------------------------------------------- templates


def test_templates_show_epochs_one_based_and_read_tracker_fields(capsys):
    (cb,) = cbdsl.compile("""
        on epoch_end when loss stalls 1 as plateau do stop
        on train_end do print "stopped {stopped_epoch}, best {plateau.best} at {plateau.best_epoch}"
    """)
    run_epochs(cb, [{"loss": 1.0}, {"loss": 0.5}, {"loss": 0.7}])
    assert capsys.readouterr().out == "stopped 3, best 0.5 at 2\n"


def test_dotted_template_fields_must_name_a_tracker_field():
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check('on epoch_end when loss stalls 1 as p do print "{p.__class__}"')
    assert "trackers have no field '__class__'" in str(exc.value)


# -------------------------------------------------------------- parameters


def test_typed_parameters_take_defaults_of_their_type():
    (cb,) = cbdsl.compile("callback c(x: float = 1, hook: python = none) {\n"
                          "  on epoch_end do log x = x\n}")
    (logs,) = run_epochs(cb, [{}])
    assert logs["x"] == 1
    with pytest.raises(CbdslCheckError) as exc:
        cbdsl.check('callback c(x: float = "a") {\n  on epoch_end do log x = x\n}')
    assert "'x' is declared float but its default is str" in str(exc.value)


def test_mode_parameter_is_bound_not_taken_from_its_default():
    source = """
        callback c(mode = "auto") {
          on epoch_end when score stalls 1 with mode = mode do stop
        }
    """
    (cb,) = cbdsl.compile(source, mode="max")
    model = StubModel()
    run_epochs(cb, [{"score": 1.0}, {"score": 2.0}, {"score": 1.5}], model)
    assert cb.stopped_epoch == 2 and cb.best == 2.0


# --------------------------------------------------------------- schedules

SCHEDULED = """
callback s(schedule: schedule) {
  on epoch_begin do lr = schedule(epoch, lr)
}
"""


def lrs_under(schedule, epochs=4):
    (cb,) = cbdsl.compile(SCHEDULED, schedule=schedule)
    model = StubModel(0.1)
    model.optimizer = keras.optimizers.SGD(0.1)
    lrs = []
    cb.set_model(model)
    cb.on_train_begin({})
    for epoch in range(epochs):
        cb.on_epoch_begin(epoch, {})
        lrs.append(round(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)), 6))
    return lrs


def test_a_schedule_is_a_table_an_expression_or_a_python_function():
    assert lrs_under({1: 0.05, 3: 0.01}) == [0.1, 0.05, 0.05, 0.01]
    assert lrs_under("0.1 * 0.5 ** epoch") == [0.1, 0.05, 0.025, 0.0125]
    assert lrs_under(lambda epoch, lr: lr * 0.5) == [0.05, 0.025, 0.0125, 0.00625]
    assert lrs_under(lambda epoch: 0.2 + epoch) == [0.2, 1.2, 2.2, 3.2]  # Keras's old API


def test_a_python_schedule_must_return_a_float_as_in_keras():
    with pytest.raises(ValueError, match=r"should be a float\. Got: 1"):
        lrs_under(lambda epoch, lr: 1)


def test_schedule_text_is_parsed_and_checked_never_evaluated():
    with pytest.raises(CbdslSyntaxError) as exc:
        cbdsl.compile(SCHEDULED, schedule="0.1) do stop")
    assert exc.value.code == "E100"
    with pytest.raises(CbdslCompileError, match="a schedule cannot call '__import__'"):
        cbdsl.compile(SCHEDULED, schedule="__import__('os')")
    with pytest.raises(CbdslCompileError, match="a schedule cannot read 'epcoh'") as exc:
        cbdsl.compile(SCHEDULED, schedule="0.1 * epcoh")
    assert "did you mean 'epoch'" in str(exc.value)


def test_step_is_the_index_across_epochs_of_the_batch_at_its_begin_and_its_end():
    (cb,) = cbdsl.compile("""callback counting {
        var began = {}
        var ended = {}
        on train_batch_begin do set began[step] = batch
        on train_batch_end do set ended[step] = batch
        on train_batch_begin every 2 steps do log even = step
    }""")
    cb.set_model(StubModel())
    cb.on_train_begin({})
    seen = []
    for epoch in range(2):
        cb.on_epoch_begin(epoch, {})
        for batch in range(3):
            logs = {}
            cb.on_train_batch_begin(batch, logs)
            seen.append(logs.get("even"))
            cb.on_train_batch_end(batch, {"loss": 1.0})
    assert cb.began == cb.ended == {0: 0, 1: 1, 2: 2, 3: 0, 4: 1, 5: 2}
    assert seen == [None, 1, None, 3, None, 5]


def test_restore_inside_a_for_body_restores_the_best_weights():
    (cb,) = cbdsl.compile('on epoch_end when loss stalls 1 as w do for k in logs when k == "loss" '
                          "do (restore best weights of w)")
    model = StubModel()
    cb.set_model(model)
    cb.on_train_begin({})
    for epoch, loss in enumerate([1.0, 2.0]):
        cb.on_epoch_begin(epoch, {})
        model.weights_version = epoch
        cb.on_epoch_end(epoch, {"loss": loss})
    assert model.weights_version == 0  # the weights of epoch 0, the best loss
