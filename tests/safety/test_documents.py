"""Text extraction of attachments: each kind read by its library, every bound enforced, bad files named."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter

from massalia.safety import documents
from massalia.safety.documents import DocumentError, extract_text
from massalia.safety.synth.attachments import KINDS, STATEMENT, Attachment, write_attachment

ITEM = Attachment("PV-25-000001.pdf", "MC25-000001", "Vol à l'arraché", "Sac arraché près de l'église (rue Paradis).",
                  "Jeanne Dupont (victime)")  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_each_generated_kind_is_read_back_with_its_accents(kind: str, tmp_path: Path) -> None:
    item = Attachment(f"PV-25-000001.{kind}", ITEM.source_id, ITEM.title, ITEM.narrative, ITEM.parties)
    found = extract_text(write_attachment(tmp_path, item))
    assert found.kind == kind and not found.truncated
    flat = " ".join(found.text.split())
    for expected in (ITEM.narrative, "Procès-verbal d'audition", "Jeanne Dupont (victime)", "Vol à l'arraché"):
        assert expected in flat, (kind, expected, flat)
    assert " ".join(STATEMENT.split()) in flat


def test_bounds_size_characters_and_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_attachment(tmp_path, ITEM)
    monkeypatch.setattr(documents, "MAX_FILE_BYTES", 100)
    with pytest.raises(DocumentError, match=r"PV-25-000001\.pdf: \d+ bytes, over the 100-byte limit"):
        extract_text(path)
    monkeypatch.setattr(documents, "MAX_FILE_BYTES", 10_000_000)
    monkeypatch.setattr(documents, "MAX_TEXT_CHARS", 40)
    cut = extract_text(path)
    assert cut.truncated and len(cut.text) <= 40
    monkeypatch.setattr(documents, "MAX_TEXT_CHARS", 200_000)
    writer = PdfWriter()
    for page in list(PdfReader(path).pages) * 5:
        writer.add_page(page)
    long_pdf = tmp_path / "long.pdf"
    with long_pdf.open("wb") as handle:
        writer.write(handle)
    monkeypatch.setattr(documents, "MAX_PAGES", 2)
    pages = extract_text(long_pdf)
    assert pages.truncated and pages.pages == 5 and pages.text.count("Procès-verbal") == 2


def test_bad_files_are_clear_errors_naming_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = {
        "garbage.pdf": (b"%PDF-1.4 nothing here", "not a readable PDF"),
        "garbage.docx": (b"not a zip", "bad zip"),
        "garbage.odt": (b"PK\x03\x04", "bad zip"),
        "empty.eml": (b"", ""),
    }
    for name, (content, reason) in cases.items():
        (tmp_path / name).write_bytes(content)
        if reason:
            with pytest.raises(DocumentError, match=rf"{name}: .*{reason}"):
                extract_text(tmp_path / name)
    assert extract_text(tmp_path / "empty.eml").text == ""
    with pytest.raises(DocumentError, match=r"notes\.txt: attachments of kind '\.txt' are not read"):
        extract_text(tmp_path / "notes.txt")
    with pytest.raises(DocumentError, match=r"absent\.pdf: the attachment was not delivered"):
        extract_text(tmp_path / "absent.pdf")
    # An encrypted PDF is refused by name, not read as garbage.
    writer = PdfWriter(clone_from=write_attachment(tmp_path, ITEM))
    writer.encrypt("secret")
    locked = tmp_path / "locked.pdf"
    with locked.open("wb") as handle:
        writer.write(handle)
    with pytest.raises(DocumentError, match=r"locked\.pdf: the PDF is encrypted"):
        extract_text(locked)


def test_attack_a_zip_bomb_is_refused_before_it_is_inflated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("word/document.xml", b"\0" * 5_000_000)  # 5 MB of zeros compress to a few KB
    bomb = tmp_path / "bomb.docx"
    bomb.write_bytes(buffer.getvalue())
    assert bomb.stat().st_size < 50_000
    monkeypatch.setattr(documents, "MAX_UNCOMPRESSED_BYTES", 1_000_000)
    with pytest.raises(DocumentError, match=r"bomb\.docx: inflates to 5000000 bytes"):
        extract_text(bomb)
