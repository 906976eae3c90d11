"""Same weights, two engines: faster-whisper and transformers on the same files.

With identical weights (the packaged tiny.en and our conversion of it) any difference in text
comes from the engines themselves: feature padding, decoding loops, numerics. The comparison
gives each engine's WER and the first word where their outputs part.
"""

from __future__ import annotations

import warnings

from pydantic import BaseModel

from transcription_benchmarks.args import BACKEND_NAMES, BenchArgs
from transcription_benchmarks.quality.metrics import Divergence, first_difference


class EngineComparison(BaseModel):
    test_file: str
    wer: dict[str, float | None]
    speed: dict[str, float]
    divergence: Divergence | None

    def describe(self) -> str:
        cells = ", ".join(
            f"{backend} WER {'n/a' if wer is None else f'{wer:.1%}'} at {self.speed[backend]:.1f}x"
            for backend, wer in self.wer.items()
        )
        if self.divergence is None:
            return f"{self.test_file}: {cells}; same words"
        d = self.divergence
        return (
            f"{self.test_file}: {cells}; first difference at word {d.word_index} after "
            f"'{d.context}': '{d.left}' vs '{d.right}'"
        )


def compare_engines(
    model: str, test_files: list[str], args: BenchArgs | None = None
) -> list[EngineComparison]:
    from transcription_benchmarks.bench import bench

    args = args or BenchArgs()
    comparisons = []
    for test_file in test_files:
        results = {}
        for backend in BACKEND_NAMES:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # options one engine ignores are expected here
                results[backend] = bench(
                    model, args.model_copy(update={"backend": backend, "test_file": test_file})
                )
        left, right = (results[b].transcript.text for b in BACKEND_NAMES)
        comparisons.append(
            EngineComparison(
                test_file=test_file,
                wer={b: r.wer for b, r in results.items()},
                speed={b: r.speed for b, r in results.items()},
                divergence=first_difference(left, right),
            )
        )
    return comparisons
