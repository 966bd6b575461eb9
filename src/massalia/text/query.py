"""The search language: words, "phrases", "proximity"~N, AND / OR / NOT (or ``-``), parentheses.

One small parser for every backend (Tantivy, PostgreSQL), so a query means the same everywhere and a
caller can never reach a field that is not a text field (Tantivy's own parser accepts ``field:value``,
which would let a search probe ``person_id:42``: filters are the service's business, never the query's).

Grammar (operators in capitals; two items side by side mean AND)::

    query   := or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*
    unary   := ("NOT" | "-") unary | "+"? primary
    primary := WORD | '"' words '"' ["~" N] | "(" or ")"

Every input is bounded (:data:`MAX_QUERY_CHARS`, :data:`MAX_CLAUSES`, :data:`MAX_DEPTH`, :data:`MAX_SLOP`);
a malformed query raises :class:`QuerySyntaxError`, which says what is wrong and at which character.

Examples
--------
>>> canonical(parse_query('"cancer du sein"~2 AND (métastase OR -récidive)'))
'("cancer du sein"~2 AND (métastase OR NOT récidive))'
>>> parse_query('"cancer')
Traceback (most recent call last):
...
massalia.text.query.QuerySyntaxError: unclosed quote at character 1 of the query
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from massalia.governance.model import InvalidRequest

MAX_QUERY_CHARS = 500
"""Longest query accepted (characters)."""
MAX_CLAUSES = 32
"""Most words and phrases in one query."""
MAX_DEPTH = 8
"""Deepest nesting of parentheses and NOT."""
MAX_SLOP = 50
"""Largest proximity ``~N``: beyond it a "phrase" is just its words anywhere in the document."""
MAX_PHRASE_WORDS = 12
"""Most words in one phrase."""

OPERATORS = frozenset({"AND", "OR", "NOT"})
_TOKEN = re.compile(r'\s+|(?P<open>\()|(?P<close>\))|(?P<quote>")|(?P<minus>-)|(?P<plus>\+)|(?P<word>[^\s()"]+)')
_SLOP = re.compile(r"~(\d{1,3})")


class QuerySyntaxError(InvalidRequest):
    """A malformed search query: ``message`` says what, ``position`` where (0-based character)."""

    def __init__(self, message: str, position: int) -> None:
        self.message = message
        self.position = position
        super().__init__(f"{message} at character {position + 1} of the query")


@dataclass(frozen=True)
class Word:
    """One word, matched through its forms (stem of singular and plural)."""

    text: str
    position: int


@dataclass(frozen=True)
class Phrase:
    """Words in order, at most ``slop`` moves apart (0: adjacent)."""

    text: str
    slop: int
    position: int


@dataclass(frozen=True)
class And:
    """Every item matches."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    """At least one item matches."""

    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    """The item does not match (inside an AND: the other items restrict, the NOT excludes)."""

    item: Node
    position: int


Node = Word | Phrase | And | Or | Not


@dataclass(frozen=True)
class _Token:
    kind: str  # open, close, phrase, minus, plus, word, and, or, not
    text: str
    position: int
    slop: int = 0


def _tokens(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    at = 0
    while at < len(text):
        if text[at] == '"':
            end = text.find('"', at + 1)
            if end < 0:
                raise QuerySyntaxError("unclosed quote", at)
            inner = text[at + 1 : end]
            slop = 0
            match = _SLOP.match(text, end + 1)
            if match:
                slop = int(match.group(1))
                if slop > MAX_SLOP:
                    raise QuerySyntaxError(f"proximity ~{slop} is above the limit of {MAX_SLOP}", end + 1)
            elif text.startswith("~", end + 1):
                raise QuerySyntaxError("~ must be followed by a number of words (e.g. ~3)", end + 1)
            tokens.append(_Token("phrase", inner, at, slop))
            at = match.end() if match else end + 1
            continue
        match = _TOKEN.match(text, at)
        if match is None:  # pragma: no cover - the pattern matches any character
            raise QuerySyntaxError("unexpected character", at)
        kind = match.lastgroup
        if kind == "word":
            word = match.group("word")
            kind = word.lower() if word in OPERATORS else "word"
            tokens.append(_Token(kind, word, at))
        elif kind is not None:
            tokens.append(_Token(kind, match.group(kind), at))
        at = match.end()
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0
        self.clauses = 0
        self.end = len(text)

    def peek(self) -> _Token | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.tokens[self.at]
        self.at += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise QuerySyntaxError("the query is empty", 0)
        node = self.or_(0)
        extra = self.peek()
        if extra is not None:
            raise QuerySyntaxError(f"unexpected {extra.text!r}", extra.position)
        return node

    def or_(self, depth: int) -> Node:
        items = [self.and_(depth)]
        while (token := self.peek()) is not None and token.kind == "or":
            self.take()
            items.append(self.and_(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self, depth: int) -> Node:
        items = [self.unary(depth)]
        while (token := self.peek()) is not None and token.kind not in ("or", "close"):
            if token.kind == "and":
                self.take()
            items.append(self.unary(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def unary(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            token = self.peek()
            raise QuerySyntaxError(f"nesting deeper than {MAX_DEPTH}", token.position if token else self.end)
        token = self.peek()
        if token is None:
            raise QuerySyntaxError("a word or phrase is missing", self.end)
        if token.kind in ("not", "minus"):
            self.take()
            return Not(self.unary(depth + 1), token.position)
        if token.kind == "plus":
            self.take()
        return self.primary(depth)

    def primary(self, depth: int) -> Node:
        token = self.peek()
        if token is None:
            raise QuerySyntaxError("a word or phrase is missing", self.end)
        self.take()
        if token.kind == "open":
            node = self.or_(depth + 1)
            closing = self.peek()
            if closing is None or closing.kind != "close":
                raise QuerySyntaxError("unclosed parenthesis", token.position)
            self.take()
            return node
        if token.kind in ("word", "phrase"):
            self.clauses += 1
            if self.clauses > MAX_CLAUSES:
                raise QuerySyntaxError(f"more than {MAX_CLAUSES} words and phrases", token.position)
            if token.kind == "word":
                return Word(token.text, token.position)
            if not token.text.strip():
                raise QuerySyntaxError("empty phrase", token.position)
            if len(token.text.split()) > MAX_PHRASE_WORDS:
                raise QuerySyntaxError(f"a phrase has at most {MAX_PHRASE_WORDS} words", token.position)
            return Phrase(token.text, token.slop, token.position)
        raise QuerySyntaxError(f"unexpected {token.text!r}", token.position)


def parse_query(text: str) -> Node:
    """The query ``text`` as a tree of :data:`Node`.

    Raises
    ------
    QuerySyntaxError
        The query is empty, too long, or malformed (what and where in the message).
    """
    if not isinstance(text, str):
        raise QuerySyntaxError(f"the query must be text, got {type(text).__name__}", 0)
    if len(text) > MAX_QUERY_CHARS:
        raise QuerySyntaxError(f"the query is longer than {MAX_QUERY_CHARS} characters", MAX_QUERY_CHARS)
    if "\x00" in text:
        raise QuerySyntaxError("NUL character", text.index("\x00"))
    return _Parser(text).parse()


def positive_words(node: Node) -> list[str]:
    """The words and phrases' words the query asks for (not under NOT): what snippets highlight."""
    if isinstance(node, Word):
        return [node.text]
    if isinstance(node, Phrase):
        return node.text.split()
    if isinstance(node, And | Or):
        return [word for item in node.items for word in positive_words(item)]
    return []


def canonical(node: Node) -> str:
    """A normalized text of the query (spacing and case of operators removed): equal meaning, equal text.

    Examples
    --------
    >>> canonical(parse_query('cancer   AND  "sein"~1')) == canonical(parse_query('cancer "sein"~1'))
    True
    """
    if isinstance(node, Word):
        return node.text
    if isinstance(node, Phrase):
        return f'"{" ".join(node.text.split())}"' + (f"~{node.slop}" if node.slop else "")
    if isinstance(node, Not):
        return f"NOT {canonical(node.item)}"
    joiner = " AND " if isinstance(node, And) else " OR "
    return "(" + joiner.join(canonical(item) for item in node.items) + ")"
