"""`cbdsl replay`: a policy's compiled callbacks driven over a recorded log, and its plot."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import cbdsl
from cbdsl import language
from cbdsl.cli import main
from cbdsl.replay import LogFormatError, read_log, replay

CSV = "epoch,learning_rate,loss,val_loss\n" + "".join(
    f"{e},0.01,{1 / (e + 1):.5f},{v}\n"
    for e, v in enumerate([1.0, 0.5, 0.4, 0.41, 0.42, 0.43, 0.39, 0.45, 0.46, 0.47, 0.48]))
POLICY = """
plateau: on epoch_end when val_loss stalls 2 do lr *= 0.5
halt: on epoch_end when val_loss stalls 4 and epoch > 0 do stop
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "training.csv").write_text(CSV)
    (tmp_path / "policy.cbd").write_text(POLICY)
    return tmp_path


def test_reads_csv_logger_files_and_history_dumps(tmp_path):
    (tmp_path / "a.csv").write_text("epoch,loss,val_loss\n0,1.0,NA\n1,0.5,0.7\n")
    assert read_log(tmp_path / "a.csv") == [{"loss": 1.0}, {"loss": 0.5, "val_loss": 0.7}]
    (tmp_path / "h.json").write_text(json.dumps({"history": {"loss": [1.0, 0.5]}}))
    assert read_log(tmp_path / "h.json") == [{"loss": 1.0}, {"loss": 0.5}]


def test_unreadable_logs_are_diagnostics_with_a_position(tmp_path):
    (tmp_path / "bad.csv").write_text("epoch,loss\n0,1.0\n1,lots\n")
    with pytest.raises(LogFormatError, match=r"bad.csv:3: 'loss' is 'lots', not a number"):
        read_log(tmp_path / "bad.csv")
    (tmp_path / "bad.json").write_text("{\"loss\": [1,")
    with pytest.raises(LogFormatError, match=r"bad.json:1:\d+: not JSON"):
        read_log(tmp_path / "bad.json")
    with pytest.raises(LogFormatError) as exc:
        read_log(tmp_path / "missing.csv")
    assert exc.value.code == "E501"


def test_replay_shows_what_would_fire_and_when(files):
    result = replay(cbdsl.compile(files / "policy.cbd"), read_log(files / "training.csv"))
    # val_loss (1-based epochs): 1.0 .5 .4 | .41 .42 -> plateau at 5 (its count restarts);
    # .43, .39 is a new best; .45 .46 -> plateau at 9; .47 .48 -> plateau at 11, and halt
    # (four checks since the best at 7) at 11
    assert [(f.rule, f.epoch + 1) for f in result.firings] == [
        ("plateau", 5), ("plateau", 9), ("plateau", 11), ("halt", 11)]
    assert result.stopped_at == 10
    assert result.learning_rates[3] == pytest.approx(0.01)
    assert result.learning_rates[4] == pytest.approx(0.005)
    assert result.learning_rates[-1] == pytest.approx(0.00125)


@pytest.mark.fit
def test_replay_of_a_real_fit_agrees_with_the_live_run(tmp_path):
    # a policy whose actions do not change training sees the same logs live and replayed
    policy = 'watch: on epoch_end when val_loss stalls 2 do print "{val_loss:.4f}", stop'
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(128, 3)).astype("float32")
    y = rng.normal(size=(128, 1)).astype("float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.2), loss="mse")
    live = cbdsl.compile(policy)
    history = model.fit(x, y, epochs=40, validation_split=0.25, verbose=0, callbacks=live)
    (tmp_path / "history.json").write_text(json.dumps(history.history))
    result = replay(cbdsl.compile(policy), read_log(tmp_path / "history.json"))
    assert [(f.rule, f.epoch, f.reasons) for f in result.firings] == [
        (f.rule, f.epoch, f.reasons) for f in live[0].timeline]
    assert result.stopped_at == len(history.history["loss"]) - 1 < 39


def test_cli_prints_the_timeline_and_plots(files, capsys):
    image = files / "out" / "replay.png"
    assert main(["replay", str(files / "policy.cbd"), "--log", str(files / "training.csv"),
                 "--plot", str(image)]) == 0
    out = capsys.readouterr().out
    assert "plateau" in out and "lr 0.01 -> 0.005" in out
    assert "has not improved" in out and "for 2 checks" in out
    assert "the policy stops at epoch 11 of 11" in out
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_takes_parameters_and_reports_bad_input(files, capsys):
    (files / "p.cbd").write_text("param patience = 9\n"
                                 "on epoch_end when val_loss stalls patience do lr *= 0.5")
    assert main(["replay", str(files / "p.cbd"), "--log", str(files / "training.csv"),
                 "--set", "patience=2", "--lr", "0.1"]) == 0
    assert "lr 0.1 -> 0.05" in capsys.readouterr().out
    assert main(["replay", str(files / "p.cbd"), "--log", str(files / "nope.csv")]) == 1
    assert "E501" in capsys.readouterr().err
    assert main(["replay", str(files / "p.cbd"), "--log", str(files / "training.csv"),
                 "--set", "patience"]) == 2
    assert main(["replay", str(files / "p.cbd")]) == 2  # --log is required


# --------------------------------------------------------------- dry runs

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "rules").glob("*.cbd")) + sorted((ROOT / "examples").glob("*.cbd"))
# loss, val_loss, accuracy, val_accuracy and learning_rate, as CSVLogger writes them; val_loss
# stops improving after the fourth epoch
RECORDED = "epoch,accuracy,learning_rate,loss,val_accuracy,val_loss\n" + "".join(
    f"{e},{a},0.01,{loss},{va},{vl}\n" for e, (loss, vl, a, va) in enumerate(
        [(1.0, 0.9, 0.5, 0.55), (0.8, 0.7, 0.6, 0.62), (0.7, 0.72, 0.65, 0.61),
         (0.6, 0.65, 0.7, 0.6), (0.5, 0.73, 0.75, 0.63), (0.45, 0.75, 0.78, 0.6)]))
# files where the shipped policies write, there before the replay
EXISTING = ("log.csv", "m1.keras", "loss_log.json", "backup/training_metadata.json",
            "logs/train/events.out.tfevents.1",
            "logs/train/keras_embedding.ckpt-0.weights.h5")


def _arguments(name, tmp, calls):
    """Values for a shipped file's parameters: the required ones, and those that make it
    write, send or run effects at epoch events."""
    return {
        "backup_and_restore": {"backup_dir": str(tmp / "backup")},
        "csv_logger": {"filename": str(tmp / "log.csv")},
        "early_stopping": {"patience": 1, "verbose": 1, "restore_best_weights": True},
        "lambda_callback": {"on_train_begin": lambda logs: calls.append("train_begin"),
                            "on_epoch_end": lambda epoch, logs: calls.append(epoch)},
        "learning_rate_scheduler": {"schedule": lambda epoch, lr: 0.1 * 0.9 ** epoch,
                                    "verbose": 1},
        "model_checkpoint": {"filepath": str(tmp / "m{epoch}.keras"), "verbose": 1},
        "reduce_lr_on_plateau": {"patience": 1, "verbose": 1},
        "swap_ema_weights": {"swap_on_epoch": True},
        "swap_ema_after_predict": {"swap_on_epoch": True},
        "tensorboard": {"log_dir": str(tmp / "logs"), "histogram_freq": 1,
                        "embeddings_freq": 1, "write_steps_per_second": True},
    }.get(name, {})


def _reports(tmp):
    """Some of what each shipped file reports it would have done, paths filled in."""
    logs = tmp / "logs"
    return {
        "backup_and_restore": [
            (None, f"would resume from the backup in {tmp / 'backup'}, if there is one"),
            (0, f"would back up the training state to {tmp / 'backup'} (epochs done: 1)"),
            (5, f"would remove the backup files in {tmp / 'backup'}")],  # train_end
        "csv_logger": [(None, f"would empty {tmp / 'log.csv'}"),
                       (0, f"would write a header and a row to {tmp / 'log.csv'}"),
                       (1, f"would write a row to {tmp / 'log.csv'}")],
        "model_checkpoint": [(0, f"would save model to {tmp / 'm1.keras'}"),
                             (2, f"would save model to {tmp / 'm3.keras'}")],
        "progbar_logger": [(0, "would draw a new progress bar"),
                           (0, "would move the progress bar to step 0 and end it")],
        "remote_monitor": [(0, "would post form to http://localhost:9000/publish/epoch/end/")],
        "swap_ema_weights": [
            (0, "would swap the model's weights with the EMA weights (the optimizer's "
                "moving averages)"),
            (5, "would set the EMA weights (the optimizer's moving averages) to the model's "
                "weights")],
        "tensorboard": [
            (None, f"would write the model's configuration to {logs / 'train'}"),
            (None, f"would write the embedding projector's configuration to {logs}"),
            (0, f"would write the scalar summary epoch_loss = 1.0 at step 0 to "
                f"{logs / 'train'}"),
            (1, f"would write the scalar summary epoch_loss = 0.7 at step 1 to "
                f"{logs / 'validation'}"),
            (0, f"would write a histogram of every weight at step 0 to {logs / 'train'}"),
            (0, f"would save weights to {logs / 'train' / 'keras_embedding.ckpt-0.weights.h5'}"),
            (None, "would flush and close the event files this callback opened")],
        "json_logging": [(None, "would empty loss_log.json"),
                         (0, "would append a line to loss_log.json")],
    }


def _snapshot(folder):
    """Every file and folder under `folder`: a file's bytes and modification time."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns) if p.is_file()
            else "folder" for p in sorted(folder.rglob("*"))}


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A folder, the current one, holding a recorded log and files where policies write,
    dated an hour ago (so that a write would show in their modification times)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "training.csv").write_text(RECORDED)
    for name in EXISTING:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(f"kept: {name}\n".encode())
    past = time.time() - 3600
    for path in tmp_path.rglob("*"):
        os.utime(path, (past, past))
    return tmp_path


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_file_replays_without_touching_a_file(path, workspace):
    calls = []
    before = _snapshot(workspace)
    callbacks = cbdsl.compile(path, **_arguments(path.stem, workspace, calls))
    result = replay(callbacks, read_log(workspace / "training.csv"), policy=path)
    assert _snapshot(workspace) == before  # nothing new, nothing changed, nothing removed
    assert len(result.learning_rates) == (len(result.epochs) if result.stopped_at is None
                                          else result.stopped_at + 1)
    withheld = [(epoch, said) for epoch, _, said in result.withheld]
    for report in _reports(workspace).get(path.stem, []):
        assert report in withheld
    assert all(not cb.dry_run and "dry_run" not in vars(cb) for cb in callbacks)  # as it was
    if path.stem == "lambda_callback":  # the caller's own Python hooks are called
        assert calls == ["train_begin", 0, 1, 2, 3, 4, 5]


def test_what_rules_write_send_and_run_is_reported_not_done(workspace):
    (workspace / "policy.cbd").write_text(
        'on train_begin do write "" to "notes/begin.txt"\n'
        'on epoch_end do save model "m{epoch}.keras", save weights "w{epoch}.weights.h5"\n'
        'on epoch_end do append "{loss}" to "loss_log.json", write "x" to "last.txt"\n'
        'on epoch_end do write row {"epoch": epoch, "loss": loss} to "log.csv" '
        'with (header = (epoch == 0), append = (epoch > 0))\n'
        'on epoch_end do post json {"loss": loss} to "http://127.0.0.1:9/loss"\n'
        'on epoch_end do for name, value in logs when startswith(name, "val_") '
        'do (tensorboard.scalar("tb", name, value, epoch))\n'
        'on epoch_end once at epoch 1 do ema.swap(), backup.store("bk", epoch + 1)\n')
    before = _snapshot(workspace)
    result = replay(cbdsl.compile(workspace / "policy.cbd"),
                    read_log(workspace / "training.csv"))
    assert _snapshot(workspace) == before
    withheld = [(epoch, said) for epoch, _, said in result.withheld]
    assert withheld[:2] == [(None, "would empty notes/begin.txt"),
                            (0, "would save model to m1.keras")]
    for report in [(0, "would save weights to w1.weights.h5"),
                   (2, "would append a line to loss_log.json"), (2, "would write last.txt"),
                   (0, "would empty log.csv and write a header and a row to it"),
                   (1, "would write a row to log.csv"),
                   (3, "would post json to http://127.0.0.1:9/loss"),
                   (1, "would write the scalar summary val_accuracy = 0.62 at step 1 to tb"),
                   (1, "would write the scalar summary val_loss = 0.7 at step 1 to tb"),
                   (1, "would swap the model's weights with the EMA weights (the optimizer's "
                       "moving averages)"),
                   (1, "would back up the training state to bk (epochs done: 2)")]:
        assert report in withheld
    (row,) = [f for f in result.firings if f.epoch == 1 and "for name, value" in f.actions[0]]
    assert row.actions[0].startswith("for name, value: 2 times\nwould write the scalar")


def test_the_switch_is_the_compiled_callbacks_own_and_off_unless_replaying(workspace):
    cb, = cbdsl.compile('on epoch_end do save model "m{epoch}.keras"')
    assert cb.dry_run is False and type(cb).dry_run is False
    with pytest.raises(TypeError, match="compiled callbacks only"):
        replay([cb, keras.callbacks.History()], read_log(workspace / "training.csv"))


def test_a_policy_failure_names_the_file_and_the_epoch_counted_from_1(workspace):
    (workspace / "policy.cbd").write_text(
        'on epoch_end when epoch == 2 do fail "loss was {loss}"\n')
    with pytest.raises(LogFormatError) as exc:
        replay(cbdsl.compile(workspace / "policy.cbd"), read_log(workspace / "training.csv"),
               policy=workspace / "policy.cbd")
    assert exc.value.code == "E502"
    assert str(exc.value) == (
        f"{workspace / 'policy.cbd'}: error E502: the policy failed at the end of epoch 3 of 6 "
        "(epochs counted from 1, as Keras prints them): RuleFailure: loss was 0.7")
    (workspace / "nan.cbd").write_text("on train_begin do lr = lr / 0 * 0\n")
    with pytest.raises(LogFormatError, match=(
            r"^nan.cbd: error E502: the policy failed as training began, before epoch 1 "
            r".*: CbdslRuntimeError: E401 nan: rule@1: the learning rate must be finite and not "
            r"negative, got nan")):
        replay(cbdsl.compile(workspace / "nan.cbd"), read_log(workspace / "training.csv"),
               policy="nan.cbd")


@pytest.mark.parametrize("name", sorted(language.EFFECTS))
def test_every_effect_says_what_it_would_do_from_its_arguments(name):
    spec = language.EFFECTS[name]
    arguments = {p.name: p.default if not p.required else f"<{p.name}>" for p in spec.params}
    said = spec.would_do(arguments)
    assert said.startswith("would ") and len(said) > len("would ") and "{" not in said
    assert all(f"<{p.name}>" in said for p in spec.params
               if p.required and p.type == "str"), "a dry run names the paths it would write"
