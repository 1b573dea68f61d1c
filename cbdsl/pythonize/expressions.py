"""Expressions as Python: one `x_<Kind>` method for each expression node kind."""

from __future__ import annotations

import string

from cbdsl import language
from cbdsl.pythonize.code import (
    ADD,
    ATOM,
    BIN_PREC,
    CMP,
    NOT,
    OR,
    POW,
    TERNARY,
    UNARY,
    Code,
    chain,
    py_str,
)
from cbdsl.pythonize.names import Scope
from cbdsl.pythonize.tree import nonzero
from cbdsl.syntax import nodes as n


class ExpressionWriter:
    """Each expression node as a `Code` value: `expr(e, scope)` calls `x_<Kind>(e, scope,
    boolean)`, where `boolean` says the value is only tested for truth.

    A mixin of `ClassWriter` (classes.py), whose state and other mixins it uses.
    """

    def expr(self, e: n.Expr, scope: Scope, boolean: bool = False) -> Code:
        # dispatches on every expression kind: `x_<Kind>` writes the node `n.<Kind>`
        method = getattr(self, f"write_{type(e).__name__}")
        return method(e, scope, boolean)

    def write_Number(self, e, scope, boolean) -> Code:
        text = repr(e.value)
        return Code(text, UNARY if text.startswith("-") else ATOM)

    def write_String(self, e, scope, boolean) -> Code:
        return Code(py_str(e.value, scope.quote))

    def write_Bool(self, e, scope, boolean) -> Code:
        return Code("True" if e.value else "False")

    def write_NoneLit(self, e, scope, boolean) -> Code:
        return Code("None")

    def write_Table(self, e, scope, boolean) -> Code:
        items = [f"{self.expr(k, scope).text}: {self.expr(v, scope).text}"
                 for k, v in e.entries]
        return Code("{" + ", ".join(items) + "}")

    def write_Name(self, e, scope, boolean) -> Code:
        name = e.id
        if name in scope.locals:
            return Code(scope.locals[name])
        if name in self.params:
            if scope.params == "local":
                return Code(self.local_param[name])
            return Code(f"self.{self.attr[name]}")
        if name in self.variables:
            return Code(f"self.{self.attr[name]}")
        q = scope.quote
        if name == "epoch":
            if scope.epoch is None:
                raise self.error("'epoch' where the event has none", e)
            if scope.epoch == "self._current_epoch":
                self.uses.add("current_epoch")
            return Code(scope.epoch)
        if name == "batch":
            if scope.batch is None:
                raise self.error("'batch' where the event has none", e)
            return Code(scope.batch)
        if name == "step":
            if scope.step is None:
                raise self.error("'step' where the event has none", e)
            self.uses.add("steps")
            return Code(scope.step, ADD)
        if name in ("lr", "learning_rate"):
            return Code("lr")
        if name in ("epochs", "steps", "verbose", "metrics"):
            return Code(f"self.params.get({q}{name}{q})")
        if name == "inf":
            self.module.imports.add("math")
            return Code("math.inf")
        if name == "logs":
            if scope.logs == "logs":
                self._needs_logs = True
            return Code(scope.logs)
        if name == "available":
            self._needs_logs = True
            return Code(f"{q},{q}.join({scope.logs})")
        if name == "stopped_epoch":
            self.uses.add("stopped_epoch")
            return Code("self.stopped_epoch")
        if name == "missing":
            return Code("missing")
        if name == "iterations":
            return Code("int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))")
        return self.metric(name, scope)

    def metric(self, key: str, scope: Scope) -> Code:
        if key in scope.metric_locals:
            return Code(scope.metric_locals[key])
        self._needs_logs = True
        return Code(f"{scope.logs}[{self.key_code(key, scope)}]")

    def write_Attribute(self, e, scope, boolean) -> Code:
        tracker = self.tracker_by_name[e.value.name]
        if e.attr.name == "direction" and not tracker.runtime_direction:
            return Code(py_str(tracker.static_direction or "min", scope.quote))
        return Code(f"self.{tracker.attrs[e.attr.name]}")

    def write_Index(self, e, scope, boolean) -> Code:
        return Code(f"{self.expr(e.value, scope).at(ATOM)}[{self.expr(e.key, scope).text}]")

    def write_Unary(self, e, scope, boolean) -> Code:
        if e.op == "not":
            if isinstance(e.operand, n.Call) and e.operand.func.name == "has" and \
                    "has" not in self.params:
                has = self.expr(e.operand, scope, boolean=True)
                return Code(has.text.removesuffix(" is not None") + " is None", CMP)
            operand = self.expr(e.operand, scope, boolean=True)
            return Code(f"not {operand.at(NOT)}", NOT)
        operand = self.expr(e.operand, scope, boolean)
        if e.op == "+":
            return operand
        return Code(f"-{operand.at(UNARY)}", UNARY)

    def write_BinOp(self, e, scope, boolean) -> Code:
        prec = BIN_PREC[e.op]
        left, right = self.expr(e.left, scope), self.expr(e.right, scope)
        if e.op == "**":
            text = f"{left.at(POW + 1)} ** {right.at(UNARY)}"
        else:
            text = f"{left.at(prec)} {e.op} {right.at(prec + 1)}"
        if e.op in ("/", "//", "%") and not nonzero(e.right):
            # the rule language divides by zero into NaN rather than stopping training
            self.module.imports.add("math")
            return Code(f"({text} if {right.at(CMP + 1)} != 0 else math.nan)")
        return Code(text, prec)

    def write_Compare(self, e, scope, boolean) -> Code:
        """A comparison chain. As in the rule language, an ordering with None is false and
        `in` None is false: operands that may be None are guarded."""
        operands = [e.first, *(x for _, x in e.rest)]
        codes = [self.expr(x, scope) for x in operands]
        links, plain = [], True
        for i, (op, _) in enumerate(e.rest):
            left, right = operands[i], operands[i + 1]
            lc, rc = codes[i].at(CMP + 1), codes[i + 1].at(CMP + 1)
            if op in ("==", "!=") and (isinstance(left, n.NoneLit) or
                                       isinstance(right, n.NoneLit)):
                other = lc if isinstance(right, n.NoneLit) else rc
                links.append(Code(f"{other} {'is' if op == '==' else 'is not'} None", CMP))
                plain = False
                continue
            link = Code(f"{lc} {op} {rc}", CMP)
            if op in ("<", "<=", ">", ">="):
                guards = [c for x, c in ((left, lc), (right, rc)) if self.may_be_none(x)]
                if guards:
                    plain = False
                    link = chain("and", [*(Code(f"{g} is not None", CMP) for g in guards),
                                         link])
            elif op in ("in", "not in") and self.may_be_none(right):
                plain = False
                link = chain("and", [Code(f"{rc} is not None", CMP), link]) if op == "in" \
                    else chain("or", [Code(f"{rc} is None", CMP), link])
            links.append(link)
        if len(links) == 1:
            return links[0]
        if plain:  # a Python chain: each operand evaluated once, left to right
            text = codes[0].at(CMP + 1) + "".join(
                f" {op} {codes[i + 1].at(CMP + 1)}" for i, (op, _) in enumerate(e.rest))
            return Code(text, CMP)
        return chain("and", links)

    def write_BoolOp(self, e, scope, boolean) -> Code:
        code = chain(e.op, [self.expr(e.left, scope, True), self.expr(e.right, scope, True)])
        return code if boolean else Code(f"bool({code.text})")

    def write_Conditional(self, e, scope, boolean) -> Code:
        then = self.expr(e.then, scope, boolean)
        cond = self.expr(e.cond, scope, True)
        orelse = self.expr(e.orelse, scope, boolean)
        return Code(f"{then.at(OR)} if {cond.at(OR)} else {orelse.at(TERNARY)}", TERNARY)

    def write_Stalls(self, e, scope, boolean) -> Code:
        return Code(scope.results[id(e)])

    write_Improves = write_Stalls

    def write_IsNan(self, e, scope, boolean) -> Code:
        self.module.imports.add("math")
        test = f"math.isnan({self.expr(e.subject, scope).text})"
        return Code(f"not {test}", NOT) if e.negated else Code(test)

    def write_IsFinite(self, e, scope, boolean) -> Code:
        self.module.imports.add("math")
        test = f"math.isfinite({self.expr(e.subject, scope).text})"
        return Code(f"not {test}", NOT) if e.negated else Code(test)

    def write_Call(self, e, scope, boolean) -> Code:
        name = e.func.name
        q = scope.quote
        if name in self.params:
            info = self.params[name]
            fn = self.local_param[name] if scope.params == "local" else f"self.{self.attr[name]}"
            args = [self.expr(a, scope).text for a in e.args]
            if info.type == "schedule":
                self.module.helpers.add("call_schedule")
                extra = [] if name == "schedule" else [f"name={py_str(name, q)}"]
                return Code(f"call_schedule({', '.join([fn, *args, *extra])})")
            return Code(f"{fn}({', '.join(args)}) if {fn} is not None else None", TERNARY)
        special = getattr(self, f"call_{name}", None)  # a call the table cannot template
        if special is not None:
            return special(e, scope)
        function = language.FUNCTIONS.get(name)
        if function is not None and function.python is not None:
            args = [self.expr(a, scope) for a in e.args]
            self.module.imports.update(function.python_imports)
            self.module.helpers.update(function.python_helpers)
            return Code(CALL_TEMPLATE.format(function.python, *args, args=args),
                        PRECEDENCE.get(function.python_precedence, ATOM))
        raise self.error(f"the function '{name}'", e)

    # -- the calls that `cbdsl.language.FUNCTIONS` gives no template: they read the logs, or
    # write differently by what is known of their argument
    def call_metric(self, e, scope) -> Code:
        return self.metric(self.metric_key(e, scope), scope)

    def call_has(self, e, scope) -> Code:
        self._needs_logs = True
        key = self.has_key(e, scope)
        return Code(f"{scope.logs}.get({self.key_code(key, scope)}) is not None", CMP)

    def call_keys(self, e, scope) -> Code:
        arg = e.args[0]
        code = self.expr(arg, scope)
        # `x or ()` only where x may be none or not a table
        known = (isinstance(arg, n.Name) and arg.id == "logs") or (
            self.iterable_kind(arg) == "dict" and not self.may_be_none(arg))
        return Code(f"list({code.text})" if known else f"list({code.at(OR + 1)} or ())")

    def call_sorted(self, e, scope) -> Code:
        arg = e.args[0]
        code = self.expr(arg, scope)
        known = not self.may_be_none(arg)
        return Code(f"sorted({code.text})" if known else f"sorted({code.at(OR + 1)} or ())")


class _CallTemplate(string.Formatter):
    """Fills a function's `python` template with its arguments' code (see `Function.python`)."""

    def get_value(self, key, args, kwargs):
        if key == "rest":
            return ", ".join(a.text for a in kwargs["args"][1:])
        if key == "args":
            return ", ".join(a.text for a in kwargs["args"])
        return args[key]

    def format_field(self, value, format_spec):
        if isinstance(value, str):
            return value
        if not format_spec:
            return value.text
        name, tighter, _ = format_spec.partition("+")  # `ternary+`: binds tighter than that
        return value.at(PRECEDENCE[name] + (1 if tighter else 0))


CALL_TEMPLATE = _CallTemplate()
PRECEDENCE = {"atom": ATOM, "ternary": TERNARY}
