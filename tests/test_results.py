"""One identity for rows, (matrix, cell, host), in resume, report, compare and check.

The rows are real: the ok row of tests/data/formats/rows-v1.jsonl (tiny.en, int8, beam 1 on
jfk.flac, 11.7x), filed under two instance types the way bench-remote files each job's rows,
with the second type's runs made four times slower.
"""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.matrix.rows import Results, ResultsFileError, Row, read_rows
from transcription_benchmarks.matrix.runner import append_row, run_matrix
from transcription_benchmarks.matrix.spec import parse_matrix
from transcription_benchmarks.measure.environment import (
    KERNEL_CPU_FLAGS,
    differences,
    fingerprint,
)
from transcription_benchmarks.measure.timer import rank_test_p
from transcription_benchmarks.report import (
    check_thresholds,
    compare,
    format_comparison,
    write_report,
)

FROZEN_ROWS = Path(__file__).parent / "data" / "formats" / "rows-v1.jsonl"
G4DN, G6 = "ml.g4dn.xlarge", "ml.g6.xlarge"


def _ok_row() -> Row:
    return read_rows(FROZEN_ROWS)[0]


def _slower(row: Row, factor: float) -> Row:
    assert row.result is not None
    timing = row.result.timing.model_copy(
        update={"runs_s": [t * factor for t in row.result.timing.runs_s]}
    )
    return row.model_copy(update={"result": row.result.model_copy(update={"timing": timing})})


@pytest.fixture
def merged(tmp_path: Path) -> Path:
    """g6's slow row first, then g4dn's timeout, then the g4dn rerun that supersedes it: the
    last row of the cell is g4dn's, which a file keyed by cell alone would take as the cell."""
    ok = _ok_row()
    timeout = Row(
        matrix=ok.matrix,
        cell_id=ok.cell_id,
        cell=ok.cell,
        status="timeout",
        reason="killed after the 0.5 s limit",
        host=G4DN,
    )
    path = tmp_path / "merged.jsonl"
    append_row(path, _slower(ok, 4.0).model_copy(update={"host": G6}))
    append_row(path, timeout)
    append_row(path, ok.model_copy(update={"host": G4DN}))
    return path


def test_current_rows_are_the_last_per_matrix_cell_and_host(merged: Path) -> None:
    results = Results.read(merged)
    assert len(results.rows) == 3 and results.superseded == 1
    assert [(r.host, r.status) for r in results.current] == [(G6, "ok"), (G4DN, "ok")]
    assert results.hosts == [G6, G4DN]
    assert [r.status for r in results.for_host(G4DN).rows] == ["timeout", "ok"]
    with pytest.raises(InvalidOptionError) as unknown:
        results.for_host("nowhere")
    assert str(unknown.value) == (
        f"no rows from host 'nowhere' in {merged}; hosts in these results: {G6}, {G4DN}"
    )
    assert results.for_host(G4DN).source == str(merged)  # errors keep naming the file
    with pytest.raises(InvalidOptionError, match=r"^no rows from host 'nowhere' in results; "):
        Results(read_rows(merged)).for_host("nowhere")  # rows from no file: 'results'
    with pytest.raises(
        ResultsFileError, match=r"\(ml\.g6\.xlarge, ml\.g4dn\.xlarge\): choose one with --host$"
    ):
        results.by_cell()


def test_a_cell_under_two_matrix_names_is_not_compared_silently(tmp_path: Path) -> None:
    ok = _ok_row()
    path = tmp_path / "two.jsonl"
    append_row(path, ok)
    append_row(path, ok.model_copy(update={"matrix": "cpu"}))
    with pytest.raises(ResultsFileError) as refused:
        Results.read(path).by_cell()
    assert str(refused.value) == (
        f"{path}: cell {ok.cell_id} (Systran/faster-whisper-tiny.en) has rows in matrices "
        "'formats-v1' and 'cpu': compare files of one matrix"
    )


def test_check_checks_every_host_and_names_it(merged: Path, tmp_path: Path) -> None:
    limits = tmp_path / "limits.toml"
    limits.write_text("[default]\nmin_speed = 5.0\n")
    violations = check_thresholds(Results.read(merged), limits)
    assert [v.describe() for v in violations] == [
        "ml.g6.xlarge: Systran/faster-whisper-tiny.en | int8, beam 1 | jfk.flac: "
        "speed 2.9x < min_speed 5x"
    ]
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "transcription_benchmarks",
            "check",
            str(merged),
            "--thresholds",
            str(limits),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 1
    assert "- ml.g6.xlarge: Systran/faster-whisper-tiny.en" in checked.stdout


def test_compare_asks_for_a_host_instead_of_picking_one(merged: Path) -> None:
    with pytest.raises(ResultsFileError, match=r"2 hosts \(ml\.g6\.xlarge, ml\.g4dn\.xlarge\)"):
        compare(Results.read(merged), Results.read(merged))
    tbench = [sys.executable, "-m", "transcription_benchmarks", "compare", str(merged)]
    refused = subprocess.run([*tbench, str(merged)], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "choose one with --host-a" in refused.stderr
    assert "Traceback" not in refused.stderr
    chosen = subprocess.run(
        [*tbench, str(merged), "--host-a", G4DN, "--host-b", G6],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert chosen.returncode == 1  # g6 is four times slower: a regression beyond noise
    assert "| 11.7x | 2.9x | 0.25 |" in chosen.stdout and "SLOWER" in chosen.stdout


def test_the_report_shows_current_rows_and_counts_the_superseded(
    merged: Path, tmp_path: Path
) -> None:
    paths = write_report(merged, tmp_path / "report")
    text = paths[0].read_text()
    table = text.split("## By instance type")[0]
    assert "timeout" not in table
    assert table.count("| Systran/faster-whisper-tiny.en |") == 2
    assert "1 earlier row(s) of the same matrix, cell and host" in text


def test_resume_counts_only_this_hosts_rows(tmp_path: Path) -> None:
    """A final row written on another host is that host's result: this host runs the cell."""
    matrix = parse_matrix(
        {"name": "hosts", "defaults": {"device": "cpu"}, "cells": [{"model": "no-such/model"}]}
    )
    cell = matrix.cells[0]
    out = tmp_path / "rows.jsonl"
    elsewhere = Row(
        matrix="hosts", cell_id=cell.id, cell=cell, status="error", reason="x", host="elsewhere"
    )
    append_row(out, elsewhere)
    rows = run_matrix(matrix, out, progress=False)
    assert [r.host for r in rows] == [socket.gethostname()]
    assert rows[0].status == "error" and "no-such/model" in (rows[0].reason or "")
    assert len(read_rows(out)) == 2
    again = run_matrix(matrix, out, progress=False)  # this host's row is final now: skipped
    assert again == rows and len(read_rows(out)) == 2


def _on_other_machine(row: Row, **changes: object) -> Row:
    assert row.result is not None
    env = row.result.environment.model_copy(update=changes)
    return row.model_copy(update={"result": row.result.model_copy(update={"environment": env})})


def test_environment_differences_are_named_and_none_is_not_one() -> None:
    env = _ok_row().result.environment  # type: ignore[union-attr]
    assert env.cpu_flags is None  # version 1 did not record them
    other = env.model_copy(
        update={
            "gpu_name": "NVIDIA A10G",
            "cpu_flags": ["avx2", "avx512f"],
            "packages": {**env.packages, "ctranslate2": "4.6.3"},
        }
    )
    assert differences(env, other) == [  # cpu_flags: not recorded on one side
        "gpu_name: none -> NVIDIA A10G",
        "ctranslate2: 4.8.5 -> 4.6.3",
    ]
    recorded = env.model_copy(update={"cpu_flags": ["avx2"]})
    assert differences(recorded, other) == [
        "gpu_name: none -> NVIDIA A10G",
        "cpu_flags: avx2 -> avx2 avx512f",
        "ctranslate2: 4.8.5 -> 4.6.3",
    ]
    assert differences(env, env) == []


def test_compare_marks_rows_whose_environment_differs_and_strict_refuses(tmp_path: Path) -> None:
    ok = _ok_row()
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    append_row(a, ok)
    append_row(b, _on_other_machine(ok, cpu="Intel Xeon Platinum 8375C", cpu_flags=["avx512f"]))
    comparison = compare(read_rows(a), read_rows(b))
    assert comparison.cells[0].environment == ["cpu: AMD EPYC -> Intel Xeon Platinum 8375C"]
    text = format_comparison(comparison)
    assert "| ok (env differs) |" in text
    assert "- cpu: AMD EPYC -> Intel Xeon Platinum 8375C (1 cell)" in text
    assert compare(read_rows(a), read_rows(a), strict=True).environment_differences == {}

    tbench = [sys.executable, "-m", "transcription_benchmarks", "compare", str(a), str(b)]
    strict = subprocess.run([*tbench, "--strict"], capture_output=True, text=True, timeout=120)
    assert strict.returncode == 2
    assert strict.stderr.strip() == (
        "error: not comparing results from different environments (strict): "
        "cpu: AMD EPYC -> Intel Xeon Platinum 8375C (1 cell(s))"
    )


def test_the_fingerprint_records_the_kernel_selecting_cpu_flags() -> None:
    flags = fingerprint().cpu_flags
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        assert flags is None
        return
    line = next(x for x in cpuinfo.read_text().splitlines() if x.startswith(("flags", "Features")))
    assert flags == sorted(set(line.split(":", 1)[1].split()) & KERNEL_CPU_FLAGS)
    if platform.machine() == "x86_64":
        assert "sse4_2" in flags  # every x86-64-v2 CPU; what CTranslate2 needs at least


def test_rank_test_p_matches_the_exact_mann_whitney_values() -> None:
    assert rank_test_p([1, 2, 3, 4, 5], [6, 7, 8, 9, 10]) == pytest.approx(2 / 252)
    assert rank_test_p([6, 7, 8, 9, 10], [1, 2, 3, 4, 5]) == pytest.approx(2 / 252)
    assert rank_test_p([1, 2, 3], [4, 5, 6]) == pytest.approx(2 / 20)  # never below 0.1 at 3+3
    assert rank_test_p([1, 2, 3, 4, 5], [1, 2, 3, 4, 5]) == 1.0
    assert rank_test_p([1, 2], [1, 2]) == 1.0  # both tails hold U = 2: twice 4/6, capped at 1
    one_swap = rank_test_p([1, 2, 3, 4, 6], [5, 7, 8, 9, 10])  # U = 1: P(U <= 1) = 2/252
    assert one_swap == pytest.approx(4 / 252)
    with pytest.raises(ValueError, match=r"^the rank test needs runs on both sides$"):
        rank_test_p([], [1.0])


def _with_runs(row: Row, runs: list[float]) -> Row:
    assert row.result is not None
    timing = row.result.timing.model_copy(update={"runs_s": runs})
    return row.model_copy(update={"result": row.result.model_copy(update={"timing": timing})})


def test_with_enough_runs_one_slow_run_no_longer_hides_a_slowdown() -> None:
    """B is a third slower, but one of A's runs was as slow as B's fastest (1.495 s against
    1.49 s): the ranges touch, so the range rule sees nothing; the rank test (5 runs a side)
    sees U = 1, p = 4/252."""
    ok = _ok_row()
    a_runs, b_runs = [1.0, 1.01, 0.99, 1.02, 1.495], [1.5, 1.52, 1.49, 1.51, 1.5]
    cell = compare([_with_runs(ok, a_runs)], [_with_runs(ok, b_runs)]).cells[0]
    assert cell.ratio_low is not None and cell.ratio_low < 1.0 < cell.ratio_high  # type: ignore[operator]
    assert cell.rank_p == pytest.approx(4 / 252)
    assert cell.speed_change == "slower"
    few = compare([_with_runs(ok, a_runs[2:])], [_with_runs(ok, b_runs[2:])]).cells[0]
    assert few.rank_p is None and few.speed_change is None  # 3 runs: the range rule decides
    same = compare([_with_runs(ok, a_runs)], [_with_runs(ok, a_runs[::-1])]).cells[0]
    assert same.rank_p == 1.0 and same.speed_change is None
