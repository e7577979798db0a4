"""MLflow's search filter and order_by syntax, parsed into a small AST (pure Python, no database).

A filter is conditions joined by AND (OR is refused, as MLflow does): ``<identifier> <comparator>
<value>``. Identifiers are ``<prefix>.<key>``; a key with spaces, dots or other characters is
written in backquotes or double quotes (``metrics.`my metric```). Strings are single- or
double-quoted; a quote inside is doubled (``'it''s'``) or backslash-escaped (``'it\\'s'``).
Numbers are bare. Errors name the offending token and its 0-based character position, so the
API can answer 400 with a message a user can act on.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ledgerflow.api.search.grammar import ATTRIBUTE, DATASET, DISPLAY_PREFIX, NULL_COMPARATORS, Target
from ledgerflow.errors import InvalidInputError

Value = str | float | tuple[str, ...] | None

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BARE_KEY = re.compile(r"[A-Za-z0-9_:/\-]+(?:\.[A-Za-z0-9_:/\-]+)*")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SYMBOLIC = ("<=", ">=", "!=", "==", "<>", "=", "<", ">")
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "ASC", "DESC"})
MAX_CONDITIONS = 100


class FilterError(InvalidInputError):
    """A malformed filter or order_by clause; ``position`` is the 0-based offset of the bad token."""

    def __init__(self, message: str, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


@dataclass(frozen=True)
class Identifier:
    kind: str  # grammar.METRIC | PARAM | TAG | ATTRIBUTE | DATASET
    key: str  # the key, the canonical attribute name, or the dataset field
    position: int

    @property
    def display(self) -> str:
        return f"{DISPLAY_PREFIX[self.kind]}.{self.key}"


@dataclass(frozen=True)
class Comparison:
    """One condition: ``identifier comparator value``. ``value`` is None for IS [NOT] NULL."""

    kind: str
    key: str
    comparator: str
    value: Value
    position: int


@dataclass(frozen=True)
class OrderKey:
    kind: str
    key: str
    ascending: bool


class _Scanner:
    """A cursor over the filter text; lexing is context-dependent (keys vs values), so no token stream."""

    def __init__(self, text: str, what: str) -> None:
        self.text, self.pos, self.what = text, 0, what

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def token_here(self) -> str:
        """The offending token for a message: a word, a quoted chunk or the next few characters."""
        rest = self.text[self.pos:]
        match = _WORD.match(rest) or _NUMBER.match(rest)
        if match:
            return match.group()
        chunk = rest.split(None, 1)[0] if rest.strip() else ""
        return chunk[:20]

    def fail(self, message: str, position: int | None = None) -> FilterError:
        position = self.pos if position is None else position
        return FilterError(f"invalid {self.what} at position {position}: {message}", position)

    def word(self) -> str | None:
        self.skip_ws()
        match = _WORD.match(self.text, self.pos)
        return match.group() if match else None

    def take_word(self, upper: str) -> bool:
        word = self.word()
        if word is not None and word.upper() == upper:
            self.pos += len(word)
            return True
        return False

    def quoted(self, quote: str, description: str) -> str:
        """Read a quoted chunk at pos (pos on the opening quote); doubled or \\-escaped quotes inside."""
        start = self.pos
        i, out = self.pos + 1, []
        while i < len(self.text):
            char = self.text[i]
            if char == "\\" and i + 1 < len(self.text) and self.text[i + 1] == quote:
                out.append(quote)
                i += 2
            elif char == quote:
                if i + 1 < len(self.text) and self.text[i + 1] == quote:
                    out.append(quote)
                    i += 2
                else:
                    self.pos = i + 1
                    return "".join(out)
            else:
                out.append(char)
                i += 1
        raise self.fail(f"unterminated {description} starting with {quote} (no closing {quote})", start)


def _parse_identifier(s: _Scanner, target: Target) -> Identifier:
    s.skip_ws()
    start = s.pos
    if s.pos >= len(s.text):
        raise s.fail("expected an identifier such as " + _identifier_examples(target) + ", got the end of the text")
    prefix = s.word()
    if prefix is None:
        raise s.fail(f"expected an identifier such as {_identifier_examples(target)}, got {s.token_here()!r}")
    s.pos += len(prefix)
    dotted = s.pos < len(s.text) and s.text[s.pos] == "."
    if not dotted and prefix.upper() in _KEYWORDS:
        raise s.fail(f"expected an identifier such as {_identifier_examples(target)}, got the keyword "
                     f"{prefix!r}", start)
    if dotted:
        kind = target.prefixes.get(prefix.lower())
        if kind is None:
            raise s.fail(f"unknown identifier prefix {prefix!r}; use one of "
                         f"{', '.join(sorted(target.prefixes))}", start)
        s.pos += 1
        key_start = s.pos
        key = _parse_key(s)
        if not key:
            raise s.fail(f"empty key after {prefix!r}.", key_start)
    elif target.bare_names_are_attributes:
        kind, key, key_start = ATTRIBUTE, prefix, start
    else:
        hint = (f"attributes.{target.canonical_attribute(prefix)}" if target.canonical_attribute(prefix)
                else _identifier_examples(target))
        raise s.fail(f"{prefix!r} has no prefix; write {hint}", start)
    if kind == ATTRIBUTE:
        canonical = target.canonical_attribute(key)
        if canonical is None:
            raise s.fail(f"unknown attribute {key!r} for {target.name}; known: "
                         f"{', '.join(sorted(target.attributes))}", key_start)
        key = canonical
    elif kind == DATASET:
        if key.lower() not in target.dataset_fields:
            raise s.fail(f"unknown dataset field {key!r}; known: {', '.join(sorted(target.dataset_fields))}",
                         key_start)
        key = key.lower()
    return Identifier(kind, key, start)


def _parse_key(s: _Scanner) -> str:
    if s.pos < len(s.text) and s.text[s.pos] in "`\"":
        quote = s.text[s.pos]
        return s.quoted(quote, "backquoted name" if quote == "`" else "double-quoted name")
    match = _BARE_KEY.match(s.text, s.pos)
    if not match:
        raise s.fail(f"expected a key name after the prefix, got {s.token_here()!r} "
                     f"(put names with spaces or symbols in backquotes: `my key`)")
    s.pos = match.end()
    return match.group()


def _identifier_examples(target: Target) -> str:
    if target.name == "runs":
        return "metrics.<key>, params.<key>, tags.<key>, attributes.<name> or datasets.<field>"
    return "name, attributes.<name> or tags.<key>"


def _parse_comparator(s: _Scanner, ident: Identifier) -> str:
    s.skip_ws()
    start = s.pos
    for symbol in _SYMBOLIC:
        if s.text.startswith(symbol, s.pos):
            if symbol == "==":
                raise s.fail("'==' is not a comparator; use '='")
            if symbol == "<>":
                raise s.fail("'<>' is not a comparator; use '!='")
            s.pos += len(symbol)
            return symbol
    word = (s.word() or "").upper()
    if word in ("LIKE", "ILIKE", "IN"):
        s.pos += len(word)
        return word
    if word == "NOT":
        s.pos += 3
        if s.take_word("IN"):
            return "NOT IN"
        raise s.fail(f"expected IN after NOT, got {s.token_here()!r}")
    if word == "IS":
        s.pos += 2
        negated = s.take_word("NOT")
        if s.take_word("NULL"):
            return "IS NOT NULL" if negated else "IS NULL"
        raise s.fail(f"expected {'NULL' if negated else 'NULL or NOT NULL'} after IS, got {s.token_here()!r}")
    got = repr(s.token_here()) if s.pos < len(s.text) else "the end of the filter"
    raise s.fail(f"expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, IS NOT NULL) "
                 f"after {ident.display}, got {got}", start)


def _parse_scalar(s: _Scanner, after: str) -> tuple[str | float, int]:
    """A quoted string (returned as str) or a bare number (returned as float), with its position."""
    s.skip_ws()
    start = s.pos
    if s.pos >= len(s.text):
        raise s.fail(f"missing value after {after}")
    char = s.text[s.pos]
    if char in "'\"":
        return s.quoted(char, "string"), start
    if char == "`":
        raise s.fail("backquotes are for names, not values; quote strings with ' or \"")
    match = _NUMBER.match(s.text, s.pos)
    if match:
        s.pos = match.end()
        number = float(match.group())
        if not math.isfinite(number):
            raise s.fail(f"number {match.group()!r} is out of range", start)
        return number, start
    raise s.fail(f"expected a value after {after}: a quoted string ('rf') or a number (0.8), "
                 f"got {s.token_here()!r}")


def _parse_list(s: _Scanner, after: str) -> tuple[tuple[str, ...], int]:
    s.skip_ws()
    start = s.pos
    if s.pos >= len(s.text) or s.text[s.pos] != "(":
        got = repr(s.token_here()) if s.pos < len(s.text) else "the end of the filter"
        raise s.fail(f"expected '(' to open the value list after {after}, got {got}")
    s.pos += 1
    values: list[str] = []
    while True:
        value, position = _parse_scalar(s, after)
        if not isinstance(value, str):
            raise s.fail(f"values of {after} must be quoted strings", position)
        values.append(value)
        s.skip_ws()
        if s.pos < len(s.text) and s.text[s.pos] == ",":
            s.pos += 1
        elif s.pos < len(s.text) and s.text[s.pos] == ")":
            s.pos += 1
            return tuple(values), start
        else:
            got = repr(s.token_here()) if s.pos < len(s.text) else "the end of the filter"
            raise s.fail(f"expected ',' or ')' in the value list opened at position {start}, got {got}")


def _parse_comparison(s: _Scanner, target: Target) -> Comparison:
    ident = _parse_identifier(s, target)
    op_position = s.pos
    comparator = _parse_comparator(s, ident)
    allowed = target.allowed_comparators(ident.kind, ident.key)
    numeric = target.is_numeric(ident.kind, ident.key)
    if comparator not in allowed:
        nature = "numbers" if numeric else "strings"
        raise s.fail(f"comparator {comparator!r} is not allowed for {ident.display} (it compares {nature}; "
                     f"allowed: {', '.join(allowed)})", _skip_ws_from(s.text, op_position))
    after = f"{ident.display} {comparator}"
    value: Value
    if comparator in NULL_COMPARATORS:
        value = None
    elif comparator in ("IN", "NOT IN"):
        value, _ = _parse_list(s, after)
    else:
        scalar, position = _parse_scalar(s, after)
        if numeric and isinstance(scalar, str):
            raise s.fail(f"{ident.display} compares numbers: use a bare number, not the string {scalar!r}", position)
        if not numeric and not isinstance(scalar, str):
            literal = s.text[position:s.pos]
            raise s.fail(f"{ident.display} compares strings: quote the value ('{literal}')", position)
        value = scalar
    return Comparison(ident.kind, ident.key, comparator, value, ident.position)


def _skip_ws_from(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def parse_filter(text: str | None, target: Target) -> list[Comparison]:
    """Parse a filter string into its AND-joined comparisons; an empty or blank filter matches all."""
    if text is None or not text.strip():
        return []
    s = _Scanner(text, "filter")
    comparisons = [_parse_comparison(s, target)]
    while not s.at_end():
        position = s.pos
        if s.take_word("AND"):
            if s.at_end():
                raise s.fail("expected a condition after AND, got the end of the filter", position)
            comparisons.append(_parse_comparison(s, target))
            if len(comparisons) > MAX_CONDITIONS:
                raise s.fail(f"more than {MAX_CONDITIONS} conditions", position)
        elif (s.word() or "").upper() == "OR":
            raise s.fail("OR is not supported: MLflow's search syntax joins conditions with AND only "
                         "(run one search per alternative, or use IN (...))")
        else:
            raise s.fail(f"unexpected {s.token_here()!r}: expected AND or the end of the filter")
    return comparisons


def parse_order_by(clause: str, target: Target) -> OrderKey:
    """One order_by clause: ``<identifier> [ASC|DESC]`` (ascending when the direction is left out)."""
    if not isinstance(clause, str) or not clause.strip():
        raise FilterError("invalid order_by: an empty clause")
    s = _Scanner(clause, f"order_by clause {clause!r}")
    if target.name == "runs" and (word := s.word()) is not None and not clause[s.pos + len(word):].startswith("."):
        # MLflow's run ordering also accepts a bare attribute name (start_time DESC)
        if target.canonical_attribute(word) is not None:
            s.pos += len(word)
            ident = Identifier(ATTRIBUTE, target.canonical_attribute(word) or word, 0)
        else:
            ident = _parse_identifier(s, target)
    else:
        ident = _parse_identifier(s, target)
    if ident.kind not in target.orderable_kinds:
        raise s.fail(f"{target.name} cannot be ordered by {DISPLAY_PREFIX[ident.kind]}", ident.position)
    ascending = True
    if s.take_word("DESC"):
        ascending = False
    else:
        s.take_word("ASC")
    if not s.at_end():
        raise s.fail(f"unexpected {s.token_here()!r}: expected ASC, DESC or the end of the clause")
    return OrderKey(ident.kind, ident.key, ascending)
