"""The artifact specs of `cbdsl conform`: the registry, the comparison, the suite's section and
`--impl`, on the drop-ins and on deliberately wrong callbacks that must fail.

Every scenario is run against its drop-in in `test_csv_logger.py`, `test_model_checkpoint.py`
and `test_remote_monitor.py`; `test_conform.py` runs the `--quick` suite, artifacts included.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
from pathlib import Path

import keras
import pytest
from rich.console import Console

from cbdsl import callbacks as dropin
from cbdsl.cli import main
from cbdsl.conformance import artifacts
from cbdsl.conformance.artifacts import ARTIFACT_SPECS, check, divergence
from cbdsl.conformance.conform import (
    BACKENDS,
    Column,
    ColumnRun,
    SuiteOptions,
    plan_columns,
    render_suite,
    report,
    rows_of,
)
from cbdsl.conformance.examples import wrong
from cbdsl.conformance.specs import SPECS
from cbdsl.conformance.worker import run_artifacts

WRONG = "cbdsl.conformance.examples.wrong"
ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the registry


@pytest.mark.parametrize("spec", list(ARTIFACT_SPECS))
def test_each_spec_names_a_keras_class_its_drop_in_and_a_quick_subset(spec):
    owner = ARTIFACT_SPECS[spec]
    assert owner.reference() is getattr(keras.callbacks, owner.keras_name)
    assert owner.cbdsl() is getattr(dropin, owner.keras_name)
    ours = [p.name for p in inspect.signature(owner.cbdsl()).parameters.values()]
    keras_names = list(inspect.signature(owner.reference()).parameters)
    assert ours == keras_names
    names = [s.name for s in owner.scenarios]
    assert len(set(names)) == len(names) and set(owner.known) <= set(names)
    assert 0 < len(owner.selected(quick=True)) < len(names)
    assert all(s.description for s in owner.scenarios)


def test_a_spec_refuses_repeated_names_and_known_differences_of_no_scenario():
    scenario = ARTIFACT_SPECS["csv_logger"].scenarios[0]
    with pytest.raises(ValueError, match="repeat"):
        artifacts.ArtifactSpec("x", "CSVLogger", (scenario, scenario))
    with pytest.raises(ValueError, match="no scenario"):
        artifacts.ArtifactSpec("x", "CSVLogger", (scenario,), {"typo": "why"})


def test_the_suite_has_a_row_per_artifact_spec_after_the_decision_specs():
    # the multi-process jobs come last (`--quick` shows their row as not run, with why)
    assert rows_of(SuiteOptions()) == ["language", *SPECS, *ARTIFACT_SPECS, "distributed"]
    assert not set(SPECS) & set(ARTIFACT_SPECS)


# ------------------------------------------------------------------ the comparison


def test_equal_artifacts_have_no_divergence():
    artifact = {"error": None, "files": {"log.csv": "a,b\r\n"}, "weights": [[1.0, math.nan]],
                "printed": "", "warnings": []}
    assert divergence(artifact, json.loads(json.dumps(artifact))) is None


def test_a_text_differs_as_a_line_diff_with_line_ends_shown():
    found = divergence({"files": {"log.csv": "epoch,loss\r\n0,1.5\r\n1,1.0\r\n"}},
                       {"files": {"log.csv": "epoch;loss\r\n0;1.5\r\n1,1.0\n"}})
    assert found.splitlines() == [
        'files["log.csv"] differs (- expected, + actual):',
        "    @@ -1,3 +1,3 @@",
        "    - epoch,loss\\r\\n",
        "    - 0,1.5\\r\\n",
        "    - 1,1.0\\r\\n",
        "    + epoch;loss\\r\\n",
        "    + 0;1.5\\r\\n",
        "    + 1,1.0\\n",
    ]


def test_weights_differ_in_one_line_at_the_first_number():
    found = divergence({"saves": [{"file": "m1.keras", "weights": [[1.0, 2.0], [3.0]]}]},
                       {"saves": [{"file": "m1.keras", "weights": [[1.0, 2.5], [3.5]]}]})
    assert found == ("saves[0].weights: 2 of 3 numbers differ; the first, "
                     "saves[0].weights[0][1]: expected 2.0, actual 2.5")
    shape = divergence({"weights": [[1.0]]}, {"weights": [[1.0, 2.0]]})
    assert shape == "weights: shape [1, 2], expected [1, 1]"


def test_missing_extra_and_retyped_values_are_differences():
    found = divergence({"a": 1, "b": ["x", "y"], "c": 0}, {"b": ["x"], "c": 0.0, "d": True})
    assert found.splitlines() == [
        "a: missing (expected 1)",
        'b: 1 items, expected 2; missing: ["y"]',
        "c: expected 0, actual 0.0",
        "d: not expected (actual true)",
    ]


def test_errors_compare_by_kind_and_message():
    keras_error = {"type": "ValueError", "bases": ["ValueError", "Exception"], "message": "m"}
    subclass = {"type": "RequirementError", "bases": ["RequirementError", "ValueError",
                                                      "Exception"], "message": "m"}
    assert divergence({"error": keras_error}, {"error": subclass}) is None
    other = {"type": "RuntimeError", "bases": ["RuntimeError", "Exception"], "message": "m"}
    assert divergence({"error": keras_error}, {"error": other}) == \
        'error.type: expected "ValueError", actual "RuntimeError"'
    worded = {**subclass, "message": "n"}
    assert divergence({"error": keras_error}, {"error": worded}) == \
        'error.message: expected "m", actual "n"'
    assert divergence({"error": None}, {"error": other}).startswith("error: expected null")


def test_a_long_divergence_is_cut():
    found = divergence({str(i): i for i in range(20)}, {str(i): -i - 1 for i in range(20)})
    lines = found.splitlines()
    assert len(lines) == artifacts.MAX_DIFFERENCES + 1
    assert lines[-1] == f"... and {20 - artifacts.MAX_DIFFERENCES} more differences"


def test_describe_error_keeps_a_key_errors_own_message():
    assert artifacts.describe_error(KeyError("Failed: 'x'"))["message"] == "Failed: 'x'"
    assert artifacts.describe_error(OSError(2, "No such file"))["message"] == \
        "[Errno 2] No such file"


# ------------------------------------------------------------------ wrong callbacks


@pytest.mark.fit
@pytest.mark.parametrize(("spec", "name", "catching", "unaffected", "shows"), [
    ("csv_logger", "SemicolonCSVLogger", "three_epochs", "separator_semicolon",
     ["    - epoch,loss,mean_absolute_error,val_loss,val_mean_absolute_error\\r\\n",
      "    + epoch;loss;mean_absolute_error;val_loss;val_mean_absolute_error\\r\\n"]),
    ("model_checkpoint", "OffByOneCheckpoint", "every_epoch", "one_keras_file",
     ['saves[0].file: expected "m01-', 'actual "m00-']),
    ("remote_monitor", "OneBasedRemoteMonitor", "json", "unreachable_json",
     ['requests[0].body: expected "{\\"epoch\\": 0, ', 'actual "{\\"epoch\\": 1, ']),
])
def test_a_wrong_callback_fails_where_its_mistake_shows(tmp_path, spec, name, catching,
                                                        unaffected, shows):
    factory = getattr(wrong, name)
    caught = check(spec, catching, factory, folder=tmp_path / "caught")
    assert caught.status == "fail"
    for text in shows:
        assert text in caught.divergence, caught.divergence
    assert caught.divergence.startswith(f"scenario {spec}/{catching}: ")
    assert "built with " in caught.divergence
    # where the mistake cannot show, the same callback passes: the comparison is not
    # failing everything
    assert check(spec, unaffected, factory, folder=tmp_path / "unaffected").passed


# ------------------------------------------------------------------ the suite's section


class Steps:
    """Stands in for the worker's protocol."""

    def __init__(self):
        self.completed = 0.0

    def advance(self, amount, what):
        self.completed += amount


@pytest.mark.fit
def test_the_section_passes_the_drop_in_and_fails_a_wrong_one(monkeypatch):
    quick = ARTIFACT_SPECS["csv_logger"].selected(quick=True)
    section = run_artifacts("csv_logger", Steps(), quick=True)
    assert (section["status"], section["passed"], section["failed"]) == ("pass", len(quick), 0)
    assert section["left_out"]["count"] == len(ARTIFACT_SPECS["csv_logger"].scenarios) - len(
        quick)

    monkeypatch.setattr(type(ARTIFACT_SPECS["csv_logger"]), "cbdsl",
                        lambda self: wrong.SemicolonCSVLogger)
    section = run_artifacts("csv_logger", Steps(), quick=True)
    assert section["status"] == "fail" and section["failed"] == len(quick)
    run = ColumnRun(Column("jax", "cpu"), result={
        "rows": {"csv_logger": {"artifacts": section}}, "timings": {"artifacts": 1.0}})
    data = report(SuiteOptions(backends=("jax",), devices=("cpu",), specs=("csv_logger",)),
                  [run], 1.0)
    assert data["exit_status"] == 1
    assert data["cells"]["csv_logger"]["jax/cpu"]["status"] == "fail"
    console = Console(record=True, width=160)
    render_suite(data, console)
    text = console.export_text()
    assert f"FAIL artifacts {len(quick)}/{len(quick)}" in text
    assert "csv_logger · artifacts · three_epochs · on jax/cpu" in text
    assert "+ epoch;loss;" in text


@pytest.mark.fit
def test_a_known_difference_that_no_longer_differs_fails_the_section(monkeypatch):
    owner = ARTIFACT_SPECS["csv_logger"]
    listed = dataclasses.replace(owner, scenarios=owner.scenarios[:1],
                                 known={owner.scenarios[0].name: "said to differ"})
    monkeypatch.setitem(ARTIFACT_SPECS, "csv_logger", listed)
    section = run_artifacts("csv_logger", Steps())
    assert section["status"] == "fail"
    assert "take it out of ARTIFACT_SPECS['csv_logger'].known" in \
        section["failures"][0]["divergence"]


def test_known_differences_pass_the_cell_and_are_listed_once():
    section = {"status": "pass", "passed": 3, "failed": 0, "failures": [], "skipped": [],
               "xfailed": [{"name": "two_fits", "reason": "starts afresh",
                            "divergence": "saves: 2 items, expected 1"}]}
    runs = [ColumnRun(Column(b, "cpu"), result={"rows": {"model_checkpoint": {
        "artifacts": section}}, "timings": {}}) for b in ("jax", "torch")]
    data = report(SuiteOptions(backends=("jax", "torch"), devices=("cpu",),
                               specs=("model_checkpoint",)), runs, 1.0)
    assert data["exit_status"] == 0
    console = Console(record=True, width=200)
    render_suite(data, console)
    text = console.export_text()
    assert text.count("pass (1 known difference)") == 2
    assert text.count("model_checkpoint · artifacts · two_fits · on jax/cpu, torch/cpu: "
                      "starts afresh") == 1


def test_artifacts_run_on_the_cpu_columns_and_with_quick_on_one():
    full = {(c.key, tuple(s)): n for c, s, n in plan_columns(SuiteOptions())}
    for (key, sections), not_run in full.items():
        if key.endswith("/cpu"):
            assert "artifacts" in sections
        else:
            assert "artifacts" not in sections and "CPU only" in not_run["artifacts"]
    quick = plan_columns(SuiteOptions(quick=True, devices=("cpu",)))
    running = [c.backend for c, s, _ in quick if "artifacts" in s]
    assert len(running) == 1 and running[0] in BACKENDS
    for _, sections, not_run in quick:
        if "artifacts" not in sections:
            assert "--quick" in not_run["artifacts"]
    only = plan_columns(SuiteOptions(specs=("csv_logger",), devices=("cpu",)))
    assert {tuple(s) for _, s, _ in only} == {("artifacts",)}


# ------------------------------------------------------------------ --impl


def _conform(capsys, *args):
    status = main(["conform", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.fit
def test_impl_on_an_artifact_spec_fails_a_wrong_callback_and_takes_an_xfail_file(capsys,
                                                                                 tmp_path):
    path = tmp_path / "report.json"
    status, out, _ = _conform(capsys, "--impl", f"{WRONG}:SemicolonCSVLogger", "--spec",
                              "csv_logger", "--quick", "--json", str(path))
    assert status == 1
    data = json.loads(path.read_text())
    verdicts = {r["name"]: r["status"] for r in data["results"]}
    assert verdicts == {s.name: "fail" for s in ARTIFACT_SPECS["csv_logger"].selected(True)}
    assert "csv_logger/three_epochs: FAIL" in out and "+ epoch;loss;" in out
    xfail = tmp_path / "csv.xfail"
    xfail.write_text("".join(f"csv_logger/{n}  # semicolons\n" for n in verdicts))
    status, out, _ = _conform(capsys, "--impl", f"{WRONG}:SemicolonCSVLogger", "--spec",
                              "csv_logger", "--quick", "--xfail", str(xfail))
    assert status == 0, out
    assert "expected failure" in out


@pytest.mark.fit
@pytest.mark.parametrize("impl", ["keras.callbacks:ModelCheckpoint", "RULE_FILE"])
def test_impl_on_an_artifact_spec_passes_keras_and_the_rule_file(capsys, tmp_path, impl):
    impl = dropin.rule_file("model_checkpoint") if impl == "RULE_FILE" else impl
    path = tmp_path / "report.json"
    status, out, err = _conform(capsys, "--impl", impl, "--spec", "model_checkpoint",
                                "--quick", "--json", str(path))
    assert status == 0, out + err
    data = json.loads(path.read_text())
    assert [r["name"] for r in data["results"]] == [
        s.name for s in ARTIFACT_SPECS["model_checkpoint"].selected(True)]
    assert {r["status"] for r in data["results"]} == {"pass"}


def _rule_file_report(capsys, tmp_path, impl, spec, *options):
    """`cbdsl conform --impl IMPL --spec SPEC`, run from the repository's root as a user
    runs it there; the exit status, what it printed and its JSON report."""
    path = tmp_path / "report.json"
    status, out, err = _conform(capsys, "--impl", impl, "--spec", spec, *options,
                                "--json", str(path))
    return status, out + err, json.loads(path.read_text()) if path.exists() else None


@pytest.mark.fit
def test_impl_runs_a_rule_file_whose_scenarios_train_in_a_subprocess(capsys, tmp_path,
                                                                      monkeypatch):
    """BackupAndRestore's scenarios train in a subprocess, which builds the callback from the
    rule file's path: every scenario, as the drop-in passes them."""
    monkeypatch.chdir(ROOT)
    status, out, data = _rule_file_report(capsys, tmp_path, "rules/backup_and_restore.cbd",
                                          "backup_and_restore")
    assert status == 0, out
    assert {r["name"]: r["status"] for r in data["results"]} == {
        s.name: "pass" for s in ARTIFACT_SPECS["backup_and_restore"].scenarios}


@pytest.mark.fit
def test_impl_runs_a_rule_file_on_an_artifact_spec_in_this_process(capsys, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(ROOT)
    status, out, data = _rule_file_report(capsys, tmp_path, "rules/csv_logger.cbd",
                                          "csv_logger", "--quick")
    assert status == 0, out
    assert {r["name"]: r["status"] for r in data["results"]} == {
        s.name: "pass" for s in ARTIFACT_SPECS["csv_logger"].selected(quick=True)}


@pytest.mark.fit
def test_impl_fails_a_wrong_rule_file_in_a_subprocess_with_its_first_divergence(
        capsys, tmp_path):
    """BackupAndRestore with `delete_checkpoint` true by default no longer: the backup stays
    after training, and the report says so in one line."""
    text = (ROOT / "rules" / "backup_and_restore.cbd").read_text()
    assert "delete_checkpoint = true)" in text
    wrong_file = tmp_path / "backup_and_restore.cbd"
    wrong_file.write_text(text.replace("delete_checkpoint = true)", "delete_checkpoint = false)"))
    status, out, data = _rule_file_report(capsys, tmp_path, str(wrong_file),
                                          "backup_and_restore", "--quick")
    assert status == 1, out
    (result,) = data["results"]
    assert (result["name"], result["status"]) == ("killed_and_resumed", "fail")
    lines = result["divergence"].splitlines()
    assert lines[:3] == [
        "scenario backup_and_restore/killed_and_resumed: killed as epoch 3 begins: the new "
        "process resumes at epoch 3 with the weights of epoch 2's end",
        "built with BackupAndRestore(backup_dir='WORKDIR/backup')",
        "differences, expected (Keras's BackupAndRestore) against actual:"]
    assert lines[3].startswith('left: expected null, actual {"latest.weights.h5": "file", '
                               '"training_metadata.json": {"epoch": 5'), lines[3]
    assert len(lines) == 4, result["divergence"]  # the one difference, nothing else
    assert "backup_and_restore/killed_and_resumed: FAIL" in out


def test_a_factory_is_named_for_another_process_or_refused_in_words(tmp_path):
    """What a scenario that trains in a subprocess passes it: `module:name` of a factory at a
    module's top level, a rule file's absolute path, or the name given with `Named`."""
    from cbdsl.conformance.factories import Named, RuleFile, factory_name, import_factory

    assert import_factory(factory_name(wrong.SemicolonCSVLogger)) is wrong.SemicolonCSVLogger
    assert factory_name(dropin.BackupAndRestore) == "cbdsl.callbacks:BackupAndRestore"
    rule_file = RuleFile(os.path.relpath(dropin.rule_file("backup_and_restore")))
    assert factory_name(rule_file) == os.path.abspath(dropin.rule_file("backup_and_restore"))
    rebuilt = import_factory(factory_name(rule_file))
    assert isinstance(rebuilt, RuleFile) and rebuilt.path == rule_file.path
    callback = rebuilt(backup_dir=str(tmp_path))
    assert isinstance(callback, keras.callbacks.Callback)
    generated = type("BackupAndRestore", (), {"__module__": "cbdsl.compiled"})
    for unnamed in (lambda **arguments: None, generated):
        with pytest.raises(ValueError, match="cannot be built in another process"):
            factory_name(unnamed)
    named = Named(generated, "cbdsl.callbacks:BackupAndRestore")
    assert factory_name(named) == "cbdsl.callbacks:BackupAndRestore"
    assert isinstance(named(), generated)


def test_an_xfail_file_names_scenarios_of_an_artifact_spec(capsys, tmp_path):
    xfail = tmp_path / "x.xfail"
    xfail.write_text("generated\n")  # artifact specs have no generated traces
    status, _, err = _conform(capsys, "--impl", "keras.callbacks:CSVLogger", "--spec",
                              "csv_logger", "--xfail", str(xfail))
    assert status == 2 and "csv_logger has no case 'generated'" in err


# ------------------------------------------------------------------ models used again


@pytest.mark.fit
def test_a_model_used_again_leaves_the_same_artifacts_as_a_new_one(monkeypatch, tmp_path):
    owner = ARTIFACT_SPECS["model_checkpoint"]
    # saving as .h5 changes the model's compile config: the next use must make a new model
    runs = ["one_h5_file", "every_epoch"]
    reused = [artifacts.run_scenario(owner.scenario(n), owner.reference()) for n in runs]
    monkeypatch.setattr(artifacts, "REUSE_MODELS", False)
    fresh = [artifacts.run_scenario(owner.scenario(n), owner.reference()) for n in runs]
    for new, again in zip(fresh, reused, strict=True):
        assert divergence(new, again) is None
