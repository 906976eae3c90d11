"""The GPU suite (matrix/suites/gpu.toml) as pytest: one test per cell, asserting the same
thresholds as `nox -s gpu_bench`. `pytest -n auto -m gpu` runs one worker per GPU (conftest pins
CUDA_VISIBLE_DEVICES); each worker appends its rows to its own shard (results/gpu.gw<N>.jsonl)
and the controller merges them into results/gpu.jsonl at the end, so no two processes write one
file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from transcription_benchmarks.matrix.rows import Cell
from transcription_benchmarks.matrix.runner import append_row, run_cell
from transcription_benchmarks.matrix.shards import results_dir, shard_path
from transcription_benchmarks.matrix.spec import builtin_matrix, load_matrix
from transcription_benchmarks.report.thresholds import check_thresholds, load_thresholds

pytestmark = pytest.mark.gpu

SUITE = load_matrix(builtin_matrix("gpu"))
THRESHOLDS = load_thresholds(Path(builtin_matrix("gpu")).with_name("gpu_thresholds.toml"))
RESULTS = results_dir(Path(__file__).resolve().parents[2] / "results")


@pytest.mark.parametrize("cell", SUITE.cells, ids=lambda c: f"{c.model}|{c.label}|{c.test_file}")
def test_gpu_cell_meets_its_thresholds(cell: Cell):
    row = run_cell(SUITE.name, cell)
    RESULTS.mkdir(parents=True, exist_ok=True)
    append_row(shard_path(RESULTS / "gpu.jsonl"), row)
    if row.status == "unavailable":
        pytest.skip(row.reason or "cannot run on this machine")
    violations = check_thresholds([row], THRESHOLDS)
    assert not violations, "; ".join(v.describe() for v in violations)
