"""Stored formats: files written by earlier versions keep loading, newer ones are refused.

tests/data/formats holds files written by tbench itself at format version 1 (a BenchResult
from `tbench bench --json` and a matrix JSONL with an ok, a timeout and an error row). They are
never regenerated: they must load, with the same figures, for as long as the package exists.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from pydantic import ValidationError

import transcription_benchmarks
from transcription_benchmarks import BenchResult
from transcription_benchmarks.formats import CURRENT, FormatVersionError, upgrade
from transcription_benchmarks.matrix.rows import ResultsFileError, read_rows
from transcription_benchmarks.measure.timer import Stats

FROZEN = Path(__file__).parent / "data" / "formats"
RESULT_V1 = FROZEN / "result-v1.json"
ROWS_V1 = FROZEN / "rows-v1.jsonl"
JFK = "And so, my fellow Americans ask not what your country can do for you"


def v1_result() -> dict:
    return json.loads(RESULT_V1.read_text())


def test_a_version_1_result_loads_with_the_figures_it_was_written_with() -> None:
    stored = v1_result()
    assert stored["schema_version"] == 1  # the file is what version 1 wrote
    result = BenchResult.from_json(RESULT_V1.read_text())
    assert result.schema_version == CURRENT["BenchResult"] == 2
    timing = stored["timing"]
    assert result.timing.runs_s == timing["runs_s"]
    assert result.timing.warmup_s == timing["warmup_s"]
    for stat in ("median", "mean", "min", "max", "stdev"):  # derived now, equal to what was stored
        assert getattr(result.timing, stat) == pytest.approx(timing[stat], rel=1e-12)
    assert result.speed == pytest.approx(11.0 / timing["median"])
    assert result.args["beam_size"] is None and result.args["repeats"] == 2
    assert result.transcript.text.strip().startswith(JFK)
    assert result.wer == 0.0
    assert "Speed: 4.4x" in result.get_stats()


def test_a_version_1_matrix_file_reads_and_reports(tmp_path: Path) -> None:
    rows = read_rows(ROWS_V1)
    assert [r.status for r in rows] == ["ok", "timeout", "error"]
    assert [r.schema_version for r in rows] == [1, 1, 1]
    ok = rows[0].result
    assert ok is not None and ok.schema_version == 2
    assert ok.transcript.text.strip().startswith(JFK.replace(",", ""))  # beam 1 and int8
    stored = json.loads(ROWS_V1.read_text().splitlines()[0])["result"]["timing"]
    assert ok.timing.median == pytest.approx(stored["median"], rel=1e-12)
    assert rows[1].reason == "killed after the 0.5 s limit (process group sent SIGKILL)"

    out = tmp_path / "report"
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "transcription_benchmarks",
            "report",
            str(ROWS_V1),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert report.returncode == 0, report.stderr
    table = (out / "report.md").read_text()
    row = "| Systran/faster-whisper-tiny.en | 11.7x | n/a | int8, beam 1 | jfk.flac | 0.0% |"
    assert row in table  # 11.0 s of audio / the stored median 0.936 s
    assert "| timeout |" in table and "| error: ModelNotFoundError:" in table


def test_upgrade_steps_one_version_at_a_time() -> None:
    data = v1_result()
    data["timing"]["median"] = 99.0  # a stored copy that disagrees with the runs
    upgraded = upgrade("BenchResult", data)
    assert upgraded["schema_version"] == 2
    assert set(upgraded["timing"]) == {"runs_s", "warmup_s"}
    assert data["timing"]["median"] == 99.0  # the caller's object is not changed
    result = BenchResult.model_validate(data)
    assert result.timing.median == pytest.approx(statistics.median(data["timing"]["runs_s"]))
    assert upgrade("BenchResult", upgraded) == upgraded  # current: nothing to do
    assert upgrade("Row", {"schema_version": 1}) == {"schema_version": 1}
    assert upgrade("BenchResult", ["not", "an", "object"]) == ["not", "an", "object"]


def test_a_newer_result_is_refused_naming_both_versions() -> None:
    data = v1_result() | {"schema_version": 99}
    with pytest.raises(FormatVersionError) as refused:
        BenchResult.model_validate_json(json.dumps(data))
    message = str(refused.value)
    installed = version("transcription-benchmarks")
    assert message == (
        "BenchResult schema_version 99 was written by a newer transcription-benchmarks: this "
        f"one ({installed}) reads versions 1 to 2; upgrade it to read this file"
    )


def test_a_source_tree_that_was_never_installed_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    import transcription_benchmarks.formats as formats

    def not_installed(name: str) -> str:
        raise PackageNotFoundError(name)

    monkeypatch.setattr(formats, "version", not_installed)
    with pytest.raises(FormatVersionError, match=r"this one \(\(not installed\)\) reads"):
        upgrade("Row", {"schema_version": 2})


def test_each_step_runs_once_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a third version, a version-1 file goes through step 1, then step 2."""
    import transcription_benchmarks.formats as formats

    def to_3(data: dict) -> dict:
        return {**data, "steps": [*data.get("steps", []), f"2->3 saw {data['schema_version']}"]}

    monkeypatch.setitem(formats.CURRENT, "BenchResult", 3)
    monkeypatch.setitem(formats._STEPS, ("BenchResult", 2), to_3)
    upgraded = upgrade("BenchResult", v1_result())
    assert upgraded["schema_version"] == 3
    assert upgraded["steps"] == ["2->3 saw 2"]
    assert "median" not in upgraded["timing"]  # step 1 ran first


@pytest.mark.parametrize("bad", ["2", 0, -1, True, 1.5, None])
def test_a_version_that_is_not_a_version_is_refused(bad: object) -> None:
    with pytest.raises(FormatVersionError, match=r"is not a version"):
        upgrade("BenchResult", {"schema_version": bad})


def test_an_object_without_a_version_is_taken_as_current() -> None:
    """Every version wrote schema_version; an object without one is being built in code."""
    assert upgrade("BenchResult", {"timing": {"runs_s": [1.0], "median": 5.0}}) == {
        "timing": {"runs_s": [1.0], "median": 5.0}
    }


@pytest.mark.parametrize("where", ["row", "result"])
def test_a_newer_last_row_is_refused_not_skipped_as_torn(tmp_path: Path, where: str) -> None:
    """A truncated last line is skipped with a warning; a whole row of a newer version is not
    truncated, and skipping it would lose a result."""
    lines = ROWS_V1.read_text().splitlines()
    row = json.loads(lines[0])
    if where == "row":
        row["schema_version"] = 7
    else:
        row["result"]["schema_version"] = 7
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join([*lines[1:], json.dumps(row)]) + "\n")
    kind = "Row" if where == "row" else "BenchResult"
    with pytest.raises(ResultsFileError, match=rf"rows\.jsonl:3: {kind} schema_version 7 was"):
        read_rows(path)


def test_an_option_no_longer_known_leaves_the_file_readable() -> None:
    """Recorded arguments are data: an option that a later version renamed or removed (here one
    BenchArgs has never had) is kept, not refused."""
    data = v1_result()
    data["args"]["an_option_removed_later"] = 3
    result = BenchResult.model_validate_json(json.dumps(data))
    assert result.args["an_option_removed_later"] == 3
    assert "an_option_removed_later" in result.to_json()


def test_stats_are_stored_as_runs_only() -> None:
    stats = Stats.from_runs([1.0, 3.0, 2.0], warmup=[5.0])
    assert json.loads(stats.model_dump_json()) == {
        "runs_s": [1.0, 3.0, 2.0],
        "warmup_s": [5.0],
        "runs_j": None,
    }
    assert (stats.median, stats.mean, stats.min, stats.max) == (2.0, 2.0, 1.0, 3.0)
    assert stats.stdev == pytest.approx(1.0)
    with pytest.raises(ValidationError, match="runs_s"):
        Stats(runs_s=[])


def test_a_new_result_round_trips_at_the_current_version() -> None:
    result = BenchResult.from_json(RESULT_V1.read_text())
    text = result.to_json()
    assert json.loads(text)["schema_version"] == 2
    assert "median" not in json.loads(text)["timing"]
    assert BenchResult.from_json(text) == result


def test_results_files_are_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """Rows hold non-ASCII text (transcripts, faster-whisper's punctuation options): written and
    read as UTF-8 even where the locale's encoding is ASCII (LC_ALL=C, no UTF-8 mode)."""
    out = tmp_path / "rows.jsonl"
    script = (
        "from pathlib import Path\n"
        "from transcription_benchmarks.matrix.rows import read_rows\n"
        "from transcription_benchmarks.matrix.runner import append_row\n"
        f"append_row(Path({str(out)!r}), read_rows(Path({str(ROWS_V1)!r}))[0])\n"
        "import locale\n"
        "print(locale.getpreferredencoding(False))\n"
        f"print(read_rows(Path({str(out)!r}))[0].result.config['prepend_punctuations'])\n"
    )
    ascii_locale = {"LC_ALL": "C", "LANG": "C", "PYTHONCOERCECLOCALE": "0", "PYTHONUTF8": "0"}
    # The child imports the copy of the package this test imported (under mutmut, the mutant).
    package_root = str(Path(transcription_benchmarks.__file__).parents[1])
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, **ascii_locale, "PYTHONIOENCODING": "utf-8", "PYTHONPATH": package_root},
        capture_output=True,
        encoding="utf-8",
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    encoding, punctuation = run.stdout.splitlines()
    assert encoding == "ANSI_X3.4-1968"  # the locale really was ASCII there
    assert "¿" in punctuation
    assert "¿".encode() in out.read_bytes()  # stored as UTF-8, not escaped or re-encoded


def test_a_version_1_dataset_result_loads_and_rescores() -> None:
    from transcription_benchmarks.datasets import DatasetResult

    frozen = FROZEN / "dataset-result-v1.json"
    stored = json.loads(frozen.read_text())
    assert stored["schema_version"] == 1 and stored["kind"] == "dataset"
    result = DatasetResult.model_validate_json(frozen.read_text())
    assert result.schema_version == CURRENT["DatasetResult"]
    assert result.rtfx == pytest.approx(stored["dataset"]["audio_s"] / stored["transcribe_s"])
    assert [u.id for u in result.utterances] == ["jfk", "short"]
    assert result.rescore().wer == pytest.approx(stored["score"]["wer"])
