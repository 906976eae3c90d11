"""Same weights, several engines (faster-whisper, transformers, plug-ins) on the same files.

With identical weights (the packaged tiny.en and our conversion of it) any difference in text
comes from the engines themselves: feature padding, decoding loops, numerics. The comparison
gives each engine's WER and the first word where their outputs part.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from pydantic import BaseModel, Field

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.quality.metrics import Divergence, first_difference


class EngineComparison(BaseModel):
    test_file: str
    reference: str = Field(description="the engine the others are compared with (the first)")
    wer: dict[str, float | None]
    speed: dict[str, float]
    divergence: dict[str, Divergence | None] = Field(
        description="per other engine, the first word where its text parts from the reference"
    )

    def describe(self) -> str:
        cells = ", ".join(
            f"{backend} WER {'n/a' if wer is None else f'{wer:.1%}'} at {self.speed[backend]:.1f}x"
            for backend, wer in self.wer.items()
        )
        parts = []
        for engine, d in self.divergence.items():
            if d is None:
                parts.append(f"{engine}: same words as {self.reference}")
            else:
                parts.append(
                    f"{engine}: first difference from {self.reference} at word {d.word_index} "
                    f"after '{d.context}': '{d.left}' vs '{d.right}'"
                )
        return f"{self.test_file}: {cells}; " + "; ".join(parts)


def compare_engines(
    model: str,
    test_files: list[str],
    args: BenchArgs | None = None,
    engines: Sequence[str] | None = None,
) -> list[EngineComparison]:
    """Each file through each engine (default: every installed one) on the same weights."""
    from transcription_benchmarks.backends.registry import installed_backends
    from transcription_benchmarks.bench import bench

    args = args or BenchArgs()
    chosen = list(engines) if engines else installed_backends()
    if len(chosen) < 2:
        raise InvalidOptionError(f"comparing engines needs two or more; have {chosen}")
    comparisons = []
    for test_file in test_files:
        results = {}
        for backend in chosen:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # options one engine ignores are expected here
                results[backend] = bench(
                    model, args.model_copy(update={"backend": backend, "test_file": test_file})
                )
        reference = results[chosen[0]].transcript.text
        comparisons.append(
            EngineComparison(
                test_file=test_file,
                reference=chosen[0],
                wer={b: r.wer for b, r in results.items()},
                speed={b: r.speed for b, r in results.items()},
                divergence={
                    b: first_difference(reference, r.transcript.text)
                    for b, r in results.items()
                    if b != chosen[0]
                },
            )
        )
    return comparisons
