"""Parity verdicts: same weights, several engines on the same files; and each batching engine's
batched output against its sequential output.

With identical weights (the packaged tiny.en and our conversions of it) any difference in text
comes from the engines themselves: feature padding, decoding loops, numerics; and batched
decoding should not change what a clip decodes to. Each verdict gives the normalised word
agreement, the first differing word and the largest segment start and end differences
(quality.metrics.parity).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel, Field

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.quality.metrics import Parity, parity
from transcription_benchmarks.report.table import markdown_header
from transcription_benchmarks.result import BenchResult

GREEDY = BenchArgs(device="cpu", warmup=0, repeats=1, beam_size=1, temperature=0.0)
"""Parity is judged at greedy decoding, temperature 0: no sampling, no beam tie-breaks."""


class ParityRow(BaseModel):
    """One verdict: a second run of the same file set against a first."""

    test_file: str
    first: str = Field(description="e.g. 'faster-whisper', or 'faster-whisper sequential'")
    second: str
    parity: Parity
    wer: tuple[float | None, float | None]
    speed: tuple[float, float]


def parity_table(rows: list[ParityRow]) -> str:
    """The verdicts as a Markdown table: agreement, first differing word, boundaries."""
    lines = markdown_header(
        (
            "File",
            "First",
            "Second",
            "Agreement",
            "First difference",
            "Segments",
            "Max start/end diff",
        )
    )
    for row in rows:
        p = row.parity
        d = p.divergence
        where = "same words" if d is None else f"word {d.word_index}: '{d.left}' vs '{d.right}'"
        diffs = (
            "-"
            if p.max_start_diff_s is None
            else f"{p.max_start_diff_s:.2f} / {p.max_end_diff_s:.2f} s"
        )
        lines.append(
            f"| {PurePath(row.test_file).name} | {row.first} | {row.second} | {p.agreement:.1%} "
            f"| {where} | {p.segments[0]} / {p.segments[1]} | {diffs} |"
        )
    return "\n".join(lines)


def _run(model: str, args: BenchArgs, **update: Any) -> BenchResult:
    from transcription_benchmarks.bench import bench

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # options one engine ignores are expected here
        return bench(model, args.model_copy(update=update))


def _row(
    test_file: str, first: tuple[str, BenchResult], second: tuple[str, BenchResult]
) -> ParityRow:
    (a_name, a), (b_name, b) = first, second
    return ParityRow(
        test_file=test_file,
        first=a_name,
        second=b_name,
        parity=parity(a.transcript, b.transcript, a.transcript.language or "en"),
        wer=(a.wer, b.wer),
        speed=(a.speed, b.speed),
    )


def engine_parity(
    model: str,
    test_files: list[str],
    args: BenchArgs | None = None,
    engines: Sequence[str] | None = None,
) -> list[ParityRow]:
    """Each file through each engine (default: every installed one) on the same weights,
    each engine set against the first."""
    from transcription_benchmarks.backends.registry import installed_backends

    args = args or GREEDY
    chosen = list(engines) if engines else installed_backends()
    if len(chosen) < 2:
        raise InvalidOptionError(f"comparing engines needs two or more; have {chosen}")
    rows = []
    for test_file in test_files:
        results = {e: _run(model, args, backend=e, test_file=test_file) for e in chosen}
        first = (chosen[0], results[chosen[0]])
        rows += [_row(test_file, first, (e, results[e])) for e in chosen[1:]]
    return rows


def batch_invariance(
    model: str,
    test_files: list[str],
    args: BenchArgs | None = None,
    engines: Sequence[str] | None = None,
    batch_size: int = 4,
) -> list[ParityRow]:
    """Each file decoded sequentially (faster-whisper's WhisperModel; transformers batch 1)
    and batched (BatchedInferencePipeline; transformers batch N), per engine that batches."""
    from transcription_benchmarks.backends.registry import backend_class, installed_backends

    args = args or GREEDY
    chosen = [e for e in (engines or installed_backends()) if backend_class(e).supports_batching]
    if not chosen:
        raise InvalidOptionError("no engine here decodes in batches")
    rows = []
    for engine in chosen:
        alone = 1 if engine == "transformers" else None  # its pipeline has no unbatched path
        for test_file in test_files:
            sequential = _run(model, args, backend=engine, test_file=test_file, batch_size=alone)
            batched = _run(model, args, backend=engine, test_file=test_file, batch_size=batch_size)
            label = "sequential" if alone is None else "batch 1"
            rows.append(
                _row(
                    test_file,
                    (f"{engine} {label}", sequential),
                    (f"{engine} batch {batch_size}", batched),
                )
            )
    return rows
