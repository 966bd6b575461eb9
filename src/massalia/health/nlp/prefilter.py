r"""A first-character guard for regular expressions: the same matches, far fewer positions tried.

A ``finditer`` tries the whole pattern at every position of the text. EDS-NLP's date patterns open with an
optional variable-width look-behind ("depuis le", "à partir du"...) and Massalia's label patterns are alternations of
a hundred terms: both cost their full price at every character, although a match can only begin with a few
characters (a digit, the first letter of a month or of a term). :func:`guarded` puts a look-ahead on that set of
first characters in front of the pattern, so that the regular-expression engine gives up at once elsewhere.

The set is derived from the pattern itself (its parse tree), never written by hand, and it is a superset of the
characters a match may start with: the guarded pattern finds exactly the matches of the original (the same spans
and the same groups), which ``tests/health/nlp/test_prefilter.py`` checks on the demo notes. When the set cannot
be derived (a pattern that may match the empty string or start with any character, syntax the standard parser
does not read), the pattern is returned unchanged.

Examples
--------
>>> first_char_class(r"(?:\bcancer|k) du sein|\d+ mg")
'[ck\\d]'
>>> first_char_class(r"x?") is None
True
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any, TypeVar

# The standard library's own regular-expression parser (Python 3.11+: ``re._parser``; ``sre_parse`` is deprecated).
_sre_parse: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

P = TypeVar("P")

_CATEGORIES = {
    _c.CATEGORY_DIGIT: r"\d",
    _c.CATEGORY_SPACE: r"\s",
    _c.CATEGORY_WORD: r"\w",
}
_NEGATED = {
    _c.CATEGORY_NOT_DIGIT: r"\d",
    _c.CATEGORY_NOT_SPACE: r"\s",
    _c.CATEGORY_NOT_WORD: r"\w",
}
_ZERO_WIDTH = {_c.AT, _c.ASSERT, _c.ASSERT_NOT}
_REPEATS = {_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", _c.MAX_REPEAT)}
_LEADING_FLAGS = re.compile(r"^\(\?[aiLmsux]+\)")


class _AnyCharacterError(Exception):
    """The pattern may start with (almost) any character: no guard is worth it."""


def _char(code: int) -> str:
    return re.escape(chr(code))


def _class_items(items: Any) -> list[str]:
    """The members of a ``[...]`` set as class fragments (a negated set or an unknown category: any character)."""
    out: list[str] = []
    if len(items) == 2 and items[0][0] is _c.NEGATE and items[1][0] is _c.CATEGORY and items[1][1] in _NEGATED:
        return [_NEGATED[items[1][1]]]  # [^\S] is \s (EDS-NLP writes its space delimiter so)
    for op, av in items:
        if op is _c.LITERAL:
            out.append(_char(av))
        elif op is _c.RANGE:
            out.append(f"{_char(av[0])}-{_char(av[1])}")
        elif op is _c.CATEGORY and av in _CATEGORIES:
            out.append(_CATEGORIES[av])
        else:  # NEGATE, other categories
            raise _AnyCharacterError
    return out


def _first(sequence: Any) -> tuple[list[str], bool]:
    """Class fragments of the characters a match of ``sequence`` may start with, and whether it may be empty."""
    out: list[str] = []
    for op, av in sequence:
        if op in _ZERO_WIDTH:
            continue  # consumes nothing: the next item gives the first character
        if op is _c.LITERAL:
            out.append(_char(av))
            return out, False
        if op is _c.IN:
            out.extend(_class_items(av))
            return out, False
        if op is _c.SUBPATTERN:
            add_flags, del_flags = av[1], av[2]
            if add_flags or del_flags:  # an inline flag (case, dot-all...) inside: stay on the safe side
                raise _AnyCharacterError
            fragments, nullable = _first(av[3])
        elif op is getattr(_c, "ATOMIC_GROUP", None):
            fragments, nullable = _first(av)
        elif op is _c.BRANCH:
            fragments, nullable = [], False
            for alternative in av[1]:
                more, empty = _first(alternative)
                fragments += more
                nullable = nullable or empty
        elif op in _REPEATS:
            fragments, nullable = _first(av[2])
            nullable = nullable or av[0] == 0
        else:  # ANY, NOT_LITERAL, back-references, conditionals
            raise _AnyCharacterError
        out.extend(fragments)
        if not nullable:
            return out, False
    return out, True


@dataclass(frozen=True)
class _Shape:
    """What a (sub)pattern's matches look like at their start: first and second characters, short lengths.

    ``first`` / ``second``: class fragments of the characters at positions 1 and 2 (``None``: any character);
    ``empty`` / ``single``: whether a match may be 0 / exactly 1 character long. Every field errs on the
    permissive side (more characters, ``True``), which is what keeps a guard built on it exact.
    """

    first: list[str] | None
    second: list[str] | None
    empty: bool
    single: bool


_EMPTY = _Shape([], [], True, False)
_ANY = _Shape(None, None, True, True)


def _union(a: list[str] | None, b: list[str] | None) -> list[str] | None:
    return None if a is None or b is None else a + b


def _concat(a: _Shape, b: _Shape) -> _Shape:
    first = _union(a.first, b.first) if a.empty else a.first
    second = a.second
    if a.single:
        second = _union(second, b.first)
    if a.empty:
        second = _union(second, b.second)
    return _Shape(first, second, a.empty and b.empty, (a.single and b.empty) or (a.empty and b.single))


def _shape(sequence: Any) -> _Shape:
    """The :class:`_Shape` of a parsed sequence (concatenation of its items)."""
    shape = _EMPTY
    for op, av in sequence:
        shape = _concat(shape, _item_shape(op, av))
    return shape


def _item_shape(op: Any, av: Any) -> _Shape:
    if op in _ZERO_WIDTH:
        return _EMPTY
    if op is _c.LITERAL:
        return _Shape([_char(av)], [], False, True)
    if op is _c.IN:
        try:
            return _Shape(_class_items(av), [], False, True)
        except _AnyCharacterError:
            return _Shape(None, [], False, True)
    if op is _c.SUBPATTERN:
        return _ANY if av[1] or av[2] else _shape(av[3])
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _shape(av)
    if op is _c.BRANCH:
        shapes = [_shape(alternative) for alternative in av[1]]
        first: list[str] | None = []
        second: list[str] | None = []
        for one in shapes:
            first, second = _union(first, one.first), _union(second, one.second)
        return _Shape(first, second, any(x.empty for x in shapes), any(x.single for x in shapes))
    if op in _REPEATS:
        inner = _shape(av[2])
        second = _union(inner.second, inner.first) if inner.single and av[1] != 1 else inner.second
        return _Shape(inner.first, second, av[0] == 0 or inner.empty, inner.single)
    return _ANY  # ANY, NOT_LITERAL, back-references, conditionals


def second_char_class(pattern: str, flags: int = 0) -> str | None:
    r"""A character class holding every character a match of ``pattern`` may have second, or ``None``.

    ``None`` when a match may be shorter than two characters or its second character may be any.

    Examples
    --------
    >>> second_char_class(r"(?:\bcancer|k) du sein|\d+ mg")
    '[a\\ \\d]'
    """
    try:
        shape = _shape(_sre_parse.parse(_LEADING_FLAGS.sub("", pattern), flags & re.VERBOSE))
    except (re.error, RecursionError, TypeError, ValueError, OverflowError):
        return None
    if shape.empty or shape.single or not shape.second:
        return None
    return "[" + "".join(dict.fromkeys(shape.second)) + "]"


def first_char_class(pattern: str, flags: int = 0) -> str | None:
    r"""A character class holding every character a match of ``pattern`` may start with, or ``None``.

    ``None`` when the pattern may match the empty string, may start with any character, or is written in a
    syntax Python's own parser does not read (the ``regex`` module's extensions). The class is written with the
    pattern's own escapes (``\d``, ``\w``), so that the engine compiling the guarded pattern reads it with the
    same flags and the same Unicode rules as the pattern.
    """
    body = _LEADING_FLAGS.sub("", pattern)
    try:
        parsed = _sre_parse.parse(body, flags & re.VERBOSE)
        fragments, nullable = _first(parsed)
    except (_AnyCharacterError, re.error, RecursionError, TypeError, ValueError, OverflowError):
        return None
    if nullable or not fragments:
        return None
    return "[" + "".join(dict.fromkeys(fragments)) + "]"


def _zero_width(op: Any, av: Any) -> bool:
    """Whether an item consumes nothing whatever it meets (an assertion, or a repeat of assertions only)."""
    if op in _ZERO_WIDTH:
        return True
    return op in _REPEATS and all(_zero_width(o, a) for o, a in av[2])


def _single_character(alternative: Any) -> list[str] | None:
    """Class fragments of an alternative matching one character whatever follows it optionally, else ``None``.

    ``[0-9][,]?`` gives ``[0-9]``: inside a look-behind it matches as soon as a digit stands right before.
    """
    items = list(alternative)
    if not items or items[0][0] not in (_c.LITERAL, _c.IN):
        return None
    if any(op not in _REPEATS or av[0] != 0 for op, av in items[1:]):
        return None
    op, av = items[0]
    try:
        return [_char(av)] if op is _c.LITERAL else _class_items(av)
    except _AnyCharacterError:
        return None


def excluded_before_class(pattern: str, flags: int = 0) -> str | None:
    r"""A class of characters that cannot stand right before a match of ``pattern``, or ``None``.

    Read from the negative look-behinds the pattern opens with (after other zero-width items): each of their
    alternatives that matches a single character (possibly followed by optional items) forbids that character
    right before the match. EDS-NLP's date patterns open so (no letter, digit, ``.``, ``:`` or ``%`` before a day or
    a year): checked first, it drops the positions inside words and numbers before the long alternations of days and
    months are tried.

    Examples
    --------
    >>> excluded_before_class(r"(?<=du )?(?<!.-|[a-z]|[0-9][,]?)\d+")
    '[a-z0-9]'
    >>> excluded_before_class(r"(?<!ab)\d") is None
    True
    """
    try:
        parsed = _sre_parse.parse(_LEADING_FLAGS.sub("", pattern), flags & re.VERBOSE)
    except (re.error, RecursionError, TypeError, ValueError, OverflowError):
        return None
    fragments: list[str] = []
    for op, av in parsed:
        if op is _c.ASSERT_NOT and av[0] < 0:  # (?<!...): its alternatives
            body = list(av[1])
            alternatives = body[0][1][1] if len(body) == 1 and body[0][0] is _c.BRANCH else [av[1]]
            for alternative in alternatives:
                fragments += _single_character(alternative) or []
        elif not _zero_width(op, av):
            break
    return "[" + "".join(dict.fromkeys(fragments)) + "]" if fragments else None


def guarded_source(pattern: str, flags: int = 0, *, before: bool = False) -> str:
    """``pattern`` with a look-ahead on its first characters (after any leading ``(?i)``-style flags).

    ``before``: also a look-behind on the characters that cannot precede a match (:func:`excluded_before_class`).
    """
    first = first_char_class(pattern, flags)
    if first is None:
        return pattern
    second = second_char_class(pattern, flags)
    excluded = excluded_before_class(pattern, flags) if before else None
    lead = _LEADING_FLAGS.match(pattern)
    head = lead.group(0) if lead else ""
    # The second character narrows further (most French words start with one of a term's first letters).
    behind = f"(?<!{excluded})" if excluded else ""
    return f"{head}(?={first}{second or ''}){behind}(?:{pattern[len(head) :]})"


def guarded(compiled: P, *, before: bool = False) -> P:
    """The same compiled pattern (``re`` or ``regex``) with a first-character look-ahead, or itself unchanged.

    ``before``: also a look-behind on the characters its opening look-behinds forbid (see :func:`guarded_source`).
    """
    source = getattr(compiled, "pattern", None)
    flags = int(getattr(compiled, "flags", 0))
    if not isinstance(source, str):
        return compiled
    new = guarded_source(source, flags, before=before)
    if new == source:
        return compiled
    module = type(compiled).__module__
    engine: Any = re if module == "re" else __import__(module.lstrip("_"))
    try:
        result: P = engine.compile(new, flags)
    except Exception:  # an engine refusing the guarded text keeps its own pattern: correctness first
        return compiled
    return result
