"""Same weights, every installed engine: WER per file for each, and the first word where each
engine's transcript parts from faster-whisper's. Greedy at temperature 0 by default.

    python benchmarks/engine_comparison.py [--files jfk.flac short.flac 1min.flac]
"""

from __future__ import annotations

import argparse

from transcription_benchmarks import BenchArgs
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.studies.engines import compare_engines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=PACKAGED_ID)
    parser.add_argument("--files", nargs="+", default=["jfk.flac", "short.flac", "1min.flac"])
    parser.add_argument("--beam-size", type=int, default=1)
    opts = parser.parse_args()
    args = BenchArgs(device="cpu", warmup=0, repeats=1, beam_size=opts.beam_size, temperature=0.0)
    for comparison in compare_engines(opts.model, opts.files, args):
        print(comparison.describe())


if __name__ == "__main__":
    main()
