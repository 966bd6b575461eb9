"""Declarative pipelines: stage, validate and publish atomically, incrementally, with lineage."""

from __future__ import annotations

from massalia.pipelines.lineage import LineageStore, RunSummary
from massalia.pipelines.publish import TableChange, publish
from massalia.pipelines.rules import RULE_KINDS, Rule, RuleKind, register_rule_kind
from massalia.pipelines.runner import (
    FILE_NO,
    LOADED_FILES,
    REJECTS,
    InputFile,
    Pipeline,
    RunContext,
    RunResult,
    run_pipeline,
)

__all__ = [
    "FILE_NO",
    "LOADED_FILES",
    "REJECTS",
    "RULE_KINDS",
    "InputFile",
    "LineageStore",
    "Pipeline",
    "Rule",
    "RuleKind",
    "RunContext",
    "RunResult",
    "RunSummary",
    "TableChange",
    "publish",
    "register_rule_kind",
    "run_pipeline",
]
