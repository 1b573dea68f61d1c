"""A local HTTP server on 127.0.0.1 that records the requests it gets, for RemoteMonitor."""

from __future__ import annotations

import http.server
import socket
import threading
from typing import Any

MAX_REQUESTS = 100  # a server records at most this many requests; more are counted
SERVER_TIMEOUT = 5.0  # seconds a server waits on a client that stopped sending


class Recorder(http.server.ThreadingHTTPServer):
    """An HTTP server on an ephemeral port of 127.0.0.1 that answers every POST with 200 and
    records the first `MAX_REQUESTS` of them (`requests`: method, path, headers, body as
    bytes); `dropped` counts the rest. A client that stops sending is dropped after
    `SERVER_TIMEOUT` seconds; leaving the `with` block stops the server."""

    daemon_threads = True

    def __init__(self, max_requests: int = MAX_REQUESTS) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.max_requests = max_requests
        self.requests: list[dict[str, Any]] = []
        self.dropped = 0
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def keep(self, request: dict[str, Any]) -> None:
        with self.lock:
            if len(self.requests) < self.max_requests:
                self.requests.append(request)
            else:
                self.dropped += 1

    def __enter__(self) -> Recorder:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(timeout=SERVER_TIMEOUT)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = SERVER_TIMEOUT  # a stuck client cannot hold the server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.keep({"method": self.command, "path": self.path,  # type: ignore[attr-defined]
                          "headers": dict(self.headers), "body": body})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:  # quiet
        pass


def closed_port_root() -> str:
    """A root URL on a port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def comparable(request: dict[str, Any]) -> dict[str, Any]:
    """A recorded request without what differs between two servers: the Host header (its
    port). Every other header is kept: the HTTP client's own (`User-Agent`, `Accept`,
    `Accept-Encoding`, `Connection`) are what Keras sends too, through `requests`."""
    return {**request, "headers": {k: v for k, v in request["headers"].items() if k != "Host"}}
