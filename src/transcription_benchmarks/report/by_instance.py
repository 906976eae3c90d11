"""One matrix run on several machines, side by side: a column group per host (the instance type
for remote runs), matched by cell.

Each group is labelled with what the rows' environment fingerprints say ran there (GPU name,
driver, CUDA, library versions), so two columns that differ in more than the hardware say so.
Where a price table knows the instance type, a "$/audio h" column gives what an hour of audio
costs at the measured speed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from transcription_benchmarks.matrix.rows import Results, Row
from transcription_benchmarks.report.plots import drawn_label
from transcription_benchmarks.report.prices import PriceTable, money
from transcription_benchmarks.report.table import (
    REASON_CHARS,
    clip,
    config_label,
    markdown_header,
    megabytes,
    model_name,
    speed_text,
    status_text,
    test_file_name,
    wer_text,
)
from transcription_benchmarks.result import BenchResult

UNKNOWN_HOST = "unknown host"
DEFAULT_REGION = "us-east-1"


def host_of(row: Row) -> str:
    return row.host or UNKNOWN_HOST


def hosts(rows: list[Row]) -> list[str]:
    """Distinct hosts in order of first appearance."""
    return list(dict.fromkeys(host_of(row) for row in rows))


def rows_for_host(rows: list[Row], host: str) -> list[Row]:
    """The rows one host produced (UNKNOWN_HOST: rows without one); Results.for_host."""
    return Results(rows).for_host(None if host == UNKNOWN_HOST else host).rows


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION


def gpu_label(host: str, rows: list[Row]) -> str:
    """The GPU the fingerprints report for `host` ('2x NVIDIA A10G'), else 'CPU' when results
    exist without a GPU, else '' (nothing ran there)."""
    environments = [r.result.environment for r in rows if host_of(r) == host and r.result]
    if not environments:
        return ""
    env = environments[-1]
    if not env.gpu_name:
        return "CPU"
    return f"{env.gpu_count}x {env.gpu_name}" if env.gpu_count > 1 else env.gpu_name


def _latest(rows: list[Row]) -> tuple[list[str], dict[tuple[str, str], Row]]:
    """Cell ids in order of first appearance; each (host, cell)'s current row (rows.Results)."""
    current = Results(rows).current
    order = list(dict.fromkeys(row.cell_id for row in current))
    return order, {(host_of(row), row.cell_id): row for row in current}


def _escape(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def side_by_side_table(
    rows: list[Row], prices: PriceTable | None = None, region: str | None = None
) -> str:
    """Markdown: one line per cell, a Speed / Peak VRAM / WER (/ $ per audio hour) group per host,
    then one line per host with its environment fingerprint."""
    region = region or default_region()
    order, latest = _latest(rows)
    columns = hosts(rows)
    priced = {
        host: prices is not None and prices.hourly(host, region) is not None for host in columns
    }
    header = ["Model", "Config", "Test File"]
    for host in columns:
        name = _escape(clip(host))
        header += [f"{name} Speed", f"{name} Peak VRAM", f"{name} WER"]
        if priced[host]:
            header.append(f"{name} $/audio h")
    lines = markdown_header(header)
    for cell_id in order:
        any_row = next(latest[(h, cell_id)] for h in columns if (h, cell_id) in latest)
        values = [
            clip(model_name(any_row)),
            clip(config_label(any_row)),
            clip(test_file_name(any_row)),
        ]
        for host in columns:
            row = latest.get((host, cell_id))
            ran = row is not None and row.status == "ok" and row.result is not None
            values += [
                clip(speed_text(row), REASON_CHARS) if row is not None else "not run",
                megabytes(row.result.memory.peak_gpu_mb) if ran else "-",
                wer_text(row) if row is not None else "-",
            ]
            if priced[host]:
                cost = prices.per_audio_hour(host, region, row.result.speed) if ran else None
                values.append(money(cost, prices.currency))
        lines.append("| " + " | ".join(_escape(v) for v in values) + " |")
    lines += ["", environment_table(rows, prices, region)]
    return "\n".join(lines)


def environment_table(rows: list[Row], prices: PriceTable | None, region: str) -> str:
    """What each host ran with, from the last fingerprint it reported."""
    header = ["Host", "GPU", "Driver", "CUDA", "torch", "ctranslate2", "Price / h"]
    lines = markdown_header(header)
    for host in hosts(rows):
        results = [r.result for r in rows if host_of(r) == host and r.result is not None]
        env = results[-1].environment if results else None
        hourly = prices.hourly(host, region) if prices is not None else None
        values = [
            clip(host),
            clip(gpu_label(host, rows)) or "no results",
            (env.driver_version if env else None) or "-",
            (env.cuda_runtime if env else None) or "-",
            (env.packages.get("torch") if env else None) or "-",
            (env.packages.get("ctranslate2") if env else None) or "-",
            f"{money(hourly, prices.currency)} ({region}, as of {prices.as_of})"
            if hourly is not None and prices is not None
            else "-",
        ]
        lines.append("| " + " | ".join(_escape(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


PLOTTED_MEASURES: tuple[tuple[str, str, Callable[[BenchResult], float | None]], ...] = (
    ("speed_by_instance.png", "Speed (x real time)", lambda r: r.speed),
    ("vram_by_instance.png", "Peak VRAM (MiB, NVML)", lambda r: r.memory.peak_gpu_mb),
    ("wer_by_instance.png", "WER (%)", lambda r: None if r.wer is None else r.wer * 100),
)


def series_by_host(
    rows: list[Row], measure: Callable[[BenchResult], float | None]
) -> tuple[list[str], dict[str, list[float | str | None]]]:
    """Bar labels (one per cell) and, per host, each cell's figure, the short status of a cell
    that failed there ("OOM", "timeout"...), or None where the cell did not run there."""
    order, latest = _latest(rows)
    columns = hosts(rows)
    labels = []
    for cell_id in order:
        row = next(latest[(h, cell_id)] for h in columns if (h, cell_id) in latest)
        labels.append(f"{clip(config_label(row))}\n{clip(test_file_name(row))}")
    series: dict[str, list[float | str | None]] = {}
    for host in columns:
        series[host] = []
        for cell_id in order:
            row = latest.get((host, cell_id))
            if row is None:
                series[host].append(None)
            elif row.status == "ok" and row.result is not None:
                series[host].append(measure(row.result))
            else:
                series[host].append(status_text(row).split(":", 1)[0])
    return labels, series


def write_instance_plots(rows: list[Row], directory: Path) -> list[Path]:
    """Grouped bars, one group per cell and one bar per host: speed, peak VRAM and WER (each
    plot written only when some host has that figure)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, ylabel, measure in PLOTTED_MEASURES:
        labels, series = series_by_host(rows, measure)
        if any(isinstance(v, float | int) for vs in series.values() for v in vs):
            written.append(_grouped_bars(labels, series, ylabel, directory / name))
    return written


def _grouped_bars(
    labels: list[str], series: dict[str, list[float | str | None]], ylabel: str, path: Path
) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(6.0, 1.6 * len(labels) * max(1, len(series)) / 2), 5), dpi=110)
    figure.set_layout_engine("constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    width = 0.8 / max(1, len(series))
    for index, (host, ys) in enumerate(series.items()):
        xs = [i + (index - (len(series) - 1) / 2) * width for i in range(len(labels))]
        # A cell that did not run on a host gets no bar (not a zero bar, which would read as 0);
        # one that failed there gets its status written where the bar would stand.
        kept = [(x, y) for x, y in zip(xs, ys, strict=True) if isinstance(y, float | int)]
        color = f"C{index}"  # the host's colour, for its bars and its status labels alike
        axes.bar(
            [x for x, _ in kept], [y for _, y in kept], width=width, label=clip(host),
            color=color, zorder=3,
        )  # fmt: skip
        for x, y in zip(xs, ys, strict=True):
            if isinstance(y, str):
                axes.text(x, 0, f" {y}", rotation=90, ha="center", va="bottom", color=color)
    ticks = [drawn_label(label) for label in labels]
    axes.set_xticks(range(len(labels)), ticks, fontsize=7, parse_math=False)
    axes.set_xlim(-0.5, len(labels) - 0.5)  # every slot, bar or status label, in view
    axes.set_ylabel(ylabel)
    axes.set_title(f"{ylabel.split(' (')[0]} by instance type")
    axes.grid(True, axis="y", alpha=0.3, zorder=0)
    axes.legend(fontsize=8)
    figure.savefig(path, format="png")
    return path
