r"""Text of the documents attached to incident reports (PDF, DOCX, ODT, e-mail), extracted within bounds.

An attachment is whatever a source's document system delivered: a police report as a PDF, a letter as a
DOCX or an ODT, a complaint forwarded by e-mail. Each is read by a maintained library (``pypdf``,
``python-docx``, ``odfpy``, the standard library's :mod:`email`), under three bounds so that one hostile or
broken file cannot stall or exhaust an indexing run:

- **size**: a file over :data:`MAX_FILE_BYTES` is refused before it is opened;
- **pages / parts**: at most :data:`MAX_PAGES` PDF pages, and at most :data:`MAX_TEXT_CHARS` characters of
  text are kept (the rest is cut, and the result says so);
- **time**: extraction stops between pages or paragraphs once :data:`MAX_SECONDS` have passed.

A file that cannot be read raises :class:`DocumentError` naming the file and what was wrong; the indexer
records it and goes on with the next file (one bad file never stops an index).

Examples
--------
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "plainte.eml"
>>> _ = path.write_text("Subject: Tapage\n\nMusique forte toute la nuit.\n", encoding="utf-8")
>>> extract_text(path).text
'Tapage\nMusique forte toute la nuit.'
"""

from __future__ import annotations

import email
import email.policy
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import docx
from docx.opc.exceptions import PackageNotFoundError
from odf import teletype
from odf import text as odf_text
from odf.opendocument import load as load_odf
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from massalia.governance import InvalidRequest

MAX_FILE_BYTES = 20 * 1024 * 1024
"""Largest attachment read (20 MiB); a larger one is refused unopened."""
MAX_PAGES = 200
"""Most PDF pages read from one file."""
MAX_TEXT_CHARS = 200_000
"""Most characters of text kept from one file (about 60 pages of prose)."""
MAX_SECONDS = 10.0
"""Time after which the extraction of one file stops (checked between pages and paragraphs)."""
MAX_UNCOMPRESSED_BYTES = 200 * 1024 * 1024
"""Largest total uncompressed size of a DOCX/ODT archive (a zip bomb is refused before it is inflated)."""


class DocumentError(InvalidRequest):
    """An attachment could not be read: the message names the file and the reason."""


@dataclass(frozen=True)
class ExtractedText:
    """The text of one document, its kind, and whether a bound cut it short."""

    path: Path
    kind: str
    text: str
    truncated: bool = False
    pages: int = 0


class _Budget:
    """Characters and time left for one file's extraction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.parts: list[str] = []
        self.chars = 0
        self.truncated = False
        self.deadline = time.monotonic() + MAX_SECONDS

    def add(self, text: str) -> bool:
        """Keep ``text``; ``False`` once a bound is reached (the caller stops reading)."""
        if time.monotonic() > self.deadline:
            self.truncated = True
            return False
        room = MAX_TEXT_CHARS - self.chars
        if len(text) > room:
            text = text[:room]
            self.truncated = True
        if text:
            self.parts.append(text)
            self.chars += len(text)
        return not self.truncated

    def text(self) -> str:
        return "\n".join(p.strip() for p in self.parts if p.strip())


def _pdf(path: Path, budget: _Budget) -> int:
    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted:
            raise DocumentError(f"{path.name}: the PDF is encrypted, its text cannot be read")
        pages = len(reader.pages)
        for number, page in enumerate(reader.pages):
            if number >= MAX_PAGES:
                budget.truncated = True
                break
            if not budget.add(page.extract_text() or ""):
                break
    except (PdfReadError, ValueError, KeyError, TypeError) as error:
        raise DocumentError(f"{path.name}: not a readable PDF ({error})") from None
    return pages


def _check_archive(path: Path) -> None:
    """Refuse a DOCX/ODT whose zip is broken or inflates beyond the bound (checked from its directory)."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise DocumentError(f"{path.name}: not a valid DOCX/ODT archive (bad zip)") from None
    if total > MAX_UNCOMPRESSED_BYTES:
        raise DocumentError(f"{path.name}: inflates to {total} bytes (over {MAX_UNCOMPRESSED_BYTES}), refused")


def _docx(path: Path, budget: _Budget) -> int:
    _check_archive(path)
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, KeyError, ValueError) as error:
        raise DocumentError(f"{path.name}: not a readable DOCX ({error})") from None
    for paragraph in document.paragraphs:
        if not budget.add(paragraph.text):
            return 0
    for table in document.tables:
        for row in table.rows:
            if not budget.add(" ".join(cell.text for cell in row.cells)):
                return 0
    return 0


def _odt(path: Path, budget: _Budget) -> int:
    _check_archive(path)
    try:
        document = load_odf(str(path))
    except Exception as error:  # odfpy lets any XML parser or lookup error through
        raise DocumentError(f"{path.name}: not a readable ODT ({type(error).__name__}: {error})") from None
    for element in document.getElementsByType(odf_text.H) + document.getElementsByType(odf_text.P):
        if not budget.add(teletype.extractText(element)):
            break
    return 0


def _eml(path: Path, budget: _Budget) -> int:
    try:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    except (ValueError, TypeError) as error:
        raise DocumentError(f"{path.name}: not a readable e-mail ({error})") from None
    subject = str(message.get("Subject", "") or "")
    if subject and not budget.add(subject):
        return 0
    body = message.get_body(preferencelist=("plain", "html")) if message.is_multipart() else message
    if body is None:
        return 0
    try:
        content = body.get_content()
    except (LookupError, ValueError) as error:
        raise DocumentError(f"{path.name}: the e-mail body cannot be decoded ({error})") from None
    if isinstance(content, bytes):
        raise DocumentError(f"{path.name}: the e-mail body is binary, not text")
    budget.add(str(content))
    return 0


EXTRACTORS: dict[str, Callable[[Path, _Budget], int]] = {".pdf": _pdf, ".docx": _docx, ".odt": _odt, ".eml": _eml}
"""The readers by file suffix (a registry: a new kind is one more entry)."""


def extract_text(path: Path) -> ExtractedText:
    """The text of the attachment at ``path``, bounded in size, pages, characters and time.

    Raises
    ------
    DocumentError
        The file is missing, too large, of a kind not read, or not readable as its kind (the message names it).
    """
    suffix = path.suffix.lower()
    reader = EXTRACTORS.get(suffix)
    if reader is None:
        raise DocumentError(f"{path.name}: attachments of kind {suffix or '(none)'!r} are not read "
                            f"(read: {', '.join(EXTRACTORS)})")  # fmt: skip
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise DocumentError(f"{path.name}: the attachment was not delivered (no file at {path})") from None
    if size > MAX_FILE_BYTES:
        raise DocumentError(f"{path.name}: {size} bytes, over the {MAX_FILE_BYTES}-byte limit")
    budget = _Budget(path)
    pages = reader(path, budget)
    return ExtractedText(path, suffix[1:], budget.text(), budget.truncated, pages)


__all__ = ["EXTRACTORS", "MAX_FILE_BYTES", "MAX_PAGES", "DocumentError", "ExtractedText", "extract_text"]
