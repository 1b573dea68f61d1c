"""The pytest plugin: one test per conformance case, in a user's own test suite (pytester)."""

from __future__ import annotations

import importlib.metadata

import keras  # noqa: F401  (imported once here: see below)
import pytest

import cbdsl.conformance.differential  # noqa: F401
from cbdsl.conformance import case_paths

# pytester's in-process runs drop the modules each run imports, and a backend such as
# TensorFlow cannot be imported twice in one process: what the runs use is imported here.

pytest_plugins = ["pytester"]

CASES = len(case_paths("early_stopping"))


def test_the_plugin_is_registered_for_pytest():
    (entry,) = [e for e in importlib.metadata.entry_points(group="pytest11")
                if e.name == "cbdsl"]
    assert entry.value == "cbdsl.conformance.pytest_plugin"


def test_marker_runs_every_case_and_keras_passes(pytester):
    pytester.makepyfile("""
        import keras
        import pytest

        @pytest.mark.cbdsl_conformance("early_stopping", generated=30)
        def test_mine(conformance_case):
            conformance_case.check(keras.callbacks.EarlyStopping)
    """)
    result = pytester.runpytest("-v")
    result.assert_outcomes(passed=CASES + 1)
    result.stdout.fnmatch_lines(["*test_mine?early_stopping/plateau_stops? PASSED*",
                                 "*test_mine?early_stopping/generated? PASSED*"])


def test_the_frameworks_own_warnings_are_ignored_in_the_cases_only(pytester):
    pytester.makepyfile("""
        import warnings

        import keras
        import numpy as np
        import pytest

        @pytest.mark.cbdsl_conformance("reduce_lr_on_plateau")
        def test_mine(conformance_case):
            conformance_case.check(keras.callbacks.ReduceLROnPlateau)

        def test_my_own():
            warnings.warn("my own deprecation", DeprecationWarning)
            np.array(keras.Variable(1.0))  # the frameworks' warning, outside the cases
    """)
    result = pytester.runpytest("-W", "default")
    result.assert_outcomes(passed=len(case_paths("reduce_lr_on_plateau")) + 1)
    warned = {line.split("::")[1] for line in result.stdout.lines if ".py::test_" in line}
    assert warned == {"test_my_own"}, result.stdout.str()
    result.stdout.fnmatch_lines(["*DeprecationWarning: my own deprecation",
                                 "*DeprecationWarning: __array__ implementation doesn't accept*",
                                 "*2 warnings*"])


def test_a_wrong_callback_fails_with_the_divergence_side_by_side(pytester):
    pytester.makepyfile("""
        import pytest
        from cbdsl.conformance.examples.wrong import WrongSignMinDelta

        @pytest.mark.cbdsl_conformance("early_stopping")
        def test_mine(conformance_case):
            conformance_case.check(WrongSignMinDelta)
    """)
    result = pytester.runpytest()
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1 and outcomes["passed"] >= 1
    assert outcomes["failed"] + outcomes["passed"] == CASES
    result.stdout.fnmatch_lines([
        "*early_stopping/tie_at_min_delta (*tie_at_min_delta.json) diverges from Keras:",
        "*expected (reference)*actual",
        "*stop: expected true, actual false"])
    assert "Traceback" not in result.stdout.str()


def test_xfail_file_next_to_the_test_is_strict(pytester):
    pytester.makepyfile("""
        import pytest
        from cbdsl.conformance.examples.wrong import WrongSignMinDelta

        @pytest.mark.cbdsl_conformance("early_stopping", xfail="mine.xfail")
        def test_mine(conformance_case):
            conformance_case.check(WrongSignMinDelta)
    """)
    pytester.makefile(".xfail", mine="# nothing expected to fail yet\n")
    probe = pytester.runpytest("-q", "-rf")
    failing = sorted({line.split("[early_stopping/")[1].split("]")[0]
                      for line in probe.stdout.lines if line.startswith("FAILED")})
    assert failing
    pytester.makefile(".xfail", mine="".join(f"{name}  # sign flipped on purpose\n"
                                             for name in failing))
    result = pytester.runpytest()
    result.assert_outcomes(passed=CASES - len(failing), xfailed=len(failing))
    # a case that passes but is listed fails the run, so the file never goes stale
    pytester.makefile(".xfail", mine="".join(f"{n}\n" for n in [*failing, "plateau_stops"]))
    result = pytester.runpytest("-rX")
    result.assert_outcomes(passed=CASES - len(failing) - 1, xfailed=len(failing), failed=1)
    result.stdout.fnmatch_lines(["*test_mine?early_stopping/plateau_stops?*",
                                 "?XPASS(strict)? listed as an expected failure"])


def test_xfail_as_a_list_and_unknown_names(pytester):
    pytester.makepyfile("""
        import keras
        import pytest

        @pytest.mark.cbdsl_conformance("history", xfail=["no_such_case"])
        def test_mine(conformance_case):
            conformance_case.check(keras.callbacks.History)
    """)
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*history has no case 'no_such_case'*"])
    assert "Traceback" not in result.stdout.str()


def test_unknown_spec_and_missing_marker_are_reported(pytester):
    pytester.makepyfile(test_spec="""
        import pytest

        @pytest.mark.cbdsl_conformance("early_stoping")
        def test_mine(conformance_case):
            pass
    """)
    result = pytester.runpytest("test_spec.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*unknown spec 'early_stoping'; specs: early_stopping*"])
    pytester.makepyfile(test_bare="""
        def test_mine(conformance_case):
            pass
    """)
    result = pytester.runpytest("test_bare.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs @pytest.mark.cbdsl_conformance(SPEC)*"])


@pytest.mark.parametrize("spec", ["learning_rate_scheduler", "lambda_callback"])
def test_python_function_arguments_reach_a_keras_class(pytester, spec):
    # a schedule or hooks are Python functions for the user's class, whatever the case says
    pytester.makepyfile(f"""
        import keras
        import pytest

        @pytest.mark.cbdsl_conformance("{spec}")
        def test_mine(conformance_case):
            conformance_case.check(getattr(keras.callbacks, "{spec.title().replace('_', '')}"))
    """)
    result = pytester.runpytest()
    result.assert_outcomes(passed=len(case_paths(spec)))
