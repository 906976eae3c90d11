"""What one served request holds in memory per audio minute, engine by engine: the figure each
engine states (`Backend.request_mib_per_audio_minute`) and the endpoint's memory budget divides.

Each point runs in a process of its own: the engine loads the packaged tiny.en (converted to
its format) as the endpoint's handler loads it, then one request's path runs: the body (a
16 kHz 16-bit WAV of 1min.flac's speech repeated to the length asked) decoded by the project's
decoder and transcribed with the engine's default request options. A thread samples the
process's RSS every 5 ms; the point is the peak during the request less the RSS just before it
(the body already in memory: its size is known exactly and budgeted apart). The figure is the
growth per audio minute between the shortest and the longest length.

    python benchmarks/request_memory.py [--minutes 1 6] [--engines faster-whisper transformers ...]

Needs ../shared/test_audio (1min.flac) or TRANSCRIPTION_BENCHMARKS_AUDIO_PATH.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import threading
import time
import wave

MIB = 1024 * 1024
ENGINES = ("faster-whisper", "transformers", "openai-whisper", "whisper.cpp", "nemo")
MODELS = {"nemo": "synthetic:parakeet-tdt-tiny"}
DEFAULT_MODEL = "Systran/faster-whisper-tiny.en"


def _wav(samples, minutes: float) -> bytes:
    import numpy as np

    count = int(minutes * 60 * 16_000)
    tiled = np.resize(samples, count)
    pcm = (np.clip(tiled, -1, 1) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(pcm)
    return out.getvalue()


def point(engine: str, minutes: float) -> dict[str, float]:
    """One request in this process: peak RSS over the RSS before it, in MiB."""
    import psutil

    from transcription_benchmarks.audio import decode_audio, find_test_audio
    from transcription_benchmarks.serving.config import ServingConfig
    from transcription_benchmarks.serving.handler import load_service

    service = load_service(
        MODELS.get(engine, DEFAULT_MODEL), ServingConfig(backend=engine, device="cpu")
    )
    body = _wav(decode_audio(find_test_audio("1min.flac")), minutes)
    process = psutil.Process()
    before = process.memory_info().rss
    peak = before
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    transcript = service.model.transcribe(decode_audio(body), service.model.request_options())
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return {
        "engine": engine,
        "minutes": minutes,
        "loaded_mib": before / MIB,
        "request_mib": (peak - before) / MIB,
        "seconds": seconds,
        "segments": len(transcript.segments),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, nargs=2, default=[1.0, 6.0])
    parser.add_argument("--engines", nargs="+", default=list(ENGINES))
    parser.add_argument("--point", nargs=2, help=argparse.SUPPRESS)  # the child's own call
    opts = parser.parse_args()
    if opts.point:
        print(json.dumps(point(opts.point[0], float(opts.point[1]))))
        return
    rows = []
    for engine in opts.engines:
        points = []
        for minutes in opts.minutes:
            done = subprocess.run(
                [sys.executable, __file__, "--point", engine, str(minutes)],
                capture_output=True,
                text=True,
            )
            if done.returncode:
                tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
                print(f"{engine} {minutes:g} min: failed: {tail[0]}", file=sys.stderr)
                break
            points.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if len(points) == 2:
            short, long = points
            slope = (long["request_mib"] - short["request_mib"]) / (
                long["minutes"] - short["minutes"]
            )
            rows.append((engine, short, long, slope))
    print(
        "| engine | loaded MiB | request MiB (short) | request MiB (long) | MiB per audio minute |"
    )
    print("|---|---|---|---|---|")
    for engine, short, long, slope in rows:
        print(
            f"| {engine} | {short['loaded_mib']:.0f} | {short['request_mib']:.1f} "
            f"({short['minutes']:g} min) | {long['request_mib']:.1f} ({long['minutes']:g} min) "
            f"| {slope:.1f} |"
        )


if __name__ == "__main__":
    main()
