"""Accuracy cost of speed options, measured side by side on generated speech with an exact
reference: sequential decoding vs faster-whisper's batched defaults (30 s chunks cut by VAD,
without timestamps) vs batched with timestamps and 15 s chunks.

    python benchmarks/decoding_tradeoffs.py [--minutes 10] [--seed 0] [--model tiny.en]
    python benchmarks/decoding_tradeoffs.py --file 1min.flac    # any file with a reference
"""

from __future__ import annotations

import argparse
import warnings

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.audio.generate import generate_speech

CONFIGS = {
    "sequential": {},
    "batched defaults": {"batch_size": 8},
    "batched, timestamps, 15 s chunks": {
        "batch_size": 8,
        "without_timestamps": False,
        "chunk_length": 15,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="Systran/faster-whisper-tiny.en")
    parser.add_argument("--file", help="a catalogued file or path instead of generated speech")
    opts = parser.parse_args()

    if opts.file:
        test_file = opts.file
    else:
        speech = generate_speech(opts.minutes * 60, seed=opts.seed)
        print(f"{speech.path.name}: {speech.duration_s:.0f} s, engine {speech.engine}")
        test_file = str(speech.path)
    base = {"test_file": test_file, "device": "cpu", "warmup": 0, "repeats": 1}
    base |= {"compute_type": "int8", "beam_size": 1, "temperature": 0.0}
    for label, options in CONFIGS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = bench(opts.model, BenchArgs(**base, **options))
        rates = result.quality.error_rates
        print(
            f"{label:34s} WER {rates.wer:6.1%} (sub {rates.substitutions}, del {rates.deletions}, "
            f"ins {rates.insertions})  speed {result.speed:5.1f}x  "
            f"vad_filter={result.config.get('vad_filter')} "
            f"without_timestamps={result.config.get('without_timestamps')} "
            f"chunk_length={result.config.get('chunk_length')}"
        )


if __name__ == "__main__":
    main()
