"""The compiler: a checked program to Keras callbacks, one generated class per definition used.

Expressions become closures over the event's context (`expressions`), never `eval`-ed; a
definition's rules, trackers and actions become compiled rules (`definitions`, `actions`);
those become a generated `Callback` subclass (`classes`) whose instances take bound, checked
arguments (`binding`). It may import the checker's results, the syntax, the language tables
and the runtime; the runtime never imports it.
"""

from cbdsl.compiler.binding import bind, check_value, compile_program, instantiate
from cbdsl.compiler.classes import build_class
from cbdsl.compiler.schedule import parse_schedule

__all__ = ["bind", "build_class", "check_value", "compile_program", "instantiate",
           "parse_schedule"]
