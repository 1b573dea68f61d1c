"""`rules/model_checkpoint.cbd` saves the files `keras.callbacks.ModelCheckpoint` saves.

The real fits are the `model_checkpoint` scenarios of `cbdsl.conformance.artifacts`, which
`cbdsl conform` runs too: each fits once with Keras's class and once with the drop-in, in
fresh folders, watching the folder at every event of the fit. Each file written, at which
event, and the weights it held then (loaded as Keras loads it) must be the same, and so must
the printed lines, the warnings and the error that ends a fit. The checks below also say what
Keras did in each scenario.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import keras
import pytest

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.cli import main
from cbdsl.conformance import artifacts
from cbdsl.diagnostics import CbdslCheckError

RULE_FILE = Path(dropin.rule_file("model_checkpoint"))
SPEC = artifacts.ARTIFACT_SPECS["model_checkpoint"]
BATCHES = artifacts.CLASSIFIER_BATCHES  # per epoch: 48 samples, validation_split 0.25, batch_size 9


def fit(callbacks: list, *, epochs: int = 4, validation: bool = True) -> None:
    artifacts.fit_classifier(artifacts.classifier_model(), callbacks, epochs=epochs,
                             validation=validation)


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------- real fits


def saved_at_each_epoch(artifact: dict) -> None:
    assert [save["at"] for save in artifact["saves"]] == [f"epoch {e} end" for e in range(4)]
    assert len(artifact["files"]) == 4 and artifact["files"][0].startswith("m01-")


def one_file(name: str, epochs: int = 4):
    def check(artifact: dict) -> None:
        assert [save["file"] for save in artifact["saves"]] == [name] * epochs
        assert artifact["files"] == [name]
    return check


def weights_in_subfolder(artifact: dict) -> None:
    assert artifact["files"] == [f"sub/w{e}.weights.h5" for e in (1, 2, 3, 4)]


def some_epochs_saved(artifact: dict) -> None:
    assert 0 < len(artifact["files"]) < 6  # some epochs did not improve


def saved(artifact: dict) -> None:
    assert artifact["saves"] and all(isinstance(s["weights"], list) for s in artifact["saves"])


def best_epochs_weights(artifact: dict) -> None:
    # one file, rewritten at each improvement: it ends with the best epoch's weights
    assert artifact["files"] == ["best.keras"]
    assert artifact["saves"][-1]["weights"] == [s for s in artifact["saves"]
                                                if s["file"] == "best.keras"][-1]["weights"]


def nothing_saved(artifact: dict) -> None:
    assert artifact["saves"] == [] and artifact["files"] == []  # a loss never beats 0


def counted_across_epochs(artifact: dict) -> None:
    assert artifact["files"] == ["e1-b3.keras", "e2-b2.keras", "e3-b1.keras", "e3-b4.keras"]
    assert [s["at"] for s in artifact["saves"]] == [
        "epoch 0 batch 2 end", "epoch 1 batch 1 end", "epoch 2 batch 0 end",
        "epoch 2 batch 3 end"]


def warned_and_saved_twice(artifact: dict) -> None:
    # two epochs; or eight batches, saved after the 3rd and the 6th
    assert [w for w in artifact["warnings"] if "save best" in w] == [
        "UserWarning: Can save best model only with val_loss available."] * 2
    assert len(artifact["files"]) == 2


def not_read(artifact: dict) -> None:
    assert not [w for w in artifact["warnings"] if "val_loss" in w]
    assert artifact["files"] == ["m1.keras", "m2.keras"]


def printed_saving(artifact: dict) -> None:
    assert "saving model to WORKDIR/" in artifact["printed"]


def refused(artifact: dict) -> None:
    assert artifact["error"]["type"] == "ValueError" and artifact["saves"] == []


def refused_a_folder(artifact: dict) -> None:
    assert artifact["error"]["message"].startswith(
        "Please specify a non-directory filepath for ModelCheckpoint")


def failed_to_format(artifact: dict) -> None:
    assert artifact["error"]["type"] == "KeyError"
    assert artifact["error"]["message"].startswith("Failed to format this callback filepath")
    assert artifact["files"] == []  # nothing saved


def best_kept_across_fits(artifact: dict) -> None:
    # mode="max" on the loss: the second fit's losses never beat the first fit's first
    assert [s["at"] for s in artifact["saves"]] == ["epoch 0 end"]


def batches_counted_across_fits(artifact: dict) -> None:
    # the one batch past the first save counts towards the second fit's
    assert [s["at"] for s in artifact["saves"]] == ["epoch 0 batch 2 end",
                                                    "fit 2 epoch 0 batch 1 end"]


# what Keras's artifact shows in each scenario (the drop-in's must equal it)
SHOWS = {
    "every_epoch": saved_at_each_epoch,
    "one_keras_file": one_file("last.keras"),
    "one_h5_file": one_file("last.h5"),
    "weights_only_subfolder": weights_in_subfolder,
    "best_min_val_loss": some_epochs_saved,
    "best_max_val_accuracy": some_epochs_saved,
    "best_max_loss": some_epochs_saved,
    "best_auto_accuracy": saved,
    "best_one_file": best_epochs_weights,
    "threshold_zero": nothing_saved,
    "threshold_between": saved,
    "threshold_high": saved,
    "save_freq_batches": counted_across_epochs,
    "save_freq_steps_2": saved,
    "save_freq_steps_3": saved,
    "save_freq_best_loss": saved,
    "missing_monitor_epochs": warned_and_saved_twice,
    "missing_monitor_batches": warned_and_saved_twice,
    "missing_monitor_not_read": not_read,
    "verbose_every_epoch": printed_saving,
    "verbose_best": printed_saving,
    "verbose_best_threshold": printed_saving,
    "verbose_save_freq": printed_saving,
    "refuses_h5_weights_suffix": refused,
    "refuses_keras_weights_only": refused,
    "refuses_weights_suffix": refused,
    "refuses_txt": refused,
    "refuses_save_freq_batch": refused,
    "refuses_save_freq_float": refused,
    "refuses_save_freq_first": refused,
    "path_is_a_folder": refused_a_folder,
    "weights_path_is_a_folder": refused_a_folder,
    "path_field_misspelt": failed_to_format,
    "path_field_batch_per_epoch": failed_to_format,
    "path_field_val_loss_per_batch": failed_to_format,
    "best_over_two_fits": best_kept_across_fits,
    "save_freq_over_two_fits": batches_counted_across_fits,
}


def test_every_scenario_says_what_it_shows():
    assert list(SHOWS) == [s.name for s in SPEC.scenarios]
    assert not SPEC.known  # no known difference from Keras


@pytest.mark.fit
@pytest.mark.parametrize("name", list(SHOWS))
def test_same_files_as_keras(tmp_path, name):
    result = artifacts.check("model_checkpoint", name, folder=tmp_path)
    assert result.passed, result.divergence
    SHOWS[name](result.expected)


# ------------------------------------------------------------------------------- errors


def test_valid_paths_and_frequencies_are_accepted():
    for filepath, kwargs in [("m.keras", {}), ("m.h5", {}), ("w.weights.h5",
                             {"save_weights_only": True}), ("m.keras", {"save_freq": 7}),
                             (Path("m.keras"), {})]:
        keras.callbacks.ModelCheckpoint(filepath, **kwargs)
        assert isinstance(dropin.ModelCheckpoint(filepath, **kwargs), keras.callbacks.Callback)


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
