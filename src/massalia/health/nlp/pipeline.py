"""The clinical NLP pipeline: EDS-NLP's rule pipes plus Massalia's oncology patterns, run in batches.

EDS-NLP (AP-HP) gives the French clinical machinery that runs offline without a model download:
sentence splitting, text normalization, the qualifiers (negation, hypothesis, family, history), dates and
TNM. Massalia's patterns (:mod:`massalia.health.nlp.lexicon`) find the oncology entities (cancer site,
histology, biomarkers with their results, performance status, metastases, drugs, comorbidities,
procedures, adverse events, progression and relapse statements); they become the document's entities,
which the qualifier pipes then qualify.

Speed: one pass of compiled regular expressions over the folded note finds Massalia's entities (instead of
one matcher pipe per label), a label's terms behind their shared word-start look-behind checked once; every
pattern (Massalia's, EDS-NLP's dates and TNM) sits behind a look-ahead on the characters its matches can start
with, the date patterns also behind the characters that cannot precede a day or a year
(:mod:`massalia.health.nlp.prefilter`, same findings); the date patterns scan only the windows around digits,
without the optional "depuis le" look-behind that only fills a date's bound; the note's text travels with its doc
(spaCy rebuilds ``Doc.text`` from the tokens at each call); EDS-NLP's three normalizer loops run as one;
:func:`extract_parallel` spreads small chunks over worker processes, a few ahead, which inherit the pipeline
built once in the parent. ``ClinicalPipeline(guard=False)`` runs everything as written: the tests compare both.

Examples
--------
>>> pipeline = ClinicalPipeline()  # doctest: +SKIP
>>> [(f.label, f.value, f.negated) for f in pipeline.extract(["Pas de métastase hépatique."])[0]]  # doctest: +SKIP
[('metastasis', 'C78.7', True)]
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import logging
import multiprocessing
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from itertools import chain
from typing import Any

from massalia.health.nlp import lexicon as lx
from massalia.health.nlp.prefilter import guarded

PIPELINE_VERSION = "1.0.0"
QUALIFIERS: tuple[str, ...] = ("negated", "hypothesis", "family", "history")
ENTITY_LABELS: tuple[str, ...] = (
    "cancer", "histology", "tnm", "stage", "biomarker", "drug", "date", "metastasis", "comorbidity", "procedure",
    "adverse_event", "ecog", "progression",
)  # fmt: skip
"""Labels the pipeline finds (the generator's labels, plus ``progression``)."""
MAX_NOTE_CHARACTERS = 200_000
"""Longer notes are cut: the rule pipes are linear but a runaway note should not hold a worker for minutes."""


def nlp_system() -> str:
    """The ``nlp_system`` written with every finding: the pipeline's version and EDS-NLP's.

    Examples
    --------
    >>> nlp_system().startswith("massalia-nlp ")
    True
    """
    try:
        eds = version("edsnlp")
    except PackageNotFoundError:  # the version is informative here; building the pipeline fails clearly
        eds = "?"
    return f"massalia-nlp {PIPELINE_VERSION} (edsnlp {eds})"


@dataclass(frozen=True)
class Finding:
    """One entity found in a note: character offsets, label, value, source code and qualifiers."""

    start: int
    end: int
    label: str
    value: str
    lexical_variant: str
    vocabulary: str = ""
    code: str = ""
    negated: bool = False
    hypothesis: bool = False
    family: bool = False
    history: bool = False


@dataclass(frozen=True)
class _Candidate:
    start: int
    end: int
    label: str
    value: str
    vocabulary: str
    code: str


class _Patterns:
    """Massalia's compiled patterns: one alternation per label, each alternative a named group."""

    def __init__(self, guard: bool = True) -> None:
        # ``guard``: each pattern behind a look-ahead on its first characters, and a label's terms behind their
        # shared word-start look-behind (same matches, see prefilter.py); ``False``: the patterns as written.
        keep: Any = guarded if guard else (lambda pattern: pattern)
        self.by_label: list[tuple[re.Pattern[str], dict[str, lx.Term]]] = []
        grouped: dict[str, list[lx.Term]] = {}
        for term in lx.terms():
            grouped.setdefault(term.label, []).append(term)
        for group in grouped.values():
            names = {f"g{i}": term for i, term in enumerate(group)}
            alternation = "|".join(f"(?P<{name}>{term.pattern})" for name, term in names.items())
            if guard and all(term.pattern.startswith(lx.WORD_START) for term in group):
                # Every alternative opens with the same word-start look-behind: checked once in front, the engine
                # drops a position inside a word at once instead of trying each of the label's terms there (the
                # same matches: a zero-width assertion shared by all alternatives; half the label patterns' CPU).
                # Checked there, it is not checked again in each term.
                cut = len(lx.WORD_START)
                alternation = "|".join(f"(?P<{name}>{term.pattern[cut:]})" for name, term in names.items())
                alternation = f"{lx.WORD_START}(?:{alternation})"
            self.by_label.append((keep(re.compile(alternation)), names))
        self.biomarkers = [
            (key, vocabulary, code, keep(re.compile(lx.biomarker_pattern(pattern, key))))
            for key, vocabulary, code, pattern in lx.BIOMARKERS
        ]
        self.ecog = keep(re.compile(lx.ECOG))
        self.stage = keep(re.compile(lx.STAGE))
        self.tnm = re.compile(lx.TNM)

    def find(self, folded: str) -> list[_Candidate]:
        found: list[_Candidate] = []
        for pattern, names in self.by_label:
            for match in pattern.finditer(folded):
                name = match.lastgroup
                term = names[name] if name in names else next(names[n] for n in names if match.group(n))
                found.append(_Candidate(match.start(), match.end(), term.label, term.value, term.vocabulary, term.code))
        for key, vocabulary, code, pattern in self.biomarkers:
            for match in pattern.finditer(folded):
                result = match.group(1)
                if key in lx.NUMERIC_BIOMARKERS:
                    value = f"{key}:{int(result)}"
                else:
                    value = f"{key}:{'positive' if lx.STATUS_POSITIVE.match(result) else 'negative'}"
                found.append(_Candidate(match.start(), match.end(), "biomarker", value, vocabulary, code))
        for match in self.ecog.finditer(folded):
            found.append(_Candidate(match.start(), match.end(), "ecog", match.group(1), "LOINC", "89247-1"))
        for match in self.stage.finditer(folded):
            roman = {"1": "I", "2": "II", "3": "III", "4": "IV"}.get(match.group(1), match.group(1).upper())
            found.append(_Candidate(match.start(), match.end(), "stage", roman, "", ""))
        return _longest_first(_not_a_department(_cancer_or_histology(found, folded), folded))


_HISTOLOGY_CONTEXT = re.compile(r"(?:diagnostic|histologie|type histologique|anapath)\s*:\s*$|, $")


def _cancer_or_histology(found: list[_Candidate], folded: str) -> list[_Candidate]:
    """One reading of a mention both a cancer and a histology (``mélanome malin``, ``carcinome urothélial``).

    After "Diagnostic :" or right after a comma following a cancer ("cancer de la vessie, carcinome urothélial")
    it is the histology; elsewhere the cancer.
    """
    by_span: dict[tuple[int, int], list[_Candidate]] = {}
    for cand in found:
        by_span.setdefault((cand.start, cand.end), []).append(cand)
    kept: list[_Candidate] = []
    for (start, _), group in by_span.items():
        labels = {c.label for c in group}
        if {"cancer", "histology"} <= labels:
            line = folded[folded.rfind("\n", 0, start) + 1 : start]
            wanted = "histology" if _HISTOLOGY_CONTEXT.search(line) else "cancer"
            group = [c for c in group if c.label == wanted]
        kept.extend(group)
    return kept


_DEPARTMENT = re.compile(r"(?:service|departement|unite|pole|hopital de jour|centre|institut)\s+(?:de\s+|d')?$")


def _not_a_department(found: list[_Candidate], folded: str) -> list[_Candidate]:
    """A procedure named as a department ("Département de radiothérapie", a letterhead) is not an act."""
    return [
        c for c in found if c.label != "procedure" or not _DEPARTMENT.search(folded[max(0, c.start - 30) : c.start])
    ]


_DIGIT_RUN = re.compile(r"\d[\s.-]?$")


def _inside_a_number(text: str, start: int, end: int) -> bool:
    """A "date" that continues a longer run of digits (a NIR ``1 56 03 13 …``, a phone number) is not a date."""
    before = text[max(0, start - 2) : start]
    after = text[end : end + 2]
    return bool(_DIGIT_RUN.search(before)) or bool(re.match(r"[\s.-]?\d", after))


def _longest_first(candidates: list[_Candidate]) -> list[_Candidate]:
    """Non-overlapping candidates, the longest winning (``métastases hépatiques`` over ``métastases``)."""
    kept: list[_Candidate] = []
    taken: list[tuple[int, int]] = []
    for cand in sorted(candidates, key=lambda c: (-(c.end - c.start), c.start)):
        if any(cand.start < end and start < cand.end for start, end in taken):
            continue
        kept.append(cand)
        taken.append((cand.start, cand.end))
    return sorted(kept, key=lambda c: c.start)


def tnm_value(text: str) -> str | None:
    """A TNM as a comparable key: prefix and categories (``cT2 cN1 cM0`` and ``cT2N1M0`` both give ``cT2 N1 M0``).

    Examples
    --------
    >>> tnm_value("cT2 cN1 cM0"), tnm_value("pT1cN0"), tnm_value("T3N2M1")
    ('cT2 N1 M0', 'pT1c N0', 'T3 N2 M1')
    """
    match = re.search(lx.TNM, text.lower())
    if match is None:
        return None
    prefix, t, n, m = match.groups()
    parts = [f"{(prefix or '')[:1]}{t.upper()[0]}{t[1:]}"]
    parts += [f"{x[0].upper()}{x[1:]}" for x in (n, m) if x]
    return " ".join(parts)


class ClinicalPipeline:
    """EDS-NLP's rule pipes with Massalia's patterns; :meth:`extract` turns notes into findings.

    Parameters
    ----------
    batch_size
        Notes per ``nlp.pipe`` batch.
    guard
        The speed devices that keep the findings: every pattern (Massalia's, EDS-NLP's dates and TNM) behind a
        look-ahead on the characters its matches can start with (:mod:`massalia.health.nlp.prefilter`), a label's
        terms behind their shared word-start look-behind, the date patterns behind the characters that cannot
        precede them and without their bound look-behind, one normalizer loop instead of three. ``False`` runs
        EDS-NLP's pipes and the patterns as written (the tests compare both).
    """

    def __init__(self, batch_size: int = 64, *, guard: bool = True) -> None:
        # Imported here, not at the top: importing EDS-NLP (spaCy) takes seconds, which every `massalia` command
        # would pay through the CLI's import of this module; only building a pipeline needs it.
        import edsnlp
        import edsnlp.pipes as eds

        _quiet_edsnlp()
        self.batch_size = batch_size
        self.patterns = _Patterns(guard=guard)
        # The entities are Massalia's (set before the qualifiers by ``_massalia_entities``); EDS-NLP brings the
        # sentences, the normalized text the qualifiers read, the qualifiers themselves, dates and TNM.
        nlp = edsnlp.blank("eds")
        # A newline ends a sentence: table rows and list items do not share a negation or a hypothesis.
        nlp.add_pipe(eds.sentences(hard_newline_count=1, use_bullet_start=True))
        # Pollution (web boilerplate, bars of dashes) does not occur in these notes; quotes and spaces are kept
        # for the qualifiers' patterns. Relative dates and durations need the note's date and are not findings.
        nlp.add_pipe(eds.normalizer(pollution=False))
        if guard:
            _one_normalizing_pass(dict(nlp.pipeline)["normalizer"])
        nlp.add_pipe(eds.negation())
        nlp.add_pipe(eds.hypothesis())
        nlp.add_pipe(eds.family())
        nlp.add_pipe(eds.history())
        nlp.add_pipe(eds.dates(relative=[], duration=[], detect_periods=False, detect_time=False))
        dates = dict(nlp.pipeline)["dates"]
        if guard:
            _without_bounds(dates.regex_matcher)
            _guard_matcher(dates.regex_matcher)
        dates.regex_matcher = _DigitWindows(dates.regex_matcher)
        nlp.add_pipe(eds.tnm(span_setter={"tnm": True}))  # not in ents: its span may cover "(stade II)"
        if guard:
            _guard_matcher(dict(nlp.pipeline)["tnm"].regex_matcher)
        # Added last but run before the qualifiers (EDS-NLP's qualifiers inspect the pipes present when built).
        nlp.add_pipe(self._massalia_entities, name="massalia_entities", before="negation")
        self.nlp = nlp

    @property
    def pipe_names(self) -> list[str]:
        """Names of the pipes, in order."""
        return list(self.nlp.pipe_names)

    def _massalia_entities(self, doc: Any) -> Any:
        spans: list[Any] = []
        values: dict[tuple[int, int], _Candidate] = {}
        found = doc.user_data.pop(_FOUND, None)
        for cand in found if found is not None else self.patterns.find(lx.fold(doc_text(doc))):
            span = doc.char_span(cand.start, cand.end, label=cand.label, alignment_mode="expand")
            if span is None or any(span.start < s.end and s.start < span.end for s in spans):
                continue
            spans.append(span)
            values[(span.start_char, span.end_char)] = cand
        doc.ents = spans
        doc.user_data["massalia"] = values
        return doc

    def extract(self, texts: Sequence[str]) -> list[list[Finding]]:
        """Findings of each note, in order (one list per note, possibly empty)."""
        texts = [t[:MAX_NOTE_CHARACTERS] if isinstance(t, str) else "" for t in texts]
        out: list[list[Finding]] = []
        for start in range(0, len(texts), self.batch_size):
            docs = [self._doc(text) for text in texts[start : start + self.batch_size]]
            for doc in self.nlp.pipe(docs, batch_size=self.batch_size):
                found = list(self._qualified(doc)) + list(self._dates_and_tnm(doc))
                out.append(sorted(found, key=lambda f: (f.start, f.end)))
        return out

    def _doc(self, text: str) -> Any:
        """The tokenized note carrying its text and Massalia's matches for the pipes after it.

        spaCy rebuilds ``Doc.text`` from every token at each call (a Python loop over the tokens): the text is kept
        beside the doc (:func:`doc_text`) instead. Massalia's patterns run here, once per note, on the folded text.
        """
        doc = self.nlp.make_doc(text)
        doc.user_data[_TEXT] = text
        doc.user_data[_FOUND] = self.patterns.find(lx.fold(text))
        return doc

    @staticmethod
    def _qualified(doc: Any) -> Iterator[Finding]:
        values: dict[tuple[int, int], _Candidate] = doc.user_data.get("massalia", {})
        text = doc_text(doc)
        for ent in doc.ents:
            cand = values.get((ent.start_char, ent.end_char))
            if cand is None:
                continue
            # A list under an "Antécédents :" heading is the patient's history item by item (EDS-NLP's history
            # pipe reaches the first items only); under "Antécédents familiaux :" it is a relative's.
            line = _heading_line(text, ent.start_char)
            family_heading = bool(lx.FAMILY_HEADING.match(line))
            hypothesis_cue = _hypothesis_cue(text, ent.start_char, ent.end_char)
            history_heading = not family_heading and bool(lx.HISTORY_HEADING.match(line))
            yield Finding(
                start=ent.start_char,
                end=ent.end_char,
                label=cand.label,
                value=cand.value,
                lexical_variant=ent.text,
                vocabulary=cand.vocabulary,
                code=cand.code,
                negated=_negated(ent, cand.label, text),
                hypothesis=hypothesis_cue or bool(ent._.hypothesis),
                family=family_heading or bool(ent._.family),
                history=history_heading or (bool(ent._.history) and not family_heading),
            )

    @staticmethod
    def _dates_and_tnm(doc: Any) -> Iterator[Finding]:
        text = doc_text(doc)
        for span in doc.spans.get("dates", []):
            value = _date_value(span._.date)
            if value is not None and not _inside_a_number(text, span.start_char, span.end_char):
                yield Finding(span.start_char, span.end_char, "date", value, text[span.start_char : span.end_char])
        for span in doc.spans.get("tnm", []):
            # EDS-NLP's span may run on over a following "(stade II)": keep the TNM itself.
            match = re.search(lx.TNM, lx.fold(span.text))
            if match is None:
                continue
            value = tnm_value(span.text)
            if value is None:
                continue
            start = span.start_char + match.start()
            yield Finding(
                start, span.start_char + match.end(), "tnm", value, text[start : span.start_char + match.end()]
            )


_TEXT = "massalia_text"
_FOUND = "massalia_found"


def doc_text(doc: Any) -> str:
    """The note's text: kept in ``doc.user_data`` when the pipeline made the doc, else rebuilt once and kept.

    ``Doc.text`` joins every token's text in a Python loop at each call; a pipe and the findings read it often.
    """
    text = doc.user_data.get(_TEXT)
    if not isinstance(text, str):
        text = doc.user_data[_TEXT] = doc.text
    return text


def _negated(ent: Any, label: str, text: str) -> bool:
    """Whether a mention is negated.

    A biomarker's result words ("négatif", "absente", "non surexprimé") are its value, not a negation of the
    mention, and in a list they reach EDS-NLP's negation of the next marker: a biomarker is negated only when
    the test itself is ("pas de recherche de mutation EGFR"). A metastasis or node mention may carry its own
    negation at its end ("ganglions indemnes", "bilan d'extension négatif").
    """
    if label == "biomarker":
        before = text[max(0, ent.start_char - 60) : ent.start_char]
        cut = max((m.end() for m in _CLAUSE_END.finditer(before)), default=0)
        return bool(lx.TEST_NOT_DONE.search(lx.fold(before[cut:])))
    if label == "metastasis" and lx.NEGATED_WITHIN.search(lx.fold(ent.text)):
        return True
    return bool(ent._.negation)


_BULLET = re.compile(r"^\s*[-*•]")


_DIGITS = re.compile(r"\d+(?:[\s/.:-]+\d+)*")
DATE_WINDOW = 30
"""Characters kept on each side of a run of digits for the date patterns (a month name is at most 9)."""


def digit_windows(doc: Any) -> list[Any]:
    """The spans of ``doc`` around its runs of digits (``DATE_WINDOW`` characters each side, overlaps merged).

    An absolute date has a day or a year in digits; the rest of a note cannot hold one.
    """
    text = doc_text(doc)
    bounds: list[list[int]] = []
    for match in _DIGITS.finditer(text):
        start, end = max(0, match.start() - DATE_WINDOW), min(len(text), match.end() + DATE_WINDOW)
        if bounds and start <= bounds[-1][1]:
            bounds[-1][1] = max(bounds[-1][1], end)
        else:
            bounds.append([start, end])
    spans = (doc.char_span(start, end, alignment_mode="expand") for start, end in bounds)
    return [span for span in spans if span is not None]


class _DigitWindows:
    """EDS-NLP's date matcher run on the windows around digits instead of the whole note.

    Profiling (``benchmarks/nlp.py``) put ~40 % of a note's time in the 16 absolute-date patterns of ``eds.dates``
    scanning the whole text; scanning only the windows gives the same dates (the same findings on the demo
    warehouse's notes, checked by the evaluation floors) for ~15 % less CPU per note. A span (EDS-NLP asks per
    sentence when it has a span getter) is matched as before.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        # The keys without a pattern (relative dates and durations are switched off) would still rebuild each
        # window's text: dropped (no pattern, no match).
        inner.regex = [entry for entry in inner.regex if entry[1]]

    def __call__(self, doclike: Any, **options: Any) -> Iterator[Any]:
        if getattr(doclike, "doc", None) is not doclike:  # a Span (a Doc is its own .doc)
            return iter(self.inner(doclike, **options))
        return chain.from_iterable(self.inner(span, **options) for span in digit_windows(doclike))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _NormalizingPass:
    """EDS-NLP's accents, quotes and spaces normalizers in one pass over the tokens instead of three.

    Each of them loops over every token in Python (7 % of a note's CPU together). Per token they are independent, so
    one loop applying the accents' then the quotes' translation, and the spaces' tag, gives the same ``NORM`` and
    ``TAG``. A norm left unchanged is not written back: spaCy then reads the lexeme's, the same string.
    """

    def __init__(self, accents: Any, quotes: Any) -> None:
        self.accents = accents.translation_table
        self.quotes = quotes.translation_table

    def __call__(self, doc: Any) -> Any:
        space = doc.vocab.strings["SPACE"]
        accents, quotes = self.accents, self.quotes
        for token in doc:
            norm = token.norm_
            new = norm.translate(accents).translate(quotes)
            if new != norm:
                token.norm_ = new
            if not token.text.strip():
                token.tag = space
        return doc


def _one_normalizing_pass(normalizer: Any) -> None:
    """Replace the normalizer's accents, quotes and spaces steps (in that order) by one :class:`_NormalizingPass`."""
    if normalizer.accents is None or normalizer.quotes is None or normalizer.spaces is None or normalizer.pollution:
        return  # another configuration than the one built here: left as EDS-NLP runs it
    normalizer.spaces = _NormalizingPass(normalizer.accents, normalizer.quotes)
    normalizer.accents = normalizer.quotes = None


def _without_bounds(matcher: Any) -> None:
    """Drop the optional "depuis le / jusqu'au" look-behind EDS-NLP's absolute date patterns open with, in place.

    It only fills the date's ``bound`` (from / until, for periods, which are off), never a finding's span or value:
    being optional and zero-width, the patterns match the same spans and groups without it. It was tried before
    anything else at each candidate position, a variable-width look-behind: a third of the date patterns' CPU.
    """
    from edsnlp.pipes.misc.dates.patterns.atomic.modes import mode_pattern

    opening = rf"(?<={mode_pattern}.{{,3}})?"
    matcher.regex = [
        (
            key,
            [_recompiled(p, p.pattern[len(opening) :]) if p.pattern.startswith(opening) else p for p in patterns],
            *rest,
        )
        if key == "absolute"
        else (key, patterns, *rest)
        for key, patterns, *rest in matcher.regex
    ]


def _recompiled(pattern: Any, source: str) -> Any:
    """``source`` compiled by the engine (``re`` or ``regex``) and with the flags of ``pattern``."""
    engine: Any = importlib.import_module(type(pattern).__module__.lstrip("_"))
    return engine.compile(source, pattern.flags)


def _guard_matcher(matcher: Any) -> None:
    """Put the patterns of an EDS-NLP ``RegexMatcher`` behind their first-character look-ahead, in place.

    Profiling (``benchmarks/nlp.py``) put ~40 % of a note's CPU in the date patterns even on the digit windows: each
    opens with an optional variable-width look-behind ("depuis le", "à partir du") tried at every character. The
    look-ahead lets the engine skip the positions where no match can start (see :mod:`.prefilter`).
    """
    matcher.regex = [
        (key, [guarded(p, before=True) for p in patterns], *rest) for key, patterns, *rest in matcher.regex
    ]


def _heading_line(text: str, start: int) -> str:
    """The folded start of the entity's line, or of the heading line above its bulleted list."""
    begin = text.rfind("\n", 0, start) + 1
    line = text[begin:start]
    while _BULLET.match(line) and begin > 0:
        # An item of a bulleted list: the heading is the first line above that is no item.
        end = begin - 1
        begin = text.rfind("\n", 0, end) + 1
        line = text[begin:end]
    return lx.fold(line)


_CLAUSE_END = re.compile(r"[.;\n]")


def _hypothesis_cue(text: str, start: int, end: int) -> bool:
    """Whether a hypothesis cue stands before the entity in its clause, or right after it."""
    before = text[max(0, start - 60) : start]
    cut = max((m.end() for m in _CLAUSE_END.finditer(before)), default=0)
    after = text[end : end + 40]
    stop = _CLAUSE_END.search(after)
    clause = lx.fold(before[cut:] + text[start:end] + after[: stop.start() if stop else len(after)])
    return bool(
        lx.PLANNED.search(clause)
        or lx.HYPOTHESIS_BEFORE.search(lx.fold(before[cut:]))
        or lx.HYPOTHESIS_AFTER.match(lx.fold(after[: stop.start() if stop else len(after)]))
    )


def _date_value(date: Any) -> str | None:
    """An absolute date found by ``eds.dates`` as ISO text; relative or partial dates give ``None``."""
    try:
        value = date.to_datetime(note_datetime=None)
    except Exception:
        return None
    if value is None:
        return None
    return value.date().isoformat() if isinstance(value, dt.datetime) else str(value)[:10]


def _quiet_edsnlp() -> None:
    """EDS-NLP logs through loguru at WARNING about optional pipes we do not use (sections, tables)."""
    try:
        from loguru import logger

        logger.disable("edsnlp")
    except ImportError:  # pragma: no cover - loguru comes with edsnlp
        logging.getLogger("edsnlp").setLevel(logging.ERROR)


# -- parallel extraction -------------------------------------------------------------------------------
_WORKER: ClinicalPipeline | None = None


def _init_worker(batch_size: int) -> None:
    global _WORKER
    _WORKER = ClinicalPipeline(batch_size=batch_size)


def _work(texts: list[str]) -> list[list[Finding]]:
    if _WORKER is None:  # pragma: no cover - the initializer always ran
        raise RuntimeError("worker pipeline not initialized")
    return _WORKER.extract(texts)


IN_FLIGHT_PER_WORKER = 4
"""Chunks submitted ahead per worker: enough to keep every worker busy, few enough to bound the notes in memory."""


def extract_parallel(
    texts: Iterable[str],
    *,
    workers: int = 1,
    chunk: int = 64,
    batch_size: int = 64,
    pipeline: ClinicalPipeline | None = None,
) -> Iterator[list[list[Finding]]]:
    """Findings of the notes, chunk by chunk in input order, over ``workers`` processes (1: in this process).

    Chunks are small (64 notes, a fraction of a second each) so that the workers finish together, and only
    ``IN_FLIGHT_PER_WORKER`` per worker are submitted ahead: the notes are read as the workers go, not all at once
    (``Executor.map`` would consume the whole input first).
    """
    chunks = _chunks(texts, chunk)
    if workers <= 1:
        local = pipeline or ClinicalPipeline(batch_size=batch_size)
        for part in chunks:
            yield local.extract(part)
        return
    global _WORKER
    if "fork" in multiprocessing.get_all_start_methods():
        # The workers inherit a pipeline built once here (building one costs seconds of CPU: importing spaCy and
        # compiling EDS-NLP's patterns), instead of each building its own. Frozen out of the collector's reach, its
        # objects are not touched (so not copied page by page) by a collection in a worker.
        _WORKER = pipeline or ClinicalPipeline(batch_size=batch_size)
        context = multiprocessing.get_context("fork")
        gc.freeze()
        try:
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                yield from _in_order(pool, chunks, workers * IN_FLIGHT_PER_WORKER)
        finally:
            gc.unfreeze()
            _WORKER = None
        return
    with ProcessPoolExecutor(  # pragma: no cover - platforms without fork (Windows, macOS by default elsewhere)
        max_workers=workers, initializer=_init_worker, initargs=(batch_size,)
    ) as pool:
        yield from _in_order(pool, chunks, workers * IN_FLIGHT_PER_WORKER)


def _in_order(pool: ProcessPoolExecutor, chunks: Iterator[list[str]], ahead: int) -> Iterator[list[list[Finding]]]:
    """The workers' findings chunk by chunk in input order, with at most ``ahead`` chunks submitted and not taken."""
    pending: deque[Future[list[list[Finding]]]] = deque()
    for part in chunks:
        pending.append(pool.submit(_work, part))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _chunks(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    part: list[str] = []
    for text in texts:
        part.append(text)
        if len(part) >= size:
            yield part
            part = []
    if part:
        yield part
