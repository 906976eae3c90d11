"""Reports, compare and thresholds over a matrix JSONL recorded from real tiny.en runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.matrix.rows import Cell, Row
from transcription_benchmarks.measure.timer import Stats
from transcription_benchmarks.report import (
    ResultsFileError,
    ThresholdsError,
    check_thresholds,
    compare,
    format_comparison,
    json_report,
    load_thresholds,
    markdown_table,
    read_rows,
    write_report,
)
from transcription_benchmarks.report.table import HEADER, table_cells

TINY = "Systran/faster-whisper-tiny.en"
CONFIGS = {
    "greedy": {"beam_size": 1, "temperature": 0.0},
    "beam 5": {"beam_size": 5, "temperature": 0.0},
}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ABORT_REASON = "SIGABRT: Unable to load any of {libcudnn_ops.so.9...}"


def _row(cell: Cell, **fields) -> Row:
    return Row(matrix="test", cell_id=cell.id, cell=cell, **fields)


@pytest.fixture(scope="module")
def rows(jfk, short) -> list[Row]:
    """Four real runs (2 files x 2 configs) plus the rows the runner writes for failed cells."""
    recorded = []
    for audio in (jfk, short):
        for label, options in CONFIGS.items():
            args = {"test_file": audio.name, "device": "cpu", "warmup": 0, "repeats": 2, **options}
            result = bench(TINY, BenchArgs(**args))
            recorded.append(
                _row(
                    Cell(model=TINY, args=args, label=label),
                    status="ok",
                    result=result,
                    ran_model=TINY,
                )
            )
    large = "openai/whisper-large-v3"
    recorded += [
        _row(
            Cell(model=large, args={"device": "cuda", "batch_size": 24}, label="fp16, batch 24"),
            status="oom",
            reason="CUDA out of memory. Tried to allocate 1.2 GiB",
        ),
        _row(
            Cell(model=large, args={"device": "cuda", "compute_type": "float16"}),
            status="abort",
            reason=ABORT_REASON,
        ),
        _row(
            Cell(model="nvidia/canary-1b", label="canary"),
            status="unavailable",
            reason="NeMo is not installed",
        ),
    ]
    return recorded


@pytest.fixture
def jsonl(rows: list[Row], tmp_path: Path) -> Path:
    return _write(tmp_path / "results.jsonl", rows)


def _write(path: Path, rows: list[Row]) -> Path:
    path.write_text("".join(row.model_dump_json() + "\n" for row in rows))
    return path


def _scaled(row: Row, factor: float) -> Row:
    """The same row with every timed run `factor` times longer (speed / factor)."""
    if row.result is None:
        return row
    timing = row.result.timing
    slower = Stats.from_runs([t * factor for t in timing.runs_s], timing.warmup_s)
    return row.model_copy(update={"result": row.result.model_copy(update={"timing": slower})})


def _line(table: str, *needles: str) -> str:
    matches = [line for line in table.splitlines() if all(n in line for n in needles)]
    assert len(matches) == 1, (needles, table)
    return matches[0]


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split(" | ")]


def test_markdown_table(rows: list[Row]):
    table = markdown_table(rows)
    lines = table.strip().splitlines()
    assert (
        lines[0]
        == "| Model | Speed | Peak VRAM | Config | Test File | WER | Load | Stability | Device | "
        "GPU Energy |"
    )
    assert len(lines) == 2 + len(rows)
    speed, vram, wer = HEADER.index("Speed"), HEADER.index("Peak VRAM"), HEADER.index("WER")

    oom = _cells(_line(table, "fp16, batch 24"))
    assert oom[speed] == "OOM"
    assert _cells(_line(table, "openai/whisper-large-v3", "float16"))[speed] == "abort: SIGABRT"
    assert _cells(_line(table, "canary"))[speed] == "unavailable: NeMo is not installed"

    for label in CONFIGS:
        jfk = _cells(_line(table, f"| {label} | jfk.flac"))
        assert jfk[speed].endswith("x") and float(jfk[speed][:-1]) > 0
        assert jfk[vram] == "n/a"  # CPU: no GPU figure, not 0
        assert jfk[wer].endswith("%")  # the catalog has jfk's reference
        assert jfk[HEADER.index("Device")] == "cpu"
        assert jfk[HEADER.index("GPU Energy")] == "n/a"  # no GPU counter: not 0
        stability = jfk[HEADER.index("Stability")]
        assert stability.startswith(("±", "unstable ±")) and stability.endswith("%")
        assert jfk[HEADER.index("Load")].endswith(" s")
    assert oom[wer] == "-"


def test_table_labels_synthetic_and_falls_back_to_config(rows: list[Row]):
    real = rows[0]
    synthetic = real.model_copy(
        update={
            "cell": Cell(model="openai/whisper-large-v3", args=real.cell.args),
            "ran_model": "synthetic:whisper-large-v3",
            "synthetic_fallback": True,
        }
    )
    cells = table_cells(synthetic)
    assert cells[0] == "openai/whisper-large-v3 (synthetic weights)"
    assert "beam_size=1" in cells[HEADER.index("Config")]  # no label: the effective config
    assert "faster-whisper" in cells[HEADER.index("Config")]


def test_json_report(rows: list[Row]):
    report = json.loads(json.dumps(json_report(rows)))
    assert len(report["rows"]) == len(rows)
    assert len(report["environments"]) == 1
    first = report["rows"][0]
    assert first["status"] == "ok" and first["speed"] > 0 and first["peak_gpu_mb"] is None
    assert first["environment"] == 0 and first["wer"] is not None
    oom = next(r for r in report["rows"] if r["status"] == "oom")
    assert oom["speed"] is None and oom["speed_text"] == "OOM"


def test_write_report(jsonl: Path, tmp_path: Path, rows: list[Row]):
    out = tmp_path / "out"
    paths = write_report(jsonl, out)
    names = {p.name for p in paths}
    assert names == {
        "report.md",
        "report.json",
        "speed_vs_memory.png",
        "speed_vs_wer.png",
        "report.html",
    }
    assert "| Model | Speed | Peak VRAM |" in (out / "report.md").read_text()
    assert len(json.loads((out / "report.json").read_text())["rows"]) == len(rows)
    for png in out.glob("*.png"):
        data = png.read_bytes()
        assert data[:8] == PNG_MAGIC
        assert len(data) > 20_000, png


def test_read_rows_tolerates_a_truncated_last_line(jsonl: Path, rows: list[Row]):
    text = jsonl.read_text()
    jsonl.write_text(text + "\n" + rows[0].model_dump_json()[:200])
    with pytest.warns(UserWarning, match="truncated last line"):
        assert len(read_rows(jsonl)) == len(rows)
    jsonl.write_text('{"matrix": "x"}\n' + text)
    with pytest.raises(ResultsFileError, match=r"results.jsonl:1: not a matrix row"):
        read_rows(jsonl)
    with pytest.raises(ResultsFileError, match="cannot read"):
        read_rows(jsonl.with_name("missing.jsonl"))


def test_compare_with_itself_flags_nothing(rows: list[Row]):
    comparison = compare(rows, rows)
    assert comparison.regressions == []
    assert not comparison.only_a and not comparison.only_b
    ran = [c for c in comparison.cells if c.speed_ratio is not None]
    assert len(ran) == 4
    assert all(c.speed_ratio == pytest.approx(1.0) and c.speed_change is None for c in ran)
    assert "0 regressions" in format_comparison(comparison)


def test_compare_flags_half_speed(rows: list[Row]):
    # The rows are real runs: on a loaded machine one cell's two runs can differ by more than 2x,
    # and overlapping ranges are rightly called noise, so slow down past the widest spread.
    spread = max(
        max(r.result.timing.runs_s) / min(r.result.timing.runs_s) for r in rows if r.result
    )
    factor = max(2.0, 1.5 * spread)
    slower = [_scaled(row, factor) for row in rows]
    comparison = compare(rows, slower)
    ran = [c for c in comparison.cells if c.speed_ratio is not None]
    assert all(c.speed_ratio == pytest.approx(1 / factor) for c in ran)
    assert all(c.speed_change == "slower" for c in ran)
    assert len(comparison.regressions) == 4
    assert "SLOWER" in format_comparison(comparison)
    # Reversed, the same change is an improvement, not a regression.
    assert compare(slower, rows).regressions == []
    assert all(c.speed_change == "faster" for c in compare(slower, rows).cells if c.speed_ratio)


def test_compare_ignores_a_change_inside_the_floor(rows: list[Row]):
    comparison = compare(rows, [_scaled(row, 1.05) for row in rows])
    assert comparison.regressions == []
    assert all(c.speed_change is None for c in comparison.cells)


def test_compare_status_wer_and_one_sided_cells(rows: list[Row]):
    first = rows[0]
    now_oom = first.model_copy(update={"status": "oom", "result": None, "reason": "out of memory"})
    second = rows[1]
    rates = second.result.quality.error_rates
    worse = second.result.model_copy(
        update={
            "quality": second.result.quality.model_copy(
                update={"error_rates": rates.model_copy(update={"wer": rates.wer + 0.1})}
            )
        }
    )
    b_rows = [now_oom, second.model_copy(update={"result": worse}), *rows[2:-1]]
    comparison = compare(rows, b_rows)
    by_id = {c.cell_id: c for c in comparison.cells}
    assert by_id[first.cell_id].status_regression
    assert by_id[second.cell_id].wer_regression
    assert by_id[second.cell_id].wer_delta == pytest.approx(0.1)
    assert [c.cell_id for c in comparison.cells if c.regression] == [first.cell_id, second.cell_id]
    assert [c.cell_id for c in comparison.only_a] == [rows[-1].cell_id]
    text = format_comparison(comparison)
    assert "Only in A:" in text and "HIGHER WER" in text and "REGRESSION: now OOM" in text


def _toml(tmp_path: Path, text: str, name: str = "limits.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_thresholds_pass_and_fail(rows: list[Row], tmp_path: Path):
    passing = _toml(tmp_path, "[default]\nmax_wer = 0.5\nmax_peak_vram_mb = 100\n")
    assert check_thresholds(rows, passing) == []
    ok_rows = [row for row in rows if row.status == "ok"]
    # A bound below what these very runs measured, so a loaded machine cannot fail it.
    below = 0.5 * min(row.result.speed for row in ok_rows if row.result)
    assert (
        check_thresholds(ok_rows, _toml(tmp_path, f"[default]\nmin_speed = {below}\n", "s.toml"))
        == []
    )

    failing = load_thresholds(
        _toml(
            tmp_path,
            f'[default]\nmin_speed = {below}\n\n[[cell]]\nlabel = "greedy"\nmin_speed = 10000\n\n'
            '[[cell]]\nmodel = "Systran/faster-whisper-tiny.en"\ntest_file = "short.flac"\n'
            "max_wer = 0.5\n",
            "fail.toml",
        )
    )
    violations = check_thresholds(rows, failing)
    described = [v.describe() for v in violations]
    # OOM and abort fail; "unavailable" (NeMo absent here) is reported, not failed.
    assert sum("did not run" in d for d in described) == 2
    assert not any("canary" in d for d in described)
    assert any("did not run (OOM)" in d for d in described)
    greedy = [v for v in violations if v.config == "greedy"]
    assert {v.test_file for v in greedy} == {"jfk.flac", "short.flac"}
    assert all(v.metric == "min_speed" and v.limit == 10000 for v in greedy)
    assert len(violations) == 4


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[default]\nmin_sped = 3\n", "default.min_sped"),
        ("[default\nmin_speed = 3\n", "not valid TOML"),
        ("[[cell]]\nmin_speed = 3\n", "names no label, model or test_file"),
        ('[default]\nmin_speed = "fast"\n', "default.min_speed"),
    ],
)
def test_thresholds_errors_are_clear(tmp_path: Path, text: str, message: str):
    with pytest.raises(ThresholdsError, match=message):
        load_thresholds(_toml(tmp_path, text))


def test_thresholds_missing_file(tmp_path: Path):
    with pytest.raises(ThresholdsError, match="cannot read thresholds file"):
        load_thresholds(tmp_path / "nope.toml")


def _tbench(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_report_check_compare(jsonl: Path, rows: list[Row], tmp_path: Path):
    out = tmp_path / "report"
    done = _tbench("report", jsonl, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "| Model | Speed |" in done.stdout and "OOM" in done.stdout
    assert (out / "speed_vs_wer.png").read_bytes()[:8] == PNG_MAGIC

    passing = _toml(tmp_path, "[default]\nmax_wer = 0.5\n", "pass.toml")
    below = 0.5 * min(row.result.speed for row in rows if row.status == "ok" and row.result)
    failing = _toml(
        tmp_path, f"[default]\nmin_speed = {below}\n", "fail.toml"
    )  # only non-runs fail
    assert _tbench("check", jsonl, "--thresholds", passing).returncode == 0
    done = _tbench("check", jsonl, "--thresholds", failing)
    assert done.returncode == 1
    assert "2 threshold violation(s)" in done.stdout and "did not run (OOM)" in done.stdout

    assert _tbench("compare", jsonl, jsonl).returncode == 0
    slower = _write(tmp_path / "slower.jsonl", [_scaled(row, 2.0) for row in rows])
    done = _tbench("compare", jsonl, slower)
    assert done.returncode == 1 and "SLOWER" in done.stdout
    assert _tbench("compare", slower, jsonl).returncode == 0  # faster is no regression
    assert _tbench("compare", jsonl, jsonl, "--thresholds", failing).returncode == 1

    done = _tbench("check", jsonl, "--thresholds", tmp_path / "missing.toml")
    assert done.returncode == 2 and "cannot read thresholds file" in done.stderr


def test_plausibility_bounds_fail_a_mis_measured_run(rows: list[Row], tmp_path: Path):
    ok = [row for row in rows if row.status == "ok" and row.result]
    speeds = [row.result.speed for row in ok]
    generous = _toml(tmp_path, f"[default]\nmax_speed = {2 * max(speeds)}\n", "fast.toml")
    assert check_thresholds(ok, generous) == []
    tight = _toml(tmp_path, f"[default]\nmax_speed = {0.5 * min(speeds)}\n", "tight.toml")
    described = [v.describe() for v in check_thresholds(ok, tight)]
    assert len(described) == len({row.cell_id for row in ok})
    assert all("> max_speed" in d and "implausible" in d for d in described)
    # CPU rows have no GPU figure: a GPU suite asking for one fails them, it does not skip.
    needs_gpu = _toml(tmp_path, "[default]\nmin_peak_vram_mb = 100\n", "vram.toml")
    described = [v.describe() for v in check_thresholds(ok, needs_gpu)]
    assert described and all("no GPU memory figure" in d for d in described)


# --- free text of any length: cut where drawn or tabulated, whole in the JSON ---------------

FROZEN_ROWS = Path(__file__).parent / "data" / "formats" / "rows-v1.jsonl"


def _huge_row(host: str | None = None) -> tuple[Row, dict[str, str]]:
    """The frozen ok row (tiny.en on jfk.flac) with a 1 MB model name, cell label and test
    file, as a hand-written or generated matrix can give."""
    ok = read_rows(FROZEN_ROWS)[0]
    assert ok.result is not None
    huge = {
        "model": "org/" + "m" * 1_000_000,
        "label": "fp16, batch 24 " + "l" * 1_000_000,
        "test_file": "t" * 1_000_000 + ".flac",
    }
    cell = ok.cell.model_copy(update={"model": huge["model"], "label": huge["label"]})
    result = ok.result.model_copy(update={"test_file": f"/audio/{huge['test_file']}"})
    return ok.model_copy(update={"cell": cell, "result": result, "host": host or ok.host}), huge


def test_a_huge_label_is_cut_in_tables_and_plots_and_kept_whole_in_json(tmp_path: Path):
    from transcription_benchmarks.report.table import LABEL_CHARS, clip

    row, huge = _huge_row()
    cells = table_cells(row)
    for column, field in (("Model", "model"), ("Config", "label"), ("Test File", "test_file")):
        shown = cells[HEADER.index(column)]
        assert shown == clip(huge[field]) and len(shown) == LABEL_CHARS and shown.endswith("…")
    assert len(markdown_table([row])) < 1000
    assert len(format_comparison(compare([row], [row]))) < 2000

    # The whole report, with a second host (the side-by-side table and per-instance plots).
    other = _huge_row(host="ml.g6.xlarge")[0]
    jsonl = _write(tmp_path / "rows.jsonl", [row, other])
    out = tmp_path / "report"
    names = {p.name for p in write_report(jsonl, out)}
    assert {"report.md", "report.json", "report.html", "speed_vs_memory.png"} <= names
    assert "speed_by_instance.png" in names
    markdown = (out / "report.md").read_text()
    assert len(markdown) < 5000 and clip(huge["label"]) in markdown
    page = (out / "report.html").read_text()
    assert clip(huge["label"]) in page and "l" * LABEL_CHARS not in page
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == PNG_MAGIC
    summary = json.loads((out / "report.json").read_text())["rows"][0]
    assert summary["label"] == huge["label"] and summary["model"] == huge["model"]  # data
    assert summary["test_file"] == huge["test_file"]


def test_clip_keeps_short_text_and_puts_a_label_on_one_line():
    from transcription_benchmarks.report.table import clip

    assert clip("int8, beam 1") == "int8, beam 1"
    assert clip("a\n\tb  c") == "a b c"
    assert clip("x" * 80) == "x" * 80
    assert clip("x" * 81) == "x" * 79 + "…"
    assert clip("word " * 100, 11) == "word word…"  # no space before the ellipsis


def test_a_dollar_sign_in_a_label_is_drawn_as_text(tmp_path: Path):
    from transcription_benchmarks.report import write_plots

    row, _ = _huge_row()
    cell = row.cell.model_copy(update={"label": r"fp16, $\frac$ 2"})  # not TeX: no crash
    [memory, wer] = write_plots([row.model_copy(update={"cell": cell})], tmp_path)
    assert memory.read_bytes()[:8] == PNG_MAGIC and wer.read_bytes()[:8] == PNG_MAGIC
