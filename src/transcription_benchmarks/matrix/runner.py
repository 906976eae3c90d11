"""Run a matrix: each cell in its own subprocess, one JSONL row per cell as it finishes.

A cell that crashes its process (SIGABRT from a cuDNN load failure, the OOM killer), hangs past
its timeout or raises still yields a row with the reason; the next cell starts in a fresh
process, and dies with the runner (even a SIGKILLed one). The JSONL file is append-only
(flushed and fsynced per row) and written by one runner at a time (a lock on the file itself);
a file that is not a results file is refused untouched, and a torn last line is set aside
before anything is appended. So an interrupted run resumes where it
stopped: a cell whose current row (rows.Results: same matrix, cell and host) holds a final
status is skipped. Timeouts are not final: a resumed run retries them. When a cell appears more
than once (re-runs with resume off), the last line is the current one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError
from rich.markup import escape

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.matrix.rows import (
    Cell,
    MemoryLimit,
    Results,
    ResultsFileError,
    Row,
    Status,
    above_failed_rung,
    check_results_file,
    read_rows,
    record_rung,
    set_aside_torn_tail,
)
from transcription_benchmarks.matrix.spec import PYTHON_PREFIX, Matrix
from transcription_benchmarks.matrix.worker import RUNNER_PID_ENV, one_line

FINAL_STATUSES: frozenset[Status] = frozenset({"ok", "oom", "abort", "error", "unavailable"})
"""Statuses a resumed run does not retry (everything but timeout)."""

STDERR_TAIL_LINES = 5


def run_matrix(
    matrix: Matrix,
    out: Path,
    *,
    resume: bool = True,
    progress: bool = True,
    timeout_s: float | None = None,
) -> list[Row]:
    """Run every cell of `matrix`, appending each row to the JSONL file `out`.

    `timeout_s` is the limit for cells that set none themselves (None: no limit). With `resume`,
    cells that already have a final row in `out` are skipped and their existing rows returned.
    An `out` that holds anything but rows (a torn last one aside) raises NotResultsFileError
    before anything in or beside it is touched; a symbolic link to a results file is followed.
    Returns one row per cell, in the matrix's order."""
    out = Path(out)
    check_results_file(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_cell_dirs()
    with results_lock(out):
        # Beside the file the fragment was cut from, not beside a link to it.
        if torn := set_aside_torn_tail(out.resolve() if out.is_symlink() else out):
            warnings.warn(torn, TornRowWarning, stacklevel=2)
        return _run_locked(matrix, out, resume=resume, progress=progress, timeout_s=timeout_s)


def _run_locked(
    matrix: Matrix, out: Path, *, resume: bool, progress: bool, timeout_s: float | None
) -> list[Row]:
    done: dict[str, Row] = {}
    if resume and out.exists():
        # This machine's current rows of this matrix (the runner always records the host; a
        # row without one is taken as this machine's); a current timeout row runs again.
        here = socket.gethostname()
        for row in Results.read(out).current:
            mine = row.matrix == matrix.name and row.host in (here, None)
            if mine and row.status in FINAL_STATUSES:
                done[row.cell_id] = row
    rows: list[Row] = []
    bar = _progress_bar() if progress else None
    task = None
    if bar is not None:
        bar.start()
        task = bar.add_task(matrix.name, total=len(matrix.cells), cell="")
    try:
        for cell in matrix.cells:
            if cell.id in done:
                rows.append(done[cell.id])
            else:
                if bar is not None:
                    what = f"{cell.model} ({cell.label}) on {cell.test_file}"
                    bar.update(task, cell=escape(one_line(what, 160)))  # a label may be huge
                row = run_cell(matrix.name, cell, timeout_s=cell.timeout_s or timeout_s)
                append_row(out, row)
                rows.append(row)
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
    return rows


class TornRowWarning(UserWarning):
    """The results file ended in a partial line, now set aside in <out>.torn."""


class ResultsLockedError(BenchError):
    """Another runner is appending to the same results file."""


@contextlib.contextmanager
def results_lock(out: Path) -> Iterator[None]:
    """One runner per results file: two would run every cell twice, timed while competing for
    the machine. An advisory lock (flock), which the kernel drops when its holder dies, so a
    killed runner never leaves a stale lock.

    The lock is on the results file itself, opened for appending (created empty when absent,
    never truncated), not on a lock file named after it: flock belongs to the file (its device
    and inode), not to the name it was opened by, so every name of the file (a symbolic link, a
    hard link, another spelling of its path, a bind mount of its folder) meets the same lock.
    `<out>.lock` let two runners in through two names; a lock file named by device and inode in
    a lock folder would see through names too, but only for runners that share that folder
    (not across TMPDIRs, users or containers), and it is one more file to create and race on.

    The results file holds only rows, so the holder names itself in a note named by the file's
    device and inode (holder_note), which a refused runner reads for its message."""
    import fcntl

    with contextlib.ExitStack() as stack:
        try:
            results = stack.enter_context(Path(out).open("ab"))
        except OSError as exc:
            raise ResultsFileError(
                f"cannot open results file {out}: {exc.strerror or exc}"
            ) from None
        note = holder_note(os.fstat(results.fileno()))
        try:
            fcntl.flock(results, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ResultsLockedError(
                f"{out} is being written by {_holder(note) or 'another process'}; wait for it to "
                "finish, or write to another --out"
            ) from None
        written = False
        with contextlib.suppress(OSError):  # the note only names the holder: the lock holds
            note.parent.mkdir(mode=0o700, exist_ok=True)
            folder = note.parent.lstat()  # this user's own folder, not a link planted in /tmp
            if stat.S_ISDIR(folder.st_mode) and folder.st_uid == os.getuid():
                note.write_text(
                    f"matrix runner pid {os.getpid()} on {socket.gethostname()} since "
                    f"{datetime.now(UTC).isoformat(timespec='seconds')}\n",
                    encoding="utf-8",
                )
                written = True
        try:
            yield
        finally:
            if written:  # still ours: no one else could take the lock meanwhile
                with contextlib.suppress(OSError):
                    note.unlink(missing_ok=True)
            fcntl.flock(results, fcntl.LOCK_UN)


def holder_note(file: os.stat_result) -> Path:
    """Where the runner holding the lock on the file `file` describes itself: in a folder of
    this user's under the temporary directory, named by device and inode, so it is found
    through any name of the file."""
    folder = Path(tempfile.gettempdir(), f"tbench-locks-{os.getuid()}")
    return folder / f"{file.st_dev}-{file.st_ino}"


def _holder(note: Path) -> str:
    """What the holder's note says; nothing where there is no note (not written yet, another
    user's runner) or where it is a dead runner's (one killed with SIGKILL leaves its note)."""
    import psutil

    try:
        text = note.read_text(encoding="utf-8").strip()
    except OSError:
        return ""
    runner = re.match(r"matrix runner pid (\d+) on (\S+) ", text)
    if runner and runner[2] == socket.gethostname() and not psutil.pid_exists(int(runner[1])):
        return ""
    return text


CELL_DIR_PREFIX = "tbench-cell-"


def remove_stale_cell_dirs() -> list[Path]:
    """Cell directories (job, row, stderr) of runners that no longer live: a runner killed
    with SIGKILL cannot remove its own. Each is named after its runner's pid."""
    import psutil

    removed = []
    for path in Path(tempfile.gettempdir()).glob(f"{CELL_DIR_PREFIX}*-*"):
        pid = path.name.removeprefix(CELL_DIR_PREFIX).split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def _missing_engine(cell: Cell) -> str | None:
    """Why the cell's named engine cannot run here, where its packages are not installed at
    all (found without importing them: NeMo's import alone takes seconds)."""
    from transcription_benchmarks.backends.registry import backend_class

    name = cell.args.get("backend")
    if not name or cell.model.startswith(PYTHON_PREFIX):
        return None
    try:
        return backend_class(name).missing_packages()
    except BenchError:  # a plug-in that does not load: the worker's row says why
        return None


# Not mutated by `nox -s mutation`: process supervision, held by tests that drive real runner
# and worker processes (test_matrix_hardening, test_matrix), about 30 s per mutant.
def run_cell(
    matrix: str, cell: Cell, *, timeout_s: float | None = None
) -> Row:  # pragma: no mutate block
    """One cell in a fresh worker process, classified by how the process ended."""
    started = datetime.now(UTC)
    if (missing := _missing_engine(cell)) is not None:  # no process needed to know that
        return _row(matrix, cell, "unavailable", missing, started, 0.0)
    with tempfile.TemporaryDirectory(prefix=f"{CELL_DIR_PREFIX}{os.getpid()}-") as tmp:
        job = {"matrix": matrix, "cell": cell.model_dump(mode="json")}
        result = Path(tmp, "row.json")
        exit = _run_worker(job, result, timeout_s)
        if exit.returncode == 0 and result.is_file():
            try:
                row = Row.model_validate_json(result.read_text(encoding="utf-8"))
            except ValidationError as exc:
                return _row(
                    matrix, cell, "error", f"unreadable worker row: {exc}", started, exit.wall_s
                )
            return row.model_copy(update={"wall_s": exit.wall_s, "started_at": started})
        status, reason = exit.outcome(timeout_s)
        return _row(matrix, cell, status, reason, started, exit.wall_s)


def run_group(
    matrix: str,
    cells: list[Cell],
    *,
    memory_limit: MemoryLimit | None = None,
    timeout_s: float | None = None,
) -> list[Row]:  # pragma: no mutate block
    """The cells one after another in one worker process (imports and start-up paid once),
    skipping the larger batches of a ladder whose rung does not fit `memory_limit`.

    A crash ends only the cell in progress: it becomes a row classified by how the process
    ended, and the cells after it go on in a new process. `timeout_s` is per cell. Rows carry
    no wall_s of their own (the process ran several). Returns the rows in the cells' order,
    without the skipped cells."""
    rows: list[Row] = []
    failed: dict[str, int] = {}
    pending = list(cells)
    while pending := [c for c in pending if not above_failed_rung(c, failed)]:
        started = datetime.now(UTC)
        with tempfile.TemporaryDirectory(prefix=f"{CELL_DIR_PREFIX}{os.getpid()}-") as tmp:
            job = {
                "matrix": matrix,
                "cells": [c.model_dump(mode="json") for c in pending],
                "memory_limit": memory_limit.model_dump() if memory_limit else None,
            }
            out = Path(tmp, "rows.jsonl")
            limit = timeout_s * len(pending) if timeout_s else None
            exit = _run_worker(job, out, limit)
            done = {row.cell_id: row for row in read_rows(out)} if out.is_file() else {}
        crashed = None
        for index, cell in enumerate(pending):
            if cell.id in done:
                row = done[cell.id]
            elif exit.returncode != 0 and not above_failed_rung(cell, failed):
                # The cell in progress when the process ended (the ones before it have rows).
                status, reason = exit.outcome(limit)
                row, crashed = _row(matrix, cell, status, reason, started, exit.wall_s), index
            else:
                continue  # skipped by the worker: a larger batch than a rung that did not fit
            rows.append(row)
            if memory_limit is not None:
                record_rung(cell, memory_limit.holds(row), failed)
            if crashed is not None:
                break
        if crashed is None:
            break
        pending = pending[crashed + 1 :]
    return rows


class _WorkerExit:
    """How a worker process ended: its exit status (negative: a signal; None: killed at the
    time limit), its wall time and the last lines of its stderr."""

    def __init__(self, returncode: int | None, wall_s: float, tail: list[str]) -> None:
        self.returncode, self.wall_s, self.tail = returncode, wall_s, tail

    def outcome(self, timeout_s: float | None) -> tuple[Status, str]:
        if self.returncode is None:
            return "timeout", f"killed after the {timeout_s:g} s limit (process group sent SIGKILL)"
        if self.returncode < 0:
            name = _signal_name(-self.returncode)
            hint = " (the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
            tail = f": {' | '.join(self.tail)}" if self.tail else ""
            return "abort", f"killed by {name}{hint}{tail}"
        return _classify_exit(self.returncode, self.tail)


def _run_worker(
    job: dict, out: Path, timeout_s: float | None
) -> _WorkerExit:  # pragma: no mutate block
    """Run the worker on `job` (written beside `out`), its stderr kept for the reason."""
    job_file, log = out.with_name("job.json"), out.with_name("stderr.txt")
    job_file.write_text(json.dumps(job), encoding="utf-8")
    command = [sys.executable, "-m", "transcription_benchmarks.matrix.worker", str(job_file)]
    start = time.perf_counter()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*command, str(out)],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            start_new_session=True,  # its own process group: a timeout kills its children too
            env={**os.environ, RUNNER_PID_ENV: str(os.getpid())},  # it dies with this runner
        )
        try:
            returncode: int | None = process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            returncode = None
        except BaseException:  # Ctrl-C: leave no worker behind
            _kill_group(process)
            raise
    return _WorkerExit(returncode, time.perf_counter() - start, _tail(log))


def append_row(path: Path, row: Row) -> None:
    """One line per row, flushed and fsynced so a crash loses at most the cell in progress."""
    line = row.model_dump_json() + "\n"
    with Path(path).open("a", encoding="utf-8") as f:
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def _row(
    matrix: str, cell: Cell, status: Status, reason: str, started: datetime, wall: float
) -> Row:
    return Row(
        matrix=matrix,
        cell_id=cell.id,
        cell=cell,
        status=status,
        reason=reason,
        wall_s=wall,
        started_at=started,
        host=socket.gethostname(),
    )


_EXCEPTION_LINE = re.compile(r"(?:\w+\.)*\w*(?:Error|Exception)(?::|$)")
"""A traceback's last line: `[module.]SomeError: message`, or the bare name of an exception
raised without a message (`MemoryError`)."""


def _classify_exit(returncode: int, tail: list[str]) -> tuple[Status, str]:
    """A non-zero exit without a row: the last exception line of a traceback."""
    exception = next((line for line in reversed(tail) if _EXCEPTION_LINE.match(line)), None)
    if exception is not None:
        lowered = exception.lower()
        status: Status = (
            "oom" if "out of memory" in lowered or "memoryerror" in lowered else "error"
        )
        return status, one_line(exception)
    last = f": {' | '.join(tail)}" if tail else ""
    return "error", f"worker exited with status {returncode}{last}"


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(log: Path, lines: int = STDERR_TAIL_LINES) -> list[str]:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return [one_line(line, 300) for line in kept[-lines:]]


def _progress_bar():
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[cell]}"),
        console=Console(stderr=True),
        transient=False,
    )
