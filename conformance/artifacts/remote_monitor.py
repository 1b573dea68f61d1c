"""RemoteMonitor's scenarios: the requests a local server receives during a fit."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from cbdsl.conformance.artifacts.http_server import Recorder, closed_port_root, comparable
from cbdsl.conformance.artifacts.models import fit_regression, logs_editor, regression_model
from cbdsl.conformance.artifacts.spec import Artifact, ArtifactSpec, Run, Scenario


def _requests_installed() -> str | None:
    if importlib.util.find_spec("requests") is None:
        return "RemoteMonitor posts with the requests library, which is not installed"
    return None


HEADERS = {"X-Api-Key": "s3cret", "X-Run": "tiny-dense"}


def remote_monitor(run: Run, *, epochs: int = 3, reachable: bool = True,
                   edit_logs: Callable[[int, dict], None] | None = None,
                   **arguments: Any) -> Artifact:
    """Fit the regression model with the monitor posting to a server started here (or to a
    closed port when not `reachable`).

    Returns:
        `requests`: what the server received (method, path, headers but Host, body);
        `dropped`: requests past `MAX_REQUESTS`; `history`: what the fit returned (the
        logs each epoch's request reports).
    """
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(Recorder()) if reachable else None
        root = server.root if server else closed_port_root()
        run.alias(root, "ROOT")
        model = regression_model(5)
        history = run.attempt(lambda: fit_regression(
            model, [*logs_editor(edit_logs), run.build(root=root, **arguments)], epochs=epochs))
    return {"requests": [comparable(r) for r in server.requests] if server else [],
            "dropped": server.dropped if server else 0,
            "history": history.history if history is not None else None}


def _numpy_values(epoch: int, logs: dict) -> None:
    logs.update(half=np.float32(0.25), acc=np.array(0.5), steps=np.int64(3), note="x")


def _remote(name: str, description: str, quick: bool = False, **params: Any) -> Scenario:
    return Scenario(name, description, remote_monitor, params, quick=quick,
                    needs=_requests_installed)


REMOTE = "remote_monitor"
REMOTE_SCENARIOS = (
    _remote("json", "send_as_json=True, a path and headers", quick=True,
            path="/runs/tiny/epoch/", headers=HEADERS, send_as_json=True),
    _remote("form", "a form field holding the JSON text, a path and headers", quick=True,
            path="/runs/tiny/epoch/", headers=HEADERS, field="metrics"),
    _remote("defaults", "only root: the default path and field, no headers", epochs=2),
    _remote("numpy_values_form", "NumPy scalars and 0-d arrays in the logs are sent as "
            "plain numbers (form)", epochs=2, edit_logs=_numpy_values),
    _remote("numpy_values_json", "NumPy values in the logs, send_as_json=True", epochs=2,
            edit_logs=_numpy_values, send_as_json=True),
    _remote("unreachable_form", "no server: a warning each epoch, and training goes on",
            reachable=False, headers=HEADERS),
    _remote("unreachable_json", "no server, send_as_json=True", reachable=False,
            headers=HEADERS, send_as_json=True),
)

SPEC = ArtifactSpec(REMOTE, "RemoteMonitor", REMOTE_SCENARIOS)
