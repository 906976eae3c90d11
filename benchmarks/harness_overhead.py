"""Harness overhead: speed measured through bench() / speed of calling faster-whisper directly.

Same model, options and audio; the two are interleaved (ABBA order) in one process so that
thermal state, caches and background load hit both alike. Each round, each side loads the
model (untimed), does one warm-up and `--repeats` timed transcriptions, and reports its median;
the figure is the ratio of the medians of those per-round medians (and, less sensitive to
noise on a shared machine, of the best runs). 1.0 means bench() adds nothing; goal >= 0.98.

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
CPU_THREADS = 2  # one per core of the reference machine: no oversubscription noise


def direct_speeds(model_dir: str, path: str, repeats: int, device: str) -> list[float]:
    """faster-whisper as a user calls it: load, transcribe a path, consume the generator."""
    from faster_whisper import WhisperModel

    model = WhisperModel(model_dir, device=device, cpu_threads=CPU_THREADS)
    times = []
    for index in range(1 + repeats):
        start = time.perf_counter()
        segments, _ = model.transcribe(path, **OPTIONS)
        list(segments)
        if index:  # the first call is the warm-up
            times.append(time.perf_counter() - start)
    return times


def harness_speeds(path: str, repeats: int, device: str) -> list[float]:
    args = BenchArgs(
        test_file=path, device=device, warmup=1, repeats=repeats, cpu_threads=CPU_THREADS, **OPTIONS
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the unstable-timing warning is this script's subject
        return bench(PACKAGED_ID, args).timing.runs_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--file", default="jfk.flac")
    parser.add_argument("--device", default="cpu")
    opts = parser.parse_args()

    path = str(find_test_audio(opts.file))
    duration = probe_audio(path).duration_s
    fmt: ModelFormat = "ctranslate2"
    model_dir = str(resolve(PACKAGED_ID, fmt).path)

    medians: dict[str, list[float]] = {"direct": [], "harness": []}  # per-round median speeds
    best = {"direct": 0.0, "harness": 0.0}  # fastest single run
    for round_index in range(opts.rounds):
        order = ("direct", "harness") if round_index % 2 == 0 else ("harness", "direct")
        for side in order:
            if side == "direct":
                times = direct_speeds(model_dir, path, opts.repeats, opts.device)
            else:
                times = harness_speeds(path, opts.repeats, opts.device)
            medians[side].append(duration / statistics.median(times))
            best[side] = max(best[side], duration / min(times))
        print(
            f"round {round_index + 1:2d}: direct {medians['direct'][-1]:6.2f}x  "
            f"bench() {medians['harness'][-1]:6.2f}x"
        )

    print(f"\n{PACKAGED_ID} on {opts.device}, {opts.file} ({duration:.1f} s), {OPTIONS}")
    for side, label in (("direct", "direct faster-whisper"), ("harness", "through bench()      ")):
        runs = medians[side]
        print(
            f"{label}: median {statistics.median(runs):.2f}x "
            f"(rounds {min(runs):.2f}-{max(runs):.2f}x, best run {best[side]:.2f}x)"
        )
    ratio = statistics.median(medians["harness"]) / statistics.median(medians["direct"])
    print(
        f"harness overhead ratio (bench / direct): median {ratio:.3f}, "
        f"best run {best['harness'] / best['direct']:.3f}  (goal >= 0.98)"
    )


if __name__ == "__main__":
    main()
