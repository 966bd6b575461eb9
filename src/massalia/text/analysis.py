"""French text analysis shared by every backend: the analyzer, and the forms a query word stands for.

The index analyzer is Tantivy's simple tokenizer (splits on every non-alphanumeric character, so the
elisions ``l'``, ``d'``, ``qu'`` become the words ``l``, ``d``, ``qu``, which the French stop list drops),
then: drop tokens longer than :data:`MAX_TOKEN_CHARS`, lowercase, drop French stop words, fold accents
to ASCII (``hépatique`` → ``hepatique``), stem with Snowball's French stemmer.

Snowball does not always give a singular and its plural the same stem (``cancer`` → ``canc`` but
``cancers`` → ``cancer``), so a query word is matched through its **forms** (:func:`word_forms`): the
stems of the word and of its plural or singular. Both backends use the same forms.

Examples
--------
>>> french_analyzer().analyze("L'hôpital d'Aix : métastases hépatiques")
['hopital', 'aix', 'metastas', 'hepat']
>>> sorted(word_forms("cancer")) == sorted(word_forms("cancers")) == ["canc", "cancer"]
True
"""

from __future__ import annotations

import functools
import unicodedata

import tantivy

FRENCH = "fr_massalia"
"""The name the French analyzer is registered under in every Tantivy index of the platform."""
KEYWORD = "raw"
"""Tantivy's analyzer for keyword fields: the value as one exact token."""
MAX_TOKEN_CHARS = 40
"""Longer tokens (base64 blobs, runs of symbols) are dropped: they only bloat the index."""


@functools.cache
def french_analyzer() -> tantivy.TextAnalyzer:
    """The French analyzer (built once; Tantivy analyzers are immutable and shareable)."""
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_CHARS))
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.stopword("french"))
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer("french"))
        .build()
    )


def analyzed_positions(text: str) -> list[tuple[int, str]]:
    """``(position, stem)`` of each token of ``text``, positions counted before stop words were dropped.

    Examples
    --------
    >>> analyzed_positions("patient a des métastases")
    [(0, 'patient'), (1, 'a'), (3, 'metastas')]
    """
    tokens = french_analyzer().pre_tokenize(text).tokens
    if not tokens:
        return []
    first = tokens[0].position
    return [(token.position - first, token.text) for token in tokens]


def fold(word: str) -> str:
    """``word`` lowercased without accents (the form the stemmer's input has after the filters).

    Examples
    --------
    >>> fold("Métastases")
    'metastases'
    """
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def word_forms(word: str) -> frozenset[str]:
    """The stems a single query word matches: its own, and its plural's or singular's (French ``-s``/``-x``).

    Empty when the word is a stop word (or too long).

    Examples
    --------
    >>> sorted(word_forms("métastase"))
    ['metastas']
    >>> word_forms("les")
    frozenset()
    """
    base = fold(word)
    own = french_analyzer().analyze(base)
    if len(own) != 1:
        return frozenset(own[:1])
    variants = [base[:-1]] if base.endswith(("s", "x")) and len(base) > 3 else [base + "s"]
    forms = {own[0]}
    for variant in variants:
        stems = french_analyzer().analyze(variant)
        if len(stems) == 1:
            forms.add(stems[0])
    return frozenset(forms)
