"""PNG plots of a matrix run: speed against peak memory, speed against WER.

matplotlib draws through its Agg canvas directly (no pyplot, no global backend switch), so the
plots render on machines without a display and do not disturb a caller's own matplotlib use.
"""

from __future__ import annotations

from pathlib import Path

from transcription_benchmarks.matrix.rows import Row
from transcription_benchmarks.report.table import (
    LABEL_CHARS,
    clip,
    config_label,
    model_name,
    test_file_name,
)

LABEL_LINES = 3


def _point_label(row: Row) -> str:
    return f"{clip(model_name(row))}\n{clip(config_label(row))} · {clip(test_file_name(row))}"


def drawn_label(label: str) -> str:
    """A label as a plot draws it: at most LABEL_LINES lines (the last takes the rest), each
    clipped, so what matplotlib lays out is short whatever the label (table.clip). Callers
    draw it with parse_math=False: a '$' in a label is text, not TeX (a bad one raised)."""
    lines = label.split("\n", LABEL_LINES - 1)
    return "\n".join(clip(line, 2 * LABEL_CHARS + 3) for line in lines)


def scatter_plot(
    points: list[tuple[float, float, str]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
    path: Path,
    min_xmax: float | None = None,
    front: list[tuple[float, float]] | None = None,
) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 6.5), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    axes.scatter(xs, ys, s=45, color="tab:blue", zorder=3)
    if front:
        ordered = sorted(front)
        axes.plot(
            [x for x, _ in ordered],
            [y for _, y in ordered],
            color="tab:orange",
            linewidth=1.5,
            marker="o",
            markersize=11,
            markerfacecolor="none",
            zorder=2,
            label="Pareto front",
        )
        axes.legend(loc="upper right")
    for index, (x, y, label) in enumerate(points):
        # Alternate offsets so points at the same spot do not print over each other.
        dy = 8 if index % 2 == 0 else -22
        axes.annotate(
            drawn_label(label),
            (x, y),
            textcoords="offset points",
            xytext=(7, dy),
            fontsize=7,
            color="0.15",
            parse_math=False,
        )
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(True, alpha=0.3, zorder=0)
    axes.set_ylim(bottom=0, top=max(ys) * 1.2 if max(ys) > 0 else 1)
    axes.margins(x=0.25)
    if min_xmax is not None:  # a scale from zero, e.g. WER where every point may be 0 %
        right = max(max(xs) * 1.35, min_xmax)
        axes.set_xlim(left=-0.02 * right, right=right)  # a little room for points at 0
    figure.savefig(path, format="png")
    return path


def write_plots(rows: list[Row], directory: Path) -> list[Path]:
    """Write the plots that have data; returns their paths.

    speed_vs_memory.png: peak VRAM of the rows that ran on a GPU; when none did (a CPU run),
    peak RSS instead, and the axis says so. speed_vs_wer.png: rows with a WER."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ran = [row for row in rows if row.status == "ok" and row.result is not None]
    written: list[Path] = []

    gpu = [r for r in ran if r.result.memory.peak_gpu_mb is not None]
    if gpu:
        points = [(r.result.memory.peak_gpu_mb, r.result.speed, _point_label(r)) for r in gpu]
        xlabel, title = "Peak VRAM (MiB, NVML)", "Speed vs peak GPU memory"
    else:
        points = [(r.result.memory.peak_rss_mb, r.result.speed, _point_label(r)) for r in ran]
        xlabel = "Peak RSS (MiB, host memory: CPU run, no GPU)"
        title = "Speed vs peak host memory (CPU run)"
    if points:
        written.append(
            scatter_plot(
                points,
                xlabel=xlabel,
                ylabel="Speed (x real time)",
                title=title,
                path=directory / "speed_vs_memory.png",
            )
        )

    scored = [r for r in ran if r.result.wer is not None]
    if scored:
        written.append(
            scatter_plot(
                [(r.result.wer * 100, r.result.speed, _point_label(r)) for r in scored],
                xlabel="WER (%)",
                ylabel="Speed (x real time)",
                title="Speed vs word error rate",
                path=directory / "speed_vs_wer.png",
                min_xmax=5.0,
            )
        )
    return written
