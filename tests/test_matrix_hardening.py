"""The matrix runner against what kills or races it: a torn last line and a resume, a runner
killed with SIGKILL while its worker runs, two runners on one results file. Real runner and
worker processes, real files."""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import psutil
import pytest

from transcription_benchmarks.matrix.rows import (
    Cell,
    NotResultsFileError,
    ResultsFileError,
    read_rows,
    set_aside_torn_tail,
)
from transcription_benchmarks.matrix.runner import (
    ResultsLockedError,
    TornRowWarning,
    holder_note,
    remove_stale_cell_dirs,
    results_lock,
    run_matrix,
)
from transcription_benchmarks.matrix.spec import Matrix

TESTS = Path(__file__).resolve().parent
FAILING = Cell(model="python:matrix_cells:raise_error", label="raise")
ABORTING = Cell(model="python:matrix_cells:abort", label="abort")


@pytest.mark.usefixtures("cells_importable")
def test_a_torn_last_line_is_set_aside_before_a_resume_appends(tmp_path):
    out = tmp_path / "rows.jsonl"
    matrix = Matrix(name="torn", cells=[FAILING, ABORTING])
    run_matrix(Matrix(name="torn", cells=[FAILING]), out, progress=False)
    whole = out.read_text()
    fragment = '{"schema_version":1,"matrix":"torn","cell_id":"abc","cell":{"mod'
    out.write_text(whole + fragment)  # a run killed mid-write: no newline, half a row

    with pytest.warns(TornRowWarning, match=r"moved to .*rows\.jsonl\.torn") as caught:
        rows = run_matrix(matrix, out, progress=False)
    assert all(_warned_here(record) for record in caught)  # at the caller of run_matrix
    assert [r.status for r in rows] == ["error", "abort"]
    assert out.read_text().startswith(whole)  # the earlier row untouched
    assert [r.status for r in read_rows(out)] == ["error", "abort"]  # every line a row
    assert (tmp_path / "rows.jsonl.torn").read_text() == fragment + "\n"

    # One more resume: nothing to run, nothing torn, the file still reads.
    again = run_matrix(matrix, out, progress=False)
    assert again == rows
    assert len(out.read_text().splitlines()) == 2


@pytest.mark.usefixtures("cells_importable")
def test_a_file_glued_by_an_earlier_resume_still_reads(tmp_path):
    out = tmp_path / "rows.jsonl"
    run_matrix(Matrix(name="glued", cells=[FAILING, ABORTING]), out, progress=False)
    first, second = out.read_text().splitlines()
    out.write_text(first + "\n" + '{"schema_version":1,"mat' + second + "\n")  # as v0.1 wrote it
    with pytest.warns(UserWarning, match="torn fragment precedes a row"):
        rows = read_rows(out)
    assert [r.status for r in rows] == ["error", "abort"]
    # ...and as the last line, set aside without losing its row.
    assert set_aside_torn_tail(out) is not None
    assert [r.status for r in read_rows(out)] == ["error", "abort"]
    assert (tmp_path / "rows.jsonl.torn").read_text() == '{"schema_version":1,"mat\n'


def test_a_second_runner_on_the_same_file_is_refused(tmp_path):
    out = tmp_path / "rows.jsonl"
    matrix = Matrix(name="locked", cells=[FAILING])
    with results_lock(out):
        with pytest.raises(ResultsLockedError, match=rf"matrix runner pid {os.getpid()}"):
            run_matrix(matrix, out, progress=False)
        done = subprocess.run(
            [sys.executable, "-m", "transcription_benchmarks", "matrix", "cpu", "--out", str(out)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 2
    assert f"is being written by matrix runner pid {os.getpid()}" in done.stderr
    assert not out.exists() or not out.read_text()  # the refused runner wrote nothing


def test_the_lock_is_on_the_file_through_any_of_its_names(tmp_path):
    out = tmp_path / "rows.jsonl"
    link = tmp_path / "link.jsonl"
    link.symlink_to(out)  # to a file not written yet: the lock makes it, empty
    hard = tmp_path / "hard.jsonl"
    holder = rf"is being written by matrix runner pid {os.getpid()} on "
    with results_lock(link):
        assert out.is_file() and out.read_bytes() == b""
        os.link(out, hard)
        for name in (out, link, hard):
            refused = pytest.raises(ResultsLockedError, match=rf"^{re.escape(str(name))} {holder}")
            with refused, results_lock(name):
                pass
        with results_lock(tmp_path / "other.jsonl"):  # another file: no conflict
            pass
        done = subprocess.run(  # another runner, through the hard link
            [sys.executable, "-m", "transcription_benchmarks", "matrix", "cpu", "--out", str(hard)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2
        assert f"{hard} is being written by matrix runner pid {os.getpid()}" in done.stderr
    with results_lock(hard):  # released with its holder, and its note gone
        pass
    assert not holder_note(out.stat()).exists()
    assert out.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "hard.jsonl",
        "link.jsonl",
        "other.jsonl",
        "rows.jsonl",
    ]


NOT_RESULTS = {
    "notes": b"shopping list\nmilk\n",
    "one line": b"remember the milk",  # as one line, it looked like a torn last row
    "json": b'{"kind": "something else"}\n',
    "rows, then notes": b'{"schema_version":1,"matrix":"m","cell_id":"x"}\nmy notes\n',
}


@pytest.mark.usefixtures("cells_importable")
@pytest.mark.parametrize("content", NOT_RESULTS.values(), ids=NOT_RESULTS.keys())
def test_a_file_that_is_not_results_is_refused_untouched(tmp_path, content):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(content)
    link = tmp_path / "link.jsonl"
    link.symlink_to(notes)
    for out, named in ((notes, f"{notes}"), (link, f"{link} (a link to {notes})")):
        with pytest.raises(NotResultsFileError) as refused:
            run_matrix(Matrix(name="m", cells=[FAILING]), out, progress=False)
        message = str(refused.value)
        assert message.startswith(f"{named} is not a results file (line ")
        assert "\n" not in message and "left as it is" in message
    assert notes.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "notes.txt"]  # no .torn


def test_the_cli_refuses_an_out_that_is_not_results_untouched(tmp_path):
    from typer.testing import CliRunner

    from transcription_benchmarks.cli import app

    notes = tmp_path / "notes.txt"
    notes.write_bytes(NOT_RESULTS["notes"])
    done = subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", "matrix", "cpu", "--out", str(notes)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"error: {notes} is not a results file (line 1 is not a matrix row): left as it is; "
        "give --out a new file or a results file"
    ]
    link = tmp_path / "link.jsonl"
    link.symlink_to(notes)
    result = CliRunner().invoke(app, ["matrix", "cpu", "--out", str(link)])
    assert isinstance(result.exception, NotResultsFileError)  # main() makes that exit 2
    assert str(result.exception).startswith(f"{link} (a link to {notes}) is not a results file")
    assert notes.read_bytes() == NOT_RESULTS["notes"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.jsonl", "notes.txt"]


@pytest.mark.skipif(importlib.util.find_spec("nemo") is not None, reason="NeMo is installed here")
def test_a_link_to_a_results_file_is_followed(tmp_path):
    unavailable = Cell(model="c", args={"backend": "nemo"})  # a row without a worker process
    real = tmp_path / "runs" / "rows.jsonl"
    run_matrix(Matrix(name="m", cells=[unavailable]), real, progress=False)
    (first,) = real.read_text().splitlines()
    fragment = '{"schema_version":1,"matrix":"m","cel'
    real.write_text(first + "\n" + fragment)
    link = tmp_path / "latest.jsonl"
    link.symlink_to(real)
    again = Cell(model="d", args={"backend": "nemo"})
    with pytest.warns(TornRowWarning, match=re.escape(f"moved to {real}.torn")):
        rows = run_matrix(Matrix(name="m", cells=[unavailable, again]), link, progress=False)
    assert [r.cell.model for r in rows] == ["c", "d"]  # c resumed from the file, d ran
    assert link.is_symlink() and real.read_text().startswith(first + "\n")
    assert [r.cell.model for r in read_rows(real)] == ["c", "d"]
    assert (tmp_path / "runs" / "rows.jsonl.torn").read_text() == fragment + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.jsonl", "runs"]


def test_a_runner_killed_with_sigkill_takes_its_worker_along(tmp_path):
    matrix_file = tmp_path / "m.toml"
    matrix_file.write_text('name = "killed"\n[[cells]]\nmodel = "python:matrix_cells:sleep"\n')
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    runner = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transcription_benchmarks",
            "matrix",
            str(matrix_file),
            "--out",
            str(tmp_path / "rows.jsonl"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        worker = _wait_for_worker(runner.pid)
        cell_dirs = list(Path(tempfile.gettempdir()).glob(f"tbench-cell-{runner.pid}-*"))
        assert cell_dirs, "the cell's directory is named after its runner"
        os.kill(runner.pid, signal.SIGKILL)
        runner.wait(10)
        gone, _ = psutil.wait_procs([worker], timeout=10)
        assert gone, "the worker outlived its runner"
    finally:
        runner.kill()
    # Nothing could remove them at SIGKILL; the next runner does. (Another test process's
    # runner on this machine, e.g. an xdist worker or mutmut, may be that next runner.)
    left = [d for d in cell_dirs if d.exists()]
    removed = remove_stale_cell_dirs()
    assert set(left) <= set(removed)
    assert not any(d.exists() for d in cell_dirs)
    # Its lock went with it; its note naming it stays, and is not taken for a later holder's.
    out = tmp_path / "rows.jsonl"
    note = holder_note(out.stat())
    assert note.read_text().startswith(f"matrix runner pid {runner.pid} on ")
    with out.open("ab") as unnamed:  # a holder that wrote no note (another user's runner)
        fcntl.flock(unnamed, fcntl.LOCK_EX)
        refused = pytest.raises(ResultsLockedError, match="being written by another process;")
        with refused, results_lock(out):
            pass
    note.unlink()


def _wait_for_worker(runner_pid: int, timeout_s: float = 60) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(runner_pid).children(recursive=True):
            if "transcription_benchmarks.matrix.worker" in " ".join(child.cmdline()):
                return child
        time.sleep(0.2)
    raise AssertionError("no worker started")


def test_rows_of_a_torn_file_written_before_this_version_keep_their_content(tmp_path):
    # A whole last row that only lost its newline is kept, and gets its newline back.
    out = tmp_path / "rows.jsonl"
    row = {
        "schema_version": 1,
        "matrix": "m",
        "cell_id": "x",
        "cell": {"model": "tiny.en"},
        "status": "error",
        "reason": "r",
    }
    out.write_text(json.dumps(row))
    assert set_aside_torn_tail(out) is None
    assert out.read_text().endswith("\n")
    assert read_rows(out)[0].reason == "r"


# --- reading a results file: what is kept, what is refused, and where it says so -----------


def _lines(*statuses: str) -> list[str]:
    from datetime import UTC, datetime

    from transcription_benchmarks.matrix.runner import _row

    return [
        _row(
            "m", Cell(model=f"cell-{i}"), status, f"row {i}", datetime.now(UTC), 0.0
        ).model_dump_json()
        for i, status in enumerate(statuses)
    ]


def _warned_here(record: warnings.WarningMessage) -> bool:
    """The warning points at the code that read the file (this test), not at rows.py. Under
    mutmut every call passes through a trampoline frame in the mutated module, which moves any
    stacklevel by one: there the question has no answer and is not asked."""
    return "MUTANT_UNDER_TEST" in os.environ or Path(record.filename) == Path(__file__)


def test_rows_after_a_glued_line_are_all_read(tmp_path):
    first, second, third = _lines("error", "oom", "ok")
    out = tmp_path / "rows.jsonl"
    out.write_text("\n".join([first, "", "x" + second, third]) + "\n")  # a 1-byte fragment
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = read_rows(out)
    assert [r.reason for r in rows] == ["row 0", "row 1", "row 2"]
    [record] = caught
    assert record.category is UserWarning
    assert str(record.message) == (
        f"{out}:3: a torn fragment precedes a row on this line; the row is kept, the fragment "
        "skipped"
    )
    assert _warned_here(record)


def test_a_truncated_last_line_is_skipped_with_its_line_number(tmp_path):
    first, second = _lines("error", "ok")
    out = tmp_path / "rows.jsonl"
    out.write_text("\n".join([first, "", second, second[:40]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = read_rows(out)
    assert [r.reason for r in rows] == ["row 0", "row 1"]
    [record] = caught
    assert str(record.message) == f"{out}:4: skipping a truncated last line (interrupted run?)"
    assert _warned_here(record)


def test_a_bad_line_before_the_last_names_file_line_and_field(tmp_path):
    first, second, third = _lines("error", "ok", "ok")
    out = tmp_path / "rows.jsonl"
    out.write_text("\n".join([first, second.replace('"ok"', '"exploded"'), third]) + "\n")
    with pytest.raises(ResultsFileError) as raised:
        read_rows(out)
    assert str(raised.value) == (
        f"{out}:2: not a matrix row: status: Input should be 'ok', 'oom', 'abort', 'timeout', "
        "'error' or 'unavailable'"
    )
    nested = second.replace('"cell":{"model":"cell-1"', '"cell":{"model":7')
    out.write_text("\n".join([first, nested, third]) + "\n")
    with pytest.raises(ResultsFileError) as raised:
        read_rows(out)
    assert (
        str(raised.value)
        == f"{out}:2: not a matrix row: cell.model: Input should be a valid string"
    )
    out.write_text("\n".join([first, "[1, 2]", third]) + "\n")
    with pytest.raises(ResultsFileError) as raised:
        read_rows(out)
    assert str(raised.value) == f"{out}:2: not a matrix row: line: Input should be an object"


def test_a_missing_results_file_is_named(tmp_path):
    missing = tmp_path / "never-written.jsonl"
    with pytest.raises(ResultsFileError) as raised:
        read_rows(missing)
    assert str(raised.value) == f"cannot read results file {missing}: No such file or directory"


def test_killing_a_worker_that_is_already_gone_is_not_an_error():
    from transcription_benchmarks.matrix.runner import _kill_group

    process = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    process.wait()
    _kill_group(process)  # its group is gone: nothing to kill, nothing raised
    assert process.returncode == 0


@pytest.mark.parametrize("tail", ["  \t", "X"])  # whitespace, and a letter, ending the fragment
def test_a_torn_fragment_is_set_aside_byte_for_byte(tmp_path, tail):
    (first,) = _lines("error")
    out = tmp_path / "rows.jsonl"
    fragment = '{"schema_version":1,"matrix":"m","cell_id":"abc' + tail
    out.write_text(first + "\n" + fragment)
    assert set_aside_torn_tail(out) is not None
    assert out.read_text() == first + "\n"
    assert (tmp_path / "rows.jsonl.torn").read_text() == fragment + "\n"


def test_a_fragment_torn_inside_a_character_is_set_aside(tmp_path):
    (first,) = _lines("error")
    out = tmp_path / "rows.jsonl"
    fragment = b'{"schema_version":1,"matrix":"m","cell":{"label":"fp16 caf' + b"\xc3"
    out.write_bytes(first.encode() + b"\n" + fragment)  # cut between the two bytes of "é"
    assert set_aside_torn_tail(out) is not None
    assert out.read_text() == first + "\n"
    assert (tmp_path / "rows.jsonl.torn").read_bytes() == fragment + b"\n"


def test_a_worker_that_wrote_undecodable_bytes_still_gets_its_row(tmp_path):
    from transcription_benchmarks.matrix.runner import _tail

    log = tmp_path / "stderr.txt"
    log.write_bytes(b"starting\n\xff\xfe garbled\nRuntimeError: boom\n")
    assert _tail(log) == ["starting", "\ufffd\ufffd garbled", "RuntimeError: boom"]
    assert _tail(tmp_path / "never-written.txt") == []
    log.write_text("\n".join([f"line {i}" for i in range(7)] + ["x" * 400]) + "\n")
    tail = _tail(log)
    assert tail[:4] == ["line 3", "line 4", "line 5", "line 6"]  # the last five lines...
    assert tail[4] == "x" * 297 + "..."  # ...each cut to 300 characters


def test_rows_say_where_and_when_the_cell_ran():
    import socket
    from datetime import UTC, datetime

    from transcription_benchmarks.matrix.runner import _row

    started = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    row = _row("m", Cell(model="c"), "error", "why", started, 1.5)
    assert (row.host, row.started_at, row.wall_s) == (socket.gethostname(), started, 1.5)


@pytest.mark.usefixtures("cells_importable")
def test_the_matrix_timeout_applies_to_cells_without_their_own(tmp_path):
    out = tmp_path / "not" / "yet" / "there" / "rows.jsonl"  # folders made as needed
    sleeping = Cell(model="python:matrix_cells:sleep", label="sleeps 60 s")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        [row] = run_matrix(Matrix(name="t", cells=[sleeping]), out, progress=False, timeout_s=1)
    assert row.status == "timeout"
    assert row.reason == "killed after the 1 s limit (process group sent SIGKILL)"
    assert [r.status for r in read_rows(out)] == ["timeout"]
    assert not caught


@pytest.mark.usefixtures("cells_importable")
def test_a_cell_leaves_nothing_in_the_working_directory(tmp_path, monkeypatch):
    from transcription_benchmarks.matrix.runner import run_cell

    monkeypatch.chdir(tmp_path)
    row = run_cell("m", FAILING)
    assert row.status == "error" and row.reason == "ValueError: this cell always fails"
    assert list(tmp_path.iterdir()) == []  # job, row and stderr lived in the cell's own folder


def test_a_cell_that_cannot_run_here_took_no_time_and_says_when():
    from datetime import UTC, datetime

    from transcription_benchmarks.matrix.runner import run_cell

    before = datetime.now(UTC)
    if importlib.util.find_spec("nemo") is not None:
        pytest.skip("NeMo is installed here: the cell can run")
    row = run_cell("m", Cell(model="nvidia/canary-1b", args={"backend": "nemo"}))
    assert row.status == "unavailable" and row.wall_s == 0.0
    assert "pip install 'transcription-benchmarks[nemo]'" in row.reason
    assert before <= row.started_at <= datetime.now(UTC)  # timezone-aware, now


@pytest.mark.usefixtures("cells_importable")
def test_a_worker_killed_by_sigkill_is_an_abort_that_names_the_oom_killer():
    from transcription_benchmarks.matrix.runner import run_cell

    killed = run_cell("m", Cell(model="python:matrix_cells:sigkill"))
    assert killed.status == "abort"
    assert killed.reason.startswith("killed by SIGKILL (the kernel's OOM killer sends SIGKILL)")
    aborted = run_cell("m", ABORTING)
    assert aborted.status == "abort"
    assert aborted.reason.startswith("killed by SIGABRT") and "OOM killer" not in aborted.reason
    assert killed.wall_s > 0 and aborted.wall_s > 0


def test_only_cell_dirs_of_runners_that_are_gone_are_removed(tmp_path, monkeypatch):
    """A dead runner's directory goes; this runner's and another living runner's stay."""
    from transcription_benchmarks.matrix.runner import CELL_DIR_PREFIX, remove_stale_cell_dirs

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names no process (reaped)
    dead = tmp_path / f"{CELL_DIR_PREFIX}{gone.pid}-k2f9x_ab"
    mine = tmp_path / f"{CELL_DIR_PREFIX}{os.getpid()}-a1b2c3d4"
    other = tmp_path / f"{CELL_DIR_PREFIX}1-q8w7e6r5"  # pid 1 lives as long as the machine
    unrelated = tmp_path / "tbench-cell-notapid-x"
    for path in (dead, mine, other, unrelated):
        (path / "job.json").parent.mkdir()
        (path / "job.json").write_text("{}")
    assert remove_stale_cell_dirs() == [dead]
    assert not dead.exists()
    assert mine.exists() and other.exists() and unrelated.exists()
