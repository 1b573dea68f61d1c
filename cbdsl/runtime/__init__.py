"""The runtime: what compiled callbacks run while training, and nothing that builds them.

The Callback base class and its hooks (`callback`), each event's context and compiled rules
(`rules`), the serializable state (`state`), Keras's monitor logic (`monitor`), what rules do
to training (`training`), files and requests they write (`files`, `web`), and the effects
(`effects`). It may import `cbdsl.diagnostics` and `cbdsl.language`; it imports neither the
checker nor the compiler, so a trained policy needs nothing of them at run time.
"""

from cbdsl.runtime.files import (
    DirectoryPathError,
    csv_cell,
    is_remote_path,
    is_writer,
    save,
    write_row,
    write_text,
)
from cbdsl.runtime.monitor import is_improvement, resolve_direction, update_tracker
from cbdsl.runtime.state import CallbackState, Firing, MissingMetric, TrackerState
from cbdsl.runtime.training import (
    call_schedule,
    print_message,
    read_iterations,
    read_lr,
    render,
    stop,
    warn_missing,
    write_lr,
)
from cbdsl.runtime.web import post

__all__ = [
    "CallbackState", "DirectoryPathError", "Firing", "MissingMetric", "TrackerState",
    "call_schedule", "csv_cell", "is_improvement", "is_remote_path", "is_writer", "post",
    "print_message", "read_iterations", "read_lr", "render", "resolve_direction", "save", "stop",
    "update_tracker", "warn_missing", "write_lr", "write_row", "write_text",
]
