"""Reports over matrix JSONL files: Markdown and JSON tables, PNG plots, run comparison and
threshold checks. matplotlib is imported only when plots are drawn."""

from transcription_benchmarks.matrix.rows import ResultsFileError, read_rows
from transcription_benchmarks.report.compare import (
    CellComparison,
    Comparison,
    EnvironmentMismatchError,
    compare,
    format_comparison,
)
from transcription_benchmarks.report.io import write_report
from transcription_benchmarks.report.plots import write_plots
from transcription_benchmarks.report.table import json_report, markdown_table
from transcription_benchmarks.report.thresholds import (
    Thresholds,
    ThresholdsError,
    Violation,
    check_thresholds,
    load_thresholds,
)

__all__ = [
    "CellComparison",
    "Comparison",
    "EnvironmentMismatchError",
    "ResultsFileError",
    "Thresholds",
    "ThresholdsError",
    "Violation",
    "check_thresholds",
    "compare",
    "format_comparison",
    "json_report",
    "load_thresholds",
    "markdown_table",
    "read_rows",
    "write_plots",
    "write_report",
]
