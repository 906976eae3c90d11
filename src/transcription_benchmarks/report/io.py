"""Reading a matrix JSONL file and writing every report output from it."""

from __future__ import annotations

import json
from pathlib import Path

from transcription_benchmarks.matrix.rows import read_rows


def write_report(jsonl: str | Path, out_dir: str | Path) -> list[Path]:
    """Read `jsonl`, write report.md, report.json and the PNG plots into `out_dir`."""
    from transcription_benchmarks.report.plots import write_plots
    from transcription_benchmarks.report.table import json_report, markdown_table

    jsonl, out_dir = Path(jsonl), Path(out_dir)
    rows = read_rows(jsonl)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "report.md"
    markdown.write_text(f"# Benchmark report: {jsonl.name}\n\n{markdown_table(rows)}")
    summary = out_dir / "report.json"
    report = json_report(rows)
    report["source"] = str(jsonl)
    summary.write_text(json.dumps(report, indent=2) + "\n")
    return [markdown, summary, *write_plots(rows, out_dir)]
