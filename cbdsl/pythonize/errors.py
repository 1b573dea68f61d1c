"""The error `explain --python` raises where plain Keras code cannot say what a rule does."""

from __future__ import annotations

from cbdsl.diagnostics import CbdslCompileError


class NotExpressibleError(CbdslCompileError):
    """A rule uses a feature that plain Keras callback code cannot say faithfully (E601)."""
