"""Reading a matrix JSONL file and writing every report output from it."""

from __future__ import annotations

import json
from pathlib import Path

from transcription_benchmarks.matrix.rows import Results
from transcription_benchmarks.report.prices import PriceTable


def write_report(
    jsonl: str | Path,
    out_dir: str | Path,
    *,
    prices: PriceTable | None = None,
    region: str | None = None,
) -> list[Path]:
    """Read `jsonl`, write report.md, report.json and the PNG plots into `out_dir`, from its
    current rows (rows.Results; superseded ones are counted in report.md, not shown).

    Results from more than one host (a merged remote run) also get the side-by-side table in
    report.md (priced with `prices` in `region` where it knows the instance type) and one plot
    per figure with a bar per host."""
    from transcription_benchmarks.report.by_instance import (
        hosts,
        side_by_side_table,
        write_instance_plots,
    )
    from transcription_benchmarks.report.plots import write_plots
    from transcription_benchmarks.report.table import json_report, markdown_table

    jsonl, out_dir = Path(jsonl), Path(out_dir)
    results = Results.read(jsonl)
    rows = results.current
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "report.md"
    text = f"# Benchmark report: {jsonl.name}\n\n{markdown_table(rows)}"
    if results.superseded:
        text += (
            f"\n{results.superseded} earlier row(s) of the same matrix, cell and host, "
            "superseded by a later run, are kept in the file and not shown.\n"
        )
    several = len(hosts(rows)) > 1
    if several:
        text += f"\n## By instance type\n\n{side_by_side_table(rows, prices, region)}"
    markdown.write_text(text)
    summary = out_dir / "report.json"
    report = json_report(rows)
    report["source"] = str(jsonl)
    summary.write_text(json.dumps(report, indent=2) + "\n")
    plots = write_plots(rows, out_dir)
    if several:
        plots += write_instance_plots(rows, out_dir)
    return [markdown, summary, *plots]
