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
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.quality.metrics import Parity, parity
from transcription_benchmarks.result import BenchResult

GREEDY = BenchArgs(device="cpu", warmup=0, repeats=1, beam_size=1, temperature=0.0)
"""Parity is judged at greedy decoding, temperature 0: no sampling, no beam tie-breaks."""


class ParityRow(BaseModel):
    """One verdict: a second run of the same file set against a first. `tbench parity --json`
    writes a list of them; `tbench report` reads it back (report/parity.py)."""

    kind: Literal["engines", "batch"] = "engines"
    """engines: two engines on the same weights; batch: one engine batched vs sequential."""
    test_file: str
    first: str = Field(description="e.g. 'faster-whisper', or 'faster-whisper sequential'")
    second: str
    parity: Parity
    wer: tuple[float | None, float | None]
    speed: tuple[float, float]

    @model_validator(mode="before")
    @classmethod
    def _kind_of_older_rows(cls, data: Any) -> Any:
        """Rows written before `kind` existed: a batch row names one engine's batched run."""
        if isinstance(data, dict) and "kind" not in data:
            batched = " batch " in str(data.get("second", ""))
            data = {**data, "kind": "batch" if batched else "engines"}
        return data


def _run(model: str, args: BenchArgs, **update: Any) -> BenchResult:
    from transcription_benchmarks.bench import bench

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # options one engine ignores are expected here
        return bench(model, args.model_copy(update=update))


def _row(
    kind: Literal["engines", "batch"],
    test_file: str,
    first: tuple[str, BenchResult],
    second: tuple[str, BenchResult],
) -> ParityRow:
    (a_name, a), (b_name, b) = first, second
    return ParityRow(
        kind=kind,
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
    chosen = list(engines) if engines else installed_backends(model)
    if len(chosen) < 2:
        raise InvalidOptionError(f"comparing engines needs two or more; have {chosen}")
    rows = []
    for test_file in test_files:
        results = {e: _run(model, args, backend=e, test_file=test_file) for e in chosen}
        first = (chosen[0], results[chosen[0]])
        rows += [_row("engines", test_file, first, (e, results[e])) for e in chosen[1:]]
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
    chosen = [
        e for e in (engines or installed_backends(model)) if backend_class(e).supports_batching
    ]
    if not chosen:
        raise InvalidOptionError("no engine here decodes in batches")
    rows = []
    for engine in chosen:
        alone = backend_class(engine).sequential_batch_size
        for test_file in test_files:
            sequential = _run(model, args, backend=engine, test_file=test_file, batch_size=alone)
            batched = _run(model, args, backend=engine, test_file=test_file, batch_size=batch_size)
            label = "sequential" if alone is None else "batch 1"
            rows.append(
                _row(
                    "batch",
                    test_file,
                    (f"{engine} {label}", sequential),
                    (f"{engine} batch {batch_size}", batched),
                )
            )
    return rows
