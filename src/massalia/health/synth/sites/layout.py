"""The declared shape of each site's extract: files, columns, types, formats (the ETL's contract)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One column of a site file.

    Parameters
    ----------
    name
        Header (CSV) or field name (Parquet, NDJSON) exactly as written.
    type
        Logical type as written: ``string``, ``int``, ``decimal``, ``date``, ``datetime``.
    fmt
        How the value is written (date pattern, code system, decimal separator...).
    required
        True when an empty value makes the record unusable (the ETL rejects it).
    """

    name: str
    type: str
    fmt: str = ""
    required: bool = False


@dataclass(frozen=True)
class FileLayout:
    """One kind of file that a site exports, one file per generated chunk.

    Parameters
    ----------
    kind
        Site-neutral meaning of the file (``patients``, ``visits``, ``labs``...).
    pattern
        File name pattern relative to the site folder; ``{part:04d}`` is the chunk number.
    columns
        Columns in file order.
    """

    kind: str
    pattern: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        """Column names in file order."""
        return [c.name for c in self.columns]

    def file_name(self, part: int) -> str:
        """The file name of chunk ``part`` (e.g. ``biologie_part0003.csv``)."""
        return self.pattern.format(part=part)


@dataclass(frozen=True)
class SiteLayout:
    """How one hospital exports its data.

    Parameters
    ----------
    name
        Folder name of the site (``chu_nord``).
    description
        Kind of hospital and its information system, in words.
    file_format
        ``csv``, ``parquet`` (with NDJSON documents), as written.
    separator, encoding
        For CSV sites: field separator and text encoding (``utf-8-sig`` has a BOM).
    date_format, datetime_format
        How dates and date-times are written (strftime pattern or ``yyyymmdd-int`` / ``epoch-s``).
    decimal
        Decimal separator of numbers written as text.
    files
        Every file kind the site exports.
    """

    name: str
    description: str
    file_format: str
    separator: str
    encoding: str
    date_format: str
    datetime_format: str
    decimal: str
    files: tuple[FileLayout, ...] = field(default_factory=tuple)

    def file(self, kind: str) -> FileLayout:
        """The layout of the file of this ``kind``; ``KeyError`` if the site has none."""
        for layout in self.files:
            if layout.kind == kind:
                return layout
        raise KeyError(f"site {self.name!r} exports no {kind!r} file")


def layout_markdown(site: SiteLayout) -> str:
    """Render a site's layout as the Markdown section used in ``docs/synthetic-data.md``.

    Examples
    --------
    >>> from massalia.health.synth.sites import SITES
    >>> "ipp" in layout_markdown(SITES["chu_nord"])
    True
    """
    sep = {";": "`;`", ",": "`,`", "": "n/a (Parquet / NDJSON)"}[site.separator]
    lines = [
        f"### `{site.name}` — {site.description}",
        "",
        f"- format: **{site.file_format}**; separator: {sep}; encoding: `{site.encoding}`; "
        f"dates: `{site.date_format}`; date-times: `{site.datetime_format}`; decimal: `{site.decimal}`",
        "",
    ]
    for f in site.files:
        lines += [
            f"#### {f.kind}: `{site.name}/{f.pattern}`",
            "",
            "| column | type | format | required |",
            "|---|---|---|---|",
        ]
        lines += [f"| `{c.name}` | {c.type} | {c.fmt} | {'yes' if c.required else ''} |" for c in f.columns]
        lines.append("")
    return "\n".join(lines)
