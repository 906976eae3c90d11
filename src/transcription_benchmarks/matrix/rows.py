"""The records a matrix run appends to its JSONL file: one cell, one outcome per line.

A cell that runs out of memory, aborts, times out or cannot import its backend still yields a
row, with the reason, so a report shows it ("OOM" as the original table did) instead of
silently dropping it. Rows are versioned and carry the BenchResult (and with it the environment
fingerprint) when the cell ran.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.result import BenchResult

ROW_SCHEMA_VERSION = 1

Status = Literal["ok", "oom", "abort", "timeout", "error", "unavailable"]
"""ok: ran; oom: out of (GPU or host) memory; abort: the process died by a signal (e.g. the
cuDNN load failure's SIGABRT); timeout: killed at the cell's limit; error: raised (bad input,
missing weights, ...); unavailable: the backend is not installed here (e.g. NeMo for canary)."""


class Cell(BaseModel):
    """One model x configuration x test file of a matrix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    args: dict[str, Any] = Field(default_factory=dict, description="BenchArgs fields")
    label: str = Field("", description="the Config column, e.g. 'fp16, batch 24, SDPA'")
    fallback: str | None = Field(
        None, description="model to run when `model`'s weights cannot be had (synthetic:<arch>)"
    )
    timeout_s: float | None = None

    @property
    def id(self) -> str:
        """Stable across runs: what resume and compare match cells by."""
        key = json.dumps({"model": self.model, "args": self.args}, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def test_file(self) -> str:
        return str(self.args.get("test_file", "short.flac"))


class Row(BaseModel):
    schema_version: int = ROW_SCHEMA_VERSION
    matrix: str = Field(description="the matrix name")
    cell_id: str
    cell: Cell
    status: Status
    reason: str | None = Field(None, description="why a cell did not run, one line")
    ran_model: str | None = Field(None, description="the model that ran (fallback included)")
    synthetic_fallback: bool = False
    result: BenchResult | None = None
    wall_s: float | None = Field(None, description="the cell's subprocess, start to exit")
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    host: str | None = Field(None, description="where it ran (hostname or instance type)")


class ResultsFileError(BenchError):
    """A results JSONL file is missing or holds a line that is not a row."""


def read_rows(path: str | Path) -> list[Row]:
    """One Row per non-empty line. A bad *last* line (a run interrupted mid-write) is skipped
    with a warning; a bad line anywhere else is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    rows: list[Row] = []
    for index, (number, line) in enumerate(numbered):
        try:
            rows.append(Row.model_validate_json(line))
        except ValidationError as exc:
            if index == len(numbered) - 1:
                warnings.warn(
                    f"{path}:{number}: skipping a truncated last line (interrupted run?)",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ResultsFileError(
                f"{path}:{number}: not a matrix row: {first['msg']}"
                + (f" at {where}" if where else "")
            ) from None
    return rows
