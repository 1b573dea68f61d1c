"""`cbdsl explain --python`: a checked rule program written out as plain Keras callback code.

`pythonize(checked)` turns a `CheckedProgram` into the text of a Python module that needs
only Keras, NumPy and the standard library: `module.py` writes the module, `classes.py` one
class per callback definition, made of mixins for its hooks (`hooks.py`), rules (`rules.py`),
trackers (`trackers.py`), actions (`actions.py`), templates (`templates.py`), the questions
asked of expressions (`analysis.py`) and the expressions themselves (`expressions.py`);
`code.py`, `layout.py`, `names.py`, `tree.py`, `sources.py` and `snippets.py` are the shared
pieces. A node kind `K` is written by the method `write_K` (`write_Stalls`, `write_Assign`).

This package is a tool on top of the checker: it may import `cbdsl.syntax`,
`cbdsl.language`, the checker's results and helpers (`cbdsl.checker`) and
`cbdsl.diagnostics`, never `cbdsl.compiler` or `cbdsl.runtime`.
"""

from cbdsl.pythonize.errors import NotExpressibleError
from cbdsl.pythonize.module import pythonize

__all__ = ["NotExpressibleError", "pythonize"]
