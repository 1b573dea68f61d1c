"""The cbdsl command: check's exit codes and formats, demo end to end."""

from __future__ import annotations

import importlib.util
import json
import os
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
