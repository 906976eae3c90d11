"""One results JSONL from parallel pytest-xdist workers.

Workers never write the same file: each appends its rows to its own shard beside the target
(`gpu.jsonl` -> `gpu.gw0.jsonl`), and the controller merges the shards into the target when the
session ends (tests/conftest.py's pytest_sessionfinish). A lock around a shared file would work
too, but shards also survive a worker that dies mid-row: the merge validates every line with
`read_rows`, so a torn last line is dropped with a warning instead of corrupting the target.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from transcription_benchmarks.matrix.rows import read_rows
from transcription_benchmarks.matrix.runner import append_row

WORKER_ENV = "PYTEST_XDIST_WORKER"
RESULTS_DIR_ENV = "TRANSCRIPTION_BENCHMARKS_RESULTS_DIR"
"""Where the pytest suites that record rows write them (default: results/ of the checkout)."""
SHARD_PATTERN = re.compile(r"(?P<stem>.+)\.(?P<worker>gw\d+)\.jsonl")


def results_dir(default: str | Path) -> Path:
    return Path(os.environ.get(RESULTS_DIR_ENV) or default)


def shard_path(out: str | Path, worker_id: str | None = None) -> Path:
    """Where this process appends rows meant for `out`: its own shard under an xdist worker
    (from $PYTEST_XDIST_WORKER unless given), else `out` itself."""
    out = Path(out)
    worker_id = worker_id if worker_id is not None else os.environ.get(WORKER_ENV)
    if not worker_id or not re.fullmatch(r"gw\d+", worker_id):
        return out
    return out.with_name(f"{out.stem}.{worker_id}.jsonl")


def merge_shards(directory: str | Path) -> dict[Path, int]:
    """Append every worker shard in `directory` to its target (`x.gw3.jsonl` -> `x.jsonl`), rows
    ordered by start time, then delete the shard. Returns rows merged per target."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    groups: dict[Path, list[Path]] = {}
    for path in sorted(directory.iterdir()):
        match = SHARD_PATTERN.fullmatch(path.name)
        if match and path.is_file():
            groups.setdefault(directory / f"{match['stem']}.jsonl", []).append(path)
    merged: dict[Path, int] = {}
    for target, shards in groups.items():
        rows = sorted(
            (row for shard in shards for row in read_rows(shard)), key=lambda r: r.started_at
        )
        for row in rows:
            append_row(target, row)
        for shard in shards:
            shard.unlink()
        merged[target] = len(rows)
    return merged
