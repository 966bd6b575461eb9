"""Shared fixtures of the safety tests: one small generated delivery, loaded once into an in-memory warehouse."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from safety_world import EVENTS, Loaded

from massalia.engine import connect
from massalia.pipelines import LineageStore
from massalia.safety.log import load_delivery
from massalia.safety.synth.generator import GeneratedLogs, GeneratorConfig, generate


@pytest.fixture(scope="session")
def safety_logs(tmp_path_factory: pytest.TempPathFactory) -> GeneratedLogs:
    return generate(tmp_path_factory.mktemp("safety-logs"), GeneratorConfig(events=EVENTS, seed=16))


@pytest.fixture(scope="session")
def loaded(safety_logs: GeneratedLogs, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    engine = connect("duckdb")
    store = LineageStore(f"sqlite:///{(tmp_path_factory.mktemp('safety-lineage') / 'lineage.sqlite').as_posix()}")
    first = load_delivery(engine, safety_logs.root, store)
    try:
        yield Loaded(safety_logs, engine, store, first)
    finally:
        engine.close()
