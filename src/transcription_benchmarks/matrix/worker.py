"""Matrix cells in their own process: `python -m transcription_benchmarks.matrix.worker JOB OUT`.

JOB is a JSON file {"matrix": name, "cell": Cell}; the worker writes the Row as JSON to OUT and
exits 0, whatever the cell did: ok, or error / oom / unavailable with the exception's one-line
message. A crash it cannot catch (a signal, a hard exit) leaves OUT unwritten, and the parent
(matrix/runner.py) classifies the exit instead.

A group job {"matrix": name, "cells": [Cell, ...], "memory_limit": MemoryLimit | null} runs its
cells one after another in this one process (imports paid once: a cheap screen), appending each
row to OUT as a JSONL line as soon as it exists, and skips the larger batches of a ladder whose
rung did not fit the limit. Peaks measured in a shared process include what earlier cells left
allocated: an upper bound, which only a cell of its own confirms.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import traceback
from pathlib import Path

from transcription_benchmarks.errors import (
    AudioUnavailableError,
    BackendNotInstalledError,
    ModelNotFoundError,
)
from transcription_benchmarks.lifetime import die_with_parent
from transcription_benchmarks.matrix.rows import (
    Cell,
    MemoryLimit,
    Row,
    Status,
    above_failed_rung,
    record_rung,
)
from transcription_benchmarks.matrix.spec import PYTHON_PREFIX
from transcription_benchmarks.result import BenchResult


def run_in_process(matrix: str, cell: Cell) -> Row:
    """Run one cell in this process and return its row; exceptions become error rows."""
    row = Row(matrix=matrix, cell_id=cell.id, cell=cell, status="ok", host=socket.gethostname())
    try:
        if cell.dataset is not None:
            row.dataset_result = _run_dataset(cell)
            row.ran_model = cell.model
            return row
        try:
            row.result = _run_model(cell.model, cell)
            row.ran_model = cell.model
        except ModelNotFoundError as exc:
            if not cell.fallback:
                raise
            row.result = _run_model(cell.fallback, cell)
            row.ran_model = cell.fallback
            row.synthetic_fallback = True
            row.reason = f"ran {cell.fallback} instead: {one_line(str(exc))}"
    except BaseException as exc:  # everything a cell raises is its row's outcome
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        traceback.print_exc()  # the full story on the worker's stderr; the row gets one line
        row.status = classify_exception(exc)
        row.reason = describe_exception(exc)
        row.result = None
        row.dataset_result = None
    return row


def _run_dataset(cell: Cell):
    from transcription_benchmarks.args import BenchArgs
    from transcription_benchmarks.datasets import run_dataset

    args = {k: v for k, v in cell.args.items() if k not in ("test_file", "warmup", "repeats")}
    return run_dataset(cell.model, cell.dataset, BenchArgs.build(**args), limit=cell.dataset_limit)


def _run_model(model: str, cell: Cell) -> BenchResult:
    if model.startswith(PYTHON_PREFIX):
        return _run_python(model, cell.args)
    from transcription_benchmarks.args import BenchArgs
    from transcription_benchmarks.bench import bench

    return bench(model, BenchArgs.build(**cell.args))


def _run_python(model: str, args: dict) -> BenchResult:
    module_name, _, function_name = model.removeprefix(PYTHON_PREFIX).partition(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(**args)
    if not isinstance(result, BenchResult):
        raise TypeError(f"{model} returned {type(result).__name__}, not a BenchResult")
    return result


def classify_exception(exc: BaseException) -> Status:
    if isinstance(exc, BackendNotInstalledError | AudioUnavailableError):
        return "unavailable"  # cannot run on this machine at all: not a failure of the cell
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return "oom"
    return "error"


def describe_exception(exc: BaseException) -> str:
    message = one_line(str(exc))
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


RUNNER_PID_ENV = "TRANSCRIPTION_BENCHMARKS_RUNNER_PID"


def die_with_runner() -> None:
    """SIGKILL this worker when the runner that started it dies (lifetime.die_with_parent)."""
    runner = os.environ.get(RUNNER_PID_ENV)
    die_with_parent(int(runner) if runner else None)


def main(argv: list[str] | None = None) -> int:
    die_with_runner()
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m transcription_benchmarks.matrix.worker JOB.json ROW.json")
        return 2
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out = Path(argv[1])
    if "cells" in job:
        limit = job.get("memory_limit")
        run_group(
            job["matrix"],
            [Cell.model_validate(cell) for cell in job["cells"]],
            out,
            MemoryLimit.model_validate(limit) if limit else None,
        )
        return 0
    row = _report(run_in_process(job["matrix"], Cell.model_validate(job["cell"])))
    partial = out.with_suffix(".partial")
    partial.write_text(row.model_dump_json(), encoding="utf-8")
    os.replace(partial, out)
    return 0


def run_group(matrix: str, cells: list[Cell], out: Path, limit: MemoryLimit | None) -> None:
    """The cells in order, each row appended to `out` as soon as it exists."""
    from transcription_benchmarks.matrix.runner import append_row

    failed: dict[str, int] = {}
    for cell in cells:
        if above_failed_rung(cell, failed):
            continue
        row = _report(run_in_process(matrix, cell))
        append_row(out, row)
        if limit is not None:
            record_rung(cell, limit.holds(row), failed)


def _report(row: Row) -> Row:
    if row.status != "ok":
        print(f"cell {row.cell_id}: {row.status}: {row.reason}", file=sys.stderr)
    return row


if __name__ == "__main__":
    sys.exit(main())
