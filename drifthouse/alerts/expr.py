"""Rule conditions: a small, safe expression language, parsed once and evaluated many times.

Grammar (lowest precedence first)::

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | compare
    compare := sum (("<" | "<=" | ">" | ">=" | "==" | "!=") sum)?
    sum     := product (("+" | "-") product)*
    product := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | NAME | "abs" "(" sum ")" | "(" expr ")"

Names are ``value`` (the metric's value in the window), ``baseline`` (the reference profile's
value of the same metric, when there is one) and ``n`` (the events in the window). There is no
``eval``: the text becomes a tree of frozen dataclasses, and evaluation walks that tree.

A condition that mentions ``baseline`` is false when the series has no baseline, and so is a
comparison with a division by zero in it: a rule never fires on a value it cannot compute.

Example
-------
>>> cond = parse("value > 2 * baseline")
>>> cond.evaluate(value=5.0, baseline=2.0)
True
>>> cond.evaluate(value=5.0, baseline=None)
False
>>> extract_threshold(cond, baseline=2.0)
4.0
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from drifthouse.errors import ConfigError

__all__ = ["NAMES", "Condition", "ExprError", "extract_threshold", "parse"]

NAMES = ("value", "baseline", "n")
"""The names a condition may use."""

_Value = float | bool | None

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?%?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|==|!=|[<>+\-*/()])
    """,
    re.VERBOSE,
)
_KEYWORDS = {"and", "or", "not", "abs"}


class ExprError(ConfigError):
    """A condition that cannot be parsed; ``column`` is 1-based."""

    def __init__(self, text: str, column: int, message: str) -> None:
        super().__init__(f"at column {column} of {text!r}: {message}")
        self.text = text
        self.column = column
        self.detail = message


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, name, op, end
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ExprError(
                text,
                pos + 1,
                f"unexpected character {text[pos]!r}; expected a number, a name "
                f"({', '.join(NAMES)}), an operator or a parenthesis",
            )
        kind = match.lastgroup or ""
        if kind != "space":
            tokens.append(_Token(kind, match.group(), pos + 1))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


# ---- the tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Num:
    value: float


@dataclass(frozen=True, slots=True)
class Name:
    name: str


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node


@dataclass(frozen=True, slots=True)
class Abs:
    operand: Node


@dataclass(frozen=True, slots=True)
class Arith:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Compare:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Logic:
    op: str  # and, or
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


Node = Num | Name | Neg | Abs | Arith | Compare | Logic | Not

_ARITH: dict[str, Callable[[float, float], float]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
}
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


def _is_bool(node: Node) -> bool:
    return isinstance(node, Compare | Logic | Not)


class _Parser:
    """Recursive descent over the token list; every error names the column and what was expected."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def fail(self, expected: str, tok: _Token | None = None) -> ExprError:
        tok = tok or self.tok
        got = "the end of the condition" if tok.kind == "end" else repr(tok.text)
        return ExprError(self.text, tok.column, f"expected {expected} (got {got})")

    def take(self) -> _Token:
        tok = self.tok
        self.pos += 1
        return tok

    def is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def is_word(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.text == word

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise self.fail("a condition such as 'value > 0.25'")
        node = self.parse_or()
        if self.tok.kind != "end":
            raise self.fail("an operator, 'and', 'or' or the end of the condition")
        return node

    def parse_or(self) -> Node:
        node = self.parse_and()
        while self.is_word("or"):
            tok = self.take()
            right = self.parse_and()
            node = Logic("or", self.boolean(node, tok), self.boolean(right, tok))
        return node

    def parse_and(self) -> Node:
        node = self.parse_not()
        while self.is_word("and"):
            tok = self.take()
            right = self.parse_not()
            node = Logic("and", self.boolean(node, tok), self.boolean(right, tok))
        return node

    def parse_not(self) -> Node:
        if self.is_word("not"):
            tok = self.take()
            return Not(self.boolean(self.parse_not(), tok))
        return self.parse_compare()

    def boolean(self, node: Node, tok: _Token) -> Node:
        if not _is_bool(node):
            raise ExprError(
                self.text,
                tok.column,
                f"{tok.text!r} needs comparisons on both sides, e.g. 'value > 1 and n >= 100'",
            )
        return node

    def parse_compare(self) -> Node:
        left = self.parse_sum()
        if self.tok.kind == "op" and self.tok.text in _COMPARE:
            op = self.take().text
            right = self.parse_sum()
            if self.tok.kind == "op" and self.tok.text in _COMPARE:
                raise self.fail(
                    "'and' between two comparisons (chained comparisons are not supported)"
                )
            return Compare(op, left, right)
        return left

    def parse_sum(self) -> Node:
        node = self.parse_product()
        while self.is_op("+", "-"):
            op = self.take().text
            node = Arith(op, node, self.parse_product())
        return node

    def parse_product(self) -> Node:
        node = self.parse_unary()
        while self.is_op("*", "/"):
            op = self.take().text
            node = Arith(op, node, self.parse_unary())
        return node

    def parse_unary(self) -> Node:
        if self.is_op("-"):
            self.take()
            return Neg(self.parse_unary())
        if self.is_op("+"):
            self.take()
            return self.parse_unary()
        return self.parse_atom()

    def parse_atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            if tok.text.endswith("%"):
                return Num(float(tok.text[:-1]) / 100.0)
            return Num(float(tok.text))
        if tok.kind == "name":
            if tok.text == "abs":
                self.take()
                if not self.is_op("("):
                    raise self.fail("'(' after 'abs'")
                self.take()
                inner = self.parse_sum()
                if not self.is_op(")"):
                    raise self.fail("')' to close 'abs('")
                self.take()
                return Abs(inner)
            if tok.text in _KEYWORDS:
                raise self.fail("a number, a name or '('")
            if tok.text not in NAMES:
                raise ExprError(
                    self.text,
                    tok.column,
                    f"unknown name {tok.text!r}; expected one of {', '.join(NAMES)}",
                )
            self.take()
            return Name(tok.text)
        if self.is_op("("):
            self.take()
            inner = self.parse_or()
            if not self.is_op(")"):
                raise self.fail("')'")
            self.take()
            return inner
        raise self.fail(f"a number, a name ({', '.join(NAMES)}) or '('")


# ---- evaluation -------------------------------------------------------------------------------


def _num(node: Node, env: dict[str, float | None]) -> float | None:
    """A number, or None when it cannot be computed (no baseline, division by zero, NaN)."""
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        return env.get(node.name)
    if isinstance(node, Neg):
        x = _num(node.operand, env)
        return None if x is None else -x
    if isinstance(node, Abs):
        x = _num(node.operand, env)
        return None if x is None else abs(x)
    if isinstance(node, Arith):
        a = _num(node.left, env)
        b = _num(node.right, env)
        if a is None or b is None or (node.op == "/" and b == 0):
            return None
        out = _ARITH[node.op](a, b)
        return out if math.isfinite(out) else None
    raise TypeError(f"not a number expression: {node!r}")  # the parser never builds this


def _bool(node: Node, env: dict[str, float | None]) -> bool:
    if isinstance(node, Compare):
        a = _num(node.left, env)
        b = _num(node.right, env)
        if a is None or b is None or math.isnan(a) or math.isnan(b):
            return False
        return _COMPARE[node.op](a, b)
    if isinstance(node, Logic):
        if node.op == "and":
            return _bool(node.left, env) and _bool(node.right, env)
        return _bool(node.left, env) or _bool(node.right, env)
    if isinstance(node, Not):
        return not _bool(node.operand, env)
    raise TypeError(f"not a condition: {node!r}")  # the parser never builds this


def _names(node: Node) -> set[str]:
    if isinstance(node, Name):
        return {node.name}
    if isinstance(node, Num):
        return set()
    if isinstance(node, Neg | Abs | Not):
        return _names(node.operand)
    return _names(node.left) | _names(node.right)


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition. Build with :func:`parse`; evaluate with :meth:`evaluate`."""

    text: str
    root: Node
    names: frozenset[str]

    @property
    def uses_baseline(self) -> bool:
        return "baseline" in self.names

    def evaluate(
        self, *, value: float, baseline: float | None = None, n: int | None = None
    ) -> bool:
        """True when the condition holds; always False when it needs a baseline and has none."""
        if baseline is None and self.uses_baseline:
            return False
        env: dict[str, float | None] = {
            "value": value if math.isfinite(value) else None,
            "baseline": baseline,
            "n": None if n is None else float(n),
        }
        return _bool(self.root, env)

    def negated(self) -> Condition:
        """``not (self)``: the default ``clear`` of a rule."""
        return Condition(f"not ({self.text})", Not(self.root), self.names)


def parse(text: str) -> Condition:
    """Parse a condition; raise :class:`ExprError` naming the column and what was expected.

    >>> parse("value >")
    Traceback (most recent call last):
    ...
    drifthouse.alerts.expr.ExprError: at column 8 of 'value >': expected a number, a name (value, baseline, n) or '(' (got the end of the condition)
    """
    root = _Parser(text).parse()
    if not _is_bool(root):
        raise ExprError(
            text, 1, "expected a comparison such as 'value > 0.25' (got a number expression)"
        )
    return Condition(text, root, frozenset(_names(root)))


def _threshold_of(node: Node, env: dict[str, float | None]) -> float | None:
    if isinstance(node, Compare):
        left, right = _names(node.left), _names(node.right)
        if "value" in left and "value" not in right:
            return _num(node.right, env)
        if "value" in right and "value" not in left:
            return _num(node.left, env)
        return None
    if isinstance(node, Logic):
        found = _threshold_of(node.left, env)
        return found if found is not None else _threshold_of(node.right, env)
    if isinstance(node, Not):
        return _threshold_of(node.operand, env)
    return None


def extract_threshold(
    cond: Condition, baseline: float | None = None, n: int | None = None
) -> float:
    """The threshold the condition compares ``value`` with: ``value > 2 * baseline`` gives ``2 * baseline``.

    The first comparison with ``value`` on one side only is used (``abs(value - baseline) > 0.1``
    gives ``0.1``); NaN when there is none or it cannot be computed.
    """
    env: dict[str, float | None] = {
        "value": None,
        "baseline": baseline,
        "n": None if n is None else float(n),
    }
    found = _threshold_of(cond.root, env)
    return math.nan if found is None else found
