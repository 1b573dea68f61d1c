"""The cbdsl command: check's exit codes and formats, demo end to end, replay as a dry run."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

from cbdsl.cli import demo_policy_text, main

MISSION = "on epoch_end when val_loss stalls 5 do lr *= 0.2\n"


def test_check_clean_file_exits_0(tmp_path, capsys):
    path = tmp_path / "policy.cbd"
    path.write_text(MISSION)
    assert main(["check", str(path)]) == 0
    assert "1 file checked: 0 errors, 0 warnings" in capsys.readouterr().err


def test_check_reports_every_diagnostic_and_exits_1(tmp_path, capsys):
    path = tmp_path / "bad.cbd"
    path.write_text("on epoch_ned do stop\non epoch_end when val_loss stalls 2.5 do lr *= 0.2\n")
    assert main(["check", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}:1:4: error E201: unknown event 'epoch_ned'" in out
    assert "^^^^^^^^^ did you mean 'epoch_end'?" in out
    assert f"{path}:2:35: error E204:" in out


def test_check_json_format(tmp_path, capsys):
    path = tmp_path / "bad.cbd"
    path.write_text("on epoch_end do lr *= \n")
    assert main(["check", "--format", "json", str(path)]) == 1
    report = json.loads(capsys.readouterr().out)
    (diag,) = report["files"][0]["diagnostics"]
    assert diag["code"] == "E102" and diag["line"] == 2 and diag["severity"] == "error"
    assert report["errors"] == 1


def test_check_usage_errors_exit_2(tmp_path, capsys):
    assert main(["check"]) == 2
    assert main(["check", str(tmp_path / "missing.cbd")]) == 2
    assert main(["frobnicate"]) == 2


def test_warnings_pass_unless_strict(tmp_path):
    path = tmp_path / "warn.cbd"
    path.write_text("on epoch_end when val_los stalls 3 do stop\n")
    assert main(["check", str(path)]) == 0
    assert main(["check", "--strict", str(path)]) == 1


def test_shipped_demo_policy_checks_clean():
    import cbdsl

    checked = cbdsl.check(demo_policy_text())
    assert checked.diagnostics == []


def _a_backend() -> str | None:
    for name in ("jax", "torch", "tensorflow"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


@pytest.mark.fit
def test_demo_trains_and_prints_a_timeline():
    backend = _a_backend()
    if backend is None:
        pytest.skip("no Keras backend installed")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "COLUMNS": "120"}
    done = subprocess.run([sys.executable, "-m", "cbdsl", "demo", "--epochs", "40"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "Timeline" in out and "warmup" in out and "plateau" in out
    assert "val_loss has not improved" in out
    assert "ran " in out and " of 40 epochs" in out


REPLAYED_LOG = "epoch,learning_rate,loss,val_loss\n0,0.01,1.0,0.9\n1,0.01,0.8,0.7\n2,0.01,0.7,0.8\n"
EXAMPLES = pathlib.Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture
def replay_folder(tmp_path, monkeypatch):
    """The current folder, with a recorded log; wide enough that table cells do not wrap."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    (tmp_path / "training.csv").write_text(REPLAYED_LOG)
    return tmp_path


def _files(folder):
    return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_replay_is_a_dry_run_that_leaves_existing_files_as_they_were(replay_folder, capsys):
    kept = replay_folder / "loss_log.json"
    kept.write_text('{"epoch": 0, "loss": 0.25}\n')
    os.utime(kept, (1_000_000_000, 1_000_000_000))
    before = _files(replay_folder)
    assert main(["replay", str(EXAMPLES / "json_logging.cbd"), "--log", "training.csv"]) == 0
    assert _files(replay_folder) == before  # byte for byte, and never opened to write
    out = capsys.readouterr().out
    assert "would empty loss_log.json" in out
    assert out.count("would append a line to loss_log.json") == 3
    assert "dry run: nothing was written or sent; 4 actions are shown as what they would " \
           "have done" in out


def test_replay_reports_the_saves_it_would_make(replay_folder, capsys):
    (replay_folder / "save.cbd").write_text('on epoch_end do save model "m{epoch}.keras"\n')
    assert main(["replay", "save.cbd", "--log", "training.csv"]) == 0
    out = capsys.readouterr().out
    assert all(f"would save model to m{n}.keras" in out for n in (1, 2, 3))
    assert "epochs counted from 1" in out
    assert sorted(p.name for p in replay_folder.iterdir()) == ["save.cbd", "training.csv"]


def test_replay_errors_name_the_policy_file_and_the_epoch(replay_folder, capsys):
    (replay_folder / "strict.cbd").write_text(
        'on epoch_end when val_loss > 0.75 and epoch > 0 do fail "val_loss rose to {val_loss}"\n')
    assert main(["replay", "strict.cbd", "--log", "training.csv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("strict.cbd: error E502: the policy failed at the end of epoch 3 of 3 "
                          "(epochs counted from 1, as Keras prints them): RuleFailure: "
                          "val_loss rose to 0.8")
    assert "<string>" not in err
