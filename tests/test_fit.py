"""Real `model.fit` on each installed Keras backend: the mission sentence vs ReduceLROnPlateau."""

from __future__ import annotations

from pathlib import Path

import pytest
from backend_run import run_on_backend

from cbdsl.conformance.fit import RUNS

WORKER = Path(__file__).with_name("fit_worker.py")
BACKENDS = ("tensorflow", "jax", "torch")


@pytest.mark.fit
@pytest.mark.parametrize("backend", BACKENDS)
def test_mission_sentence_reduces_lr_at_the_same_epochs_as_keras(backend):
    result = run_on_backend([str(WORKER), "30"], backend, timeout=600)
    compiled, native = result["compiled"], result["native"]
    # the two seeded runs train identically until the policies act ...
    assert compiled["val_loss"] == pytest.approx(native["val_loss"], rel=1e-5)
    # ... and the policies act at the same epochs with the same learning rates
    assert compiled["lr"] == native["lr"]
    assert min(native["lr"]) < 0.05, "the run never reached a plateau: the test shows nothing"


@pytest.fixture(scope="module", params=BACKENDS)
def builtin_runs(request):
    """Every built-in rule file and its Keras class on the same seeded `fit`, per backend."""
    return run_on_backend(["-m", "cbdsl.conformance.fit"], request.param,
                          timeout=900)["results"]


SPEC_NAMES = tuple(RUNS)  # the runs `cbdsl conform` makes (cbdsl.conformance.fit)


@pytest.mark.fit
@pytest.mark.parametrize("spec", SPEC_NAMES)
def test_builtin_rule_file_trains_exactly_like_keras(builtin_runs, spec):
    keras_run, cbdsl_run = builtin_runs[spec]["keras"], builtin_runs[spec]["cbdsl"]
    # learning rate per epoch, stop epoch and batch, History, messages, hook calls, errors,
    # and the final weights bit for bit
    for key in keras_run:
        assert cbdsl_run[key] == keras_run[key], f"{spec}: {key} differs"


@pytest.mark.fit
def test_builtin_fit_runs_exercise_the_behaviour(builtin_runs):
    # guard against a test that shows nothing: each run must reach what it is about
    runs = {name: pair["keras"] for name, pair in builtin_runs.items()}
    assert runs["early_stopping"]["epochs_run"] < 12
    assert "Restoring model weights" in runs["early_stopping"]["printed"]
    assert "early stopping" in runs["early_stopping_baseline"]["printed"]
    assert len(set(runs["reduce_lr_on_plateau"]["lr"])) > 2
    assert runs["reduce_lr_on_plateau"]["lr"][-1] == pytest.approx(0.01)
    assert len(set(runs["learning_rate_scheduler"]["lr"])) > 5
    assert runs["terminate_on_nan"]["error"] is None
    assert "Invalid loss" in runs["terminate_on_nan"]["printed"]
    assert "NaN or Inf loss" in runs["terminate_on_nan_raise"]["error"]
    assert len(runs["lambda_callback"]["calls"]) == 14
