"""`cbdsl conform`: the suite's table and report, --impl on wrong and right callbacks."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import keras
import pytest
from rich.console import Console

from cbdsl.cli import main
from cbdsl.conformance import SPECS, case_paths, load_case, run_case, run_spec
from cbdsl.conformance.artifacts import ARTIFACT_SPECS
from cbdsl.conformance.conform import (
    BACKENDS,
    DEVICES,
    Column,
    ColumnRun,
    SuiteOptions,
    UsageError,
    read_xfail,
    render_suite,
    report,
)
from cbdsl.conformance.examples import wrong
from cbdsl.conformance.fit import RUNS
from cbdsl.conformance.worker import run_cases

WRONG = "cbdsl.conformance.examples.wrong"


# ------------------------------------------------------------------ the suite


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """`cbdsl conform --quick --json PATH`, run once as a user runs it."""
    path = tmp_path_factory.mktemp("conform") / "report.json"
    env = {**os.environ, "COLUMNS": "150", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-m", "cbdsl", "conform", "--quick", "--json",
                           str(path)], env=env, capture_output=True, text=True, timeout=600)
    return done, json.loads(path.read_text())


def test_quick_run_passes_every_installed_backend(quick):
    done, data = quick
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert data["exit_status"] == 0
    assert data["rows"] == ["language", *SPECS, *ARTIFACT_SPECS, "distributed"]
    assert list(data["columns"]) == [f"{b}/{d}" for d in DEVICES for b in BACKENDS]
    for backend in BACKENDS:
        cpu = [data["cells"][row][f"{backend}/cpu"] for row in ["language", *SPECS]]
        if importlib.util.find_spec(backend) is None:
            assert all(c["status"] == "skipped" and "not installed" in c["reason"] for c in cpu)
            continue
        assert all(c["status"] == "pass" for c in cpu), backend
        sections = data["cells"]["early_stopping"][f"{backend}/cpu"]["sections"]
        assert sections["cases"]["passed"] == len(case_paths("early_stopping"))
        assert sections["differential"]["passed"] == 25
        assert set(data["timings"][f"{backend}/cpu"]) >= {
            "startup", "language", "cases", "differential", "total"}


def test_quick_run_fits_on_one_backend_and_says_why_not_the_others(quick):
    _, data = quick
    fits = {key: data["cells"]["early_stopping"][key]["sections"].get("fit")
            for key in data["columns"] if key.endswith("/cpu")}
    ran = [key for key, fit in fits.items() if fit and fit["status"] == "pass"]
    assert len(ran) == 1
    assert fits[ran[0]]["passed"] == sum(spec == "early_stopping" for spec, _, _ in RUNS.values())
    for key, fit in fits.items():
        if key not in ran and fit is not None:
            assert fit["status"] == "skipped" and "--quick" in fit["reason"]
    base_logger = data["cells"]["base_logger"][ran[0]]["sections"]["fit"]
    assert base_logger["status"] == "skipped" and "BaseLogger" in base_logger["reason"]
    # the artifacts' quick subset, on the same backend; the other columns say why not
    for spec, owner in ARTIFACT_SPECS.items():
        for key in fits:
            cell = data["cells"][spec][key]
            section = cell["sections"]["artifacts"]
            if key != ran[0]:
                assert cell["status"] == "skipped" and "--quick" in cell["reason"]
                continue
            assert cell["status"] == "pass", section
            quick = owner.selected(quick=True)
            assert section["passed"] + len(section["xfailed"]) + len(section["skipped"]) == \
                len(quick)
            assert section["left_out"]["count"] == len(owner.scenarios) - len(quick)
        assert "artifacts" in data["timings"][ran[0]]


def test_gpu_cells_pass_or_say_why_they_were_skipped(quick):
    _, data = quick
    for row in data["rows"]:
        for backend in BACKENDS:
            cell = data["cells"][row][f"{backend}/gpu"]
            assert cell["status"] in ("pass", "skipped")
            if cell["status"] == "skipped":
                assert backend in cell["reason"] or "CPU only" in cell["reason"]


def test_quick_run_prints_the_table_and_the_time_per_section(quick):
    done, data = quick
    out = done.stdout
    assert "rule file" in out and "Time per section" in out
    for row in data["rows"]:
        assert row in out
    gpu_reasons = {data["cells"]["history"][f"{b}/gpu"].get("reason") for b in BACKENDS}
    for reason in gpu_reasons - {None}:
        assert reason in out  # skipped cells carry their reason, as a footnote
    assert f"wall time {data['wall_s']:.1f}s" in out


def test_coverage_matrix_of_language_features_by_cases(quick):
    _, data = quick
    coverage = data["coverage"]
    cases = [load_case(p) for p in case_paths()]
    assert coverage["cases"] == [f"{c['spec']}/{c['name']}" for c in cases]
    assert len(coverage["matrix"]) == len(coverage["features"])
    for feature, row in zip(coverage["features"], coverage["matrix"], strict=True):
        assert len(row) == len(cases)
        covering = [n for n, hit in zip(coverage["cases"], row, strict=True) if hit]
        assert covering == coverage["covered_by"][feature]
    assert coverage["uncovered"] == [f for f in coverage["features"]
                                     if not coverage["covered_by"][f]]
    for case in cases:
        name = f"{case['spec']}/{case['name']}"
        error = case["expected"].get("error") or {}
        if case["spec"] == "language" and error.get("code"):
            code = error["code"]
            assert name in coverage["covered_by"][f"diagnostic:{code}"]
        if case["spec"] == "early_stopping":
            # the rule file's `stop` is covered exactly by the cases where Keras stopped
            stopped = any(e["stop"] for e in case["expected"]["events"])
            assert (name in coverage["covered_by"]["syntax:stop"]) == stopped, name


class Steps:
    """Stands in for the worker's protocol: counts the work done."""

    def __init__(self):
        self.completed = 0.0

    def advance(self, amount, what):
        self.completed += amount


def test_a_wrong_rule_file_fails_its_cell_with_the_divergence(monkeypatch):
    # the built-in's factory replaced by a wrong implementation, as a wrong rule file would be
    monkeypatch.setattr(type(SPECS["early_stopping"]), "cbdsl",
                        lambda self: wrong.OffByOnePatience)
    section = run_cases("early_stopping", Steps())
    assert section["status"] == "fail"
    assert section["failed"] + section["passed"] == len(case_paths("early_stopping"))
    names = {f["name"] for f in section["failures"]}
    assert "plateau_stops" in names
    run = ColumnRun(Column("jax", "cpu"), result={
        "rows": {"early_stopping": {"cases": section}}, "timings": {"cases": 1.0}})
    data = report(SuiteOptions(backends=("jax",), devices=("cpu",), specs=("early_stopping",)),
                  [run], 1.0)
    assert data["exit_status"] == 1
    assert data["cells"]["early_stopping"]["jax/cpu"]["status"] == "fail"
    console = Console(record=True, width=160)
    render_suite(data, console)
    text = console.export_text()
    assert f"FAIL cases {section['failed']}/{len(case_paths('early_stopping'))}" in text
    assert "early_stopping · cases · plateau_stops · on jax/cpu" in text
    assert "expected (reference)" in text


# ------------------------------------------------------------- one callback


def _impl(capsys, *args):
    status = main(["conform", *args])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize(("name", "spec", "catching"), [
    ("OffByOnePatience", "early_stopping", "plateau_stops"),
    ("WrongSignMinDelta", "early_stopping", "tie_at_min_delta"),
    ("OffByOnePlateau", "reduce_lr_on_plateau", "plateau_reduces"),
    ("WrongSignPlateau", "reduce_lr_on_plateau", "tie_at_min_delta"),
])
def test_impl_catches_a_wrong_implementation(capsys, tmp_path, name, spec, catching):
    path = tmp_path / "report.json"
    status, out, _ = _impl(capsys, "--impl", f"{WRONG}:{name}", "--spec", spec,
                           "--examples", "300", "--seed", "1", "--json", str(path))
    assert status == 1
    data = json.loads(path.read_text())
    verdicts = {r["name"]: r["status"] for r in data["results"]}
    assert verdicts[catching] == "fail"
    assert verdicts["generated"] == "fail"  # the generated traces find it too
    assert set(verdicts) == {p.stem for p in case_paths(spec)} | {"generated"}
    failed = next(r for r in data["results"] if r["name"] == catching)
    # the first divergence, side by side, in the report and on the screen
    assert "expected (reference)" in failed["divergence"]
    assert f"{spec}/{catching}: FAIL" in out
    assert failed["divergence"].splitlines()[-1] in out
    assert data["summary"]["fail"] == sum(s == "fail" for s in verdicts.values())


REFERENCES = {spec: f"keras.callbacks:{s.keras_name}" for spec, s in SPECS.items()}
REFERENCES["base_logger"] = "tf_keras.callbacks:BaseLogger"


@pytest.mark.parametrize("spec", list(SPECS))
def test_impl_passes_the_keras_classes_themselves(capsys, tmp_path, spec):
    module = REFERENCES[spec].partition(":")[0]
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{module} is not installed")
    path = tmp_path / "report.json"
    status, out, err = _impl(capsys, "--impl", REFERENCES[spec], "--spec", spec,
                             "--examples", "50", "--json", str(path))
    data = json.loads(path.read_text())
    assert status == 0, out + err
    assert {r["status"] for r in data["results"]} == {"pass"}
    assert len(data["results"]) == len(case_paths(spec)) + 1


def test_impl_runs_a_rule_file(capsys):
    from cbdsl.callbacks import rule_file

    status, out, _ = _impl(capsys, "--impl", rule_file("learning_rate_scheduler"), "--spec",
                           "learning_rate_scheduler", "--examples", "30")
    assert status == 0, out
    assert "table_as_table" in out and "FAIL" not in out


def test_impl_gives_a_rule_file_the_arguments_as_it_takes_them(capsys, tmp_path):
    """BaseLogger's `stateful_metrics` is a list of names for the class and a table for the
    rule file (as the drop-in passes it): every case passes the rule file itself."""
    from cbdsl.callbacks import rule_file

    path = tmp_path / "report.json"
    status, out, err = _impl(capsys, "--impl", rule_file("base_logger"), "--spec",
                             "base_logger", "--examples", "30", "--json", str(path))
    assert status == 0, out + err
    results = {r["name"]: r["status"] for r in json.loads(path.read_text())["results"]}
    assert results["stateful_metrics"] == "pass"
    assert set(results.values()) <= {"pass", "skipped"}  # generated: skipped without tf_keras


def test_the_class_name_in_keras_messages_is_not_a_divergence():
    # Keras words this error with `self.__class__.__name__`: a subclass's own name is
    # read as the reference's
    case = load_case(next(p for p in case_paths("early_stopping")
                          if p.stem == "mode_auto_unknown_metric"))
    assert "EarlyStopping callback received" in case["expected"]["error"]["message"]
    assert run_case(case, wrong.OffByOnePatience, python_functions=True).passed

    class Renamed(keras.callbacks.EarlyStopping):
        def _set_monitor_op(self):
            raise ValueError("Renamed callback received an unknown metric")

    assert not run_case(case, Renamed, python_functions=True).passed


def _case(spec, name):
    return load_case(next(p for p in case_paths(spec) if p.stem == name))


def test_an_error_while_building_the_callback_is_shown_with_its_message():
    result = run_case(_case("early_stopping", "baseline_reached"), wrong.NoBaseline,
                      python_functions=True)
    assert not result.passed
    lines = result.divergence.splitlines()
    assert lines[0] == "14 events expected, 0 happened: building the callback raised TypeError"
    assert "error: expected none (the run ended normally)" in result.divergence
    # the message as the class raised it, under its own name
    assert ("actual   TypeError while building the callback: NoBaseline.__init__() got an "
            "unexpected keyword argument 'baseline'") in result.divergence


def test_an_error_raised_in_a_hook_is_shown_where_it_was_raised():
    result = run_case(_case("early_stopping", "plateau_stops"), wrong.BoomAtSecondEpoch,
                      python_functions=True)
    assert "happened: the callback raised RuntimeError" in result.divergence.splitlines()[0]
    assert "epoch_end 1 lr=0.10000000149011612 stop=False !RuntimeError" in result.divergence
    assert "actual   RuntimeError in epoch_end 1 (event 4): boom" in result.divergence


def test_an_expected_error_is_shown_with_keras_message():
    result = run_case(_case("early_stopping", "mode_auto_unknown_metric"),
                      wrong.GuessedDirection, python_functions=True)
    assert result.divergence.splitlines()[0] == (
        "3 events expected, 6 happened: ValueError expected, none raised")
    assert ("error: expected ValueError in epoch_end 0 (event 2): EarlyStopping callback "
            "received monitor=val_score, but Keras isn't able to automatically determine"
            ) in result.divergence
    assert "actual   none (the run ended normally)" in result.divergence


def test_two_errors_that_differ_are_both_shown():
    class Refusing(keras.callbacks.EarlyStopping):
        def _set_monitor_op(self):
            raise KeyError("no direction")

    result = run_case(_case("early_stopping", "mode_auto_unknown_metric"), Refusing,
                      python_functions=True)
    assert result.divergence.splitlines()[0] == "the error differs"
    assert "expected ValueError in epoch_end 0 (event 2): EarlyStopping" in result.divergence
    assert "actual   KeyError in epoch_end 0 (event 2): 'no direction'" in result.divergence


def test_impl_report_shows_the_exception(capsys, tmp_path):
    path = tmp_path / "report.json"
    status, out, _ = _impl(capsys, "--impl", f"{WRONG}:NoBaseline", "--spec",
                           "early_stopping", "--examples", "0", "--json", str(path))
    assert status == 1
    failed = {r["name"]: r["divergence"] for r in json.loads(path.read_text())["results"]
              if r["status"] == "fail"}
    assert set(failed) == {"baseline_reached", "baseline_never_reached"}
    assert "unexpected keyword argument 'baseline'" in failed["baseline_reached"]
    assert "building the callback raised TypeError" in out


def test_run_spec_treats_xfail_lists_as_the_command_does(tmp_path):
    failing = [r.name for r in run_spec("early_stopping", wrong.OffByOnePatience,
                                        python_functions=True) if not r.passed]
    assert failing
    results = run_spec("early_stopping", wrong.OffByOnePatience, python_functions=True,
                       xfail=[*failing, "reduce_lr_on_plateau/cooldown_0", "generated"])
    assert all(r.ok for r in results)
    assert {r.name for r in results if r.status == "xfail"} == set(failing)
    # a listed case that passes is an unexpected pass, not a pass
    passing = next(r.name for r in results if r.status == "pass")
    results = run_spec("early_stopping", wrong.OffByOnePatience, python_functions=True,
                       xfail=[*failing, passing])
    unexpected = [r for r in results if not r.ok]
    assert [(r.name, r.status) for r in unexpected] == [(passing, "xpass")]
    assert str(unexpected[0]) == (f"early_stopping/{passing}: XPASS (listed as an expected "
                                  "failure, but passed)")
    # a misspelled name is an error, as in an xfail file; so is a file that names one
    with pytest.raises(ValueError, match=r"xfail item 2: early_stopping has no case "
                                         r"'plateau_stop'; did you mean 'plateau_stops'\?"):
        run_spec("early_stopping", wrong.OffByOnePatience, xfail=[failing[0], "plateau_stop"])
    path = tmp_path / "mine.xfail"
    path.write_text("".join(f"{n}  # counts from 0\n" for n in failing))
    results = run_spec("early_stopping", wrong.OffByOnePatience, python_functions=True,
                       xfail=str(path))
    assert {r.name for r in results if r.xfail} == set(failing)
    path.write_text("plateau_stop\n")
    with pytest.raises(UsageError, match=r"mine\.xfail:1: early_stopping has no case"):
        run_spec("early_stopping", wrong.OffByOnePatience, xfail=path)
    with pytest.raises(ValueError, match="no recorded cases for spec 'early_stop'"):
        run_spec("early_stop", wrong.OffByOnePatience)


def test_xfail_file_turns_known_failures_into_expected_ones(capsys, tmp_path):
    path = tmp_path / "report.json"
    _impl(capsys, "--impl", f"{WRONG}:OffByOnePatience", "--spec", "early_stopping",
          "--examples", "0", "--json", str(path))
    failing = [r["name"] for r in json.loads(path.read_text())["results"]
               if r["status"] == "fail"]
    xfail = tmp_path / "early_stopping.xfail"
    xfail.write_text("# our EarlyStopping counts patience from 0\n"
                     + "".join(f"early_stopping/{n}  # stops late\n" for n in failing)
                     + "reduce_lr_on_plateau/cooldown_0\n\n")
    status, out, _ = _impl(capsys, "--impl", f"{WRONG}:OffByOnePatience", "--spec",
                           "early_stopping", "--examples", "0", "--xfail", str(xfail),
                           "--json", str(path))
    data = json.loads(path.read_text())
    assert status == 0, out
    assert {r["name"] for r in data["results"] if r["status"] == "xfail"} == set(failing)
    assert data["summary"]["fail"] == 0 and "expected failure" in out
    # a listed case that passes is reported and fails the run, so the file stays true
    passing = next(r["name"] for r in data["results"] if r["status"] == "pass")
    xfail.write_text(xfail.read_text() + f"{passing}\n")
    status, out, _ = _impl(capsys, "--impl", f"{WRONG}:OffByOnePatience", "--spec",
                           "early_stopping", "--examples", "0", "--xfail", str(xfail))
    assert status == 1
    assert f"{passing}: XPASS" in out


def test_read_xfail(tmp_path):
    path = tmp_path / "x.xfail"
    path.write_text("tie_at_min_delta   # min_delta is inclusive here\n"
                    "history/empty_logs\n# a comment\n\ngenerated\n")
    assert read_xfail(path, "early_stopping") == {
        "tie_at_min_delta": "min_delta is inclusive here", "generated": ""}
    path.write_text("tie_at_min_delta\nplateau_stop\n")
    with pytest.raises(UsageError, match=r"x.xfail:2: early_stopping has no case 'plateau_stop'"):
        read_xfail(path, "early_stopping")


@pytest.mark.parametrize(("args", "message"), [
    (["--impl", "no_such_module:EarlyStopping", "--spec", "early_stopping"],
     "no module named 'no_such_module'"),
    (["--impl", "keras.callbacks:NoSuchCallback", "--spec", "early_stopping"],
     "'keras.callbacks' has no attribute 'NoSuchCallback'"),
    (["--impl", "keras:__version__", "--spec", "early_stopping"],
     "__version__ is a str, not a callback class or factory"),
    (["--impl", "EarlyStopping", "--spec", "early_stopping"], "--impl takes MODULE:NAME"),
    (["--impl", "keras.callbacks:EarlyStopping"], "--impl needs one --spec"),
    (["--impl", "keras.callbacks:EarlyStopping", "--spec", "early_stop"],
     "unknown spec 'early_stop'"),
    (["--impl", "keras.callbacks:EarlyStopping", "--spec", "early_stopping", "--xfail",
      "/no/such.xfail"], "cannot read xfail file /no/such.xfail"),
    (["--impl", "missing.cbd", "--spec", "early_stopping"], "no such rule file: missing.cbd"),
    (["--impl", "keras.callbacks:EarlyStopping", "--spec", "early_stopping", "--device",
      "gpu"], "--device goes with the whole suite"),
    (["--backend", "theano"], "unknown backend 'theano'"),
    (["--jobs", "0"], "--jobs must be 1 or more"),
    (["--xfail", "x.xfail"], "--xfail goes with --impl"),
    (["--json", "/no/such/folder/report.json"], "no such folder"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    status, out, err = _impl(capsys, *args)
    assert status == 2
    assert err.startswith("cbdsl conform: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err + out


def test_impl_module_that_fails_to_import_is_a_usage_error(capsys, tmp_path, monkeypatch):
    (tmp_path / "broken_callbacks.py").write_text("raise RuntimeError('half-written')\n")
    monkeypatch.chdir(tmp_path)  # the current folder is searched, as `python -m` does
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", os.getcwd())])
    status, _, err = _impl(capsys, "--impl", "broken_callbacks:EarlyStopping", "--spec",
                           "early_stopping")
    assert status == 2
    assert "importing 'broken_callbacks' failed: RuntimeError: half-written" in err
