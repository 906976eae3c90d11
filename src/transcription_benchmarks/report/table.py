"""The Markdown table and the JSON summary of a matrix run's rows.

The table keeps the original project's shape, `| Model | Speed | Peak VRAM | Config | Test File |`,
and adds WER, load time, timing stability and device. A cell that did not run keeps its line and
shows why in the Speed cell ("OOM", "abort: SIGABRT", "timeout", "error: ...", "unavailable: ...").
Free text (model, label, test file, reason, device) is clipped in table cells and plot labels,
kept whole in the JSON summary.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from transcription_benchmarks.matrix.rows import Row
from transcription_benchmarks.result import describe_config

HEADER = (
    "Model",
    "Speed",
    "Peak VRAM",
    "Config",
    "Test File",
    "WER",
    "Load",
    "Stability",
    "Device",
    "GPU Energy",
)
REPORT_SCHEMA_VERSION = 1

LABEL_CHARS = 80
"""The most of a name or label (model, cell label, test file, device, host...) a table cell or
a plot shows."""
REASON_CHARS = 160
"""The most of a status with its reason ("error: ...") a table cell shows."""


def clip(text: str, limit: int = LABEL_CHARS) -> str:
    """`text` as a table cell or a plot label shows it: on one line (runs of whitespace, newlines
    included, made one space) and cut to `limit` characters, ending in an ellipsis where cut.
    Only the first few times `limit` characters are looked at, so a label of any length costs
    what a short one does (matplotlib lays out every character it is given: a 1 MB cell label
    took minutes to plot). The JSON summary keeps the whole value: that is data."""
    head = " ".join(text[: 4 * limit].split())
    if len(head) <= limit and len(text) <= 4 * limit:
        return head
    return head[: limit - 1].rstrip() + "…"


def is_synthetic(row: Row) -> bool:
    return row.synthetic_fallback or bool(row.result and row.result.model.synthetic)


def model_name(row: Row) -> str:
    """The model the cell asked for; "(synthetic weights)" when random weights ran instead."""
    return row.cell.model + (" (synthetic weights)" if is_synthetic(row) else "")


def test_file_name(row: Row) -> str:
    return PurePath(row.result.test_file if row.result else row.cell.test_file).name


def config_label(row: Row) -> str:
    """The cell's label, else a description of the effective config (or of the asked-for args)."""
    if row.cell.label:
        return row.cell.label
    if row.result is not None:
        return f"{row.result.backend}, {describe_config(row.result.config)}".rstrip(", ")
    described = describe_config(row.cell.args)
    return described or "defaults"


def status_text(row: Row) -> str:
    """What the Speed cell says for a row that did not run."""
    reason = (row.reason or "").strip()
    if row.status == "oom":
        return "OOM"
    if row.status == "timeout":
        return "timeout"
    if row.status == "abort":
        # "SIGABRT: Unable to load ..." -> "abort: SIGABRT"
        signal = reason.split(":", 1)[0].strip()
        return f"abort: {signal}" if signal else "abort"
    return f"{row.status}: {reason}" if reason else row.status


def speed_text(row: Row) -> str:
    if row.status == "ok" and row.result is not None:
        return f"{row.result.speed:.1f}x"
    return status_text(row)


def megabytes(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:.0f} MB"


def wer_text(row: Row) -> str:
    result = row.result
    if result is None or result.wer is None:
        return "-"
    return f"{result.wer:.1%}"


def stability_text(row: Row) -> str:
    if row.result is None:
        return "-"
    timing = row.result.timing
    if len(timing.runs_s) < 2:
        return "1 run"
    spread = f"±{timing.relative_stdev:.0%}"
    return f"unstable {spread}" if timing.unstable else spread


def energy_text(row: Row) -> str:
    """GPU energy per audio hour; n/a where the GPU did not report it (a CPU run, pre-Volta)."""
    if row.status != "ok" or row.result is None:
        return "-"
    energy = row.result.energy_j_per_audio_hour
    return "n/a" if energy is None else f"{energy / 1000:.1f} kJ/audio h"


def device_text(row: Row) -> str:
    if row.result is None:
        return str(row.cell.args.get("device", "-"))
    gpu = row.result.environment.gpu_name
    device = row.result.device
    return f"{device} ({gpu})" if gpu and device.startswith("cuda") else device


def table_cells(row: Row) -> list[str]:
    """The row's table line (Markdown and HTML), its free text clipped."""
    ran = row.status == "ok" and row.result is not None
    return [
        clip(model_name(row)),
        clip(speed_text(row), REASON_CHARS),
        megabytes(row.result.memory.peak_gpu_mb) if ran else "-",
        clip(config_label(row)),
        clip(test_file_name(row)),
        wer_text(row),
        f"{row.result.load_time_s:.2f} s" if ran else "-",
        stability_text(row) if ran else "-",
        clip(device_text(row)),
        energy_text(row),
    ]


def _escape(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split())


def markdown_header(header: Sequence[str]) -> list[str]:
    """A Markdown table's first two lines: the column names and the separator."""
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]


def markdown_table(rows: list[Row]) -> str:
    """One line per row, in the order given."""
    lines = markdown_header(HEADER)
    lines += ["| " + " | ".join(_escape(c) for c in table_cells(row)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def row_summary(row: Row) -> dict[str, Any]:
    """The figures a report needs from one row, flat."""
    result = row.result
    summary: dict[str, Any] = {
        "matrix": row.matrix,
        "cell_id": row.cell_id,
        "label": row.cell.label,
        "config": config_label(row),
        "model": row.cell.model,
        "ran_model": row.ran_model or (result.model.requested if result else None),
        "synthetic": is_synthetic(row),
        "test_file": test_file_name(row),
        "status": row.status,
        "reason": row.reason,
        "speed": None,
        "speed_text": speed_text(row),
        "median_s": None,
        "min_s": None,
        "max_s": None,
        "runs": None,
        "relative_stdev": None,
        "unstable": None,
        "peak_gpu_mb": None,
        "peak_rss_mb": None,
        "energy_j_per_audio_hour": None,
        "wer": None,
        "cer": None,
        "load_time_s": None,
        "device": device_text(row),
        "backend": None,
        "effective_config": None,
        "audio_duration_s": None,
        "wall_s": row.wall_s,
        "started_at": row.started_at.isoformat(),
        "host": row.host,
        "environment": None,
    }
    if result is not None:
        rates = result.quality.error_rates if result.quality else None
        summary.update(
            speed=result.speed,
            median_s=result.timing.median,
            min_s=result.timing.min,
            max_s=result.timing.max,
            runs=len(result.timing.runs_s),
            relative_stdev=result.timing.relative_stdev,
            unstable=result.timing.unstable,
            peak_gpu_mb=result.memory.peak_gpu_mb,
            peak_rss_mb=result.memory.peak_rss_mb,
            energy_j_per_audio_hour=result.energy_j_per_audio_hour,
            wer=rates.wer if rates else None,
            cer=rates.cer if rates else None,
            load_time_s=result.load_time_s,
            backend=result.backend,
            effective_config=result.config,
            audio_duration_s=result.audio_duration_s,
        )
    return summary


def json_report(rows: list[Row]) -> dict[str, Any]:
    """One summary per row, plus each distinct environment fingerprint seen (rows refer to
    theirs by index in `environments`)."""
    environments: list[dict[str, Any]] = []
    keys: list[str] = []
    summaries = []
    for row in rows:
        summary = row_summary(row)
        if row.result is not None:
            env = row.result.environment.model_dump(mode="json")
            key = json.dumps(env, sort_keys=True)
            if key not in keys:
                keys.append(key)
                environments.append(env)
            summary["environment"] = keys.index(key)
        summaries.append(summary)
    return {
        "report_schema_version": REPORT_SCHEMA_VERSION,
        "generated_at": datetime.now(UTC).isoformat(),
        "matrices": sorted({row.matrix for row in rows}),
        "rows": summaries,
        "environments": environments,
    }
