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
value of the same metric), ``n`` (the events in the window), ``qvalue`` (the window's q-value of
the metric's test: ``ks_qvalue`` for ``ks``) and ``seasonal`` (the series' value one season
earlier). A condition that mentions ``baseline``, ``qvalue`` or ``seasonal`` is false when the
series has none, and so is a comparison with a division by zero in it: a rule never fires on a
value it cannot compute. There is no ``eval``: the text becomes a tree of frozen dataclasses.

A condition is at most :data:`MAX_LENGTH` characters long and nested at most :data:`MAX_DEPTH`
levels deep (parentheses, ``not``, ``-``, ``abs`` and operator chains count): longer or deeper
ones are refused with an :class:`ExprError`, so ``drifthouse check`` names them.

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

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "NAMES",
    "Condition",
    "ExprError",
    "extract_threshold",
    "parse",
]

NAMES = ("value", "baseline", "n", "qvalue", "seasonal")
"""The names a condition may use."""
MAX_LENGTH = 1_000
"""The longest condition, in characters."""
MAX_DEPTH = 32
"""The deepest nesting of a condition: of parentheses, and of the tree it parses to."""

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
        shown = text if len(text) <= 120 else f"{text[:100]}... ({len(text)} characters)"
        super().__init__(f"at column {column} of {shown!r}: {message}")
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
        if len(text) > MAX_LENGTH:
            raise ExprError(
                text,
                MAX_LENGTH + 1,
                f"expected a condition of at most {MAX_LENGTH} characters; got {len(text)}",
            )
        self.text = text
        self.tokens = _tokenize(text)
        self.pos = 0
        self.level = 0  # parentheses, 'not', '-' and 'abs' open around the current token
        self.depths: dict[int, int] = {}  # id(node) -> height of its tree

    def too_deep(self, tok: _Token) -> ExprError:
        return ExprError(
            self.text,
            tok.column,
            f"nested more than {MAX_DEPTH} levels deep (parentheses, 'not', '-', 'abs' and "
            "chains of operators count); expected a shorter condition: split it over rules",
        )

    def enter(self, tok: _Token) -> None:
        """One level deeper (a parenthesis, 'not', '-' or 'abs' opened at ``tok``)."""
        self.level += 1
        if self.level > MAX_DEPTH:
            raise self.too_deep(tok)

    def made(self, node: Node, tok: _Token, *children: Node) -> Node:
        """``node``, after checking the height of its tree (operator chains are left-deep)."""
        depth = 1 + max((self.depths.get(id(c), 1) for c in children), default=0)
        if depth > MAX_DEPTH:
            raise self.too_deep(tok)
        self.depths[id(node)] = depth
        return node

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
        return self.parse_logic("or", self.parse_and)

    def parse_and(self) -> Node:
        return self.parse_logic("and", self.parse_not)

    def parse_logic(self, word: str, operand: Callable[[], Node]) -> Node:
        node = operand()
        while self.is_word(word):
            tok = self.take()
            right = operand()
            node = self.made(
                Logic(word, self.boolean(node, tok), self.boolean(right, tok)), tok, node, right
            )
        return node

    def parse_not(self) -> Node:
        if self.is_word("not"):
            tok = self.take()
            self.enter(tok)
            inner = self.parse_not()
            self.level -= 1
            return self.made(Not(self.boolean(inner, tok)), tok, inner)
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
            tok = self.take()
            right = self.parse_sum()
            if self.tok.kind == "op" and self.tok.text in _COMPARE:
                raise self.fail(
                    "'and' between two comparisons (chained comparisons are not supported)"
                )
            return self.made(Compare(tok.text, left, right), tok, left, right)
        return left

    def parse_sum(self) -> Node:
        node = self.parse_product()
        while self.is_op("+", "-"):
            tok = self.take()
            right = self.parse_product()
            node = self.made(Arith(tok.text, node, right), tok, node, right)
        return node

    def parse_product(self) -> Node:
        node = self.parse_unary()
        while self.is_op("*", "/"):
            tok = self.take()
            right = self.parse_unary()
            node = self.made(Arith(tok.text, node, right), tok, node, right)
        return node

    def parse_unary(self) -> Node:
        if self.is_op("-", "+"):
            tok = self.take()
            self.enter(tok)
            inner = self.parse_unary()
            self.level -= 1
            return inner if tok.text == "+" else self.made(Neg(inner), tok, inner)
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
                self.enter(tok)
                inner = self.parse_sum()
                if not self.is_op(")"):
                    raise self.fail("')' to close 'abs('")
                self.take()
                self.level -= 1
                return self.made(Abs(inner), tok, inner)
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
            self.enter(self.take())
            inner = self.parse_or()
            if not self.is_op(")"):
                raise self.fail("')'")
            self.take()
            self.level -= 1
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
        self,
        *,
        value: float,
        baseline: float | None = None,
        n: int | None = None,
        qvalue: float | None = None,
        seasonal: float | None = None,
    ) -> bool:
        """True when the condition holds; False when it needs a baseline, q-value or season it lacks."""
        env = _env(value, baseline, n, qvalue, seasonal)
        if any(env[name] is None for name in self.names - {"value", "n"}):
            return False
        return _bool(self.root, env)

    def negated(self) -> Condition:
        """``not (self)``: the default ``clear`` of a rule."""
        return Condition(f"not ({self.text})", Not(self.root), self.names)


def parse(text: str) -> Condition:
    """Parse a condition; raise :class:`ExprError` naming the column and what was expected.

    >>> parse("value >")
    Traceback (most recent call last):
    ...
    drifthouse.expr.ExprError: at column 8 of 'value >': expected a number, a name (value, baseline, n, qvalue, seasonal) or '(' (got the end of the condition)
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


def _env(*values: float | None) -> dict[str, float | None]:
    env = dict(zip(NAMES, (None if x is None else float(x) for x in values), strict=True))
    return {
        k: x if x is None or k == "baseline" or math.isfinite(x) else None for k, x in env.items()
    }


def extract_threshold(
    cond: Condition,
    baseline: float | None = None,
    n: int | None = None,
    *,
    seasonal: float | None = None,
) -> float:
    """The threshold the condition compares ``value`` with: ``value > 2 * baseline`` gives ``2 * baseline``.

    The first comparison with ``value`` on one side only is used (``abs(value - baseline) > 0.1``
    gives ``0.1``); NaN when there is none or it cannot be computed.
    """
    found = _threshold_of(cond.root, _env(None, baseline, n, None, seasonal))
    return math.nan if found is None else found
