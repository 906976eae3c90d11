"""Reading a results JSONL file and writing every report output from it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from transcription_benchmarks.datasets.result import DatasetResult
from transcription_benchmarks.errors import describe_validation_error
from transcription_benchmarks.load.result import LoadResult
from transcription_benchmarks.matrix.rows import Results, ResultsFileError, Row
from transcription_benchmarks.report.prices import PriceTable


@dataclass(frozen=True)
class ResultsFile:
    """What one results file holds: matrix rows (through Results: current rows, one identity),
    dataset results (`tbench dataset --out`) and load results (`tbench load --out`)."""

    results: Results
    datasets: list[DatasetResult] = field(default_factory=list)
    loads: list[LoadResult] = field(default_factory=list)

    @property
    def all_datasets(self) -> list[DatasetResult]:
        """Dataset results written on their own and those of a matrix's dataset cells."""
        return self.datasets + self.results.dataset_results


KINDS = {"dataset": DatasetResult, "load": LoadResult}
"""The `kind` a stored object names -> its type; an object without one is a matrix row."""


def read_results(path: str | Path) -> ResultsFile:
    """A results JSONL file's matrix rows, dataset results and load results, told apart by
    `kind`; a file may hold all three."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ResultsFileError(f"cannot read {path}: {exc}") from exc
    compact = (line.replace(" ", "") for line in lines)
    if not any(f'"kind":"{kind}"' in line for line in compact for kind in KINDS):
        return ResultsFile(Results.read(path))  # a matrix file, read with its torn-tail handling
    rows: list[Row] = []
    found: dict[str, list] = {kind: [] for kind in KINDS}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            kind = json.loads(line).get("kind")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ResultsFileError(f"{path} line {number} is not a JSON object: {exc}") from None
        try:
            if kind in KINDS:
                found[kind].append(KINDS[kind].model_validate_json(line))
            else:
                rows.append(Row.model_validate_json(line))
        except ValidationError as exc:
            what = f"a {kind} result" if kind in KINDS else "a matrix row"
            raise ResultsFileError(
                f"{path} line {number} is not {what}: {describe_validation_error(exc)}"
            ) from None
    return ResultsFile(Results(rows, source=str(path)), found["dataset"], found["load"])


def write_report(
    jsonl: str | Path,
    out_dir: str | Path,
    *,
    prices: PriceTable | None = None,
    region: str | None = None,
    baseline: str | Path | None = None,
) -> list[Path]:
    """Read `jsonl`, write report.md, report.json, the PNG plots and report.html (one
    self-contained page; compared against `baseline` when given) into `out_dir`, from its
    current rows (rows.Results; superseded ones are counted in report.md, not shown) and its
    dataset results.

    Results from more than one host (a merged remote run) also get the side-by-side table in
    report.md (priced with `prices` in `region` where it knows the instance type) and one plot
    per figure with a bar per host."""
    from transcription_benchmarks.report.by_instance import (
        hosts,
        side_by_side_table,
        write_instance_plots,
    )
    from transcription_benchmarks.report.datasets import dataset_table, write_dataset_plots
    from transcription_benchmarks.report.html import write_html_report
    from transcription_benchmarks.report.load import load_json, load_report
    from transcription_benchmarks.report.plots import write_plots
    from transcription_benchmarks.report.table import json_report, markdown_table

    jsonl, out_dir = Path(jsonl), Path(out_dir)
    read = read_results(jsonl)
    results, datasets, loads = read.results, read.all_datasets, read.loads
    rows = results.bench_rows
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "report.md"
    text = f"# Benchmark report: {jsonl.name}\n\n"
    if datasets:
        text += f"## Datasets\n\n{dataset_table(datasets)}\n"
    if loads:
        text += f"## Endpoints under load\n\n{load_report(loads)}\n"
    if rows or not (datasets or loads):
        text += markdown_table(rows)
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
    if datasets:
        report["datasets"] = [
            {
                "model": d.model.requested,
                "backend": d.backend,
                "dataset": d.dataset.name,
                "batch_size": d.batch_size,
                "utterances": d.dataset.utterances,
                "audio_s": d.dataset.audio_s,
                "wer": d.score.wer,
                "cer": d.score.cer,
                "rtfx": d.rtfx,
                "peak_gpu_mb": d.memory.peak_gpu_mb,
                "peak_rss_mb": d.memory.peak_rss_mb,
                "synthetic": d.model.synthetic,
            }
            for d in datasets
        ]
    if loads:
        report["loads"] = load_json(loads)
    summary.write_text(json.dumps(report, indent=2) + "\n")
    plots = write_plots(rows, out_dir)
    if several:
        plots += write_instance_plots(rows, out_dir)
    dataset_plots = write_dataset_plots(datasets, out_dir)
    page = write_html_report(
        out_dir / "report.html",
        rows=rows,
        results=datasets,
        loads=loads,
        sources=[jsonl],
        matrix_plots=plots,
        dataset_plots=dataset_plots,
        baseline=baseline,
    )
    return [markdown, summary, *plots, *dataset_plots, page]
