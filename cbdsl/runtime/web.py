"""HTTP requests that rules send (`post`), bounded in time, from the writing process only."""

from __future__ import annotations

from typing import Any

from cbdsl.runtime.files import is_writer


def post(url: str, body: Any, *, kind: str, headers: dict[str, Any] | None, timeout: float,
         owner: str, unhandled: bool = True, model: Any = None) -> bool:
    """`post`: one HTTP POST of `body` to `url` with `requests`, as Keras's RemoteMonitor sends.

    `kind="json"` sends the body as JSON (`requests.post(url, json=body)`, content type
    `application/json`); `kind="form"` sends a table as form fields
    (`requests.post(url, body)`, `application/x-www-form-urlencoded`). The answer is not
    read: any status counts as sent. The request is bounded in time: `timeout` seconds to
    connect, and again between bytes of the answer (Keras's RemoteMonitor passes no timeout
    and waits as long as the server does). In a multi-process job only the first process
    sends (see `is_writer`); Keras's RemoteMonitor sends from every process.

    Args:
        url: where to send the request.
        body: a JSON value (`kind="json"`) or a table of form fields (`kind="form"`).
        kind: `"json"` or `"form"`.
        headers: HTTP headers to send, or None.
        timeout: seconds, passed to `requests.post`.
        owner: the callback's name, for the ImportError.
        unhandled: raise a failed request's exception instead of returning False.
        model: the model being trained (see `is_writer`).

    Returns:
        True when the server answered; False when the request failed with a
        `requests.exceptions.RequestException` (no server, refused, timed out), unless
        `unhandled`, where that exception is raised.

    Raises:
        ImportError: `requests` is not installed (`"{owner} requires the `requests`
            library."`, Keras's message).
    """
    try:
        import requests
    except ImportError:
        raise ImportError(f"{owner} requires the `requests` library.") from None
    if not is_writer(model):  # one request per event from a multi-process job, as files
        return True
    try:
        if kind == "json":
            requests.post(url, json=body, headers=headers, timeout=timeout)
        else:
            requests.post(url, body, headers=headers, timeout=timeout)
    except requests.exceptions.RequestException:
        if unhandled:
            raise
        return False
    return True
