"""Build Massalia's demo OMOP vocabulary from public sources that carry REAL concept ids.

Every concept row written comes from a source listed below, never from memory. Rows are
written in Athena's download layout (tab-separated, dates ``YYYYMMDD``, no quoting) into
``src/massalia/health/omop/vocab/`` together with ``concept_sources.csv`` (concept id ->
source) and ``SOURCES.md``.

Sources (see SOURCES.md for commits and licences):

* ``reference/phenotypes/concepts_from_cohorts.csv`` - the 520 concepts of the 14 oncology
  cohorts of the OHDSI PhenotypeLibrary (all included).
* ``reference/eunomia/Synthea27Nj_5.4.zip`` - CONCEPT (all 2,294 rows) and the
  CONCEPT_RELATIONSHIP rows between included concepts.
* OHDSI/PhenotypeLibrary (git mirror) ``inst/cohorts/*.json`` - concept rows embedded in
  the concept sets and criteria of oncology-related cohorts, plus rows whose name matches
  the curated patterns below (labs, comorbidities, adverse events, procedures...).
* OHDSI/Athena (git mirror) test data - full CONCEPT, CONCEPT_RELATIONSHIP, CONCEPT_ANCESTOR,
  DOMAIN, CONCEPT_CLASS, RELATIONSHIP and VOCABULARY rows of an Athena excerpt.
* OHDSI/Vocabulary-v5.0 (git mirror) ``working/manual_changes`` - explicit ``INSERT INTO
  concept`` rows of OMOP-generated concepts (episodes, episode types, UTF-8...).

Usage::

    python scripts/build_demo_vocabulary.py --reference /work/shared/reference \\
        --phenotype-library /work/.mirror/OHDSI+PhenotypeLibrary/repo \\
        --athena /work/.mirror/OHDSI+Athena/repo \\
        --vocabulary-v5 /work/.mirror/OHDSI+Vocabulary-v5.0/repo
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import subprocess
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "massalia" / "health" / "omop" / "vocab"

CONCEPT_COLUMNS = [
    "concept_id", "concept_name", "domain_id", "vocabulary_id", "concept_class_id",
    "standard_concept", "concept_code", "valid_start_date", "valid_end_date", "invalid_reason",
]  # fmt: skip

PHENOTYPE_LIBRARY_COMMIT = "40106e4e2892d883c208b9df10ad56711da3e21d"
ATHENA_TEST_DATA = "src/test/resources/testdata/db/migration/v5/V20500101010002__populatetestdata_schema_with_data.sql"
ATHENA_VOCABULARIES = "src/test/resources/testdata/db/migration/v5/V20450101010000__add_version_of_vocabulary.sql"

# Cohorts of the PhenotypeLibrary whose concept sets describe cancers, their treatments and
# their usual complications: all their embedded concepts are included.
ONCOLOGY_COHORT = re.compile(
    r"cancer|neoplas|malignan|tumou?r|carcinom|lymphoma|leuk|myeloma|melanoma|chemo|metasta|"
    r"oncolog|neutropeni|anemia|thrombocytopenia|nausea|neuropath|mucositis|sarcoma|radiotherapy|"
    r"colectomy",
    re.IGNORECASE,
)
NOT_ONCOLOGY_COHORT = re.compile(r"TNFa|febrile seizure|sickle|neonatal", re.IGNORECASE)

# Other concepts of the PhenotypeLibrary a cancer centre warehouse needs, by name.
CURATED_NAMES = re.compile(
    r"^(type 2 diabetes mellitus|type 1 diabetes mellitus|diabetes mellitus|essential hypertension|"
    r"hypertensive disorder|chronic obstructive lung disease|heart failure|chronic kidney disease.*|"
    r"atrial fibrillation|obesity|tobacco user|current smoker|ex-smoker|never smoked tobacco|"
    r"myocardial infarction|cerebrovascular accident|deep venous thrombosis.*|pulmonary embolism|"
    r"depressive disorder|dementia|hypothyroidism|neutropenia|febrile neutropenia|anemia|"
    r"thrombocytopenia|nausea|vomiting|nausea and vomiting|diarrhea|constipation|fatigue|"
    r"peripheral neuropathy|alopecia|mucositis|stomatitis|pneumonitis|colitis|rash|pain|fever|"
    r"dyspnea|cough|sepsis|acute kidney injury.*|hepatitis|death|palliative care|"
    r"computed tomography.*|magnetic resonance imaging.*|positron emission tomography.*|"
    r"biopsy.*|mastectomy.*|lumpectomy.*|excision of breast.*|prostatectomy.*|radical prostatectomy|"
    r"lobectomy of lung|pneumonectomy|colectomy.*|hemicolectomy.*|anterior resection of rectum.*|"
    r"radiation oncology.*|teleradiotherapy.*|radiotherapy.*|brachytherapy.*|chemotherapy.*|"
    r"antineoplastic chemotherapy.*|injection of antineoplastic.*|hormone therapy.*|immunotherapy.*)$",
    re.IGNORECASE,
)
CURATED_VOCABULARY_DOMAINS = {
    ("Gender", "Gender"), ("Race", "Race"), ("Ethnicity", "Ethnicity"), ("Visit", "Visit"),
    ("SNOMED", "Meas Value"), ("SNOMED", "Meas Value Operator"), ("LOINC", "Meas Value"),
    ("SNOMED", "Route"), ("UCUM", "Unit"), ("Cancer Modifier", "Measurement"),
    ("OMOP Genomic", "Measurement"), ("NAACCR", "Meas Value"), ("NAACCR", "Measurement"),
}  # fmt: skip
CURATED_LOINC = re.compile(
    r"hemoglobin|leukocytes|neutrophils|lymphocytes|platelets|creatinine \[mass|alanine amino|"
    r"aspartate amino|bilirubin\.total \[mass/volume\] in serum|albumin \[mass/volume\] in serum|"
    r"carcinoembryonic|cancer ag|prostate specific|lactate dehydrogenase|body weight|body height|"
    r"body mass index \(bmi\) \[ratio\]$|estrogen|progesterone|her2|erbb2|ki-67|microsatellite|"
    r"stage group|glucose \[mass/volume\] in serum|sodium \[moles/volume\] in serum|"
    r"potassium \[moles/volume\] in serum|calcium \[mass/volume\] in serum|alkaline phosphatase|"
    r"urea nitrogen \[mass/volume\] in serum|glomerular filtration|tnm|tumor size|primary tumor|"
    r"regional lymph nodes|distant metastases",
    re.IGNORECASE,
)

# Further concepts of the PhenotypeLibrary, by id: comorbidities and treatment side effects that
# the name patterns above miss.
EXTRA_IDS = {
    37396808, 37205051, 37205052, 45772721,  # cancer-related fatigue, due to chemo/radiotherapy/treatment
    319835, 4154290, 45768812,  # congestive heart failure, paroxysmal AF, anemia in CKD
    200219, 77670, 194133,  # abdominal, chest, low back pain
    4134607, 4340521, 4307981,  # diarrheal disorder, chronic diarrhea, C. difficile colitis
    37394658, 138384, 4099205,  # severe sepsis, acquired and irradiation hypothyroidism
    37110753, 3655952, 4263848, 4103418,  # generalized rash, chronic dyspnea, dyspnea on exertion, tobacco
    21602728,  # ATC H02AB glucocorticoids
    1518254, 1551099, 1110410,  # dexamethasone, prednisone, morphine
    1301125, 1304643, 1305058, 1314273,  # epoetin alfa, darbepoetin alfa, methotrexate, rituximab
}  # fmt: skip

# Vocabulary-v5.0 manual changes: OMOP-generated concepts the oncology extension needs.
MANUAL_DOMAINS = {"Episode", "Metadata", "Type Concept"}
# The 2020-08-20 revision of type concepts set standard_concept = NULL on every earlier
# 'Type Concept' row (working/manual_changes/2020/2020-08-20.sql).
TYPE_CONCEPT_REVISION = "2020-08-20"

VOCABULARY_VERSION = "Massalia demo vocabulary 2026.1 (excerpt of OMOP vocabularies, see SOURCES.md)"
# Names of vocabularies created after the Athena excerpt, as their creation scripts give them.
VOCABULARY_NAMES = {"Type Concept": "OMOP Type Concept"}

# Classes that a vocabulary gives to all its concepts: used to complete partial rows of the
# PhenotypeLibrary criteria (which carry id, name, domain, vocabulary and code but no class).
SINGLE_CLASS_VOCABULARIES = {"Gender": "Gender", "Race": "Race", "Ethnicity": "Ethnicity", "Visit": "Visit"}
SNOMED_VALUE_DOMAINS = {"Meas Value", "Meas Value Operator", "Route"}

# WHO ATC classes present with real concept ids, and the RxNorm ingredients WHO files under
# them (ATC index 2024). Athena derives the same CONCEPT_ANCESTOR rows through ATC 5th levels.
ATC_MEMBERS: dict[int, tuple[str, ...]] = {
    947753: (  # L01E protein kinase inhibitors
        "imatinib", "sunitinib", "sorafenib", "lapatinib", "crizotinib", "alectinib", "brigatinib",
        "lorlatinib", "palbociclib", "ribociclib", "abemaciclib", "vemurafenib", "dabrafenib",
        "trametinib", "regorafenib", "lenvatinib", "tucatinib", "gefitinib", "erlotinib",
        "osimertinib", "afatinib",
    ),
    947755: ("gefitinib", "erlotinib", "afatinib", "osimertinib"),  # L01EB EGFR TKIs
    21602728: ("dexamethasone", "prednisone", "prednisolone", "methylprednisolone"),  # H02AB
}  # fmt: skip
# ATC 4th -> ingredient is two steps in Athena (4th -> 5th -> ingredient); 3rd adds one more.
ATC_LEVELS = {947753: 3, 947755: 2, 21602728: 2}


@dataclass
class Concept:
    """One CONCEPT row and where it came from."""

    values: dict[str, str]
    source: str
    completed: list[str] = field(default_factory=list)

    @property
    def concept_id(self) -> int:
        return int(self.values["concept_id"])


def git_show(repo: Path, commit: str, path: str) -> str | None:
    result = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{path}"], capture_output=True, check=False)
    return result.stdout.decode("utf-8", "replace") if result.returncode == 0 else None


def git_ls(repo: Path, commit: str, folder: str) -> list[str]:
    result = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", commit, folder],
        capture_output=True,
        check=True,
        text=True,
    )
    return result.stdout.split()


def ymd(value: str | None, default: str) -> str:
    if not value:
        return default
    return value.replace("-", "")[:8]


def make_row(
    concept_id: object,
    name: str,
    domain: str,
    vocabulary: str,
    concept_class: str,
    standard: str | None,
    code: str,
    start: str | None = None,
    end: str | None = None,
    invalid: str | None = None,
) -> dict[str, str]:
    standard = (standard or "").strip()
    standard = standard if standard in ("S", "C") else ""
    invalid = (invalid or "").strip()
    invalid = invalid if invalid in ("D", "U") else ""
    return {
        "concept_id": str(int(concept_id)),  # type: ignore[call-overload]
        "concept_name": name.replace("\t", " ").replace("\n", " "),
        "domain_id": domain,
        "vocabulary_id": vocabulary,
        "concept_class_id": concept_class,
        "standard_concept": standard,
        "concept_code": code,
        "valid_start_date": ymd(start, "19700101"),
        "valid_end_date": ymd(end, "20991231"),
        "invalid_reason": invalid,
    }


def from_cohort_csv(reference: Path) -> list[Concept]:
    path = reference / "phenotypes" / "concepts_from_cohorts.csv"
    out = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = make_row(
                row["concept_id"], row["concept_name"], row["domain_id"], row["vocabulary_id"],
                row["concept_class_id"], row["standard_concept"], row["concept_code"],
            )  # fmt: skip
            out.append(Concept(values, f"reference/phenotypes/concepts_from_cohorts.csv ({row['found_in']})"))
    return out


def synthea_tables(reference: Path) -> dict[str, list[dict[str, str]]]:
    archive = reference / "eunomia" / "Synthea27Nj_5.4.zip"
    tables = {}
    with zipfile.ZipFile(archive) as zipped:
        for name in ("CONCEPT.csv", "CONCEPT_RELATIONSHIP.csv"):
            text = zipped.read(name).decode("utf-8")
            tables[name] = list(csv.DictReader(io.StringIO(text)))
    return tables


def from_synthea(tables: dict[str, list[dict[str, str]]]) -> list[Concept]:
    out = []
    for row in tables["CONCEPT.csv"]:
        values = make_row(
            row["concept_id"], row["concept_name"], row["domain_id"], row["vocabulary_id"],
            row["concept_class_id"], row["standard_concept"], row["concept_code"],
            row["valid_start_date"], row["valid_end_date"], row["invalid_reason"],
        )  # fmt: skip
        out.append(Concept(values, "reference/eunomia/Synthea27Nj_5.4.zip CONCEPT.csv"))
    return out


def walk_json(node: object, found: list[dict[str, object]]) -> None:
    if isinstance(node, dict):
        if "CONCEPT_ID" in node and "CONCEPT_NAME" in node and node.get("VOCABULARY_ID"):
            found.append(node)
        for child in node.values():
            walk_json(child, found)
    elif isinstance(node, list):
        for child in node:
            walk_json(child, found)


def from_phenotype_library(repo: Path) -> list[Concept]:
    commit = PHENOTYPE_LIBRARY_COMMIT
    names = {}
    cohorts_csv = git_show(repo, commit, "inst/Cohorts.csv") or ""
    for row in csv.DictReader(io.StringIO(cohorts_csv.lstrip("\ufeff"))):
        names[row["cohortId"]] = row["cohortName"]
    out = []
    for path in git_ls(repo, commit, "inst/cohorts"):
        if not path.endswith(".json"):
            continue
        cohort_id = Path(path).stem
        text = git_show(repo, commit, path)
        if not text or not text.strip():  # a few blobs are absent from the mirror
            continue
        name = names.get(cohort_id, "")
        oncology = bool(ONCOLOGY_COHORT.search(name)) and not NOT_ONCOLOGY_COHORT.search(name)
        found: list[dict[str, object]] = []
        try:
            walk_json(json.loads(text.lstrip("\ufeff")), found)
        except json.JSONDecodeError as error:
            raise SystemExit(f"{path}: {error}: {text[:60]!r}") from error
        for node in found:
            domain = str(node.get("DOMAIN_ID") or "")
            vocabulary = str(node["VOCABULARY_ID"])
            concept_name = str(node["CONCEPT_NAME"])
            wanted = (
                oncology
                or int(str(node["CONCEPT_ID"])) in EXTRA_IDS
                or (vocabulary, domain) in CURATED_VOCABULARY_DOMAINS
                or bool(CURATED_NAMES.match(concept_name))
                or (vocabulary == "LOINC" and bool(CURATED_LOINC.search(concept_name)))
            )
            if not wanted:
                continue
            values = make_row(
                node["CONCEPT_ID"], concept_name, domain, vocabulary,
                str(node.get("CONCEPT_CLASS_ID") or ""), str(node.get("STANDARD_CONCEPT") or ""),
                str(node.get("CONCEPT_CODE") or ""), invalid=str(node.get("INVALID_REASON") or ""),
            )  # fmt: skip
            source = f"OHDSI/PhenotypeLibrary@{commit[:7]} inst/cohorts/{cohort_id}.json"
            out.append(Concept(values, source))
    return out


def copy_block(text: str, table: str) -> tuple[list[str], list[list[str]]]:
    match = re.search(rf"COPY (?:public\.)?{table} \(([^)]*)\) FROM stdin;\n(.*?)\n\\\.", text, re.S)
    if not match:
        raise SystemExit(f"no COPY block for {table}")
    columns = [c.strip() for c in match.group(1).split(",")]
    rows = [line.split("\t") for line in match.group(2).split("\n") if line.strip()]
    rows = [[("" if v == "\\N" else v) for v in r] for r in rows]
    return columns, rows


@dataclass
class AthenaExcerpt:
    concepts: list[Concept]
    relationships: list[list[str]]
    ancestors: list[list[str]]
    domains: list[list[str]]
    classes: list[list[str]]
    relationship_types: list[list[str]]
    vocabularies: list[list[str]]
    synonyms: list[list[str]]


def from_athena(repo: Path) -> AthenaExcerpt:
    text = git_show(repo, "HEAD", ATHENA_TEST_DATA) or ""
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    source = f"OHDSI/Athena@{commit} {ATHENA_TEST_DATA.rsplit('/', 1)[-1]}"
    _, concept_rows = copy_block(text, "concept")
    concepts = []
    for row in concept_rows:
        if row[3] in ("", "Relationship") and row[2] != "Metadata":
            continue
        concepts.append(Concept(make_row(*row), source))
    _, relationships = copy_block(text, "concept_relationship")
    _, ancestors = copy_block(text, "concept_ancestor")
    _, domains = copy_block(text, "domain")
    _, classes = copy_block(text, "concept_class")
    _, relationship_types = copy_block(text, "relationship")
    _, synonyms = copy_block(text, "concept_synonym")
    vocab_text = git_show(repo, "HEAD", ATHENA_VOCABULARIES) or ""
    _, vocabularies = copy_block(vocab_text, "vocabulary")
    return AthenaExcerpt(
        concepts, relationships, ancestors, domains, classes, relationship_types, vocabularies, synonyms
    )


MANUAL_INSERT = re.compile(
    r"\(\s*(\d{4,9})\s*,\s*'((?:[^']|'')*)'\s*,\s*'([^']*)'\s*,\s*'([^']*)'\s*,\s*'([^']*)'\s*,"
    r"\s*(null|'[SC]?')\s*,\s*'([^']*)'",
    re.IGNORECASE,
)


def from_vocabulary_v5(repo: Path) -> list[Concept]:
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    out = []
    for path in sorted(git_ls(repo, "HEAD", "working/manual_changes")):
        if not path.endswith(".sql"):
            continue
        text = git_show(repo, "HEAD", path) or ""
        for match in MANUAL_INSERT.finditer(text):
            concept_id, name, domain, vocabulary, concept_class, standard, code = match.groups()
            if domain not in MANUAL_DOMAINS:
                continue
            standard = "" if standard.lower() == "null" else standard.strip("'")
            completed = []
            if domain == "Type Concept" and standard:
                # before the 2020 revision: de-standardized by it (see TYPE_CONCEPT_REVISION)
                standard = ""
                completed.append(f"standard_concept cleared by {TYPE_CONCEPT_REVISION} revision")
            values = make_row(concept_id, name.replace("''", "'"), domain, vocabulary, concept_class, standard, code)
            out.append(Concept(values, f"OHDSI/Vocabulary-v5.0@{commit} {path}", completed))
    return out


TYPE_CONCEPT_SCRIPT = "working/manual_changes/2020/2020-08-20.sql"
# (concept_id, concept_code, concept_name) of type concepts quoted in OHDSI/MIMIC's ETL comments
# (e.g. "32856 AS measurement_type_concept_id, -- OMOP4976929 Lab"): they pin the ids that the
# 2020 script assigned in array order.
TYPE_CONCEPT_ANCHORS = (
    (32817, "OMOP4976890", "EHR"),
    (32821, "OMOP4976894", "EHR billing record"),
    (32838, "OMOP4976911", "EHR prescription"),
    (32856, "OMOP4976929", "Lab"),
)


def type_concepts_2020(repo: Path) -> tuple[list[Concept], list[tuple[int, int]]]:
    """Type concepts created by the 2020-08-20 revision, with their 'Is a' pairs.

    The script creates them with ``AddNewConcept`` in the order of its name array; ids and
    codes follow that order. Four anchors quoted by OHDSI/MIMIC must agree, else nothing is
    emitted.
    """
    text = git_show(repo, "HEAD", TYPE_CONCEPT_SCRIPT) or ""
    array = re.search(r"UNNEST\(ARRAY \[(.*?)\]\)", text, re.S)
    if not array:
        raise SystemExit(f"{TYPE_CONCEPT_SCRIPT}: name array not found")
    names = [n.replace("''", "'") for n in re.findall(r"'((?:[^']|'')*)'", array.group(1))]
    first_id = TYPE_CONCEPT_ANCHORS[0][0] - names.index(TYPE_CONCEPT_ANCHORS[0][2])
    first_code = int(TYPE_CONCEPT_ANCHORS[0][1][4:]) - names.index(TYPE_CONCEPT_ANCHORS[0][2])
    for concept_id, code, name in TYPE_CONCEPT_ANCHORS:
        position = names.index(name)
        if first_id + position != concept_id or f"OMOP{first_code + position}" != code:
            raise SystemExit(f"type concept anchor {concept_id} {name} disagrees with {TYPE_CONCEPT_SCRIPT}")
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    ids = {name: first_id + position for position, name in enumerate(names)}
    concepts = []
    for name, concept_id in ids.items():
        code = f"OMOP{first_code + concept_id - first_id}"
        values = make_row(concept_id, name, "Type Concept", "Type Concept", "Type Concept", "S", code, "20200820")
        source = f"OHDSI/Vocabulary-v5.0@{commit} {TYPE_CONCEPT_SCRIPT}"
        concepts.append(Concept(values, source, ["id/code from creation order, checked on 4 OHDSI/MIMIC anchors"]))
    block = text[text.index("'Is a' AS relationship_id") :]
    block = block[: block.index("AS v (concept_name_1, concept_name_2)")]
    pairs = [
        (ids[child], ids[parent])
        for child, parent in re.findall(r"\('((?:[^']|'')*)',\s*'((?:[^']|'')*)'\)", block)
        if child in ids and parent in ids
    ]
    return concepts, pairs


def complete(concept: Concept) -> bool:
    """Fill class/standard of partial rows where the vocabulary fixes them; False if impossible."""
    values = concept.values
    if values["concept_class_id"]:
        return True
    vocabulary, domain = values["vocabulary_id"], values["domain_id"]
    if vocabulary in SINGLE_CLASS_VOCABULARIES:
        values["concept_class_id"] = SINGLE_CLASS_VOCABULARIES[vocabulary]
        values["standard_concept"] = "S"
        concept.completed.append("concept_class_id/standard_concept by vocabulary convention")
        return True
    if vocabulary == "LOINC" and domain == "Meas Value" and values["concept_code"].startswith("LA"):
        values["concept_class_id"] = "Answer"
        values["standard_concept"] = "S"
        concept.completed.append("concept_class_id/standard_concept by vocabulary convention (LOINC answer)")
        return True
    if vocabulary == "SNOMED" and domain in SNOMED_VALUE_DOMAINS:
        values["concept_class_id"] = "Qualifier Value"
        values["standard_concept"] = "S"
        concept.completed.append("concept_class_id/standard_concept by vocabulary convention")
        return True
    return False


def merge(sources: list[list[Concept]]) -> tuple[dict[int, Concept], list[str]]:
    """First source wins; a partial row is replaced by a later full row of the same id."""
    merged: dict[int, Concept] = {}
    for concepts in sources:
        for concept in concepts:
            current = merged.get(concept.concept_id)
            if current is None or (not current.values["concept_class_id"] and concept.values["concept_class_id"]):
                merged[concept.concept_id] = concept
    dropped = []
    for concept_id, concept in list(merged.items()):
        if not complete(concept):
            dropped.append(f"{concept_id}\t{concept.values['concept_name']}\t{concept.source}: no concept_class_id")
            del merged[concept_id]
    return merged, dropped


def hierarchy_closure(edges: set[tuple[int, int]]) -> dict[tuple[int, int], tuple[int, int]]:
    """(ancestor, descendant) -> (min, max) levels over the direct 'Subsumes' edges given."""
    children: dict[int, set[int]] = defaultdict(set)
    for parent, child in edges:
        children[parent].add(child)
    levels: dict[tuple[int, int], tuple[int, int]] = {}

    def walk(root: int, node: int, depth: int, path: frozenset[int]) -> None:
        for child in children.get(node, ()):
            if child in path:  # a cycle would be a data error; never loop on it
                continue
            key = (root, child)
            low, high = levels.get(key, (depth, depth))
            levels[key] = (min(low, depth), max(high, depth))
            walk(root, child, depth + 1, path | {child})

    for root in list(children):
        walk(root, root, 1, frozenset({root}))
    return levels


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("\t".join(header) + "\n")
        for row in rows:
            if any("\t" in value or "\n" in value for value in row):
                raise SystemExit(f"{path.name}: tab or newline inside a value: {row}")
            handle.write("\t".join(row) + "\n")


NO_MATCHING_CONCEPT = Concept(
    make_row(0, "No matching concept", "Metadata", "None", "Undefined", None, "No matching concept"),
    "OMOP CDM convention: concept_id 0 is in every Athena download; unmapped codes point to it",
)


def build(args: argparse.Namespace) -> None:
    reference = Path(args.reference)
    synthea = synthea_tables(reference)
    athena = from_athena(Path(args.athena))
    type_concepts, type_pairs = type_concepts_2020(Path(args.vocabulary_v5))
    concepts, dropped = merge(
        [
            from_cohort_csv(reference),
            from_synthea(synthea),
            athena.concepts,
            type_concepts,
            from_phenotype_library(Path(args.phenotype_library)),
            from_vocabulary_v5(Path(args.vocabulary_v5)),
            [NO_MATCHING_CONCEPT],
        ]
    )
    ids = set(concepts)
    standard = {cid for cid, c in concepts.items() if c.values["standard_concept"] in ("S", "C")}

    # -- CONCEPT_RELATIONSHIP: real rows between included concepts, for relationship types
    # whose RELATIONSHIP row is known.
    relationship_types = {
        row[0]: row
        for row in athena.relationship_types
        if row[0] in ("Is a", "Subsumes", "Maps to", "Mapped from", "Concept same_as from", "Concept same_as to")
    }
    relationships: dict[tuple[int, int, str], list[str]] = {}
    for row in athena.relationships:
        key = (int(row[0]), int(row[1]), row[2])
        if key[0] in ids and key[1] in ids and row[2] in relationship_types:
            relationships[key] = [row[0], row[1], row[2], ymd(row[3], "19700101"), ymd(row[4], "20991231"), row[5]]
    for row in synthea["CONCEPT_RELATIONSHIP.csv"]:
        key = (int(row["concept_id_1"]), int(row["concept_id_2"]), row["relationship_id"])
        if key[0] in ids and key[1] in ids and key[2] in relationship_types and key not in relationships:
            relationships[key] = [
                row["concept_id_1"], row["concept_id_2"], row["relationship_id"],
                ymd(row["valid_start_date"], "19700101"), ymd(row["valid_end_date"], "20991231"),
                row["invalid_reason"] or "",
            ]  # fmt: skip
    for child, parent in type_pairs:
        relationships[(child, parent, "Is a")] = [str(child), str(parent), "Is a", "20200820", "20991231", ""]
    # Athena ships both directions of every pair; keep the pairs complete.
    for (one, two, rel), row in list(relationships.items()):
        reverse = relationship_types[rel][4]
        if (two, one, reverse) not in relationships:
            relationships[(two, one, reverse)] = [str(two), str(one), reverse, *row[3:]]

    # -- CONCEPT_ANCESTOR
    ancestors: dict[tuple[int, int], tuple[int, int]] = {(cid, cid): (0, 0) for cid in standard}
    edges = {
        (one, two)
        for (one, two, rel), row in relationships.items()
        if rel == "Subsumes" and not row[5] and one in standard and two in standard
    }
    for key, value in hierarchy_closure(edges).items():
        ancestors.setdefault(key, value)
    for row in athena.ancestors:
        key = (int(row[0]), int(row[1]))
        if key[0] in ids and key[1] in ids:
            ancestors[key] = (int(row[2]), int(row[3]))
    ingredients = {
        c.values["concept_name"].lower(): cid
        for cid, c in concepts.items()
        if c.values["concept_class_id"] == "Ingredient" and c.values["vocabulary_id"] == "RxNorm"
    }
    atc_missing = []
    for atc_id, members in ATC_MEMBERS.items():
        if atc_id not in ids:
            atc_missing.append(str(atc_id))
            continue
        for member in members:
            if member in ingredients:
                level = ATC_LEVELS[atc_id]
                ancestors[(atc_id, ingredients[member])] = (level, level)

    # -- reference tables
    used_domains = {c.values["domain_id"] for c in concepts.values()}
    used_classes = {c.values["concept_class_id"] for c in concepts.values()}
    used_vocabularies = {c.values["vocabulary_id"] for c in concepts.values()} | {"None"}
    domains = [row for row in athena.domains if row[0] in used_domains]
    classes = [row for row in athena.classes if row[0] in used_classes]
    vocabularies = [row for row in athena.vocabularies if row[0] in used_vocabularies]
    missing_reference = {
        "domain": sorted(used_domains - {r[0] for r in domains}),
        "concept_class": sorted(used_classes - {r[0] for r in classes}),
        "vocabulary": sorted(used_vocabularies - {r[0] for r in vocabularies}),
    }
    synonyms = [row for row in athena.synonyms if int(row[0]) in ids]
    # Reference rows no source gives: named by their id, concept id 0 ("No matching concept").
    for domain in missing_reference["domain"]:
        domains.append([domain, domain, "0"])
    for concept_class in missing_reference["concept_class"]:
        classes.append([concept_class, concept_class, "0"])
    for vocabulary in missing_reference["vocabulary"]:
        name = VOCABULARY_NAMES.get(vocabulary, vocabulary)
        vocabularies.append([vocabulary, name, "", "", "0"])
    vocabularies = [
        [row[0], row[1], row[2], VOCABULARY_VERSION, row[4]] if row[0] == "None" else row for row in vocabularies
    ]
    if not any(row[0] == "None" for row in vocabularies):
        none = next(row for row in athena.vocabularies if row[0] == "None")
        vocabularies.append([none[0], none[1], none[2], VOCABULARY_VERSION, none[4]])

    OUT.mkdir(parents=True, exist_ok=True)
    write_tsv(
        OUT / "CONCEPT.csv",
        CONCEPT_COLUMNS,
        [[c.values[k] for k in CONCEPT_COLUMNS] for _, c in sorted(concepts.items())],
    )
    write_tsv(
        OUT / "CONCEPT_RELATIONSHIP.csv",
        ["concept_id_1", "concept_id_2", "relationship_id", "valid_start_date", "valid_end_date", "invalid_reason"],
        [row for _, row in sorted(relationships.items())],
    )
    write_tsv(
        OUT / "CONCEPT_ANCESTOR.csv",
        ["ancestor_concept_id", "descendant_concept_id", "min_levels_of_separation", "max_levels_of_separation"],
        [[str(a), str(d), str(lo), str(hi)] for (a, d), (lo, hi) in sorted(ancestors.items())],
    )
    write_tsv(OUT / "DOMAIN.csv", ["domain_id", "domain_name", "domain_concept_id"], sorted(domains))
    write_tsv(
        OUT / "CONCEPT_CLASS.csv",
        ["concept_class_id", "concept_class_name", "concept_class_concept_id"],
        sorted(classes),
    )
    write_tsv(
        OUT / "VOCABULARY.csv",
        ["vocabulary_id", "vocabulary_name", "vocabulary_reference", "vocabulary_version", "vocabulary_concept_id"],
        sorted(vocabularies),
    )
    write_tsv(
        OUT / "RELATIONSHIP.csv",
        [
            "relationship_id",
            "relationship_name",
            "is_hierarchical",
            "defines_ancestry",
            "reverse_relationship_id",
            "relationship_concept_id",
        ],
        sorted(relationship_types.values()),
    )
    write_tsv(
        OUT / "CONCEPT_SYNONYM.csv", ["concept_id", "concept_synonym_name", "language_concept_id"], sorted(synonyms)
    )
    with (OUT / "concept_sources.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["concept_id", "source", "completed"])
        for cid, concept in sorted(concepts.items()):
            writer.writerow([cid, concept.source, "; ".join(concept.completed)])
    print(f"concepts {len(concepts)}, relationships {len(relationships)}, ancestors {len(ancestors)}")
    print("dropped (incomplete rows):", len(dropped))
    for line in dropped:
        print("  ", line)
    print("missing reference rows:", missing_reference, "missing ATC:", atc_missing)
    print("metadata concepts added:", add_metadata_concepts(OUT))
    print("malignancy ancestor rows added:", add_malignancy_hierarchy(OUT))


CDM_VERSION_CONCEPT = ("756265", "OMOP CDM Version 5.4.0", "CDM v5.4.0")
"""cdm_source.cdm_version_concept_id of CDM v5.4: the id Eunomia's Synthea27Nj CDM_SOURCE.csv uses for 5.4."""


DPD_RTC = "OHDSI/Vocabulary-v5.0@df87b017 DPD/manual_work/prev_RTC.txt"
"""A released relationship_to_concept table (source code -> OMOP concept id, code, name, class)."""

ATC_5TH: tuple[tuple[str, str, str], ...] = (
    # (ATC code, name, concept id) as listed in DPD_RTC with CONCEPT_CLASS_ID_2 'ATC 5th', all valid there
    ("H02AB02", "dexamethasone", "21602730"),
    ("H02AB07", "prednisone", "21602735"),
    ("L01AA01", "cyclophosphamide", "21601390"),
    ("L01BA04", "pemetrexed", "21601425"),
    ("L01BC02", "fluorouracil", "21601436"),
    ("L01BC05", "gemcitabine", "21601439"),
    ("L01BC06", "capecitabine", "21601440"),
    ("L01CA02", "vincristine", "21601448"),
    ("L01CB01", "etoposide", "21603718"),
    ("L01CD01", "paclitaxel", "21603723"),
    ("L01CD02", "docetaxel", "21603724"),
    ("L01DB01", "doxorubicin", "21603732"),
    ("L01DB03", "epirubicin", "21603734"),
    ("L01XA01", "cisplatin", "21603748"),
    ("L01XA02", "carboplatin", "21603749"),
    ("L01XA03", "oxaliplatin", "21603750"),
    ("L02AE02", "leuprorelin", "21603825"),
    ("L02BA01", "tamoxifen", "21603831"),
    ("L02BB03", "bicalutamide", "21603837"),
    ("L02BG03", "anastrozole", "21603841"),
    ("V03AF03", "calcium folinate", "21605271"),
)
"""ATC 5th-level concepts of the generator's drugs found with their ids; the codes of the 2019-2021 ATC
revision are not in that table (see ATC_EXPORT_ROWS)."""

ATC_EXPORT = "elisahenke/OMOP-vocabulary-evaluation@058ac92 input/ATC_WHO_concept.csv"
"""A tab-separated export of the OMOP ATC vocabulary (Athena layout, 6,740 rows with ids) of a German OMOP site."""

ATC_EXPORT_ROWS: tuple[tuple[str, str, str, str], ...] = (
    # (concept id, name, ATC code, valid_start_date) as in ATC_EXPORT: ATC 5th, 'C', valid to 2099-12-31
    ("947949", "irinotecan; parenteral", "L01CE02", "20210222"),
    ("947878", "osimertinib; oral", "L01EB04", "20210222"),
    ("947936", "dabrafenib; oral", "L01EC02", "20210222"),
    ("947776", "alectinib; oral", "L01ED03", "20210222"),
    ("947758", "trametinib; oral", "L01EE01", "20210222"),
    ("947855", "sunitinib; oral", "L01EX01", "20210222"),
    ("947969", "olaparib; oral", "L01XK01", "20210222"),
)
"""ATC 5th-level codes of the 2019-2021 ATC revision the generator writes, full rows copied from ATC_EXPORT.

The export still files the antibodies under L01XC (rituximab L01XC02 ... pembrolizumab L01XC18, all valid
there): the L01F codes the generator writes (WHO 2022) have no row in it and stay a gap."""

NEMESIS = "public OHDSI oncology mapping script creating nemesis_mapping_0525 (found with the search tool)"
"""Full source and target CONCEPT rows of oncology 'Maps to' pairs (LOINC answers -> Cancer Modifier...)."""

PHENOPACKET_MAPPING = (
    "public documentation of an OMOP-to-Phenopacket converter (SQL checks and examples per OMOP concept id), found "
    "with the search tool"
)
"""Examples such as ``4203711 -> SNOMED:308273005 'Follow-up status'`` (observation-based measurements)."""

OMOP_LISTING = (
    "public listing of OMOP LOINC concepts (omop_concept_id, concept_name) from a concept search, found with the "
    "search tool"
)


PUBLISHED_CONCEPTS: list[tuple[list[str], str]] = [
    # (CONCEPT row, where the id, name and code were read)
    *(
        (
            [cid, name, "Meas Value Operator", "SNOMED", "Qualifier Value", "S", code, "19700101", "20991231", ""],
            "shared/reference/circe (checkers and printfriendly measurement operators); class/standard by convention",
        )
        for cid, name, code in (
            ("4171754", "<=", "276137008"),
            ("4171755", ">=", "276138003"),
            ("4171756", "<", "276139006"),
            ("4172703", "=", "276136004"),
            ("4172704", ">", "276140008"),
        )
    ),
    *(
        (
            [cid, name, "Route", "SNOMED", "Qualifier Value", "S", code, "19700101", "20991231", ""],
            "public FHIR-to-OMOP route table (SNOMED route code -> OMOP concept id), found with the search tool",
        )
        for cid, name, code in (
            ("4132161", "Oral", "26643006"),
            ("4171047", "Intravenous", "47625008"),
            ("4142048", "Subcutaneous", "34206005"),
            ("4302612", "Intramuscular", "78421000"),
        )
    ),
    (
        [
            "1147127",
            "condition_occurrence.condition_occurrence_id",
            "Metadata",
            "CDM",
            "Field",
            "S",
            "CDM1147127",
            "19700101",
            "20991231",
            "",
        ],
        "OHDSI CDM documentation of measurement modifiers (modifier_of_field_concept_id 1147127 = "
        "condition_occurrence.condition_occurrence_id); code by convention",
    ),
    (
        [
            "36305384",
            "ECOG Performance Status score",
            "Measurement",
            "LOINC",
            "Clinical Observation",
            "S",
            "89247-1",
            "19700101",
            "20991231",
            "",
        ],
        "public OMOP mapping table of an oncology registry (ECOG Performance Status -> measurement, 36305384; LOINC "
        "89247-1 - ECOG Performance Status score), found with the search tool; class by LOINC's convention",
    ),
    (
        [
            "1147094",
            "drug_exposure.drug_exposure_id",
            "Metadata",
            "CDM",
            "Field",
            "S",
            "CDM1147094",
            "19700101",
            "20991231",
            "",
        ],
        "public OMOP oncology queries joining EPISODE_EVENT to DRUG_EXPOSURE with episode_event_field_concept_id "
        "1147094 (found with the search tool); name, class and code by the convention of 1147127",
    ),
    # Leucovorin (folinic acid, FOLFOX/FOLFIRI): without it every folinic acid administration was drug_concept_id 0.
    (
        ["1388796", "Leucovorin", "Drug", "RxNorm", "Ingredient", "S", "6313", "19700101", "20991231", ""],
        f"{DPD_RTC} (LEUCOVORIN CALCIUM -> RxNorm Ingredient 6313 Leucovorin, concept 1388796; the same id in "
        "GGR/manual_work/ingred_mapped.csv for CALCIUM FOLINATE); domain and standard flag by RxNorm's convention",
    ),
    # The ATC 5th-level codes the demo sites write: their ids make drug_source_concept_id non-zero.
    *(
        (
            [cid, name, "Drug", "ATC", "ATC 5th", "C", code, "19700101", "20991231", ""],
            f"{DPD_RTC} ({code} {name} -> ATC 5th, concept {cid}); domain and classification flag 'C' by the "
            "convention of the ATC rows above (L01E, L01EB, H02AB)",
        )
        for code, name, cid in ATC_5TH
    ),
    # The 2019-2021 revision's codes (irinotecan, kinase inhibitors, olaparib): 232 of the demo's drug exposures
    # had drug_source_concept_id 0 for want of them.
    *(
        (
            [cid, name, "Drug", "ATC", "ATC 5th", "C", code, start, "20991231", ""],
            f"{ATC_EXPORT} (full row copied: {cid} '{name}', ATC 5th, C, {code})",
        )
        for cid, name, code, start in ATC_EXPORT_ROWS
    ),
    # TNM categories the sites write beyond T1/T2/M1: without them 13 of the 98 distinct measurement source
    # values (cT3, pN0, cM0...) were loaded as concept 0.
    *(
        (
            [
                cid,
                f"AJCC/UICC {cat} Category",
                "Measurement",
                "Cancer Modifier",
                "Staging/Grading",
                "S",
                f"AJCC/UICC-{cat}",
                "20220509",
                "20991231",
                "",
            ],
            f"{NEMESIS} (LOINC answer {cat} -> Maps to {cid}, full target row copied)",
        )
        for cat, cid in (("N0", "1633440"), ("N1", "1634434"), ("N2", "1634119"), ("N3", "1635320"), ("M0", "1635624"))
    ),
    *(
        (
            [
                cid,
                f"AJCC/UICC {cat} Category",
                "Measurement",
                "Cancer Modifier",
                "Staging/Grading",
                "S",
                f"AJCC/UICC-{cat}",
                "19700101",
                "20991231",
                "",
            ],
            "answerdigital/oxford-omop-data-mapper T category lookup (COSD T category -> measurement_concept_id, "
            f"{cid} 'AJCC/UICC {cat} Category'), found with the search tool; domain, class and code by the "
            "convention of AJCC/UICC T1/T2 (1635564, 1635562)",
        )
        for cat, cid in (("T3", "1634376"), ("T4", "1634654"))
    ),
    # The notes' language: every site writes 4180190, which the ETL had to replace by 0 with a warning.
    (
        [
            "4180190",
            "French language",
            "Language",
            "SNOMED",
            "Qualifier Value",
            "S",
            "297499001",
            "19700101",
            "20991231",
            "",
        ],
        "id and name: OHDSI/Vocabulary-v5.0@df87b017 BDPM/load_stage.sql and DA_France/load_stage.sql "
        "('4180190 -- French language'); SNOMED code 297499001 'French language' from BIH-CEI/nfdi4health-"
        "metadataschema's SNOMED language value sets (found with the search tool); domain Language from "
        "Vocabulary-v5.0 SNOMED/AddPeaks.sql (peak 297289008 World languages -> Language); class by SNOMED's "
        "qualifier value hierarchy; standard as DQD's isStandardValidConcept on note.language_concept_id expects",
    ),
    # clcc_sud's last contact and vital status: the observations were concept 0 (DQD's
    # standardConceptRecordCompleteness on observation_concept_id).
    (
        [
            "4203711",
            "Follow-up status",
            "Observation",
            "SNOMED",
            "Clinical Finding",
            "S",
            "308273005",
            "19700101",
            "20991231",
            "",
        ],
        f"{PHENOPACKET_MAPPING} (observation_concept_id 4203711 -> SNOMED:308273005 'Follow-up status', read from "
        "OBSERVATION with 43054909 Tobacco smoking status); SNOMED 308273005 'Follow-up status (finding)' in public "
        "FHIR value sets (found with the search tool): class by SNOMED's semantic tag (finding -> Clinical Finding), "
        "domain Observation and standard as its use in observation_concept_id shows",
    ),
    # Serum tumour markers (CEA, CA 15-3, CA 125, CA 19-9): the generator's ~60,000 marker results were concept 0.
    *(
        (
            [cid, name, "Measurement", "LOINC", "Lab Test", "S", code, "19700101", "20991231", ""],
            f"{source}; LOINC long name and code as published by LOINC; domain and class by the convention of the "
            "other serum tests here (3013603 PSA)",
        )
        for cid, name, code, source in (
            (
                "3003785",
                "Carcinoembryonic Ag [Mass/volume] in Serum or Plasma",
                "2039-6",
                "public OMOP ETL variable table (CEA -> measurement 3003785; LOINC 2039-6) and a public OMOP concept "
                "search listing, both found with the search tool",
            ),
            ("3006588", "Cancer Ag 15-3 [Units/volume] in Serum or Plasma", "6875-9", OMOP_LISTING),
            ("3037551", "Cancer Ag 125 [Units/volume] in Serum or Plasma", "10334-1", OMOP_LISTING),
            ("3022914", "Cancer Ag 19-9 [Units/volume] in Serum or Plasma", "24108-3", OMOP_LISTING),
        )
    ),
]
"""Real concepts used by the ETL whose rows no bulk source above provides, each with its source.

The CDM field concepts are standard: DQD checks every ``*_event_field_concept_id`` column with
``isStandardValidConcept`` (OMOP_CDMv5.4_Field_Level.csv), so OHDSI expects standard concepts there.
"""

STANDARD_METADATA = {CDM_VERSION_CONCEPT[0]}
"""Metadata concepts that are standard: DQD checks cdm_source.cdm_version_concept_id with isStandardValidConcept."""


def add_metadata_concepts(out: Path) -> int:
    """Add the Metadata concepts that the VOCABULARY, DOMAIN and CONCEPT_CLASS rows point to.

    Athena ships one concept per vocabulary, domain and concept class (domain ``Metadata``, code
    ``OMOP generated``, named like the row that points to it), so DQD's foreign-key checks on
    ``*_concept_id`` columns of those tables hold. The ids come from the rows themselves; the names
    are the rows' own names. Returns how many concepts were added.
    """
    concept_path = out / "CONCEPT.csv"
    lines = concept_path.read_text(encoding="utf-8").splitlines()
    header, rows = lines[0], [line.split("\t") for line in lines[1:] if line]
    present = {int(row[0]) for row in rows}
    wanted: dict[int, tuple[str, str, str, str]] = {}
    for file, vocabulary, name_column in (
        ("VOCABULARY.csv", "Vocabulary", 1),
        ("DOMAIN.csv", "Domain", 1),
        ("CONCEPT_CLASS.csv", "Concept Class", 1),
    ):
        table = [line.split("\t") for line in (out / file).read_text(encoding="utf-8").splitlines()[1:] if line]
        for row in table:
            concept_id = int(row[-1])
            if concept_id and concept_id not in present:
                wanted[concept_id] = (row[name_column], vocabulary, vocabulary, "OMOP generated")
    concept_id, name, code = CDM_VERSION_CONCEPT
    if int(concept_id) not in present:
        wanted[int(concept_id)] = (name, "CDM", "CDM", code)
    published = [(row, source) for row, source in PUBLISHED_CONCEPTS if int(row[0]) not in present]
    # Rows of an earlier build are corrected in place (their standard flag, for one); their source is recorded.
    corrected = {row[0]: row for row, _ in PUBLISHED_CONCEPTS if int(row[0]) in present}
    rows = [corrected.get(row[0], row) for row in rows]
    for row in rows:
        if row[0] in STANDARD_METADATA:
            row[5] = "S"
    rows += [row for row, _ in published]
    ancestor_path = out / "CONCEPT_ANCESTOR.csv"
    ancestor_lines = ancestor_path.read_text(encoding="utf-8").splitlines()
    ancestors = [line.split("\t") for line in ancestor_lines[1:] if line]
    has_self = {row[0] for row in ancestors if row[0] == row[1]}
    ancestors += [[row[0], row[0], "0", "0"] for row in rows if row[5] in ("S", "C") and row[0] not in has_self]
    write_tsv(ancestor_path, ancestor_lines[0].split("\t"), sorted(ancestors, key=lambda r: (int(r[0]), int(r[1]))))
    for concept_id_, (name, vocabulary, concept_class, code) in wanted.items():
        standard = "S" if str(concept_id_) in STANDARD_METADATA else ""
        rows.append(
            [str(concept_id_), name, "Metadata", vocabulary, concept_class, standard, code, "19700101", "20991231", ""]
        )
    rows.sort(key=lambda row: int(row[0]))
    write_tsv(concept_path, header.split("\t"), rows)
    # Every vocabulary, domain and class a concept uses needs its row; those no source at hand
    # describes point at concept 0, like the other rows built without a source.
    names = {
        "Vocabulary": "OMOP Vocabulary",
        "Domain": "OMOP Domain",
        "Concept Class": "OMOP Concept Class",
        "CDM": "OMOP Common Data Model",
        "Field": "OMOP CDM Field",
    }
    for file, column, make in (
        ("VOCABULARY.csv", 3, lambda key: [key, names.get(key, key), "OMOP generated", "", "0"]),
        ("DOMAIN.csv", 2, lambda key: [key, names.get(key, key), "0"]),
        ("CONCEPT_CLASS.csv", 4, lambda key: [key, names.get(key, key), "0"]),
    ):
        path = out / file
        table_lines = path.read_text(encoding="utf-8").splitlines()
        table = [line.split("\t") for line in table_lines[1:] if line]
        known = {row[0] for row in table}
        used = {row[column] for row in rows}
        table += [make(key) for key in sorted(used - known)]
        write_tsv(path, table_lines[0].split("\t"), sorted(table))
    sources_path = out / "concept_sources.csv"
    with sources_path.open("a", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        for concept_id_ in sorted(wanted):
            if concept_id_ == int(CDM_VERSION_CONCEPT[0]):
                source = "Eunomia Synthea27Nj CDM_SOURCE.csv: cdm_version_concept_id of CDM 5.4"
            else:
                source = "derived: the Metadata concept a VOCABULARY/DOMAIN/CONCEPT_CLASS row points to, named by it"
            writer.writerow([concept_id_, source, "name, code and class by Athena's Metadata convention"])
        for row, source in published:
            writer.writerow([row[0], source, ""])
    return len(wanted) + len(published)


MALIGNANT_NEOPLASTIC_DISEASE = "443392"
MALIGNANT_NAME = re.compile(
    r"^(primary |secondary |overlapping )?malignant (neoplasm|tumor|melanoma|lymphoma)"
    r"|leuka?emia|carcinoma|lymphoma|sarcoma|myeloma",
    re.IGNORECASE,
)
NOT_MALIGNANT = re.compile(
    r"in situ|benign|uncertain|history of|suspected|premalignant|due to|associated", re.IGNORECASE
)
ICDO3_MALIGNANT_BEHAVIOUR = re.compile(r"^\d{4}/[36]")  # ICD-O-3 behaviour 3 (primary) or 6 (metastatic)


def add_malignancy_hierarchy(out: Path) -> int:
    """Put every malignant standard condition under 443392 "Malignant neoplastic disease".

    The sources give the hierarchy only around prostate cancer, so cohorts written on
    "descendants of 443392" (as OHDSI's phenotypes are) would find no other cancer. A condition is
    placed there when the coding system itself says it is malignant: an ICD-O-3 condition whose
    morphology behaviour code is /3 or /6, or a SNOMED condition named as a malignant neoplasm,
    carcinoma, leukaemia, lymphoma, sarcoma or myeloma (never in situ, benign, uncertain, nor a
    complication "due to" or "associated" with one). The
    depth is unknown: such rows record one level (min = max = 1). Returns how many rows were added.
    """
    concepts = [line.split("\t") for line in (out / "CONCEPT.csv").read_text(encoding="utf-8").splitlines()[1:]]
    path = out / "CONCEPT_ANCESTOR.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:] if line]
    present = {(row[0], row[1]) for row in rows}
    added = []
    for concept in concepts:
        concept_id, name, domain, vocabulary, standard, code = (
            concept[0],
            concept[1],
            concept[2],
            concept[3],
            concept[5],
            concept[6],
        )
        if domain != "Condition" or standard != "S" or concept_id == MALIGNANT_NEOPLASTIC_DISEASE:
            continue
        malignant = (
            ICDO3_MALIGNANT_BEHAVIOUR.match(code)
            if vocabulary == "ICDO3"
            else MALIGNANT_NAME.search(name) and not NOT_MALIGNANT.search(name)
        )
        if malignant and (MALIGNANT_NEOPLASTIC_DISEASE, concept_id) not in present:
            added.append([MALIGNANT_NEOPLASTIC_DISEASE, concept_id, "1", "1"])
    write_tsv(path, lines[0].split("\t"), sorted(rows + added, key=lambda r: (int(r[0]), int(r[1]))))
    return len(added)


SECONDARY_MALIGNANT_DISEASE = "432851"
SECONDARY_NAME = re.compile(r"^secondary malignant neoplasm", re.IGNORECASE)


def add_secondary_malignancy_hierarchy(out: Path) -> int:
    """Put every "Secondary malignant neoplasm of ..." condition under 432851 "Secondary malignant neoplastic disease".

    The sources give no hierarchy below 432851, so a progression rule written on its descendants
    (the ETL's progression episodes) would miss the site-specific concepts (liver 198700, lung
    254591...). Only standard SNOMED conditions whose name says so are placed there, one level down
    (the true depth is unknown). Returns how many rows were added.
    """
    concepts = [line.split("\t") for line in (out / "CONCEPT.csv").read_text(encoding="utf-8").splitlines()[1:]]
    path = out / "CONCEPT_ANCESTOR.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines[1:] if line]
    present = {(row[0], row[1]) for row in rows}
    added = [
        [SECONDARY_MALIGNANT_DISEASE, c[0], "1", "1"]
        for c in concepts
        if c[2] == "Condition"
        and c[3] == "SNOMED"
        and c[5] == "S"
        and c[0] != SECONDARY_MALIGNANT_DISEASE
        and SECONDARY_NAME.match(c[1])
        and (SECONDARY_MALIGNANT_DISEASE, c[0]) not in present
    ]
    write_tsv(path, lines[0].split("\t"), sorted(rows + added, key=lambda r: (int(r[0]), int(r[1]))))
    return len(added)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", default="/work/shared/reference")
    parser.add_argument("--phenotype-library", default="/work/.mirror/OHDSI+PhenotypeLibrary/repo")
    parser.add_argument("--athena", default="/work/.mirror/OHDSI+Athena/repo")
    parser.add_argument("--vocabulary-v5", default="/work/.mirror/OHDSI+Vocabulary-v5.0/repo")
    parser.add_argument("--metadata-only", action="store_true", help="only add the Metadata concepts to OUT")
    args = parser.parse_args()
    if args.metadata_only:
        print("metadata concepts added:", add_metadata_concepts(OUT))
        print("malignancy ancestor rows added:", add_malignancy_hierarchy(OUT))
        print("secondary malignancy ancestor rows added:", add_secondary_malignancy_hierarchy(OUT))
        return
    build(args)


if __name__ == "__main__":
    main()
