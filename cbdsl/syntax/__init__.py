"""Syntax: rule-file text to a tree of frozen nodes, and one generic walk over it.

`parser` turns text into Lark's tree and Lark's errors into `CbdslSyntaxError` in words;
`builder` turns that tree into `nodes` (never judging meaning); `walk` visits any node's
children as each node class declares them. This package may import `cbdsl.diagnostics` and
`cbdsl.language` only.
"""
