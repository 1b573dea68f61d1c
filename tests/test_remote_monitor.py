"""`rules/remote_monitor.cbd` sends the requests `keras.callbacks.RemoteMonitor` sends.

The real fits are the `remote_monitor` scenarios of `cbdsl.conformance.artifacts`, which
`cbdsl conform` runs too: each fits once with Keras's class and once with the drop-in, each
posting to a server of its own on 127.0.0.1 (an ephemeral port) that records every request:
method, path, headers (the Host aside), body; with the warnings raised and the History
returned. The checks below also say what Keras sent in each scenario. Every server handles a
bounded number of requests, and every wait is bounded (socket timeouts, thread joins).
"""

from __future__ import annotations

import inspect
import json
import socket
import sys
import threading
import time
import urllib.parse
import warnings
from pathlib import Path

import keras
import pytest

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.cli import main
from cbdsl.conformance import artifacts
from cbdsl.conformance.artifacts import HEADERS, Recorder, closed_port_root
from cbdsl.diagnostics import CbdslCheckError

pytest.importorskip("requests")

RULE_FILE = Path(dropin.rule_file("remote_monitor"))
SPEC = artifacts.ARTIFACT_SPECS["remote_monitor"]
UNREACHABLE = "Could not reach RemoteMonitor root server at {}"


# -------------------------------------------------------------------- servers


class Hanging:
    """A server that accepts connections and never answers (until closed)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.root = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted: list[socket.socket] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.done.is_set():
            try:
                self.accepted.append(self.sock.accept()[0])
            except OSError:  # the 0.1 s poll, or the socket closed
                continue

    def __enter__(self) -> Hanging:
        self.thread.start()
        return self

    def close(self) -> None:
        self.done.set()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()

    def __exit__(self, *exc) -> None:
        self.close()


# ---------------------------------------------------------------------- fits


def fit(callbacks, epochs=3):
    return artifacts.fit_regression(artifacts.regression_model(5), callbacks, epochs=epochs)


def unreachable_warnings(caught) -> list[tuple[type, str]]:
    return [(w.category, str(w.message)) for w in caught
            if str(w.message).startswith("Could not reach")]


def decoded(request: dict, field: str | None) -> dict:
    """The payload of a request: its JSON body, or the JSON text of its form field."""
    if field is None:
        return json.loads(request["body"])
    body = request["body"]
    form = urllib.parse.parse_qs(body if isinstance(body, str) else body.decode("ascii"),
                                 strict_parsing=True)
    assert list(form) == [field] and len(form[field]) == 1, form
    return json.loads(form[field][0])


# ---------------------------------------------------------------------- real fits


def posted_the_history(field: str | None, path: str = "/runs/tiny/epoch/", epochs: int = 3,
                       headers: dict | None = HEADERS):
    def check(artifact: dict) -> None:
        assert not artifact["warnings"] and artifact["dropped"] == 0
        history = artifact["history"]
        assert len(artifact["requests"]) == epochs
        content_type = ("application/json" if field is None
                        else "application/x-www-form-urlencoded")
        for epoch, request in enumerate(artifact["requests"]):
            assert request["method"] == "POST" and request["path"] == path
            assert request["headers"]["Content-Type"] == content_type
            assert {k: request["headers"].get(k) for k in headers or {}} == (headers or {})
            payload = decoded(request, field)
            assert list(payload) == ["epoch", *history]
            assert payload == {"epoch": epoch, **{k: v[epoch] for k, v in history.items()}}
    return check


def plain_numbers(field: str | None):
    def check(artifact: dict) -> None:
        for epoch, request in enumerate(artifact["requests"]):
            payload = decoded(request, field)
            assert {k: payload[k] for k in ("epoch", "half", "acc", "steps", "note")} == {
                "epoch": epoch, "half": 0.25, "acc": 0.5, "steps": 3, "note": "x"}
    return check


def warned_each_epoch(artifact: dict) -> None:
    assert artifact["requests"] == [] and len(artifact["history"]["loss"]) == 3
    assert artifact["warnings"] == [f"UserWarning: {UNREACHABLE.format('ROOT')}"] * 3


# what Keras's artifact shows in each scenario (the drop-in's must equal it)
SHOWS = {
    "json": posted_the_history(None),
    "form": posted_the_history("metrics"),
    "defaults": posted_the_history("data", "/publish/epoch/end/", epochs=2, headers=None),
    "numpy_values_form": plain_numbers("data"),
    "numpy_values_json": plain_numbers(None),
    "unreachable_form": warned_each_epoch,
    "unreachable_json": warned_each_epoch,
}


def test_every_scenario_says_what_it_shows():
    assert list(SHOWS) == [s.name for s in SPEC.scenarios]


@pytest.mark.fit
@pytest.mark.parametrize("name", list(SHOWS))
def test_fit_posts_what_keras_posts(tmp_path, name):
    result = artifacts.check("remote_monitor", name, folder=tmp_path)
    assert result.passed, result.divergence
    SHOWS[name](result.expected)


def test_dropin_has_keras_arguments_and_defaults():
    ours = inspect.signature(dropin.RemoteMonitor).parameters
    theirs = list(inspect.signature(keras.callbacks.RemoteMonitor).parameters.values())
    assert [(p.name, p.default) for p in ours.values()] == [(p.name, p.default) for p in theirs]
    (definition,) = [d for d in cbdsl.check(RULE_FILE).definitions.values()
                     if d.node is not None]
    assert list(definition.params) == [p.name for p in theirs]
    for p in theirs:
        ours_default = definition.params[p.name].default
        assert ours_default == p.default or (p.default is None and ours_default == {}), p.name


@pytest.mark.filterwarnings("ignore:Could not reach")  # Keras's, from its thread
def test_hanging_server_times_out_and_warns_where_keras_keeps_waiting():
    with Hanging() as server:
        # Keras's class passes no timeout: its request waits as long as the server does.
        keras_done = threading.Event()

        def keras_epoch_end():
            keras.callbacks.RemoteMonitor(root=server.root).on_epoch_end(0, {"loss": 1.0})
            keras_done.set()

        waiting = threading.Thread(target=keras_epoch_end, daemon=True)
        waiting.start()
        start = time.monotonic()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            history = fit([dropin.RemoteMonitor(root=server.root)], epochs=1)
        took = time.monotonic() - start
        assert len(history.epoch) == 1
        assert unreachable_warnings(w) == [(UserWarning, UNREACHABLE.format(server.root))]
        assert 5 <= took < 25, took  # the rule file's 5 s timeout, once
        assert not keras_done.is_set() and waiting.is_alive()
        server.close()  # the server goes away: Keras's request ends, with its warning
        waiting.join(timeout=10)
        assert keras_done.is_set()


def test_missing_requests_is_keras_import_error(monkeypatch):
    import keras.src.callbacks.remote_monitor as keras_module

    monkeypatch.setattr(keras_module, "requests", None)
    with pytest.raises(ImportError) as theirs:
        keras.callbacks.RemoteMonitor().on_epoch_end(0, {"loss": 1.0})
    monkeypatch.setitem(sys.modules, "requests", None)  # `import requests` fails
    with pytest.raises(ImportError) as ours:
        dropin.RemoteMonitor().on_epoch_end(0, {"loss": 1.0})
    assert str(ours.value) == str(theirs.value) == "RemoteMonitor requires the `requests` library."


@pytest.mark.fit
@pytest.mark.parametrize("name", ["form", "json"])
def test_written_python_posts_what_keras_posts(tmp_path, name):
    from cbdsl.pythonize import pythonize

    namespace: dict = {"__name__": "written"}
    exec(compile(pythonize(cbdsl.check(RULE_FILE)), "<written>", "exec"), namespace)
    result = artifacts.check("remote_monitor", name, namespace["RemoteMonitor"],
                             folder=tmp_path)
    assert result.passed, result.divergence
    assert len(result.actual["requests"]) == 3


def test_rule_file_is_clean_and_in_the_canonical_layout(capsys):
    assert main(["check", "--strict", str(RULE_FILE)]) == 0
    assert main(["fmt", "--check", str(RULE_FILE)]) == 0


# ------------------------------------------------------------ the post action


def compile_one(source: str, **params):
    (callback,) = cbdsl.compile(source, **params)
    return callback


def test_post_without_else_raises_the_request_error():
    import requests

    cb = compile_one('on epoch_end do post json {"epoch": epoch} to url\nparam url = ""',
                     url=closed_port_root())
    with pytest.raises(requests.exceptions.ConnectionError):
        cb.on_epoch_end(0, {})


def test_post_else_runs_its_message_and_a_timeout_option_bounds_it(capsys):
    with Hanging() as server:
        cb = compile_one('param url = ""\n'
                         'on epoch_end do post form {"e": epoch} to url with timeout = 0.2 '
                         'else print "gave up at epoch {epoch}"', url=server.root)
        start = time.monotonic()
        cb.on_epoch_end(1, {})
        assert time.monotonic() - start < 3
    assert capsys.readouterr().out == "gave up at epoch 2\n"


def test_post_sends_a_table_as_form_fields_and_any_value_as_json():
    with Recorder() as server:
        cb = compile_one('param url = ""\n'
                         'on epoch_end do post form {"a": "1", "b": epoch} to url + "/f", '
                         'post json loss to url + "/j" with headers = {"X-A": "b"}',
                         url=server.root)
        cb.on_epoch_end(2, {"loss": 0.5})
    form, body = server.requests
    assert (form["path"], form["body"]) == ("/f", b"a=1&b=2")
    assert (body["path"], body["body"], body["headers"]["X-A"]) == ("/j", b"0.5", "b")


@pytest.mark.parametrize("source, code", [
    ('on epoch_end do post xml {"a": 1} to "http://h"', "E210"),
    ('on epoch_end do post form 3 to "http://h"', "E221"),
    ('on epoch_end do post json 3 to 4', "E221"),
    ('on epoch_end do post json 3 to "http://h" with tmeout = 1', "E210"),
    ('on epoch_end do post json 3 to "http://h" with timeout = "1"', "E211"),
    ('on epoch_end do post json 3 to "http://h" with headers = 2', "E211"),
    ('on epoch_end do post json 3 to "http://h" with (timeout = 1, timeout = 2)', "E218"),
])
def test_post_is_checked(source, code):
    with pytest.raises(CbdslCheckError) as info:
        cbdsl.check(source)
    assert code in {d.code for d in info.value.diagnostics}, str(info.value)
