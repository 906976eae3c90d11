"""Dataset results as a report: the model x dataset table in the Open ASR Leaderboard's shape
(WER, RTFx, peak memory), and WER against RTFx with the Pareto front marked."""

from __future__ import annotations

from pathlib import Path

from transcription_benchmarks.datasets.result import DatasetResult
from transcription_benchmarks.report.pareto import non_dominated
from transcription_benchmarks.report.table import clip, markdown_header

DATASET_HEADER = (
    "Model",
    "Engine",
    "Batching",
    "Dataset",
    "Utterances",
    "Audio",
    "WER",
    "CER",
    "RTFx",
    "Peak memory",
    "Device",
)


def model_label(result: DatasetResult) -> str:
    return result.model.requested + (" (synthetic weights)" if result.model.synthetic else "")


def batching_label(result: DatasetResult) -> str:
    return "sequential" if result.batch_size is None else f"batch {result.batch_size}"


def peak_memory_text(result: DatasetResult) -> str:
    if result.memory.peak_gpu_mb is not None:
        return f"{result.memory.peak_gpu_mb:.0f} MiB VRAM"
    if result.memory.peak_rss_mb is not None:
        return f"{result.memory.peak_rss_mb:.0f} MiB RSS"
    return "-"


def dataset_cells(result: DatasetResult) -> list[str]:
    """The result's table line (Markdown and HTML), its free text clipped."""
    return [
        clip(model_label(result)),
        clip(result.backend),
        batching_label(result),
        clip(result.dataset.name),
        str(result.dataset.utterances),
        f"{result.dataset.audio_s / 60:.1f} min",
        f"{result.score.wer:.2%}",
        f"{result.score.cer:.2%}",
        f"{result.rtfx:.1f}",
        peak_memory_text(result),
        clip(result.device),
    ]


def dataset_table(results: list[DatasetResult]) -> str:
    lines = markdown_header(DATASET_HEADER)
    lines += ["| " + " | ".join(dataset_cells(r)) + " |" for r in results]
    return "\n".join(lines) + "\n"


def front(results: list[DatasetResult]) -> list[DatasetResult]:
    """Per dataset, the runs no other run beats on WER while at least as fast, or on RTFx while
    at least as accurate."""
    chosen = []
    for name in dict.fromkeys(r.dataset.name for r in results):
        same = [r for r in results if r.dataset.name == name]
        chosen += non_dominated(same, lambda r: (r.score.wer, -r.rtfx))
    return chosen


def write_dataset_plots(results: list[DatasetResult], directory: Path) -> list[Path]:
    """wer_vs_rtfx.png: every run, the Pareto front (of each dataset) ringed and joined."""
    from transcription_benchmarks.report.plots import scatter_plot

    if not results:
        return []
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    points = [
        (
            r.score.wer * 100,
            r.rtfx,
            f"{clip(r.backend)} {batching_label(r)} · {clip(r.dataset.name)}",
        )
        for r in results
    ]
    best = [(r.score.wer * 100, r.rtfx) for r in front(results)]
    return [
        scatter_plot(
            points,
            xlabel="WER (%, corpus)",
            ylabel="RTFx (audio seconds per second)",
            title="Accuracy against speed: up and to the left is better",
            path=directory / "wer_vs_rtfx.png",
            min_xmax=5.0,
            front=best,
        )
    ]
