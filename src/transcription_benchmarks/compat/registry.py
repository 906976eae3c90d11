"""Known CUDA-stack issues as data (known_issues.toml), and matching error texts against them.

Kept as data so that the README, `tbench doctor` and the compat matrix name the same symptom,
cause and fix, and a new failure is one TOML entry rather than code.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.tomlfile import read_toml

KNOWN_ISSUES_FILE = Path(__file__).with_name("known_issues.toml")


class KnownIssue(BaseModel):
    """One failure users hit: how it shows, why, which versions, and what fixes it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    symptom: tuple[str, ...]
    cause: str
    affected: str
    fix: str
    gpu_only: bool
    severity: Literal["error", "info"]
    proven_by: tuple[str, ...] = ()

    @field_validator("symptom")
    @classmethod
    def _compiles(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:  # re.error is no ValueError: pydantic would not wrap it
                raise ValueError(f"symptom {pattern!r}: {exc}") from None
        return patterns

    def matches(self, text: str) -> bool:
        return any(re.search(pattern, text) for pattern in self.symptom)


def load_issues(path: Path = KNOWN_ISSUES_FILE) -> tuple[KnownIssue, ...]:
    raw = read_toml(path, "known-issues registry", BenchError)
    issues = tuple(KnownIssue.model_validate(entry) for entry in raw.get("issue", []))
    ids = [issue.id for issue in issues]
    if len(set(ids)) != len(ids):
        raise ValueError(f"duplicate known-issue ids in {path}: {ids}")
    return issues


@cache
def known_issues() -> tuple[KnownIssue, ...]:
    """The packaged registry, read once."""
    return load_issues()


def get_issue(issue_id: str) -> KnownIssue:
    for issue in known_issues():
        if issue.id == issue_id:
            return issue
    raise KeyError(f"no known issue {issue_id!r}")


def match(text: str, issues: tuple[KnownIssue, ...] | None = None) -> list[KnownIssue]:
    """The known issues whose symptom occurs in `text`, in registry order."""
    return [issue for issue in (issues or known_issues()) if issue.matches(text)]
