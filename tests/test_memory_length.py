"""Memory against audio length: generated speech of growing duration, each run in its own
process, growth per audio minute set against what the decoded audio explains."""

from __future__ import annotations

from pathlib import Path

import pytest

from transcription_benchmarks.matrix.rows import Cell, Row, read_rows
from transcription_benchmarks.matrix.runner import run_cell
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.studies.memory_length import (
    EXPLAINED_BYTES_PER_S,
    memory_against_length,
)

FROZEN_ROWS = Path(__file__).parent / "data" / "formats" / "rows-v1.jsonl"


def _growing(mib_per_min: float):
    """A stand-in for the cell runner whose peak RSS grows by `mib_per_min` per audio minute
    (a real row's figures otherwise), to test the arithmetic without long audio."""
    template = read_rows(FROZEN_ROWS)[0]

    def run(cell: Cell) -> Row:
        minutes = float(cell.label.removesuffix(" min"))
        assert template.result is not None
        memory = template.result.memory.model_copy(
            update={"peak_rss_mb": 300 + mib_per_min * minutes, "baseline_rss_mb": 80.0}
        )
        result = template.result.model_copy(update={"memory": memory})
        return template.model_copy(update={"cell": cell, "result": result})

    return run


def test_growth_the_audio_explains_is_not_flagged() -> None:
    explained = EXPLAINED_BYTES_PER_S * 60 / 2**20  # 6.6 MiB per audio minute
    study = memory_against_length(PACKAGED_ID, {}, _growing(explained), minutes=(0.2, 0.4))
    assert study.explained_mb_per_min == pytest.approx(6.59, abs=0.01)
    assert study.rss_growth_mb_per_min == pytest.approx(explained, rel=0.05)
    assert study.flagged == [] and study.gpu_growth_mb_per_min is None  # CPU: no GPU figure


def test_growth_beyond_twice_what_the_audio_explains_is_flagged() -> None:
    study = memory_against_length(PACKAGED_ID, {}, _growing(100.0), minutes=(0.4, 0.2))
    assert [p.minutes for p in study.points] == [0.2, 0.4]  # shortest first
    assert study.rss_growth_mb_per_min == pytest.approx(100.0, rel=0.05)
    assert study.flagged == [
        "peak RSS grows 100.0 MiB per audio minute, more than 13.2 (2 x the 6.6 that the decoded "
        "samples and whole-file features explain)"
    ]
    assert "FLAGGED: peak RSS grows" in study.table()


def test_a_real_run_on_generated_speech() -> None:
    study = memory_against_length(
        PACKAGED_ID,
        {"device": "cpu", "compute_type": "int8", "beam_size": 1},
        lambda cell: run_cell("memory-vs-length", cell),
        minutes=(0.2, 0.4),
    )
    assert [p.status for p in study.points] == ["ok", "ok"]
    short, long = study.points
    assert long.audio_s == pytest.approx(2 * short.audio_s)
    for point in study.points:
        assert point.peak_rss_mb is not None and point.baseline_rss_mb is not None
        assert point.peak_rss_mb > point.baseline_rss_mb  # the model was loaded and ran
        assert point.peak_gpu_mb is None  # no GPU here: not 0
        assert point.wer is not None and point.wer < 0.2  # scored against the exact reference
    assert study.rss_growth_mb_per_min is not None
    table = study.table().splitlines()
    assert table[0] == (
        "| Audio | Status | Peak RSS | RSS over baseline | Peak GPU | Speed | WER |"
    )
    assert table[2].startswith("| 0.2 min | ok | ")
