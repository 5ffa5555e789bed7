"""Parse and render the `$(...)` templates of request-transformer values.

Kong renders such a value as a Penlight template: the text is kept as
written and each `$(...)` (its parentheses balanced) holds a Lua expression,
rendered as ``tostring(expr or "")``. Portico reads the part of that
language Kong's documentation shows:

- lookups, one level deep: ``headers.name``, ``headers["name"]``,
  ``query_params.name``, ``query_params["name"]``, ``uri_captures.name``,
  ``uri_captures[1]``, ``uri_captures["name"]`` and ``shared.name``;
- literals: quoted strings, numbers, ``nil``, ``true``, ``false``;
- ``a or b``, ``a and b``, ``not a`` and parentheses, with Lua's truth:
  only nil and false are false, so an empty header is a value.

Kong writes a literal ``$(`` as a string in a placeholder:
``$('$(x)')``. A ``$(`` whose parenthesis never closes is plain text.
Lookups of what is absent are nil, which renders as nothing. Anything else
Lua allows (calls, ``..``, comparisons, other globals) is refused by
:func:`parse`, so a config either renders the same way on every data plane
node or is refused by the control plane.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NoReturn, Protocol

from shared.errors import ValidationError

# What an expression yields: Lua's nil is None, its numbers are floats.
Value = str | bool | float | None

_KEYWORDS = frozenset(
    "and break do else elseif end false for function goto if in local nil not "
    "or repeat return then true until while".split()
)
_ROOTS = ("headers", "query_params", "uri_captures", "shared")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(
    r"0[xX][0-9A-Fa-f]+|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
    "'": "'",
    "\n": "\n",
}
_OPERATORS = ("..", "==", "~=", "<=", ">=", "::")


class Env(Protocol):
    """What a template reads of a request.

    Each table may be built on first use: a template that reads no query
    argument never has the query string parsed.
    """

    @property
    def headers(self) -> Mapping[str, str]:
        """Return the request's headers by lowercase name."""
        ...

    @property
    def query_params(self) -> Mapping[str, Any]:
        """Return the query arguments: a string, True (no `=`) or a list."""
        ...

    @property
    def uri_captures(self) -> Mapping[int | str, str | None]:
        """Return the route's regex path groups by number and by name."""
        ...


def truthy(value: Value) -> bool:
    """Tell whether Lua would take `value` as true."""
    return value is not None and value is not False


def text(value: Value) -> str:
    """Return what Penlight writes for a placeholder's value."""
    if value is None or value is False:
        return ""
    if value is True:
        return "true"
    if isinstance(value, float):
        return f"{value:.14g}"  # Lua's number format
    return value


class _Expr(Protocol):
    def evaluate(self, env: Env) -> Value: ...


@dataclass(frozen=True, slots=True)
class _Literal:
    value: Value

    def evaluate(self, env: Env) -> Value:
        return self.value


@dataclass(frozen=True, slots=True)
class _Header:
    key: _Expr

    def evaluate(self, env: Env) -> Value:
        key = self.key.evaluate(env)
        if not isinstance(key, str):
            return None
        headers = env.headers
        found = headers.get(key)
        if found is None:
            # OpenResty's header table: any case, `_` standing for `-`.
            found = headers.get(key.lower().replace("_", "-"))
        return found


@dataclass(frozen=True, slots=True)
class _QueryParam:
    key: _Expr

    def evaluate(self, env: Env) -> Value:
        key = self.key.evaluate(env)
        if not isinstance(key, str):
            return None
        found = env.query_params.get(key)
        if isinstance(found, list):
            # Kong would render the Lua table itself; the last value is
            # what the request's headers give for a repeat too.
            found = found[-1] if found else None
        return found if isinstance(found, str | bool) else None


@dataclass(frozen=True, slots=True)
class _Capture:
    key: _Expr

    def evaluate(self, env: Env) -> Value:
        key = self.key.evaluate(env)
        if isinstance(key, float):
            if not key.is_integer():
                return None
            return env.uri_captures.get(int(key))
        if isinstance(key, str):
            return env.uri_captures.get(key)
        return None


@dataclass(frozen=True, slots=True)
class _Shared:
    key: _Expr

    def evaluate(self, env: Env) -> Value:
        return None  # no Portico plugin shares values with others


@dataclass(frozen=True, slots=True)
class _Or:
    left: _Expr
    right: _Expr

    def evaluate(self, env: Env) -> Value:
        value = self.left.evaluate(env)
        return value if truthy(value) else self.right.evaluate(env)


@dataclass(frozen=True, slots=True)
class _And:
    left: _Expr
    right: _Expr

    def evaluate(self, env: Env) -> Value:
        value = self.left.evaluate(env)
        return self.right.evaluate(env) if truthy(value) else value


@dataclass(frozen=True, slots=True)
class _Not:
    operand: _Expr

    def evaluate(self, env: Env) -> Value:
        return not truthy(self.operand.evaluate(env))


_LOOKUPS: dict[str, type[_Header | _QueryParam | _Capture | _Shared]] = {
    "headers": _Header,
    "query_params": _QueryParam,
    "uri_captures": _Capture,
    "shared": _Shared,
}


@dataclass(frozen=True, slots=True)
class Template:
    """A value with its placeholders parsed, ready to render per request."""

    source: str
    parts: tuple[str | _Expr, ...]

    @property
    def static(self) -> str | None:
        """Return the value when it has no placeholder, else None."""
        if all(isinstance(part, str) for part in self.parts):
            return "".join(part for part in self.parts if isinstance(part, str))
        return None

    def render(self, env: Env) -> str:
        """Return the value for a request."""
        return "".join(
            part if isinstance(part, str) else text(part.evaluate(env))
            for part in self.parts
        )


def _closing(source: str, start: int) -> int:
    """Return the index after the parenthesis closing the one at `start`.

    Quotes are not special, as in Lua's ``%b()``; -1 when it never closes.
    """
    depth = 0
    for index in range(start, len(source)):
        char = source[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return index + 1
    return -1


@lru_cache(maxsize=4096)
def parse(source: str) -> Template:
    """Return `source` as a template.

    Raises :exc:`~shared.errors.ValidationError` naming what is wrong when
    a placeholder is not an expression Portico renders.
    """
    parts: list[str | _Expr] = []
    literal: list[str] = []
    at = 0
    while True:
        found = source.find("$(", at)
        while found != -1 and _closing(source, found + 1) == -1:
            found = source.find("$(", found + 1)
        if found == -1:
            literal.append(source[at:])
            break
        end = _closing(source, found + 1)
        literal.append(source[at:found])
        if any(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(_Parser(source[found + 2 : end - 1]).parse())
        at = end
    if any(literal):
        parts.append("".join(literal))
    return Template(source, tuple(parts))


def check(source: str) -> str | None:
    """Return why `source` is not a template Portico renders, or None."""
    try:
        parse(source)
    except ValidationError as exc:
        return f"value '{source}' is not in supported format: {exc.detail}"
    return None


class _Parser:
    """Parse the expression of one placeholder (a Lua subset)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = list(_tokens(source))
        self.at = 0

    def parse(self) -> _Expr:
        if not self.tokens:
            raise ValidationError("empty placeholder '$()'")
        expr = self._or()
        if self.at < len(self.tokens):
            self._unexpected()
        return expr

    def _peek(self) -> tuple[str, str]:
        if self.at < len(self.tokens):
            return self.tokens[self.at]
        return ("end", "")

    def _take(self, kind: str, value: str | None = None) -> str:
        token = self._peek()
        if token[0] != kind or (value is not None and token[1] != value):
            self._unexpected()
        self.at += 1
        return token[1]

    def _unexpected(self) -> NoReturn:
        kind, value = self._peek()
        if kind == "end":
            raise ValidationError(f"unexpected end of expression '{self.source}'")
        if kind == "op" and value not in ".[]()":
            raise ValidationError(
                f"'{value}' is not supported in '{self.source}': a placeholder "
                "holds lookups and literals joined by or, and, not"
            )
        raise ValidationError(f"unexpected '{value}' in '{self.source}'")

    def _or(self) -> _Expr:
        expr = self._and()
        while self._peek() == ("name", "or"):
            self.at += 1
            expr = _Or(expr, self._and())
        return expr

    def _and(self) -> _Expr:
        expr = self._not()
        while self._peek() == ("name", "and"):
            self.at += 1
            expr = _And(expr, self._not())
        return expr

    def _not(self) -> _Expr:
        if self._peek() == ("name", "not"):
            self.at += 1
            return _Not(self._not())
        return self._primary()

    def _primary(self) -> _Expr:
        kind, value = self._peek()
        if kind == "string":
            self.at += 1
            return _Literal(value)
        if kind == "number":
            self.at += 1
            return _Literal(_number(value))
        if kind == "op" and value == "(":
            self.at += 1
            expr = self._or()
            self._take("op", ")")
            return self._no_suffix(expr)
        if kind == "name":
            self.at += 1
            if value in ("nil", "true", "false"):
                return _Literal({"nil": None, "true": True, "false": False}[value])
            if value in _KEYWORDS:
                raise ValidationError(f"'{value}' is not supported in '{self.source}'")
            return self._lookup(value)
        self._unexpected()

    def _lookup(self, root: str) -> _Expr:
        if root not in _LOOKUPS:
            raise ValidationError(
                f"unknown name '{root}' in '{self.source}': templates read "
                + ", ".join(_ROOTS)
            )
        kind, value = self._peek()
        key: _Expr
        if (kind, value) == ("op", "."):
            self.at += 1
            name = self._take("name")
            key = _Literal(name)
        elif (kind, value) == ("op", "["):
            self.at += 1
            key = self._or()
            self._take("op", "]")
        else:
            raise ValidationError(
                f"'{root}' is a table in '{self.source}': name one of its "
                f'values ({root}.name or {root}["name"])'
            )
        return self._no_suffix(_LOOKUPS[root](key))

    def _no_suffix(self, expr: _Expr) -> _Expr:
        kind, value = self._peek()
        if kind == "op" and value in ".[(":
            raise ValidationError(
                f"only one lookup deep, without calls, in '{self.source}'"
            )
        return expr


def _number(token: str) -> float:
    if token[:2].lower() == "0x":
        return float(int(token, 16))
    return float(token)


def _tokens(source: str) -> Iterator[tuple[str, str]]:
    """Yield the tokens of a Lua expression: (kind, value)."""
    at = _space(source, 0)
    while at < len(source):
        char = source[at]
        if char in "'\"":
            value, at = _string(source, at)
            yield ("string", value)
        elif char == "[" and source[at + 1 : at + 2] in ("[", "="):
            raise ValidationError(f"long strings are not supported in '{source}'")
        elif (name := _NAME.match(source, at)) is not None:
            yield ("name", name.group())
            at = name.end()
        elif (number := _NUMBER.match(source, at)) is not None:
            yield ("number", number.group())
            at = number.end()
        elif source.startswith(_OPERATORS, at):
            yield ("op", source[at : at + 2])
            at += 2
        else:
            yield ("op", char)
            at += 1
        at = _space(source, at)


def _space(source: str, at: int) -> int:
    """Return the index of the first character from `at` that is not a space."""
    while at < len(source) and source[at].isspace():
        at += 1
    return at


def _string(source: str, start: int) -> tuple[str, int]:
    """Return a quoted string's value and the index after its closing quote."""
    quote = source[start]
    out: list[str] = []
    at = start + 1
    while at < len(source):
        char = source[at]
        if char == quote:
            return "".join(out), at + 1
        if char == "\n":
            break
        if char != "\\":
            out.append(char)
            at += 1
            continue
        escape = source[at + 1 : at + 2]
        if escape in _ESCAPES:
            out.append(_ESCAPES[escape])
            at += 2
        elif escape.isdigit():
            digits = re.match(r"[0-9]{1,3}", source[at + 1 :])
            assert digits is not None, "a digit follows"
            code = int(digits.group())
            if code > 255:
                raise ValidationError(f"escape too large in '{source}'")
            out.append(chr(code))
            at += 1 + len(digits.group())
        elif escape == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", source[at + 2 : at + 4]):
            out.append(chr(int(source[at + 2 : at + 4], 16)))
            at += 4
        else:
            raise ValidationError(f"invalid escape sequence in '{source}'")
    raise ValidationError(f"unfinished string in '{source}'")
