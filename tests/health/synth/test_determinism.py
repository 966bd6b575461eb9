from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from massalia.health.synth import generate


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _lines(root: Path, pattern: str) -> list[bytes]:
    lines: list[bytes] = []
    for p in sorted(root.glob(pattern)):
        lines += p.read_bytes().removeprefix(b"\xef\xbb\xbf").splitlines()[1:]
    return sorted(lines)


def test_same_seed_same_arguments_gives_byte_identical_files(tmp_path):
    generate(tmp_path / "a", 150, seed=3, dirty_rate=0.01)
    generate(tmp_path / "b", 150, seed=3, dirty_rate=0.01)
    a, b = _digests(tmp_path / "a"), _digests(tmp_path / "b")
    assert a == b
    assert len(a) > 30


def test_another_seed_gives_other_data(tmp_path):
    generate(tmp_path / "a", 100, seed=3, with_documents=False)
    generate(tmp_path / "b", 100, seed=4, with_documents=False)
    assert _lines(tmp_path / "a", "clcc_sud/lab_results_*.csv") != _lines(tmp_path / "b", "clcc_sud/lab_results_*.csv")


def test_chunk_size_does_not_change_the_data(tmp_path):
    generate(tmp_path / "one", 400, seed=5, chunk_size=400, with_documents=False)
    generate(tmp_path / "four", 400, seed=5, chunk_size=100, with_documents=False)
    for pattern in (
        "chu_nord/biologie_*.csv",
        "clcc_sud/medications_*.csv",
        "chu_nord/sejours_*.csv",
        "clcc_sud/patients_*.csv",
        "chu_nord/diagnostics_*.csv",
    ):
        assert len(list((tmp_path / "four").glob(pattern))) == 4
        assert _lines(tmp_path / "one", pattern) == _lines(tmp_path / "four", pattern), pattern


def test_a_later_batch_adds_new_patients_in_new_parts(tmp_path):
    out = tmp_path / "inc"
    first = generate(out, 200, seed=9, chunk_size=100, with_documents=False)
    before = _digests(out)
    second = generate(out, 100, seed=9, start_index=200, chunk_size=100, with_documents=False)
    after = _digests(out)
    assert first.parts == [0, 1] and second.parts == [2]
    for name, digest in before.items():
        if name != "ground_truth.json":
            assert after[name] == digest, name
    old = set(_lines(out, "clcc_sud/patients_part000[01].csv"))
    new = set(_lines(out, "clcc_sud/patients_part0002.csv"))
    old_ids = {line.split(b",")[0] for line in old}
    assert new and not ({line.split(b",")[0] for line in new} & old_ids)
    # The batches together are the same patients as one run of 300.
    generate(tmp_path / "all", 300, seed=9, chunk_size=100, with_documents=False)
    assert _lines(out, "chu_nord/biologie_*.csv") == _lines(tmp_path / "all", "chu_nord/biologie_*.csv")


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="multiple of chunk_size"):
        generate(tmp_path, 10, start_index=5, chunk_size=10)
    with pytest.raises(ValueError, match="unknown sites"):
        generate(tmp_path, 10, sites=["nowhere"])
    with pytest.raises(ValueError, match="dirty_rate"):
        generate(tmp_path, 10, dirty_rate=2.0)
    generate(tmp_path / "s", 10, seed=1, with_documents=False)
    with pytest.raises(ValueError, match="another seed"):
        generate(tmp_path / "s", 10, seed=2, start_index=10, chunk_size=10, with_documents=False)


def test_site_subset_only_writes_those_sites(tmp_path):
    s = generate(tmp_path, 80, seed=2, sites=["ch_est"], with_documents=False)
    assert s.patients_per_site == {"ch_est": 80}
    assert not (tmp_path / "chu_nord").exists()


def test_progress_is_reported(tmp_path):
    from rich.progress import Progress

    with Progress(disable=True) as progress:
        summary = generate(tmp_path, 120, seed=1, chunk_size=60, with_documents=False, progress=progress)
        task = progress.tasks[0]
        assert task.completed == task.total == 120
    assert summary.parts == [0, 1]
    assert (
        summary.files["clcc_sud/patients_part0001.csv"]
        == summary.patients_per_site["clcc_sud"] - summary.files["clcc_sud/patients_part0000.csv"]
    )
