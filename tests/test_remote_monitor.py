"""`rules/remote_monitor.cbd` sends the requests `keras.callbacks.RemoteMonitor` sends.

Each test serves HTTP on 127.0.0.1 (an ephemeral port, one server thread per callback) and
records every request: method, path, headers, body. Keras's class and the drop-in sit side by
side in one `fit`'s callback list, so both see the same logs, each posting to its own server;
what Keras's server received is the expected value. Every server handles a known number of
requests, and every wait is bounded (socket timeouts, thread joins).
"""

from __future__ import annotations

import http.server
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
import numpy as np
import pytest
from tiny_fit import data, tiny_model

import cbdsl
from cbdsl import callbacks as dropin
from cbdsl.cli import main
from cbdsl.diagnostics import CbdslCheckError

pytest.importorskip("requests")

RULE_FILE = Path(dropin.rule_file("remote_monitor"))
HEADERS = {"X-Api-Key": "s3cret", "X-Run": "tiny-dense"}
UNREACHABLE = "Could not reach RemoteMonitor root server at {}"


# -------------------------------------------------------------------- servers


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP server on an ephemeral port of 127.0.0.1 that records each POST it answers."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[dict] = []
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=5)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = 5  # a stuck client cannot hold the server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.requests.append({"method": self.command, "path": self.path,
                                     "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:  # quiet
        pass


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


def closed_port_root() -> str:
    """A root URL on a port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ---------------------------------------------------------------------- fits


def fit(callbacks, epochs=3):
    x, y = data()
    return tiny_model(5).fit(x, y, batch_size=16, epochs=epochs, validation_split=0.25,
                            verbose=0, callbacks=callbacks)


def unreachable_warnings(caught) -> list[tuple[type, str]]:
    return [(w.category, str(w.message)) for w in caught
            if str(w.message).startswith("Could not reach")]


def decoded(request: dict, field: str | None) -> dict:
    """The payload of a request: its JSON body, or the JSON text of its form field."""
    if field is None:
        return json.loads(request["body"])
    form = urllib.parse.parse_qs(request["body"].decode("ascii"), strict_parsing=True)
    assert list(form) == [field] and len(form[field]) == 1, form
    return json.loads(form[field][0])


def comparable(request: dict) -> dict:
    """A request without what differs between two servers: the port in the Host header."""
    headers = {k: v for k, v in request["headers"].items() if k != "Host"}
    return {**request, "headers": headers}


# ---------------------------------------------------------------------- tests


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


@pytest.mark.parametrize("send_as_json", [False, True], ids=["form", "json"])
def test_fit_posts_what_keras_posts(send_as_json):
    path = "/runs/tiny/epoch/"
    field = None if send_as_json else "metrics"
    kwargs = {"path": path, "headers": HEADERS, "send_as_json": send_as_json,
              **({} if send_as_json else {"field": field})}
    with Recorder() as theirs, Recorder() as ours, warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        history = fit([keras.callbacks.RemoteMonitor(root=theirs.root, **kwargs),
                       dropin.RemoteMonitor(root=ours.root, **kwargs)])
    assert not unreachable_warnings(w)
    assert len(theirs.requests) == len(ours.requests) == 3
    # the same requests, byte for byte: method, path, headers (the port of Host aside), body
    assert [comparable(r) for r in ours.requests] == [comparable(r) for r in theirs.requests]
    content_type = "application/json" if send_as_json else "application/x-www-form-urlencoded"
    for epoch, request in enumerate(ours.requests):
        assert request["method"] == "POST" and request["path"] == path
        assert request["headers"]["Content-Type"] == content_type
        assert {k: request["headers"][k] for k in HEADERS} == HEADERS
        payload = decoded(request, field)
        assert payload == decoded(theirs.requests[epoch], field)
        assert list(payload) == ["epoch", *history.history]
        assert payload == {"epoch": epoch, **{k: v[epoch] for k, v in history.history.items()}}


def test_default_field_and_path_without_headers():
    with Recorder() as theirs, Recorder() as ours:
        fit([keras.callbacks.RemoteMonitor(root=theirs.root),
             dropin.RemoteMonitor(root=ours.root)], epochs=2)
    assert [comparable(r) for r in ours.requests] == [comparable(r) for r in theirs.requests]
    assert [r["path"] for r in ours.requests] == ["/publish/epoch/end/"] * 2
    assert [decoded(r, "data")["epoch"] for r in ours.requests] == [0, 1]


def test_numpy_log_values_are_sent_as_plain_numbers():
    logs = {"loss": np.float32(0.25), "acc": np.array(0.5), "steps": np.int64(3), "note": "x"}
    for send_as_json in (False, True):
        with Recorder() as theirs, Recorder() as ours:
            keras.callbacks.RemoteMonitor(root=theirs.root, send_as_json=send_as_json) \
                .on_epoch_end(4, dict(logs))
            dropin.RemoteMonitor(root=ours.root, send_as_json=send_as_json) \
                .on_epoch_end(4, dict(logs))
        assert [comparable(r) for r in ours.requests] == [comparable(r) for r in theirs.requests]
        field = None if send_as_json else "data"
        assert decoded(ours.requests[0], field) == {"epoch": 4, "loss": 0.25, "acc": 0.5,
                                                    "steps": 3, "note": "x"}


@pytest.mark.parametrize("send_as_json", [False, True], ids=["form", "json"])
def test_unreachable_server_warns_as_keras_and_training_goes_on(send_as_json):
    root = closed_port_root()
    for make in (keras.callbacks.RemoteMonitor, dropin.RemoteMonitor):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            history = fit([make(root=root, headers=HEADERS, send_as_json=send_as_json)])
        assert len(history.epoch) == 3
        assert unreachable_warnings(w) == [(UserWarning, UNREACHABLE.format(root))] * 3, make


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


@pytest.mark.parametrize("send_as_json", [False, True], ids=["form", "json"])
def test_written_python_posts_what_keras_posts(send_as_json):
    from cbdsl.pythonize import pythonize

    namespace: dict = {"__name__": "written"}
    exec(compile(pythonize(cbdsl.check(RULE_FILE)), "<written>", "exec"), namespace)
    kwargs = {"headers": HEADERS, "send_as_json": send_as_json}
    with Recorder() as theirs, Recorder() as ours:
        fit([keras.callbacks.RemoteMonitor(root=theirs.root, **kwargs),
             namespace["RemoteMonitor"](root=ours.root, **kwargs)], epochs=2)
    assert len(ours.requests) == 2
    assert [comparable(r) for r in ours.requests] == [comparable(r) for r in theirs.requests]


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
