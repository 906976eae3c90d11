"""Memory against audio length: one configuration on generated speech of growing duration.

Users report multi-hour files pushing RAM to tens of GB. A Whisper engine decodes 30-second
windows, so what should grow with the file is only what holds the whole file at once: the
decoded samples (16 kHz float32, 64 000 B/s) and, where the engine computes the log-mel features
of the whole file before decoding (faster-whisper does), those features (80 or 128 bins x 100
frames/s x float32, up to 51 200 B/s). Everything else (weights, the window's activations, the
CUDA context) is the same for a 1-minute and a 60-minute file. The study runs each duration in
its own process (a matrix cell: peaks are per process, and an out-of-memory death is a row),
fits the growth of peak RSS and GPU memory per audio second between the shortest and longest
file, and flags growth above EXPLAINED_FACTOR times what the samples and features explain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel, Field

from transcription_benchmarks.audio.generate import generate_speech
from transcription_benchmarks.matrix.rows import Cell, Row
from transcription_benchmarks.report.table import markdown_header

SAMPLE_BYTES_PER_S = 16_000 * 4
FEATURE_BYTES_PER_S = 128 * 100 * 4
EXPLAINED_BYTES_PER_S = SAMPLE_BYTES_PER_S + FEATURE_BYTES_PER_S
EXPLAINED_FACTOR = 2.0
"""Growth above twice the explained bytes per audio second is flagged: copies of the samples
(resampling, a stereo decode) stay under it; a transcript or cache that grows without bound
does not."""
MIB = 1024 * 1024

RunCell = Callable[[Cell], Row]


class LengthPoint(BaseModel):
    minutes: float
    audio_s: float
    status: str
    reason: str | None = None
    peak_rss_mb: float | None = None
    baseline_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    speed: float | None = None
    wer: float | None = None


class MemoryLengthStudy(BaseModel):
    model: str
    args: dict[str, Any]
    points: list[LengthPoint]
    rss_growth_mb_per_min: float | None = Field(
        None, description="peak RSS growth per audio minute, shortest to longest file that ran"
    )
    gpu_growth_mb_per_min: float | None = None
    explained_mb_per_min: float = EXPLAINED_BYTES_PER_S * 60 / MIB
    flagged: list[str] = Field(default_factory=list)

    def table(self) -> str:
        header = ("Audio", "Status", "Peak RSS", "RSS over baseline", "Peak GPU", "Speed", "WER")
        lines = markdown_header(header)
        for p in self.points:
            over = (
                f"{p.peak_rss_mb - p.baseline_rss_mb:.0f} MiB"
                if p.peak_rss_mb is not None and p.baseline_rss_mb is not None
                else "-"
            )
            cells = (
                f"{p.minutes:g} min",
                p.status if p.status == "ok" else f"{p.status}: {p.reason}",
                f"{p.peak_rss_mb:.0f} MiB" if p.peak_rss_mb is not None else "-",
                over,
                f"{p.peak_gpu_mb:.0f} MiB" if p.peak_gpu_mb is not None else "n/a",
                f"{p.speed:.1f}x" if p.speed is not None else "-",
                f"{p.wer:.1%}" if p.wer is not None else "-",
            )
            lines.append("| " + " | ".join(cells) + " |")
        growth = [f"explained growth {self.explained_mb_per_min:.1f} MiB per audio minute"]
        if self.rss_growth_mb_per_min is not None:
            growth.append(f"peak RSS grew {self.rss_growth_mb_per_min:.1f} MiB per audio minute")
        if self.gpu_growth_mb_per_min is not None:
            growth.append(f"GPU memory {self.gpu_growth_mb_per_min:.1f} MiB per audio minute")
        lines += ["", "; ".join(growth) + "."]
        lines += [f"FLAGGED: {f}" for f in self.flagged]
        return "\n".join(lines) + "\n"


def _point(minutes: float, audio_s: float, row: Row) -> LengthPoint:
    result = row.result if row.status == "ok" else None
    if result is None:
        return LengthPoint(minutes=minutes, audio_s=audio_s, status=row.status, reason=row.reason)
    return LengthPoint(
        minutes=minutes,
        audio_s=audio_s,
        status="ok",
        peak_rss_mb=result.memory.peak_rss_mb,
        baseline_rss_mb=result.memory.baseline_rss_mb,
        peak_gpu_mb=result.memory.peak_gpu_mb,
        speed=result.speed,
        wer=result.wer,
    )


def _growth(points: list[LengthPoint], field: str) -> float | None:
    """MiB per audio minute between the shortest and the longest file that ran."""
    ran = [p for p in points if getattr(p, field) is not None]
    if len(ran) < 2 or ran[-1].audio_s == ran[0].audio_s:
        return None
    rise = getattr(ran[-1], field) - getattr(ran[0], field)
    return rise / ((ran[-1].audio_s - ran[0].audio_s) / 60)


def memory_against_length(
    model: str,
    args: dict[str, Any],
    run: RunCell,
    *,
    minutes: Sequence[float] = (1, 10, 60),
    speech_engine: str = "auto",
) -> MemoryLengthStudy:
    """Run `model` with `args` (BenchArgs fields; warm-up and repeats default to 0 and 1) on
    generated speech of each duration, each in its own process through `run`."""
    points = []
    for length in sorted(minutes):
        speech = generate_speech(length * 60, engine=speech_engine)
        cell_args = {"warmup": 0, "repeats": 1, **args, "test_file": str(speech.path)}
        cell_args["reference_file"] = str(speech.reference_path)
        row = run(Cell(model=model, args=cell_args, label=f"{length:g} min"))
        points.append(_point(length, speech.duration_s, row))
    study = MemoryLengthStudy(
        model=model,
        args=args,
        points=points,
        rss_growth_mb_per_min=_growth(points, "peak_rss_mb"),
        gpu_growth_mb_per_min=_growth(points, "peak_gpu_mb"),
    )
    limit = EXPLAINED_FACTOR * study.explained_mb_per_min
    for name, growth in (("peak RSS", study.rss_growth_mb_per_min), ("GPU memory", study.gpu_growth_mb_per_min)):  # fmt: skip
        if growth is not None and growth > limit:
            study.flagged.append(
                f"{name} grows {growth:.1f} MiB per audio minute, more than {limit:.1f} "
                f"({EXPLAINED_FACTOR:g} x the {study.explained_mb_per_min:.1f} that the "
                "decoded samples and whole-file features explain)"
            )
    return study
