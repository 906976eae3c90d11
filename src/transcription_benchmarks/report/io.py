"""Reading a matrix JSONL file and writing every report output from it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from pydantic import ValidationError

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.matrix.rows import Row


class ResultsFileError(BenchError):
    """A results JSONL file is missing or holds a line that is not a row."""


def read_rows(path: str | Path) -> list[Row]:
    """One Row per non-empty line. A bad *last* line (a run interrupted mid-write) is skipped
    with a warning; a bad line anywhere else is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ResultsFileError(f"cannot read results file {path}: {exc.strerror or exc}") from None
    numbered = [(n, line) for n, line in enumerate(lines, 1) if line.strip()]
    rows: list[Row] = []
    for index, (number, line) in enumerate(numbered):
        try:
            rows.append(Row.model_validate_json(line))
        except ValidationError as exc:
            if index == len(numbered) - 1:
                warnings.warn(
                    f"{path}:{number}: skipping a truncated last line (interrupted run?)",
                    UserWarning,
                    stacklevel=2,
                )
                continue
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ResultsFileError(
                f"{path}:{number}: not a matrix row: {first['msg']}"
                + (f" at {where}" if where else "")
            ) from None
    return rows


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
