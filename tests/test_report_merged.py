"""The side-by-side report of one matrix run on several hosts (a merged bench-remote file).

The rows are real: two cells of tiny.en run here on CPU, then filed under two instance types the
way bench-remote files each job's rows (host = instance type), with one cell on the second type
replaced by an out-of-memory row.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.matrix.rows import Row, read_rows
from transcription_benchmarks.matrix.runner import append_row, run_cell
from transcription_benchmarks.matrix.spec import parse_matrix
from transcription_benchmarks.report import write_report
from transcription_benchmarks.report.by_instance import (
    hosts,
    rows_for_host,
    series_by_host,
    side_by_side_table,
)
from transcription_benchmarks.report.prices import PriceTableError, load_prices

G4DN, G6 = "ml.g4dn.xlarge", "ml.g6.xlarge"
MATRIX = parse_matrix(
    {
        "name": "merged",
        "defaults": {"device": "cpu", "warmup": 0, "repeats": 2, "test_file": "jfk.flac"},
        "cells": [
            {"model": "Systran/faster-whisper-tiny.en", "label": "int8, beam 1",
             "compute_type": "int8", "beam_size": 1},
            {"model": "Systran/faster-whisper-tiny.en", "label": "int8, beam 5",
             "compute_type": "int8", "beam_size": 5},
        ],
    }
)  # fmt: skip


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ran = [run_cell(MATRIX.name, cell) for cell in MATRIX.cells]
    assert [r.status for r in ran] == ["ok", "ok"], [r.reason for r in ran]
    path = tmp_path_factory.mktemp("merged") / "results.jsonl"
    for row in ran:
        append_row(path, row.model_copy(update={"host": G4DN}))
    append_row(path, ran[0].model_copy(update={"host": G6}))
    oom = Row(
        matrix=MATRIX.name,
        cell_id=ran[1].cell_id,
        cell=ran[1].cell,
        status="oom",
        reason="CUDA out of memory. Tried to allocate 2.00 GiB",
        host=G6,
    )
    append_row(path, oom)
    return path


def test_one_line_per_cell_and_a_column_group_per_instance_type(merged: Path):
    rows = read_rows(merged)
    prices = load_prices()
    table = side_by_side_table(rows, prices, "us-east-1")
    lines = table.splitlines()
    assert lines[0] == (
        f"| Model | Config | Test File | {G4DN} Speed | {G4DN} Peak VRAM | {G4DN} WER | "
        f"{G4DN} $/audio h | {G6} Speed | {G6} Peak VRAM | {G6} WER | {G6} $/audio h |"
    )
    cells = [line.split(" | ") for line in lines[2:4]]
    beam1, beam5 = (rows_for_host(rows, G4DN)[i].result for i in (0, 1))
    g6_beam1 = rows_for_host(rows, G6)[0].result
    assert cells[0][1:4] == ["int8, beam 1", "jfk.flac", f"{beam1.speed:.1f}x"]
    assert cells[0][5] == "0.0%"  # the JFK reference, transcribed exactly
    assert cells[0][6] == f"${0.736 / beam1.speed:.3f}"
    assert cells[0][7] == f"{g6_beam1.speed:.1f}x"
    assert cells[0][10].rstrip(" |") == f"${1.1644 / g6_beam1.speed:.3f}"
    assert cells[1][3] == f"{beam5.speed:.1f}x"
    assert cells[1][7:11] == ["OOM", "-", "-", "- |"]
    # One line per host with what its fingerprint says it ran.
    env_lines = table.split("\n\n")[1].splitlines()
    assert env_lines[0] == "| Host | GPU | Driver | CUDA | torch | ctranslate2 | Price / h |"
    assert env_lines[2].startswith(f"| {G4DN} | CPU |")
    assert "$0.736 (us-east-1, as of " in env_lines[2]
    assert beam1.environment.packages["ctranslate2"] in env_lines[2]


def test_without_prices_or_in_an_unpriced_region_no_price_columns(merged: Path):
    rows = read_rows(merged)
    for table in (side_by_side_table(rows), side_by_side_table(rows, load_prices(), "mars-1")):
        assert "$/audio h" not in table.splitlines()[0]


def test_report_adds_the_side_by_side_table_and_plots_per_instance(merged: Path, tmp_path: Path):
    paths = write_report(merged, tmp_path, prices=load_prices(), region="us-east-1")
    names = sorted(p.name for p in paths)
    assert "speed_by_instance.png" in names
    assert "wer_by_instance.png" in names
    assert "vram_by_instance.png" not in names  # CPU rows: no GPU memory to plot
    for path in paths:
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (tmp_path / "report.md").read_text()
    assert "## By instance type" in text
    assert f"{G6} $/audio h" in text


def test_plotted_series_name_a_failed_cell_instead_of_leaving_a_gap(merged: Path):
    rows = read_rows(merged)
    labels, series = series_by_host(rows, lambda result: result.speed)
    assert labels == ["int8, beam 1\njfk.flac", "int8, beam 5\njfk.flac"]
    g4dn_beam1, g4dn_beam5 = (r.result.speed for r in rows_for_host(rows, G4DN))
    assert series[G4DN] == [g4dn_beam1, g4dn_beam5]
    assert series[G6][0] == rows_for_host(rows, G6)[0].result.speed
    assert series[G6][1] == "OOM"  # drawn as a label where the bar would stand
    unplanned = [r for r in rows if not (r.host == G6 and r.status == "oom")]
    assert series_by_host(unplanned, lambda result: result.speed)[1][G6][1] is None


def test_a_single_host_report_has_no_side_by_side_section(merged: Path, tmp_path: Path):
    single = tmp_path / "one.jsonl"
    for row in rows_for_host(read_rows(merged), G4DN):
        append_row(single, row)
    paths = write_report(single, tmp_path / "out")
    assert "By instance type" not in (tmp_path / "out" / "report.md").read_text()
    assert not any(p.name.endswith("_by_instance.png") for p in paths)


def _tbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_compare_matches_cells_across_instance_types_in_one_file(merged: Path):
    run = _tbench("compare", str(merged), str(merged), "--host-a", G4DN, "--host-b", G6)
    assert run.returncode == 1, run.stderr  # the beam-5 cell ran on g4dn and OOMs on g6
    assert "REGRESSION: now OOM" in run.stdout
    assert "2 cells compared, 1 regression" in run.stdout

    unknown = _tbench("compare", str(merged), str(merged), "--host-a", "ml.p5.48xlarge")
    assert unknown.returncode == 2
    assert f"hosts in these results: {G4DN}, {G6}" in unknown.stderr
    with pytest.raises(InvalidOptionError, match="no rows from host"):
        rows_for_host(read_rows(merged), "nowhere")
    assert hosts(read_rows(merged)) == [G4DN, G6]


def test_report_cli_takes_a_user_price_table(merged: Path, tmp_path: Path):
    prices = tmp_path / "prices.toml"
    prices.write_text(
        'as_of = "2026-11-20"\ncurrency = "USD"\n[regions.eu-west-1]\n"ml.g4dn.xlarge" = 2.0\n'
    )
    run = _tbench(
        "report", str(merged), "--out", str(tmp_path / "r"), "--prices", str(prices),
        "--region", "eu-west-1",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    speed = rows_for_host(read_rows(merged), G4DN)[0].result.speed
    assert f"${2.0 / speed:.3f}" in run.stdout
    assert f"{G6} $/audio h" not in run.stdout  # the user's table has no price for it


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("as_of = ", "not valid TOML"),
        ('as_of = "x"\n[regions.us-east-1]\n"ml.g5.xlarge" = -1\n', "price must be > 0"),
        ('as_of = "x"\n[regions.us-east-1]\n"ml.g5.xlarge" = "cheap"\n', "valid number"),
        ("[regions]\n", "as_of"),
    ],
)
def test_a_bad_price_table_is_a_clear_error(tmp_path: Path, text: str, message: str):
    path = tmp_path / "prices.toml"
    path.write_text(text)
    with pytest.raises(PriceTableError, match=message):
        load_prices(path)
    with pytest.raises(PriceTableError, match="cannot read price table"):
        load_prices(tmp_path / "missing.toml")


def test_the_shipped_price_table_is_dated_and_prices_the_compared_families():
    prices = load_prices()
    assert prices.as_of and prices.currency == "USD"
    for instance_type in ("ml.g4dn.xlarge", "ml.g5.xlarge", "ml.g6.xlarge", "ml.p3.2xlarge"):
        assert prices.hourly(instance_type, "us-east-1") > 0
    assert prices.per_audio_hour("ml.g5.xlarge", "us-east-1", 0) is None
