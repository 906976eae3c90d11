"""Harness overhead: speed measured through bench() / speed of calling faster-whisper directly.

Same model, options and audio; the two are interleaved (ABBA order) in one process so that
thermal state, caches and background load hit both alike. Each round, each side does one
warm-up and `--repeats` timed transcriptions and reports its median; the figure is the ratio
of the medians of those per-round medians. 1.0 means bench() adds nothing; the goal is >= 0.98.

    python benchmarks/harness_overhead.py [--rounds 6] [--repeats 3] [--file jfk.flac]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

from transcription_benchmarks import BenchArgs, bench
from transcription_benchmarks.audio import find_test_audio, probe_audio
from transcription_benchmarks.models import PACKAGED_ID, resolve
from transcription_benchmarks.models.resolve import ModelFormat

OPTIONS = {"beam_size": 5, "temperature": 0.0, "language": "en"}


def direct_speed(model, path: str, duration: float, repeats: int) -> float:
    """faster-whisper as a user calls it: transcribe a path and consume the generator."""
    times = []
    for index in range(1 + repeats):
        start = time.perf_counter()
        segments, _ = model.transcribe(path, **OPTIONS)
        list(segments)
        if index:  # the first call is the warm-up
            times.append(time.perf_counter() - start)
    return duration / statistics.median(times)


def harness_speed(path: str, repeats: int, device: str) -> float:
    args = BenchArgs(test_file=path, device=device, warmup=1, repeats=repeats, **OPTIONS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unstable-timing warning is this script's subject
        return bench(PACKAGED_ID, args).speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--file", default="jfk.flac")
    parser.add_argument("--device", default="cpu")
    opts = parser.parse_args()

    from faster_whisper import WhisperModel

    path = str(find_test_audio(opts.file))
    duration = probe_audio(path).duration_s
    fmt: ModelFormat = "ctranslate2"
    model = WhisperModel(str(resolve(PACKAGED_ID, fmt).path), device=opts.device)

    direct, harness = [], []
    for round_index in range(opts.rounds):
        order = ("direct", "harness") if round_index % 2 == 0 else ("harness", "direct")
        for side in order:
            if side == "direct":
                direct.append(direct_speed(model, path, duration, opts.repeats))
            else:
                harness.append(harness_speed(path, opts.repeats, opts.device))
        print(f"round {round_index + 1}: direct {direct[-1]:6.2f}x  bench() {harness[-1]:6.2f}x")

    d, h = statistics.median(direct), statistics.median(harness)
    print(f"\n{PACKAGED_ID} on {opts.device}, {opts.file} ({duration:.1f} s), {OPTIONS}")
    print(
        f"direct faster-whisper: median {d:.2f}x  (min {min(direct):.2f}x, max {max(direct):.2f}x)"
    )
    print(
        f"through bench():       median {h:.2f}x  (min {min(harness):.2f}x, max {max(harness):.2f}x)"
    )
    print(f"harness overhead ratio (bench / direct): {h / d:.3f}  (goal >= 0.98)")


if __name__ == "__main__":
    main()
