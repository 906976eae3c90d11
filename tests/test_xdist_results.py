"""Results from parallel pytest-xdist workers land in one intact JSONL.

`test_cpu_cell` is a small real matrix (tiny.en on CPU, one test per cell) that appends each row
to its worker's shard; `pytest -n 2` on this module must end with one results file holding
every cell exactly once, each line a valid row, and no shard left behind. The merge itself is
also checked on shards written by hand, including a torn last line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import JFK_TEXT, REPO, RESULTS

from transcription_benchmarks.matrix.rows import Cell, Row, read_rows
from transcription_benchmarks.matrix.runner import append_row, run_cell
from transcription_benchmarks.matrix.shards import (
    RESULTS_DIR_ENV,
    merge_shards,
    results_dir,
    shard_path,
)
from transcription_benchmarks.matrix.spec import parse_matrix
from transcription_benchmarks.measure.gpus import (
    GpuPinningError,
    check_worker_count,
    selects_gpu_tests,
)

TINY_CPU_MATRIX = parse_matrix(
    {
        "name": "cpu-xdist",
        "defaults": {"device": "cpu", "warmup": 0, "repeats": 1, "timeout_s": 120},
        "grid": [
            {
                "models": ["Systran/faster-whisper-tiny.en"],
                "test_files": ["jfk.flac", "short.flac"],
                "configs": [
                    {"label": "int8, beam 1", "compute_type": "int8", "beam_size": 1},
                    {"label": "int8, beam 2", "compute_type": "int8", "beam_size": 2},
                ],
                "backend": "faster-whisper",
            }
        ],
    }
)
RESULTS_FILE = "cpu-xdist.jsonl"


@pytest.mark.parametrize("cell", TINY_CPU_MATRIX.cells, ids=lambda c: f"{c.label}|{c.test_file}")
def test_cpu_cell(cell: Cell):
    row = run_cell(TINY_CPU_MATRIX.name, cell)
    out = results_dir(RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    append_row(shard_path(out / RESULTS_FILE), row)
    assert row.status == "ok", row.reason
    if cell.test_file == "jfk.flac":
        assert JFK_TEXT in row.result.transcript.text.lower()


@pytest.mark.slow
def test_pytest_n2_writes_one_intact_jsonl(tmp_path: Path):
    pytest.importorskip("xdist")
    env = {**os.environ, RESULTS_DIR_ENV: str(tmp_path)}
    env.pop("PYTEST_XDIST_WORKER", None)  # when this suite itself runs under xdist
    run = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-n", "2", "-v", "-p", "no:cacheprovider"),
            *("--rootdir", str(REPO), "-k", "test_cpu_cell", __file__),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # Both workers ran cells (xdist -v prefixes each result with its worker).
    assert "[gw0]" in run.stdout
    assert "[gw1]" in run.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [RESULTS_FILE]
    lines = (tmp_path / RESULTS_FILE).read_text().splitlines()
    assert len(lines) == len(TINY_CPU_MATRIX.cells)
    rows = [Row.model_validate_json(line) for line in lines]  # every line whole and valid
    assert sorted(r.cell_id for r in rows) == sorted(c.id for c in TINY_CPU_MATRIX.cells)
    assert all(r.status == "ok" for r in rows)


def _row(cell: Cell, text: str) -> Row:
    return Row(matrix="m", cell_id=cell.id, cell=cell, status="error", reason=text, host="h")


def test_shards_merge_into_one_file_in_start_order(tmp_path: Path):
    cells = [Cell(model="m", args={"beam_size": n}) for n in range(4)]
    rows = [_row(cell, f"row {n}") for n, cell in enumerate(cells)]
    # gw1 wrote rows 1 and 3, gw0 rows 0 and 2; the target already has an older row.
    append_row(tmp_path / "suite.jsonl", _row(Cell(model="older"), "older"))
    for row, worker in zip(rows, ["gw0", "gw1", "gw0", "gw1"], strict=True):
        append_row(shard_path(tmp_path / "suite.jsonl", worker), row)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "suite.gw0.jsonl",
        "suite.gw1.jsonl",
        "suite.jsonl",
    ]
    assert merge_shards(tmp_path) == {tmp_path / "suite.jsonl": 4}
    assert [p.name for p in tmp_path.iterdir()] == ["suite.jsonl"]
    merged = read_rows(tmp_path / "suite.jsonl")
    assert [r.reason for r in merged] == ["older", "row 0", "row 1", "row 2", "row 3"]


def test_a_torn_last_line_in_a_shard_is_dropped_not_merged(tmp_path: Path):
    good = _row(Cell(model="m"), "whole")
    shard = shard_path(tmp_path / "suite.jsonl", "gw0")
    append_row(shard, good)
    with shard.open("a") as f:
        f.write(json.dumps({"matrix": "m", "cell_id": "abc"})[:20])  # a worker killed mid-write
    with pytest.warns(UserWarning, match="truncated last line"):
        merge_shards(tmp_path)
    assert [r.reason for r in read_rows(tmp_path / "suite.jsonl")] == ["whole"]


def test_outside_xdist_rows_go_to_the_target_itself(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert shard_path(tmp_path / "gpu.jsonl") == tmp_path / "gpu.jsonl"
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw3")
    assert shard_path(tmp_path / "gpu.jsonl") == tmp_path / "gpu.gw3.jsonl"
    assert merge_shards(tmp_path / "missing") == {}


@pytest.mark.gpu
def test_gpu_worker_sees_only_its_own_device():
    """Under `pytest -n N -m gpu` each worker sees exactly one device, the N-th visible one."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    if worker:
        assert "," not in visible
        assert visible
    out = results_dir(RESULTS)
    out.mkdir(parents=True, exist_ok=True)
    with (out / f"devices.{worker or 'main'}.txt").open("w") as f:
        f.write(visible)


def _pytest_with_fake_gpus(tmp_path: Path, count: int, *args: str, visible: str | None = None):
    env = {**os.environ, RESULTS_DIR_ENV: str(tmp_path), "TBENCH_FAKE_GPU_COUNT": str(count)}
    env.pop("PYTEST_XDIST_WORKER", None)
    env.pop("CUDA_VISIBLE_DEVICES", None)
    if visible is not None:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "-p", "tests.fake_gpus", "-p", "no:cacheprovider"),
            *("--rootdir", str(REPO), "-q", *args),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


GPU_TEST = f"{__file__}::test_gpu_worker_sees_only_its_own_device"


@pytest.mark.parametrize(
    ("count", "visible", "workers", "expected"),
    [
        (2, None, "auto", {"gw0": "0", "gw1": "1"}),  # -n auto on a gpu run: one per GPU
        (4, "5,7", "2", {"gw0": "5", "gw1": "7"}),  # an existing device list is respected
    ],
)
def test_each_gpu_worker_is_pinned_to_its_own_device(
    tmp_path: Path, count: int, visible: str | None, workers: str, expected: dict[str, str]
):
    pytest.importorskip("xdist")
    run = _pytest_with_fake_gpus(
        tmp_path, count, "-n", workers, "-m", "gpu", GPU_TEST, visible=visible
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # The one gpu test ran on one worker: the device it saw is that worker's own.
    (seen,) = tmp_path.glob("devices.gw*.txt")
    worker = seen.name.split(".")[1]
    assert seen.read_text() == expected[worker]


def test_more_workers_than_gpus_on_a_gpu_run_stops_before_any_test(tmp_path: Path):
    pytest.importorskip("xdist")
    run = _pytest_with_fake_gpus(tmp_path, 2, "-n", "3", "-m", "gpu", GPU_TEST)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert (
        "3 pytest-xdist workers but 2 GPU(s) visible (0,1): each GPU test needs a GPU of its "
        "own; run with -n 2" in run.stderr
    )
    assert "INTERNALERROR" not in run.stdout + run.stderr
    assert not list(tmp_path.glob("devices.*"))


def test_a_run_that_is_not_gpu_only_leaves_an_extra_worker_without_a_gpu(tmp_path: Path):
    pytest.importorskip("xdist")
    # One fake GPU, two workers, no -m gpu, every test on every worker (--dist each): gw0 owns
    # GPU 0 and runs the gpu test; gw1 runs CPU tests only and skips it, saying why.
    run = _pytest_with_fake_gpus(tmp_path, 1, "-n", "2", "--dist", "each", "-rs", GPU_TEST)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert [(p.name, p.read_text()) for p in tmp_path.glob("devices.*.txt")] == [
        ("devices.gw0.txt", "0")
    ]
    assert "1 passed, 1 skipped" in run.stdout
    assert "pytest-xdist worker gw1 has no GPU of its own: 1 GPU(s) visible (0)" in run.stdout


def test_gpu_runs_are_recognised_from_the_mark_expression():
    assert selects_gpu_tests("gpu")
    assert selects_gpu_tests("gpu and not slow")
    assert selects_gpu_tests("slow or gpu")
    assert not selects_gpu_tests("not gpu")
    assert not selects_gpu_tests("slow and not gpu")
    assert not selects_gpu_tests("")
    assert not selects_gpu_tests(None)
    assert not selects_gpu_tests("gpus_free")


def test_worker_count_check_against_fake_device_lists():
    check_worker_count(2, {}, gpu_count=2)
    check_worker_count(8, {}, gpu_count=0)  # no GPU at all: a CPU run, nothing to check
    with pytest.raises(
        GpuPinningError, match=r"3 pytest-xdist workers but 2 GPU\(s\) visible \(4,6\)"
    ):
        check_worker_count(3, {"CUDA_VISIBLE_DEVICES": "4,6"}, gpu_count=8)
