"""Health's per-site mapping files: what an OMOP site mapping adds to the mapping language, and where they are.

The language itself (file formats, table mappings, column transforms) is the core's
(:mod:`massalia.pipelines.mapping`, documented in docs/mappings.md). A hospital site is described by one YAML
file (``sites/<site>.yaml``) that also says which CARE_SITE it is and where it records treatment lines;
adding a site means adding a file. The OMOP compiler (:mod:`massalia.health.etl.compiler`) turns it into SQL.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from pydantic import Field, model_validator

from massalia.pipelines.mapping import (
    ColumnSpec,
    FileFormat,
    FileSpec,
    LocalCodes,
    MappingError,
    OnUnmapped,
    SourceMapping,
    Strict,
    TableMapping,
    Unpivot,
    load_mapping,
)

__all__ = [
    "CODE_PATTERNS",
    "CareSite",
    "ColumnSpec",
    "FileFormat",
    "FileSpec",
    "LocalCodes",
    "MappingError",
    "OnUnmapped",
    "SiteMapping",
    "TableMapping",
    "TreatmentLines",
    "Unpivot",
    "builtin_mapping_path",
    "builtin_sites",
    "find_mappings",
    "load_site_mapping",
]

CODE_PATTERNS: dict[str, str] = {
    "icd10": r"[A-Z][0-9]{2}(\.?[0-9A-Z]{1,4})?",
    "icdo3_topography": r"C[0-9]{2}(\.?[0-9])?",
    "icdo3_morphology": r"[0-9]{4}/[0-9]",
    "atc": r"[A-Z]([0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?)?",
    "loinc": r"[0-9]{1,7}-[0-9]",
    "snomed": r"[0-9]{6,18}",
}
"""Shapes of well-formed codes (the names a file's ``codes:`` may use): a code of the wrong shape is
malformed (rejected), while a well-formed code the vocabulary lacks is *unmapped* (``on_unmapped``)."""


class CareSite(Strict):
    """The site as a CARE_SITE (and its LOCATION)."""

    care_site_id: int
    name: str
    place_of_service_concept_id: int = 0
    city: str | None = None
    zip: str | None = None
    country: str = "France"


class TreatmentLines(Strict):
    """Where a site records treatment lines (see ``MAPPINGS.md``, "Treatment and progression episodes").

    ``mapping`` names the table mapping that writes the site's DRUG_EXPOSURE rows; ``line`` (and
    ``cycle``) the source columns holding the line of therapy (and cycle) of each administration.
    Without ``line`` the ETL derives lines from the administrations by the documented rule.
    """

    mapping: str
    line: str | None = None
    cycle: str | None = None


class LocalConcept(Strict):
    """A concept the site needs that no vocabulary it loads has (e.g. an attribute only this site records)."""

    code: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=255)
    domain_id: str = Field(min_length=1, max_length=20)
    standard: bool = False
    """True for a concept records are filed under (``*_concept_id``): a local standard concept, seen by the
    site's own analyses only (a network study would not know it), until the vocabulary offers one."""


class LocalConcepts(Strict):
    """The site's own concepts, in its local vocabulary (ids from 2,000,000,000, kept across runs)."""

    vocabulary_id: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,19}$")
    concepts: list[LocalConcept] = Field(min_length=1, max_length=10_000)


class SiteMapping(SourceMapping):
    """Everything the OMOP ETL needs to know about one hospital site: the language's keys plus its care site."""

    care_site: CareSite
    treatment_lines: TreatmentLines | None = None
    """The drug mapping (and line/cycle columns) that treatment-line episodes are built from."""
    local_concepts: LocalConcepts | None = None
    """Concepts of the site's own (``concept`` transforms name its vocabulary to use them)."""

    @model_validator(mode="after")
    def _treatment_lines_known(self) -> SiteMapping:
        lines = self.treatment_lines
        if lines is not None:
            drug = next((t for t in self.tables if t.name == lines.mapping), None)
            if drug is None or drug.target != "drug_exposure":
                raise ValueError(f"treatment_lines: mapping {lines.mapping!r} is not a drug_exposure mapping")
            columns = self.files[drug.source].columns
            for column in (lines.line, lines.cycle):
                if column is not None and column not in columns:
                    raise ValueError(
                        f"treatment_lines: column {column!r} is not among the columns of file {drug.source!r}"
                    )
        return self


def load_site_mapping(path: Path) -> SiteMapping:
    """Read and check one site mapping file.

    Examples
    --------
    >>> mapping = load_site_mapping(builtin_mapping_path("chu_nord"))
    >>> mapping.site, mapping.defaults.separator
    ('chu_nord', ';')
    """
    return load_mapping(path, SiteMapping)


def builtin_mapping_path(site: str) -> Path:
    """Path of a mapping file shipped with Massalia (``sites/<site>.yaml``)."""
    path = Path(str(resources.files("massalia.health.etl").joinpath("sites", f"{site}.yaml")))
    if not path.is_file():
        raise MappingError(f"no built-in mapping for site {site!r}; known: {', '.join(builtin_sites())}")
    return path


def builtin_sites() -> list[str]:
    """Names of the sites with a mapping shipped with Massalia."""
    folder = Path(str(resources.files("massalia.health.etl").joinpath("sites")))
    return sorted(p.stem for p in folder.glob("*.yaml"))


def find_mappings(sources_dir: Path, sites: list[str] | None = None) -> list[SiteMapping]:
    """Mappings for the site folders of ``sources_dir``.

    A folder's own ``mapping.yaml`` wins over the built-in mapping of the same name, so a hospital
    adds a site by dropping a folder and a mapping file, without code. Site folders with no mapping
    are an error when named in ``sites``, skipped otherwise.
    """
    mappings = []
    folders = sorted(p for p in sources_dir.iterdir() if p.is_dir()) if sources_dir.is_dir() else []
    known = {p.name for p in folders}
    for site in sites or []:
        if site not in known:
            raise MappingError(f"no folder {sources_dir / site} for site {site!r}")
    for folder in folders:
        if sites and folder.name not in sites:
            continue
        own = folder / "mapping.yaml"
        if own.is_file():
            mappings.append(load_site_mapping(own))
        elif folder.name in builtin_sites():
            mappings.append(load_site_mapping(builtin_mapping_path(folder.name)))
        elif sites:
            raise MappingError(f"site {folder.name!r} has no mapping (add {own})")
    return mappings
