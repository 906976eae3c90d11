"""The records a matrix run appends to its JSONL file: one cell, one outcome per line.

A cell that runs out of memory, aborts, times out or cannot import its backend still yields a
row, with the reason, so a report shows it ("OOM" as the original table did) instead of
silently dropping it. Rows are versioned and carry the BenchResult (and with it the environment
fingerprint) when the cell ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from transcription_benchmarks.datasets.result import DatasetResult
from transcription_benchmarks.errors import (
    BenchError,
    InvalidOptionError,
    describe_validation_error,
)
from transcription_benchmarks.formats import CURRENT, FormatVersionError, upgrade
from transcription_benchmarks.result import BenchResult

ROW_SCHEMA_VERSION = CURRENT["Row"]

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
    dataset: str | None = Field(
        None, description="a dataset cell: what open_dataset takes; run_dataset instead of bench"
    )
    dataset_limit: int | None = Field(None, ge=1, description="at most this many utterances")

    @property
    def id(self) -> str:
        """Stable across runs: what resume and compare match cells by."""
        identity: dict[str, Any] = {"model": self.model, "args": self.args}
        if self.dataset is not None:  # bench cells keep the ids they always had
            identity.update(dataset=self.dataset, dataset_limit=self.dataset_limit)
        key = json.dumps(identity, sort_keys=True)
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def test_file(self) -> str:
        """The audio the cell runs on: its test file, or its dataset."""
        if self.dataset is not None:
            return self.dataset
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
    dataset_result: DatasetResult | None = Field(
        None, description="a dataset cell's result (its `result` stays None)"
    )
    wall_s: float | None = Field(None, description="the cell's subprocess, start to exit")
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    host: str | None = Field(None, description="where it ran (hostname or instance type)")

    @model_validator(mode="before")
    @classmethod
    def _upgrade(cls, data: Any) -> Any:
        return upgrade("Row", data)


class MemoryLimit(BaseModel):
    """A ceiling on a row's peak memory: the NVML peak on a GPU, peak RSS on a CPU."""

    memory_mb: float = Field(description="MiB")
    kind: Literal["gpu", "cpu"] = Field(description="'gpu' (NVML peak) or 'cpu' (peak RSS)")

    def peak_mb(self, row: Row) -> float | None:
        """The row's peak of this kind; None when the cell did not run (or NVML saw nothing)."""
        if row.status != "ok" or row.result is None:
            return None
        memory = row.result.memory
        return memory.peak_gpu_mb if self.kind == "gpu" else memory.peak_rss_mb

    def holds(self, row: Row) -> bool:
        peak = self.peak_mb(row)
        return peak is not None and peak <= self.memory_mb


LADDER_FREE = frozenset({"batch_size", "warmup", "repeats"})


def ladder_key(cell: Cell) -> str:
    """Cells that differ only in batch size (and in how often they run) climb one ladder:
    memory grows with the batch, so once one rung does not fit, the larger ones are not worth
    running."""
    args = {k: v for k, v in cell.args.items() if k not in LADDER_FREE}
    return json.dumps({"model": cell.model, "args": args}, sort_keys=True)


def above_failed_rung(cell: Cell, failed: dict[str, int]) -> bool:
    """Whether `cell` is a larger batch than a rung of its ladder that did not fit
    (`failed`: ladder key -> the smallest batch size that did not fit)."""
    batch = cell.args.get("batch_size")
    limit = failed.get(ladder_key(cell))
    return batch is not None and limit is not None and batch > limit


def record_rung(cell: Cell, fitted: bool, failed: dict[str, int]) -> None:
    """Note a batched cell that did not fit in `failed` (see above_failed_rung)."""
    batch = cell.args.get("batch_size")
    if not fitted and batch is not None:
        key = ladder_key(cell)
        failed[key] = min(batch, failed.get(key, batch))


class ResultsFileError(BenchError):
    """A results JSONL file is missing or holds a line that is not a row."""


class NotResultsFileError(ResultsFileError):
    """A file given to append rows to holds something else (notes, another tool's output, a
    directory): it is refused as it is, nothing in it or beside it touched."""


ROW_START = '{"schema_version"'
"""How every row's JSON begins (schema_version is Row's first field)."""


def _glued_row(line: str) -> Row | None:
    """A row written after a torn fragment on the same line, as a resume before this version
    appended it: the row is the text from the last row start on."""
    start = line.rfind(ROW_START)
    if start <= 0:
        return None
    try:
        return Row.model_validate_json(line[start:])
    except ValidationError:
        return None


def read_rows(path: str | Path) -> list[Row]:
    """One Row per non-empty line. A bad *last* line (a run interrupted mid-write) is skipped
    with a warning; a row glued after a torn fragment (files resumed by earlier versions) is
    read with a warning; any other bad line is an error."""
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
        except FormatVersionError as exc:  # a whole row this version cannot read: never skipped
            raise ResultsFileError(f"{path}:{number}: {exc}") from None
        except ValidationError as exc:
            if (glued := _glued_row(line)) is not None:
                warnings.warn(
                    f"{path}:{number}: a torn fragment precedes a row on this line; the row is "
                    "kept, the fragment skipped",
                    UserWarning,
                    stacklevel=2,
                )
                rows.append(glued)
                continue
            if index == len(numbered) - 1:
                warnings.warn(
                    f"{path}:{number}: skipping a truncated last line (interrupted run?)",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            raise ResultsFileError(
                f"{path}:{number}: not a matrix row: {describe_validation_error(exc, empty='line')}"
            ) from None
    return rows


def _torn_row(line: bytes) -> bool:
    """Whether `line` can be a row cut short by a killed writer: it begins as every row begins
    (ROW_START), or with the first bytes of that (killed within them), or it is such a
    beginning followed by one (a fragment an earlier version's resume wrote a row after)."""
    start = ROW_START.encode()
    if not line or start.startswith(line) or line.startswith(start):
        return bool(line)
    glued = line.find(start)
    return glued > 0 and start.startswith(line[:glued])


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def check_results_file(path: str | Path) -> None:
    """Refuse `path` as a file to append rows to unless it is a results file, before anything
    in it or beside it is touched (set_aside_torn_tail would cut its last line off): absent and
    empty are fine, and so is a file whose non-blank lines are all rows but for a torn last one
    (the start of a row, see _torn_row). A symbolic link is judged by the file it points at.
    Reads only as far as the first line that is not a row. Raises NotResultsFileError (or
    ResultsFileError: unreadable, or rows of a newer version) in one line saying why."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return  # nothing there yet (a link to nothing yet included): the first row makes it
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    named = f"{path} (a link to {path.resolve()})" if path.is_symlink() else str(path)
    refused = "left as it is; give --out a new file or a results file"
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise NotResultsFileError(f"{named} is {kind}, not a results file: {refused}")

    def not_rows(number: int, why: str) -> NotResultsFileError:
        return NotResultsFileError(
            f"{named} is not a results file (line {number} is not a matrix row{why}): {refused}"
        )

    try:
        with path.open("rb") as f:
            # Most files that are not results show it in their first bytes: refused without
            # reading on (a large binary file may hold no newline at all).
            head = f.read(4096)
            text = head.lstrip()
            if text and not text.startswith(b"{"):
                raise not_rows(head[: len(head) - len(text)].count(b"\n") + 1, "")
            f.seek(0)
            pending: tuple[int, bytes, str] | None = None  # not a row: fine if the last line
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                if pending is not None:
                    raise not_rows(pending[0], pending[2])
                try:
                    Row.model_validate_json(line)
                except FormatVersionError as exc:
                    raise ResultsFileError(f"{path}:{number}: {exc}") from None
                except ValidationError as exc:
                    if _glued_row(line.decode("utf-8", "replace")) is None:
                        pending = (number, line.strip(), f": {_first_problem(exc)}")
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    if pending is not None and not _torn_row(pending[1]):
        raise not_rows(pending[0], pending[2])


def set_aside_torn_tail(path: str | Path) -> str | None:
    """Before rows are appended to `path`: a last line that is not a whole row (a run killed
    mid-write) moves to `<path>.torn` and the file is cut back to its last whole row, so the
    next row starts on a line of its own. Returns what was done, or None when nothing was."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    body = data.rstrip(b"\n")
    if not body:
        return None
    cut = body.rfind(b"\n") + 1
    last = body[cut:]
    if _is_row(last):
        if not data.endswith(b"\n"):  # a whole row that only lost its newline
            with path.open("ab") as f:
                f.write(b"\n")
        return None
    fragment, kept = last, b""
    if _glued_row(last.decode("utf-8", "replace")) is not None:  # an earlier version's resume
        start = last.rfind(ROW_START.encode())
        fragment, kept = last[:start], last[start:] + b"\n"
    elif last.strip() and not _torn_row(last.strip()):  # not a file of rows: run_matrix checks
        raise NotResultsFileError(
            f"{path}: the last line is neither a row nor the start of one; nothing set aside"
        )
    side = path.with_name(path.name + ".torn")
    with side.open("ab") as f:  # the side file first: a crash between the two loses nothing
        f.write(fragment + b"\n")
        f.flush()
        os.fsync(f.fileno())
    with path.open("r+b") as f:
        f.truncate(cut)
        f.seek(cut)
        f.write(kept)
        f.flush()
        os.fsync(f.fileno())
    return (
        f"{path}: the last line's {len(fragment)} bytes were not a whole row (an interrupted "
        f"run); moved to {side}"
    )


def _is_row(line: bytes) -> bool:
    try:
        Row.model_validate_json(line)
    except ValidationError:
        return False
    return True


RowKey = tuple[str, str, str | None]
"""A row's identity: (matrix, cell id, host). The same key written again supersedes."""


def row_key(row: Row) -> RowKey:
    return (row.matrix, row.cell_id, row.host)


class Results:
    """The rows of a results file, read through one identity, (matrix, cell, host): the last row
    written for a key is its current row, earlier ones are superseded (kept in the file, not
    shown). Resume, report, compare, check and the per-instance report all read through it."""

    def __init__(self, rows: list[Row], source: str = "results") -> None:
        self.rows = list(rows)
        self.source = source
        latest: dict[RowKey, int] = {}
        for index, row in enumerate(self.rows):
            latest[row_key(row)] = index
        # In the order each key first appeared, so a rerun keeps its cell's place.
        order = list(dict.fromkeys(row_key(row) for row in self.rows))
        self._current = [self.rows[latest[key]] for key in order]

    @classmethod
    def read(cls, path: str | Path) -> Results:
        return cls(read_rows(path), source=str(path))

    @property
    def current(self) -> list[Row]:
        return list(self._current)

    @property
    def superseded(self) -> int:
        return len(self.rows) - len(self._current)

    @property
    def hosts(self) -> list[str | None]:
        """Distinct hosts of the current rows, in order of first appearance."""
        return list(dict.fromkeys(row.host for row in self._current))

    def for_host(self, host: str | None) -> Results:
        """Only `host`'s rows; an unknown host is a bad option, naming the ones present."""
        if host not in self.hosts:
            raise InvalidOptionError(
                f"no rows from host {host!r} in {self.source}; hosts in these results: "
                + ", ".join(str(h) for h in self.hosts)
            )
        return Results([row for row in self.rows if row.host == host], self.source)

    @property
    def bench_rows(self) -> list[Row]:
        """The current rows of bench cells: what the matrix table, compare and check read."""
        return [row for row in self._current if row.cell.dataset is None]

    @property
    def dataset_results(self) -> list[DatasetResult]:
        """The results of the current dataset cells that ran."""
        return [row.dataset_result for row in self._current if row.dataset_result is not None]

    def by_cell(self, option: str = "--host") -> dict[str, Row]:
        """The current row of each bench cell, for comparing cell by cell (dataset cells are
        compared in the HTML report). Rows of several hosts, or a cell under two matrix names,
        have no one row per cell: that is an error saying how to choose, never a silent pick."""
        if len(self.hosts) > 1:
            raise ResultsFileError(
                f"{self.source} holds rows from {len(self.hosts)} hosts ("
                + ", ".join(str(h) for h in self.hosts)
                + f"): choose one with {option}"
            )
        cells: dict[str, Row] = {}
        for row in self.bench_rows:
            if (other := cells.get(row.cell_id)) is not None:
                raise ResultsFileError(
                    f"{self.source}: cell {row.cell_id} ({row.cell.model}) has rows in matrices "
                    f"{other.matrix!r} and {row.matrix!r}: compare files of one matrix"
                )
            cells[row.cell_id] = row
        return cells
