"""The language server (`cbdsl lsp`): rule files in editors, from the command line's own stages.

`analysis` parses and checks a text as `cbdsl check` does (collecting, never raising) and
converts positions; `features` answers the editor's requests from the checker, the language
tables, `cbdsl explain` and `cbdsl fmt`; `server` wires them into pygls, which `cbdsl lsp` runs
over stdio. pygls and lsprotocol are the `lsp` extra (`pip install "cbdsl[lsp]"`).
"""

from cbdsl.lsp.analysis import Analysis, analyze

__all__ = ["Analysis", "analyze"]
