"""Every installed engine on the same tiny.en weights, on CPU: the table faster-whisper's README
draws by hand, measured here in one run.

Each row is a matrix cell in its own process (so the peak RSS is that engine's own), at greedy
(beam 1) and beam 5, temperature 0, on 1min.flac (warm-up 1 + 3 timed runs) and on a generated
10-minute file (1 timed run). Columns: speed (x real time, median), time per file, peak RSS,
load time, WER against the reference, and agreement with faster-whisper float32's text at the
same beam (1 - WER of the engine's words against faster-whisper's).

    python benchmarks/engine_table.py [--minutes 10] [--beams 1 5] [--cpu-threads 2]
"""

from __future__ import annotations

import argparse

from transcription_benchmarks.audio import find_test_audio
from transcription_benchmarks.audio.generate import generate_speech
from transcription_benchmarks.backends.registry import backend_class, installed_backends
from transcription_benchmarks.matrix.rows import Cell, Row
from transcription_benchmarks.matrix.runner import run_cell
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.quality.metrics import error_rates
from transcription_benchmarks.report.table import markdown_header

REFERENCE = ("faster-whisper", "float32")
"""Agreement is measured against faster-whisper at full precision, at the same beam."""


def rows_for(engines, files, beams, threads) -> list[tuple[str, str, str, int, Row]]:
    found = []
    for label, path, reference, protocol in files:
        for beam in beams:
            for engine in engines:
                backend = backend_class(engine)
                for precision in backend.cpu_precisions:
                    args = {
                        "backend": engine,
                        "test_file": str(path),
                        "device": "cpu",
                        "beam_size": beam,
                        "temperature": 0.0,
                        backend.precision_option: precision,
                        **protocol,
                    }
                    if reference is not None:
                        args["reference_file"] = str(reference)
                    if "cpu_threads" in backend.reads and threads:
                        args["cpu_threads"] = threads
                    cell = Cell(model=PACKAGED_ID, args=args, label=f"{engine} {precision}")
                    row = run_cell("engine-table", cell)
                    print(f"{label} beam {beam} {engine} {precision}: {row.status}", flush=True)
                    found.append((label, engine, precision, beam, row))
    return found


def agreement(text: str, reference_text: str | None) -> str:
    if reference_text is None or not text.strip():
        return "-"
    return f"{1 - error_rates(text, reference_text).wer:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--beams", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--cpu-threads", type=int, default=2)
    opts = parser.parse_args()

    speech = generate_speech(opts.minutes * 60)
    files = [
        ("1min.flac", find_test_audio("1min.flac"), None, {"warmup": 1, "repeats": 3}),
        (
            f"generated {opts.minutes:g} min",
            speech.path,
            speech.reference_path,
            {"warmup": 0, "repeats": 1},
        ),
    ]
    engines = installed_backends(PACKAGED_ID)
    found = rows_for(engines, files, opts.beams, opts.cpu_threads)

    texts = {
        (label, beam): row.result.transcript.text
        for label, engine, precision, beam, row in found
        if (engine, precision) == REFERENCE and row.result is not None
    }
    header = ("File", "Engine", "Precision", "Beam", "Speed", "Time", "Peak RSS", "Load", "WER")
    lines = markdown_header((*header, f"Agreement with {' '.join(REFERENCE)}"))
    for label, engine, precision, beam, row in found:
        result = row.result
        if result is None:
            lines.append(
                f"| {label} | {engine} | {precision} | {beam} | {row.status}: "
                f"{row.reason} | | | | | |"
            )
            continue
        wer = "-" if result.wer is None else f"{result.wer:.1%}"
        lines.append(
            f"| {label} | {engine} | {precision} | {beam} | {result.speed:.1f}x | "
            f"{result.audio_duration_s / result.speed:.1f} s | "
            f"{result.memory.peak_rss_mb:.0f} MiB | {result.load_time_s:.2f} s | {wer} | "
            f"{agreement(result.transcript.text, texts.get((label, beam)))} |"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
