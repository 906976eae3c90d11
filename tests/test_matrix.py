"""Matrix files (spec.py), the isolated runner (runner.py, worker.py) and `tbench matrix`."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from transcription_benchmarks.matrix.rows import Cell, read_rows
from transcription_benchmarks.matrix.runner import (
    _classify_exit,
    run_cell,
    run_matrix,
)
from transcription_benchmarks.matrix.spec import (
    Matrix,
    MatrixFileError,
    builtin_matrix,
    find_matrix,
    load_matrix,
)

TESTS = Path(__file__).resolve().parent
TINY = "Systran/faster-whisper-tiny.en"


def write(tmp_path: Path, text: str, name: str = "m.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- matrix files --------------------------------------------------------------------------


def test_unknown_key_names_file_cell_and_key(tmp_path):
    path = write(
        tmp_path,
        'name = "t"\n[[cells]]\nmodel = "tiny.en"\n[[cells]]\nmodel = "tiny.en"\nbeam = 5\n',
    )
    with pytest.raises(MatrixFileError) as info:
        load_matrix(path)
    message = str(info.value)
    assert str(path) in message
    assert "[[cells]] #2" in message
    assert "unknown key(s) 'beam'" in message


def test_unknown_key_in_defaults_and_top_level(tmp_path):
    with pytest.raises(MatrixFileError, match=r"\[defaults\]: unknown key\(s\) 'repeat'"):
        load_matrix(write(tmp_path, 'name = "t"\n[defaults]\nrepeat = 3\n'))
    with pytest.raises(MatrixFileError, match=r"top level: unknown key\(s\) 'cell'"):
        load_matrix(write(tmp_path, 'name = "t"\n[[cell]]\nmodel = "x"\n'))


def test_bad_option_value_uses_benchargs_message(tmp_path):
    path = write(
        tmp_path,
        'name = "t"\n[[cells]]\nmodel = "tiny.en"\nlabel = "bad"\ncompute_type = "int4"\n',
    )
    with pytest.raises(MatrixFileError) as info:
        load_matrix(path)
    message = str(info.value)
    assert str(path) in message and "cell 0" in message
    assert "invalid option compute_type" in message


def test_conflicting_options_and_bad_device(tmp_path):
    with pytest.raises(MatrixFileError, match="condition_on_previous_text=True conflicts"):
        load_matrix(
            write(
                tmp_path,
                'name = "t"\n[[cells]]\nmodel = "m"\nbatch_size = 8\n'
                "condition_on_previous_text = true\n",
            )
        )
    with pytest.raises(MatrixFileError, match="device must be auto, cpu, cuda"):
        load_matrix(
            write(tmp_path, 'name = "t"\n[defaults]\ndevice = "gpu"\n[[cells]]\nmodel = "m"\n')
        )


def test_empty_matrix(tmp_path):
    path = write(tmp_path, 'name = "t"\n[defaults]\ndevice = "cpu"\n')
    with pytest.raises(MatrixFileError, match="has no cells"):
        load_matrix(path)


def test_duplicate_cells_named_by_index_and_label(tmp_path):
    path = write(
        tmp_path,
        'name = "t"\n[[cells]]\nmodel = "tiny.en"\nlabel = "a"\nbeam_size = 1\n'
        '[[grid]]\nmodels = ["x", "tiny.en"]\nconfigs = [{label = "b", beam_size = 1}]\n',
    )
    with pytest.raises(MatrixFileError, match=r"cell 2 \(b\) duplicates cell 0 \(a\)"):
        load_matrix(path)


def test_missing_name_invalid_toml_and_missing_file(tmp_path):
    with pytest.raises(MatrixFileError, match="'name' is required"):
        load_matrix(write(tmp_path, '[[cells]]\nmodel = "m"\n'))
    with pytest.raises(MatrixFileError, match="not valid TOML"):
        load_matrix(write(tmp_path, "name = \n"))
    with pytest.raises(MatrixFileError, match="not found"):
        find_matrix(tmp_path / "nope.toml")
    with pytest.raises(MatrixFileError, match=r"python:package\.module:function"):
        load_matrix(write(tmp_path, 'name = "t"\n[[cells]]\nmodel = "python:nofunction"\n'))
    with pytest.raises(MatrixFileError, match="unknown synthetic Whisper architecture"):
        load_matrix(
            write(tmp_path, 'name = "t"\n[[cells]]\nmodel = "m"\nfallback = "synthetic:xl"\n')
        )


def test_grid_expands_models_configs_files_with_defaults(tmp_path):
    path = write(
        tmp_path,
        'name = "g"\n[defaults]\ndevice = "cpu"\nrepeats = 2\ntimeout_s = 30\n'
        '[[grid]]\nmodels = ["a", "b"]\ntest_files = ["jfk.flac", "short.flac"]\nbeam_size = 1\n'
        'configs = [{label = "one"}, {label = "two", batch_size = 2, repeats = 5}]\n',
    )
    matrix = load_matrix(path)
    assert len(matrix.cells) == 8
    first, last = matrix.cells[0], matrix.cells[-1]
    assert (first.model, first.label, first.test_file) == ("a", "one", "jfk.flac")
    assert first.args == {"device": "cpu", "repeats": 2, "beam_size": 1, "test_file": "jfk.flac"}
    assert first.timeout_s == 30
    assert (last.model, last.label, last.test_file) == ("b", "two", "short.flac")
    assert last.args["repeats"] == 5 and last.args["batch_size"] == 2


def test_builtin_cpu_suite():
    matrix = load_matrix(builtin_matrix("cpu"))
    assert matrix.name == "cpu"
    assert len(matrix.cells) == 15  # 3 faster-whisper configs x 4 files + transformers x 2
    [dataset] = [c for c in matrix.cells if c.dataset is not None]  # + one dataset row
    assert (dataset.dataset, dataset.args["batch_size"]) == ("generated:20", 8)
    assert {c.test_file for c in matrix.cells if c.dataset is None} == {
        "jfk.flac",
        "short.flac",
        "1min.flac",
        "generated-1min-seed0-piper.flac",
    }
    assert {c.model for c in matrix.cells} == {TINY}
    assert all(c.args["device"] == "cpu" for c in matrix.cells)
    assert {c.args["backend"] for c in matrix.cells} == {"faster-whisper", "transformers"}


def test_builtin_gpu_suite_has_every_original_row():
    matrix = load_matrix(find_matrix("gpu"))
    rows = [(c.model, c.label, c.test_file) for c in matrix.cells]
    assert len(rows) == 22  # the original's 21 rows and parakeet beside canary
    models = [c.model for c in matrix.cells]
    assert models.count("openai/whisper-large-v3") == 1
    assert models.count("distil-whisper/distil-large-v3") == 2
    assert models.count("openai/whisper-large-v3-turbo") == 2
    assert models.count("nvidia/canary-1b") == 1
    assert models.count("Systran/faster-whisper-large-v3") == 2
    assert models.count("Systran/faster-whisper-large-v2") == 9
    assert models.count("Systran/faster-distil-whisper-large-v3") == 2
    assert models.count("deepdml/faster-whisper-large-v3-turbo-ct2") == 2
    assert sum(c.test_file == "long.flac" for c in matrix.cells) == 5
    assert all(c.args["device"] == "cuda" for c in matrix.cells)
    canary = next(c for c in matrix.cells if c.model == "nvidia/canary-1b")
    assert canary.args["backend"] == "nemo" and canary.fallback == "synthetic:canary-1b"
    parakeet = next(c for c in matrix.cells if c.model == "nvidia/parakeet-tdt-0.6b-v2")
    assert parakeet.fallback == "synthetic:parakeet-tdt-0.6b-v2"
    eager = [c for c in matrix.cells if c.args.get("attn_implementation") == "eager"]
    assert [c.model for c in eager] == ["distil-whisper/distil-large-v3"]
    assert any(c.args.get("compute_type") == "int8_float16" for c in matrix.cells)
    for cell in matrix.cells:
        if cell.model.startswith(("openai/", "distil-whisper/")):
            assert cell.args["dtype"] == "fp16" and cell.fallback.startswith("synthetic:")
    assert {c.fallback for c in matrix.cells} == {
        "synthetic:canary-1b",
        "synthetic:parakeet-tdt-0.6b-v2",
        "synthetic:whisper-large-v3",
        "synthetic:whisper-large-v2",
        "synthetic:distil-large-v3",
        "synthetic:whisper-large-v3-turbo",
    }


def test_unknown_builtin_name():
    with pytest.raises(MatrixFileError, match="built-in: cpu, gpu"):
        builtin_matrix("tpu")


# --- the isolated runner -------------------------------------------------------------------


ISOLATION = [
    Cell(model="python:matrix_cells:raise_error", label="raise"),
    Cell(model="python:matrix_cells:abort", label="abort"),
    Cell(model="python:matrix_cells:sleep", label="sleep", timeout_s=3),
    Cell(
        model=TINY,
        label="tiny",
        args={"test_file": "jfk.flac", "warmup": 0, "repeats": 1, "device": "cpu"},
    ),
]


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.usefixtures("cells_importable")
def test_isolation_and_resume(tmp_path):
    out = tmp_path / "rows.jsonl"
    matrix = Matrix(name="isolation", cells=ISOLATION)
    rows = run_matrix(matrix, out, progress=False)

    assert [r.status for r in rows] == ["error", "abort", "timeout", "ok"]
    error, abort, timeout, ok = rows
    assert error.reason == "ValueError: this cell always fails"
    assert "SIGABRT" in abort.reason
    assert "3 s limit" in timeout.reason and timeout.wall_s < 20
    assert (
        ok.result is not None and "ask not what your country" in ok.result.transcript.text.lower()
    )
    assert ok.ran_model == TINY and not ok.synthetic_fallback
    assert all(
        r.matrix == "isolation" and r.cell_id == c.id for r, c in zip(rows, ISOLATION, strict=True)
    )
    assert [line["status"] for line in lines(out)] == ["error", "abort", "timeout", "ok"]
    assert read_rows(out) == rows

    # Resume: finished cells are skipped; only the timeout (not a final status) runs again.
    again = run_matrix(matrix, out, progress=False)
    assert [r.status for r in again] == ["error", "abort", "timeout", "ok"]
    assert again[:2] == rows[:2] and again[3] == ok  # the very rows from the file
    assert [line["status"] for line in lines(out)] == ["error", "abort", "timeout", "ok", "timeout"]

    # A removed line is run again.
    kept = [line for line in out.read_text().splitlines() if '"status":"error"' not in line]
    out.write_text("\n".join(kept) + "\n")
    again = run_matrix(matrix, out, progress=False)
    assert [r.status for r in again] == ["error", "abort", "timeout", "ok"]
    assert again[1] == abort and again[3] == ok  # the very rows from the file
    statuses = [line["status"] for line in lines(out)]
    assert statuses == ["abort", "timeout", "ok", "timeout", "error", "timeout"]

    # Without resume every cell runs again (appended; the last line per cell is current).
    run_matrix(Matrix(name="isolation", cells=ISOLATION[:2]), out, progress=False, resume=False)
    assert len(lines(out)) == 8


@pytest.mark.usefixtures("cells_importable")
def test_out_of_memory_message_is_oom(tmp_path):
    row = run_cell("m", Cell(model="python:matrix_cells:out_of_memory"))
    assert row.status == "oom"
    assert "CUDA out of memory" in row.reason


def test_fallback_runs_the_synthetic_model_and_says_so(tmp_path):
    cell = Cell(
        model="openai/whisper-large-v3",
        fallback="synthetic:whisper-tiny",
        args={"test_file": "jfk.flac", "warmup": 0, "repeats": 1, "device": "cpu"},
    )
    row = run_cell("m", cell, timeout_s=240)
    assert row.status == "ok", row.reason
    assert row.synthetic_fallback
    assert row.ran_model == "synthetic:whisper-tiny"
    assert row.result.model.synthetic
    assert "openai/whisper-large-v3" in row.reason


@pytest.mark.skipif(
    importlib.util.find_spec("nemo") is not None, reason="NeMo is installed here: the rows run"
)
def test_nemo_rows_are_unavailable_with_the_install_command_not_dropped(tmp_path):
    matrix = load_matrix(builtin_matrix("gpu"))
    nemo = Matrix(name="gpu", cells=[c for c in matrix.cells if c.args.get("backend") == "nemo"])
    assert [c.model for c in nemo.cells] == ["nvidia/canary-1b", "nvidia/parakeet-tdt-0.6b-v2"]
    rows = run_matrix(nemo, tmp_path / "gpu.jsonl", progress=False)
    assert [r.status for r in rows] == ["unavailable", "unavailable"]
    assert rows[0].reason == (
        "backend 'nemo' needs nemo, which is not installed: "
        "pip install 'transcription-benchmarks[nemo]'"
    )
    assert len(lines(tmp_path / "gpu.jsonl")) == 2


def test_classify_exit_reads_the_traceback():
    traceback = ["Traceback (most recent call last):", '  File "x.py", line 1', "KeyError: 'a'"]
    assert _classify_exit(1, traceback) == ("error", "KeyError: 'a'")
    oom = ["torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"]
    assert _classify_exit(1, oom)[0] == "oom"
    assert _classify_exit(3, ["bye"]) == ("error", "worker exited with status 3: bye")


@pytest.mark.parametrize(
    ("last_line", "status"),
    [
        ("MemoryError", "oom"),  # raised without a message: the bare name
        ("MemoryError: Unable to allocate 3.00 GiB for an array", "oom"),
        ("RuntimeError: CUDA error: out of memory", "oom"),  # torch before OutOfMemoryError
        ("ValueError: bad value: 'a:b'", "error"),  # colons in the message
        ("ctranslate2.CT2Exception: model not found", "error"),  # an ...Exception, dotted
        ("KeyError", "error"),
    ],
)
def test_classify_exit_finds_the_exception_line(last_line, status):
    tail = ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>', last_line]
    assert _classify_exit(1, [*tail, "worker shutting down"]) == (status, last_line)


def test_classify_exit_without_an_exception_keeps_what_the_worker_said():
    assert _classify_exit(3, []) == ("error", "worker exited with status 3")
    lines = ["During handling: something", "bye now"]
    assert _classify_exit(3, lines) == (
        "error",
        "worker exited with status 3: During handling: something | bye now",
    )


NEMO = [
    Cell(model="canary", args={"backend": "nemo"}, label="a"),
    Cell(model="canary-flash", args={"backend": "nemo"}, label="[b]"),
]


def test_progress_goes_to_stderr_and_ends_on_the_whole_matrix(tmp_path, capsys):
    # NeMo cells give their row without a worker process: the display alone is under test.
    out = tmp_path / "rows.jsonl"
    run_matrix(Matrix(name="m", cells=NEMO), out)
    captured = capsys.readouterr()
    assert captured.out == ""  # stdout stays for --json
    clock = r"\d:\d\d:\d\d"
    line = rf"m ━+ 2/2 {clock} {clock} canary-flash \(\[b\]\) on short\.flac"
    assert re.fullmatch(line, captured.err.strip()), captured.err
    run_matrix(Matrix(name="m", cells=NEMO), out)  # all resumed: no cell ran, none named
    assert re.fullmatch(rf"m ━+ 2/2 {clock} {clock}", capsys.readouterr().err.strip())
    run_matrix(Matrix(name="m", cells=NEMO), out, progress=False)
    assert capsys.readouterr() == ("", "")


def test_read_rows_skips_a_truncated_last_line(tmp_path):
    out = tmp_path / "rows.jsonl"
    run_matrix(
        Matrix(name="gpu", cells=[Cell(model="c", args={"backend": "nemo"})]), out, progress=False
    )
    with out.open("a") as f:
        f.write('{"schema_version": 1, "matrix": "gpu", "cel')
    assert [r.status for r in read_rows(out)] == ["unavailable"]


@pytest.mark.skipif(importlib.util.find_spec("nemo") is not None, reason="NeMo is installed here")
def test_cli_matrix_prints_a_summary_per_status(tmp_path):
    from typer.testing import CliRunner

    from transcription_benchmarks.cli import app

    path = write(tmp_path, 'name = "c"\n[[cells]]\nmodel = "nvidia/canary-1b"\nbackend = "nemo"\n')
    result = CliRunner().invoke(app, ["matrix", str(path), "--out", str(tmp_path / "c.jsonl")])
    assert result.exit_code == 0, result.output
    assert "unavailable: 1 cell(s) (backend 'ne" in result.output  # shortened to fit
    assert "-benchmarks[nemo]')" in result.output
