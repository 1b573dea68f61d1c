"""Real `model.fit` on each installed Keras backend: the mission sentence vs ReduceLROnPlateau."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("fit_worker.py")
BACKENDS = ("tensorflow", "jax", "torch")


@pytest.mark.fit
@pytest.mark.parametrize("backend", BACKENDS)
def test_mission_sentence_reduces_lr_at_the_same_epochs_as_keras(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed (pip install 'cbdsl[{backend}]')")
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(WORKER), "30"], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    compiled, native = result["compiled"], result["native"]
    # the two seeded runs train identically until the policies act ...
    assert compiled["val_loss"] == pytest.approx(native["val_loss"], rel=1e-5)
    # ... and the policies act at the same epochs with the same learning rates
    assert compiled["lr"] == native["lr"]
    assert min(native["lr"]) < 0.05, "the run never reached a plateau: the test shows nothing"
