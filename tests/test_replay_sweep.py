"""`cbdsl replay` over many recorded runs: inputs, sweeps, the report, honesty, no backend."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from backend_run import run_on_backend
from record_worker import EPOCHS, PATIENCES, record

import cbdsl
from cbdsl.cli import main
from cbdsl.replay import (
    SweepError,
    find_runs,
    metric_direction,
    parse_sweep,
    read_log,
    read_runs,
    replay,
    settings_of,
    sweep,
)
from cbdsl.runtime import standin

WORKER = Path(__file__).with_name("record_worker.py")
STOPPING = ("param patience = 0\n"
            "use keras.early_stopping(patience = patience)\n")
PLATEAU = ("param patience = 2\n"
           "use keras.reduce_lr_on_plateau(patience = patience, factor = 0.5, min_delta = 0)\n"
           "use keras.early_stopping(patience = 5)\n")


def _csv(path: Path, val_loss: list[float], lr: float | None = None, **extra: list[float]):
    cols = ["val_loss", *extra] + (["learning_rate"] if lr is not None else [])
    rows = [",".join(["epoch", *cols])]
    for e, v in enumerate(val_loss):
        values = [v, *(extra[k][e] for k in extra)] + ([lr] if lr is not None else [])
        rows.append(",".join([str(e), *map(str, values)]))
    path.write_text("\n".join(rows) + "\n")


# ------------------------------------------------------------------ inputs


def test_files_folders_and_globs_name_runs_and_bad_ones_are_set_aside(tmp_path):
    (tmp_path / "a").mkdir()
    _csv(tmp_path / "a" / "one.csv", [1.0, 0.9])
    _csv(tmp_path / "a" / "two.csv", [1.0, 0.8])
    (tmp_path / "h.json").write_text(json.dumps({"val_loss": [1.0, 0.7]}))
    (tmp_path / "a" / "bad.csv").write_text("epoch,val_loss\n0,lots\n")
    runs, unreadable = read_runs([tmp_path / "a", str(tmp_path / "*.json"),
                                  tmp_path / "missing.csv", str(tmp_path / "none*.csv")])
    assert sorted(Path(r.path).name for r in runs) == ["h.json", "one.csv", "two.csv"]
    assert [(Path(p).name, why) for p, why in unreadable] == [
        ("missing.csv", "no such file or folder"),
        ("none*.csv", "the pattern matches no file or folder"),
        ("bad.csv", "E501 " + str(tmp_path / "a" / "bad.csv") + ":2: 'val_loss' is 'lots', "
                    "not a number")]
    paths, _ = find_runs([str(tmp_path / "**" / "*.csv"), tmp_path / "a" / "one.csv"])
    assert [Path(p).name for p in paths] == ["bad.csv", "one.csv", "two.csv"]  # each once


def test_sweeps_are_lists_and_ranges_crossed_and_bad_ones_are_diagnostics():
    grid = settings_of(parse_sweep(["patience=2..4", "factor=0.1,0.5", "mode=max"]), {"x": 1})
    assert len(grid) == 6 and grid[0] == {"x": 1, "patience": 2, "factor": 0.1, "mode": "max"}
    assert parse_sweep(["p=2..10..4"]) == {"p": [2, 6, 10]}
    for bad in ("patience", "patience=", "patience=5..2", "patience=a..b", "1x=2"):
        with pytest.raises(SweepError) as exc:
            parse_sweep([bad])
        assert exc.value.code == "E503"
    with pytest.raises(SweepError, match="twice"):
        parse_sweep(["p=1", "p=2"])


def test_the_direction_table_is_the_one_keras_metrics_declare():
    from keras.src import metrics

    for cls in set(metrics.ALL_OBJECTS):
        try:
            metric = cls()
        except TypeError:  # needs arguments (IoU, thresholds); named in the table by hand
            continue
        if hasattr(metric, "_direction"):
            assert metric_direction(metric.name) == metric._direction, metric.name
    assert metric_direction("val_auc_1") == "up"
    assert metric_direction("val_out_loss") == "down"
    assert metric_direction("dense_1_accuracy") == "up"
    assert metric_direction("val_widgets") is None


# ------------------------------------------------------------------ the report


def test_epochs_saved_and_regret_per_setting(tmp_path):
    (tmp_path / "p.cbd").write_text(STOPPING.replace(
        "patience = patience", "patience = patience, restore_best_weights = true"))
    _csv(tmp_path / "r1.csv", [1.0, 0.5, 0.6, 0.7, 0.4, 0.8, 0.9, 0.9])
    _csv(tmp_path / "r2.csv", [1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    runs, _ = read_runs([tmp_path])
    result = sweep(tmp_path / "p.cbd", runs, settings_of(parse_sweep(["patience=1,2,3"])))
    one, two, three = result.settings
    # patience 1: r1 stops at epoch 3 keeping epoch 2 (0.5; the best, 0.4, comes later)
    assert [(r.stopped_at, r.kept_epoch, r.kept) for r in one.runs] == [
        (3, 2, 0.5), (None, 8, 0.3)]
    assert one.runs[0].regret == pytest.approx(0.1) and one.runs[1].regret == 0
    assert (one.stopped_early, one.epochs_run, one.epochs_recorded) == (1, 11, 16)
    assert one.saved_percent == pytest.approx(100 * 5 / 16)
    assert one.mean_regret == pytest.approx(0.05) and one.worst_regret == pytest.approx(0.1)
    # patience 3 sees 0.4 at epoch 5 and stops at 8: nothing lost, nothing saved
    assert three.runs[0].kept == 0.4 and three.epochs_run == 16 and three.mean_regret == 0
    assert result.pareto() == [0, 1] or result.pareto() == [0, 2]
    assert all(r.exact for s in result.settings for r in s.runs)
    data = result.to_json()
    assert data["settings"][0]["epochs_saved"] == 5 and data["settings"][0]["pareto"]
    assert two.summary()["runs"] == 2


def test_a_learning_rate_apart_from_the_recorded_one_is_marked_counterfactual(tmp_path):
    (tmp_path / "p.cbd").write_text("param patience = 2\n"
                                    "on epoch_end when val_loss stalls patience do lr *= 0.5")
    _csv(tmp_path / "with_lr.csv", [1.0, 0.9, 0.95, 0.96, 0.97, 0.98], lr=0.1)
    _csv(tmp_path / "no_lr.csv", [1.0, 0.9, 0.95, 0.96, 0.97, 0.98])
    _csv(tmp_path / "quiet.csv", [1.0, 0.9, 0.8, 0.7, 0.6, 0.5], lr=0.1)
    runs, _ = read_runs([tmp_path / "with_lr.csv", tmp_path / "no_lr.csv",
                         tmp_path / "quiet.csv"])
    (report,) = sweep(tmp_path / "p.cbd", runs, [{}]).settings
    with_lr, no_lr, quiet = report.runs
    # halved at the end of epoch 4: epoch 5 ran at 0.05 under the policy, 0.1 in the record
    assert (with_lr.exact, with_lr.counterfactual_from) == (False, 5)
    assert (no_lr.exact, no_lr.lr_unverified, no_lr.counterfactual_from) == (False, True, None)
    assert quiet.exact and report.exact == 1


def test_mode_auto_goes_by_the_metric_name_and_says_so(tmp_path, capsys):
    (tmp_path / "p.cbd").write_text("on epoch_end when val_accuracy stalls 3 do stop")
    _csv(tmp_path / "r.csv", [1.0] * 8, val_accuracy=[0.5, 0.6, 0.7, 0.65, 0.6, 0.6, 0.6, 0.6])
    result = replay(cbdsl.compile(tmp_path / "p.cbd"), read_log(tmp_path / "r.csv"))
    assert result.stopped_at == 5 and result.assumed == {"val_accuracy": "max"}
    assert main(["replay", str(tmp_path / "p.cbd"), "--log", str(tmp_path / "r.csv")]) == 0
    assert 'val_accuracy assumed to be maximised ("max")' in capsys.readouterr().out
    (tmp_path / "q.cbd").write_text("on epoch_end when val_widgets stalls 3 do stop")
    _csv(tmp_path / "w.csv", [1.0] * 4, val_widgets=[1, 2, 3, 4])
    assert main(["replay", str(tmp_path / "q.cbd"), "--log", str(tmp_path / "w.csv")]) == 1
    assert "E402" in capsys.readouterr().err


def test_cli_sweeps_reports_json_and_plots(tmp_path, capsys):
    (tmp_path / "p.cbd").write_text(STOPPING)
    for i in range(3):
        _csv(tmp_path / f"r{i}.csv", [1.0, 0.5 + i / 10, 0.6, 0.7, 0.4, 0.8])
    (tmp_path / "broken.json").write_text("{")
    image = tmp_path / "sweep.png"
    assert main(["replay", str(tmp_path / "p.cbd"), "--log", str(tmp_path),
                 "--sweep", "patience=1..3", "--json", "--plot", str(image)]) == 0
    out, err = capsys.readouterr()
    data = json.loads(out)
    assert [s["setting"] for s in data["settings"]] == [{"patience": p} for p in (1, 2, 3)]
    assert [u["path"] for u in data["unreadable"]] == [str(tmp_path / "broken.json")]
    assert "broken.json" in err and "not JSON" in err
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["replay", str(tmp_path / "p.cbd"), "--log", str(tmp_path / "r*.csv"),
                 "--sweep", "patience=1,3"]) == 0
    out = capsys.readouterr().out
    assert "3/3" in out and "Pareto" in out
    rows = [line.split("│") for line in out.splitlines() if line.startswith("│")]
    header = next(line for line in out.splitlines() if "patience" in line)
    assert header.split("┃")[1].strip() == "patience"  # a column per swept parameter
    assert [row[1].strip() for row in rows] == ["1", "3"]
    assert main(["replay", str(tmp_path / "p.cbd"), "--log", str(tmp_path),
                 "--sweep", "patience=3..1"]) == 1
    assert "E503" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "p.cbd"), "--log", str(tmp_path / "zz*")]) == 1
    assert "E501" in capsys.readouterr().err


def test_the_stand_ins_replay_as_keras_does(tmp_path):
    # the same compiled rules on Keras's Callback and optimizer, and on the stand-ins
    _csv(tmp_path / "r.csv", [1.0, 0.5, 0.5, 0.52, 0.49, 0.6, 0.61, 0.7, 0.2, 0.3, 0.4, 0.5],
         lr=0.1, accuracy=[0.1 * i for i in range(12)])
    epochs = read_log(tmp_path / "r.csv")
    policies = [PLATEAU, STOPPING.replace("= 0\n", "= 2\n"),
                "on epoch_end when accuracy improves do lr *= 0.9\n"
                "on epoch_end priority 1 when val_loss stalls 2 with (min_delta = 0.01)"
                " do lr = lr / 3"]
    for policy in policies:
        real = replay(cbdsl.compile(policy), epochs)
        with standin.using():
            stood = replay(cbdsl.compile(policy), epochs)
        assert [(f.rule, f.epoch, f.reasons) for f in stood.firings] == [
            (f.rule, f.epoch, f.reasons) for f in real.firings]
        assert (stood.stopped_at, stood.learning_rates) == (real.stopped_at,
                                                            real.learning_rates)


def test_replay_imports_no_backend_and_no_keras(tmp_path):
    (tmp_path / "p.cbd").write_text(PLATEAU)
    _csv(tmp_path / "r.csv", [1.0, 0.9, 0.95, 0.96, 0.97, 0.98], lr=0.1)
    code = ("import sys, time; t = time.perf_counter(); from cbdsl.cli import main\n"
            f"main(['replay', {str(tmp_path / 'p.cbd')!r}, '--log', {str(tmp_path / 'r.csv')!r}])\n"
            f"main(['replay', {str(tmp_path / 'p.cbd')!r}, '--log', {str(tmp_path)!r}, "
            "'--sweep', 'patience=1..3', '--json'])\n"
            "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# ------------------------------------------------------------------ real recorded runs


def _check_recorded(out: Path, facts: dict) -> None:
    """Replayed EarlyStopping stops where Keras's stopped, from every kind of log; the
    plateau run replays exactly with its own setting and counterfactually with another."""
    stopping = out / "stopping.cbd"
    stopping.write_text(STOPPING)
    runs, unreadable = read_runs([out / "free.csv", out / "free.json", out / "tb_free"])
    assert not unreadable and len(runs) == 3
    tb, csv_ = read_log(out / "tb_free"), read_log(out / "free.csv")
    assert len(tb) == len(csv_) == EPOCHS
    assert all(math.isclose(a["val_loss"], b["val_loss"], rel_tol=1e-6)
               for a, b in zip(tb, csv_, strict=True))
    result = sweep(stopping, runs, settings_of({"patience": list(PATIENCES)}))
    for p, report in zip(PATIENCES, result.settings, strict=True):
        ran, stopped = facts["stopped"][str(p)]
        for run in report.runs:
            assert (run.ran, run.stopped_at) == (ran, stopped), (p, run.path)
            assert run.exact
    plateau = out / "plateau.cbd"
    plateau.write_text(PLATEAU)
    runs, _ = read_runs([out / "plateau.csv", out / "tb_plateau"])
    same, other = sweep(plateau, runs, [{"patience": 2}, {"patience": 4}]).settings
    assert [(r.ran, r.exact) for r in same.runs] == [(facts["plateau_epochs"], True)] * 2
    if len(set(facts["plateau_lr"])) > 1:  # the rate was cut in training: patience 4 differs
        assert not any(r.exact for r in other.runs)
        assert all(r.counterfactual_from is not None for r in other.runs)


@pytest.mark.fit
def test_replays_of_keras_recorded_runs_stop_where_keras_stopped(tmp_path):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("in-process recording on the tensorflow backend")
    facts = json.loads(json.dumps(record(tmp_path)))
    _check_recorded(tmp_path, facts)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_replays_of_each_backends_recorded_runs(tmp_path, backend):
    facts = run_on_backend([str(WORKER), str(tmp_path)], backend, timeout=600)
    _check_recorded(tmp_path, facts)


def test_a_malformed_set_is_refused_in_one_run_and_in_a_sweep(tmp_path, capsys):
    (tmp_path / "p.cbd").write_text("param patience = 2\n"
                                    "use keras.early_stopping(patience = patience)\n")
    (tmp_path / "r.csv").write_text("epoch,loss\n0,1.0\n1,0.5\n")
    for sweeping in ([], ["--sweep", "patience=1,2"]):
        assert main(["replay", str(tmp_path / "p.cbd"), "--log", str(tmp_path / "r.csv"),
                     "--set", "1x=3", *sweeping]) == 2
        assert "--set takes NAME=VALUE, got '1x=3'" in capsys.readouterr().err
