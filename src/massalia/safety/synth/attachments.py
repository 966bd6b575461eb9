"""Attached documents of the generated police log: real PDF, DOCX, ODT and e-mail files, small.

Each attachment the police log names (``pj``) is written under ``mc/pj/`` by the same libraries the loader
reads them with (``pypdf``, ``python-docx``, ``odfpy``, the standard library's :mod:`email`): a statement
("procès-verbal d'audition") repeating the narrative with the parties' names and a sentence of its own, so
that a search finds words that are in the document and not in the log row. Only the first
``max_documents`` are written; the others stay named in the log and absent, as a document system that did
not deliver them (the indexer reports each missing file and goes on).

Examples
--------
>>> import tempfile
>>> folder = Path(tempfile.mkdtemp())
>>> write_attachment(folder, Attachment("PV-25-000001.eml", "MC25-000001", "Vol à l'arraché", "Récit.", ""))
PosixPath('...PV-25-000001.eml')
"""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import docx
from odf.opendocument import OpenDocumentText
from odf.text import H, P
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

KINDS = ("pdf", "docx", "odt", "eml")
"""The kinds written, in turn by sequence number (every kind appears in a small delivery)."""
STATEMENT = (
    "Procès-verbal d'audition. Le déclarant confirme les faits et précise que l'auteur a pris la fuite "
    "en direction de la station de métro. Aucune caméra n'a été signalée sur place."
)
"""A sentence only the documents hold (a search for ``audition`` finds attachments, not log rows)."""


@dataclass(frozen=True)
class Attachment:
    """One attachment to write: its file name, the report it belongs to, and its text."""

    name: str
    source_id: str
    title: str
    narrative: str
    parties: str


def _lines(item: Attachment) -> list[str]:
    lines = [f"{item.title} — main courante {item.source_id}", item.narrative, STATEMENT]
    if item.parties:
        lines.append(f"Personnes entendues : {item.parties}")
    return lines


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _write_pdf(path: Path, lines: list[str]) -> None:
    """One A4 page of Helvetica text (WinAnsi covers French accents), drawn by a hand-written content stream."""
    writer = PdfWriter()
    page = writer.add_blank_page(width=595, height=842)
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
            NameObject("/Encoding"): NameObject("/WinAnsiEncoding"),
        }
    )
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    commands = ["BT", "/F1 10 Tf", "14 TL", "50 800 Td"]
    for line in lines:
        for part in textwrap.wrap(line, 95):  # the page is about 95 Helvetica characters wide
            commands.append(f"({_pdf_escape(part)}) Tj T*")
    commands.append("ET")
    stream = DecodedStreamObject()
    stream.set_data("\n".join(commands).encode("cp1252", "replace"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    with path.open("wb") as handle:
        writer.write(handle)


def _write_docx(path: Path, lines: list[str]) -> None:
    document = docx.Document()
    document.add_heading(lines[0], level=1)
    for line in lines[1:]:
        document.add_paragraph(line)
    document.save(str(path))


def _write_odt(path: Path, lines: list[str]) -> None:
    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text=lines[0]))
    for line in lines[1:]:
        document.text.addElement(P(text=line))
    document.save(str(path))


def _write_eml(path: Path, lines: list[str], item: Attachment) -> None:
    message = EmailMessage()
    message["From"] = "accueil-pm@ville.example"
    message["To"] = "main-courante@ville.example"
    message["Subject"] = lines[0]
    message["Date"] = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    message["Message-ID"] = f"<{item.source_id}@ville.example>"
    message.set_content("\n\n".join(lines[1:]))
    path.write_bytes(message.as_bytes())


def write_attachment(folder: Path, item: Attachment) -> Path:
    """Write ``item`` under ``folder`` in the kind its name ends with (``pdf``, ``docx``, ``odt``, ``eml``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / item.name
    lines = _lines(item)
    kind = path.suffix[1:]
    if kind == "pdf":
        _write_pdf(path, lines)
    elif kind == "docx":
        _write_docx(path, lines)
    elif kind == "odt":
        _write_odt(path, lines)
    elif kind == "eml":
        _write_eml(path, lines, item)
    else:
        raise ValueError(f"{item.name}: attachments are written as {', '.join(KINDS)}")
    return path


def write_attachments(folder: Path, items: Iterable[Attachment], max_documents: int) -> list[Path]:
    """Write the first ``max_documents`` of ``items`` under ``folder`` (the rest stay undelivered)."""
    written = []
    for count, item in enumerate(items):
        if count >= max_documents:
            break
        written.append(write_attachment(folder, item))
    return written
