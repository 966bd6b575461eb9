from __future__ import annotations

from pathlib import Path

import pytest

from massalia.health.synth import GenerationSummary, generate


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    """600 patients in two parts, with documents, clean."""
    out = tmp_path_factory.mktemp("synth_small")
    return out, generate(out, 600, seed=7, chunk_size=300)


@pytest.fixture(scope="session")
def dirty_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerationSummary]:
    """The same patients as ``small_run`` with 2 % damaged rows and no documents."""
    out = tmp_path_factory.mktemp("synth_dirty")
    return out, generate(out, 600, seed=7, chunk_size=300, dirty_rate=0.02, with_documents=False)
