"""Running a worker on one Keras backend in a process of its own, for the per-backend tests."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from typing import Any

import pytest


def run_on_backend(args: list[str], backend: str, timeout: int, **kwargs: Any) -> dict:
    """Run `python ARGS` with `KERAS_BACKEND=backend` (CPU only) and return the JSON of its
    last output line, checked to name that backend; skip when the backend is not installed."""
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} backend is not installed (pip install 'cbdsl[{backend}]')")
    env = {**os.environ, "KERAS_BACKEND": backend, "CUDA_VISIBLE_DEVICES": "",
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend
    return result
