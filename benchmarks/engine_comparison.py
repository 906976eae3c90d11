"""Same weights, every installed engine: parity verdicts per file against faster-whisper
(normalised word agreement, first differing word, segment boundaries), and each engine's WER.
Greedy at temperature 0 by default.

    python benchmarks/engine_comparison.py [--files jfk.flac short.flac 1min.flac]
"""

from __future__ import annotations

import argparse

from transcription_benchmarks import BenchArgs
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.report.parity import parity_table
from transcription_benchmarks.studies.engines import engine_parity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=PACKAGED_ID)
    parser.add_argument("--files", nargs="+", default=["jfk.flac", "short.flac", "1min.flac"])
    parser.add_argument("--beam-size", type=int, default=1)
    opts = parser.parse_args()
    args = BenchArgs(device="cpu", warmup=0, repeats=1, beam_size=opts.beam_size, temperature=0.0)
    rows = engine_parity(opts.model, opts.files, args)
    print(parity_table(rows))
    for row in rows:
        first, second = (f"{w:.1%}" if w is not None else "n/a" for w in row.wer)
        print(f"{row.test_file}: WER {row.first} {first}, {row.second} {second}")


if __name__ == "__main__":
    main()
