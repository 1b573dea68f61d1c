"""`cbdsl replay`: a policy's compiled callbacks driven over a recorded log, and its plot."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import cbdsl
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
