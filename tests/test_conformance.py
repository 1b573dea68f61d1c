"""The conformance suite: recorded cases, wrong implementations caught, differential traces."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, find, given, settings

from cbdsl.conformance import (
    SPECS,
    case_paths,
    first_divergence,
    load_case,
    run_case,
    run_spec,
    run_trace,
)
from cbdsl.conformance.differential import cases, divergence
from cbdsl.conformance.examples import wrong
from cbdsl.conformance.runner import run_language_case

CASES = [p for p in case_paths() if p.parent.name in SPECS]  # runtime cases of each built-in
LANGUAGE_CASES = case_paths("language")
EXAMPLES = int(os.environ.get("CBDSL_DIFF_EXAMPLES", "1000"))


def reference(spec: str):
    try:
        return SPECS[spec].reference()
    except LookupError as why:
        pytest.skip(f"{why} (the reference is needed live; its recorded cases still run)")


def test_every_spec_has_cases():
    assert {p.parent.name for p in case_paths()} == {*SPECS, "language"}
    assert all(len(case_paths(spec)) >= 3 for spec in SPECS)
    assert {load_case(p)["phase"] for p in LANGUAGE_CASES} == {"parse", "check", "compile"}


@pytest.mark.parametrize("path", LANGUAGE_CASES, ids=lambda p: p.stem)
def test_language_case(path):
    result = run_language_case(load_case(path))
    assert result.passed, result.divergence


def test_language_case_reports_a_wrong_position():
    case = load_case(case_paths("language")[0])
    case = {**case, "source": "on epoch_ned do stop", "phase": "check",
            "expected": {"error": {"code": "E201", "line": 1, "col": 5}}}
    result = run_language_case(case)
    assert not result.passed
    assert '"col": 5' in result.divergence and '"col": 4' in result.divergence


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recorded_expectation_is_what_keras_does(path):
    # the recorder and the driver are deterministic: replaying Keras gives the file again
    case = load_case(path)
    replay = run_trace(case, reference(case["spec"]), for_reference=True)
    found = first_divergence(case["expected"], replay)
    assert found is None, found


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_rule_file_passes_case(path):
    case = load_case(path)
    result = run_case(case, SPECS[case["spec"]].cbdsl())
    assert result.passed, result.divergence


# ------------------------------------------------ the suite catches wrong implementations


OffByOneEarlyStopping = wrong.OffByOnePatience  # stops one epoch late
WrongSignReduceLROnPlateau = wrong.WrongSignPlateau  # min_delta with the wrong sign


@pytest.mark.parametrize(("spec", "wrong"), [("early_stopping", OffByOneEarlyStopping),
                                             ("reduce_lr_on_plateau", WrongSignReduceLROnPlateau)])
def test_cases_catch_a_wrong_implementation(spec, wrong):
    failed = [r for r in run_spec(spec, wrong) if not r.passed]
    assert failed, f"no case of {spec} tells {wrong.__name__} from Keras"
    report = failed[0].divergence
    assert "expected" in report and "actual" in report


@pytest.mark.parametrize(("spec", "wrong"), [("early_stopping", OffByOneEarlyStopping),
                                             ("reduce_lr_on_plateau", WrongSignReduceLROnPlateau)])
def test_differential_finds_a_wrong_implementation(spec, wrong):
    found = find(cases(spec), lambda case: divergence(case, wrong) is not None,
                 settings=settings(max_examples=2000, deadline=None, database=None,
                                   suppress_health_check=list(HealthCheck)))
    report = divergence(found, wrong)
    assert report.startswith(f"{spec} with params")
    assert "expected (reference)" in report or "expected:" in report


def test_xfail_names_are_reported_as_expected_failures():
    failing = [r.name for r in run_spec("early_stopping", OffByOneEarlyStopping)
               if not r.passed]
    results = run_spec("early_stopping", OffByOneEarlyStopping, xfail=failing)
    assert all(r.ok for r in results)
    assert {r.name for r in results if r.xfail} == set(failing)


# ------------------------------------------------------------ differential


def _differential(spec: str, examples: int) -> None:
    candidate, ref = SPECS[spec].cbdsl(), reference(spec)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases(spec))
    def agree(case):
        found = divergence(case, candidate, ref)
        assert found is None, found

    agree()


@pytest.mark.parametrize("spec", list(SPECS))
def test_rule_file_agrees_with_keras_on_generated_traces(spec):
    _differential(spec, EXAMPLES)


@pytest.mark.slow
@pytest.mark.parametrize("spec", list(SPECS))
def test_rule_file_agrees_with_keras_on_100k_generated_traces(spec):
    _differential(spec, int(os.environ.get("CBDSL_DIFF_EXAMPLES_SLOW", "100000")))


def test_differential_compares_every_attribute_keras_stores():
    # decides as Keras's class does, but keeps its patience under its name one too high: the
    # generated traces catch it after training, in the attributes
    import keras

    class MisreportedPatience(keras.callbacks.EarlyStopping):
        def on_train_end(self, logs=None):
            super().on_train_end(logs)
            self.patience += 1

    case = {"spec": "early_stopping", "params": {"monitor": "loss", "patience": 1},
            "trace": [{"logs": {"loss": 1.0}}, {"logs": {"loss": 1.0}}]}
    report = divergence(case, MisreportedPatience)
    assert report is not None and "after training, attributes" in report
    assert '"patience": 1' in report and '"patience": 2' in report
    assert divergence(case, keras.callbacks.EarlyStopping) is None
