"""Parity verdicts: engines on the same weights, batched against sequential (real tiny.en)."""

from __future__ import annotations

import pytest

from transcription_benchmarks import InvalidOptionError
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.studies.engines import engine_parity

pytest.importorskip("pywhispercpp", reason="pywhispercpp is not installed")


def test_one_engine_is_not_a_comparison(jfk):
    with pytest.raises(InvalidOptionError, match="two or more"):
        engine_parity(PACKAGED_ID, [str(jfk)], engines=["faster-whisper"])


def test_parity_measures_words_and_boundaries():
    from transcription_benchmarks.quality.metrics import parity
    from transcription_benchmarks.transcript import Segment, Transcript

    first = Transcript(
        segments=[
            Segment(start=0.0, end=4.96, text="Ask not"),
            Segment(start=5.96, end=9.2, text="what"),
        ]
    )
    same = Transcript(segments=[Segment(start=0.0, end=6.0, text="ask not, what")])
    verdict = parity(first, same)
    assert verdict.same_words and verdict.agreement == 1.0
    assert verdict.segments == (2, 1)
    assert (verdict.max_start_diff_s, verdict.max_end_diff_s) == (0.0, pytest.approx(1.04))
    other = Transcript(segments=[Segment(start=0.0, end=4.96, text="ask what")])
    verdict = parity(first, other)
    assert verdict.agreement == pytest.approx(2 / 3)  # one deletion in three words
    assert (verdict.divergence.word_index, verdict.divergence.left) == (1, "not")


def test_engine_parity_and_batch_invariance_on_real_audio(jfk, short):
    from transcription_benchmarks.report.parity import parity_table
    from transcription_benchmarks.studies.engines import GREEDY, batch_invariance, engine_parity

    engines = ["faster-whisper", "openai-whisper"]
    (row,) = engine_parity(PACKAGED_ID, [str(jfk)], GREEDY, engines)
    assert (row.first, row.second) == ("faster-whisper", "openai-whisper")
    assert row.parity.same_words and row.parity.agreement == 1.0
    assert row.parity.max_end_diff_s < 0.5  # same weights, same timestamp tokens, near enough
    (batched,) = batch_invariance(PACKAGED_ID, [str(short)], GREEDY, ["faster-whisper"], 4)
    assert (batched.first, batched.second) == (
        "faster-whisper sequential",
        "faster-whisper batch 4",
    )
    assert batched.parity.same_words
    # faster-whisper's batched pipeline decodes without timestamps: one segment per chunk.
    assert batched.parity.segments == (2, 1)
    table = parity_table([row, batched])
    assert "| jfk.flac | faster-whisper | openai-whisper | 100.0% | same words | 2 / 2 |" in table
    assert "| short.flac | faster-whisper sequential | faster-whisper batch 4 |" in table


def test_cli_prints_both_verdict_tables(jfk, tmp_path):
    import json
    import subprocess
    import sys

    out = tmp_path / "parity.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "transcription_benchmarks", "parity", PACKAGED_ID),
            *("-f", str(jfk), "--engine", "faster-whisper", "--engine", "whisper.cpp"),
            *("--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Engines on the same weights" in done.stdout
    assert "Batched against sequential" in done.stdout
    rows = json.loads(out.read_text())
    assert [(r["kind"], r["first"], r["second"]) for r in rows] == [
        ("engines", "faster-whisper", "whisper.cpp"),
        ("batch", "faster-whisper sequential", "faster-whisper batch 4"),  # no whisper.cpp batch
    ]
    # The file is a report's input too; one written before rows had a kind reads the same.
    for r in rows:
        del r["kind"]
    older = tmp_path / "older.json"
    older.write_text(json.dumps(rows))
    for source in (out, older):
        report = subprocess.run(
            [
                *(sys.executable, "-m", "transcription_benchmarks", "report", str(source)),
                *("-o", str(tmp_path / source.stem)),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert report.returncode == 0, report.stderr
        markdown = (tmp_path / source.stem / "report.md").read_text()
        engines, batched = markdown.split("## Batched against sequential")
        assert "## Engines on the same weights" in engines
        assert "| jfk.flac | faster-whisper | whisper.cpp |" in engines
        assert "| jfk.flac | faster-whisper sequential | faster-whisper batch 4 |" in batched


def test_report_names_a_file_that_is_not_parity_verdicts(tmp_path):
    from transcription_benchmarks.report.parity import ParityFileError, read_parity

    bad = tmp_path / "bad.json"
    bad.write_text('[{"test_file": "jfk.flac"}]')
    with pytest.raises(ParityFileError, match=r"not a list of parity verdicts.*first"):
        read_parity(bad)
