"""One self-contained HTML page a person opens from disk: tables, plots, the environment, the
unstable and synthetic flags, and a comparison when given a second file.

Self-contained: the CSS is inline, the plots are PNGs inside the page as data: URIs, there is no
script and no link to anything outside the file, so it opens with no server and no network.
It renders what report/io.py read (matrix rows, dataset and load results) with the PNGs it drew,
so `tbench report` reads the file and draws each plot once.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from transcription_benchmarks.datasets.result import DatasetResult
from transcription_benchmarks.load.result import LoadResult
from transcription_benchmarks.matrix.rows import Row
from transcription_benchmarks.measure.environment import Environment
from transcription_benchmarks.report.datasets import (
    DATASET_HEADER,
    dataset_cells,
    front,
)
from transcription_benchmarks.report.io import read_results
from transcription_benchmarks.report.load import (
    Table,
    bad_input_table,
    capacity_table,
    compare_load,
    format_load_comparison,
    load_table,
)
from transcription_benchmarks.report.table import HEADER, clip, is_synthetic, table_cells

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #1a1a1a; max-width: 1400px; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f0f0f0; } tr.front td { background: #fff6e0; }
.flag { display: inline-block; padding: 0 0.4rem; border-radius: 0.3rem; font-size: 0.75rem; }
.unstable { background: #fde2e2; } .synthetic { background: #e2ecfd; }
img { max-width: 100%; border: 1px solid #ddd; } pre { background: #f7f7f7; padding: 0.5rem; }
.note { color: #555; font-size: 0.85rem; }
"""


def write_html_report(
    out: str | Path,
    *,
    rows: list[Row],
    results: list[DatasetResult],
    sources: Sequence[str | Path],
    loads: Sequence[LoadResult] = (),
    matrix_plots: Sequence[Path] = (),
    dataset_plots: Sequence[Path] = (),
    baseline: str | Path | None = None,
) -> Path:
    """`out` (an .html file) from the rows and dataset results of `sources`, with the PNG
    plots already drawn for them (inlined); with `baseline`, a comparison against that file's
    results."""
    out = Path(out)
    sections = [
        f"<h1>Transcription benchmark report</h1><p class='note'>{_e(', '.join(map(str, sources)))}"
        f" · written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC</p>"
    ]
    if results:
        sections.append(_dataset_section(results, dataset_plots))
    if loads:
        sections.append(_load_section(loads))
    if rows:
        sections.append(_matrix_section(rows, matrix_plots))
    if baseline is not None:
        sections.append(_comparison_section(baseline, rows, results, loads))
    environment = next(
        (r.environment for r in [*results, *loads]),
        next((r.result.environment for r in rows if r.result is not None), None),
    )
    if environment is not None:
        sections.append(_environment_section(environment))
    if not rows and not results and not loads:
        sections.append("<p>No results in these files.</p>")
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Transcription benchmark report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}</body></html>\n"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out


def _e(text: object) -> str:
    return html.escape(str(text))


def html_table(header: Sequence[str], body: Sequence[Sequence[str]], classes=None) -> str:
    """A table from text cells (escaped here). Hand-written: a few lines, where a template
    engine would be a dependency for one loop."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    lines = []
    for index, cells in enumerate(body):
        css = f" class='{classes[index]}'" if classes and classes[index] else ""
        lines.append(f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(lines)}</tbody></table>"


def _image(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<p><img src='data:image/png;base64,{data}' alt='{_e(alt)}'></p>"


def _flags(unstable: bool, synthetic: bool) -> str:
    flags = []
    if unstable:
        flags.append("<span class='flag unstable'>unstable timing</span>")
    if synthetic:
        flags.append("<span class='flag synthetic'>synthetic weights</span>")
    return " ".join(flags)


def _dataset_section(results: list[DatasetResult], plots: Sequence[Path]) -> str:
    best = {id(r) for r in front(results)}
    body = [[_e(c) for c in dataset_cells(r)] + [_flags(False, r.model.synthetic)] for r in results]
    table = html_table(
        [*DATASET_HEADER, "Flags"],
        body,
        classes=["front" if id(r) in best else "" for r in results],
    )
    details = html_table(
        ["Run", "Batching", "Decode", "Load", "Warm-up", "Transcribe", "Latency p50/p90/p99"],
        [
            [
                _e(f"{r.backend} · {r.dataset.name}"),
                _e(r.batching),
                _e(f"{r.decode_s:.1f} s"),
                _e(f"{r.load_time_s:.1f} s"),
                _e("-" if r.warmup_s is None else f"{r.warmup_s:.1f} s"),
                _e(f"{r.transcribe_s:.1f} s"),
                _e(
                    "-"
                    if r.latency is None
                    else f"{r.latency.p50_s:.2f} / {r.latency.p90_s:.2f} / {r.latency.p99_s:.2f} s"
                ),
            ]
            for r in results
        ],
    )
    images = "".join(_image(p, "WER against RTFx") for p in plots)
    boundary = results[0].timing_boundary
    return (
        "<h2>Datasets</h2><p class='note'>WER and CER are corpus rates (errors summed over "
        "utterances); RTFx is total audio seconds over total transcription seconds. Rows on "
        f"the Pareto front are shaded. Timing: {_e(boundary)}.</p>{table}"
        f"<h2>Dataset runs in detail</h2>{details}{images}"
    )


def _matrix_section(rows: list[Row], plots: Sequence[Path]) -> str:
    body = []
    for row in rows:
        unstable = bool(row.result and row.result.timing.unstable)
        body.append([_e(c) for c in table_cells(row)] + [_flags(unstable, is_synthetic(row))])
    images = "".join(_image(p, p.stem.replace("_", " ")) for p in plots)
    return f"<h2>Matrix cells</h2>{html_table([*HEADER, 'Flags'], body)}{images}"


def _load_section(loads: Sequence[LoadResult]) -> str:
    parts = ["<h2>Endpoints under load</h2>", _html(load_table(loads))]
    if (capacity := capacity_table(loads))[1]:
        parts += ["<h3>Capacity (the highest Poisson rate within the p99 bound)</h3>"]
        parts.append(_html(capacity))
    if (bad := bad_input_table(loads))[1]:
        parts += ["<h3>Bad input</h3>", _html(bad)]
    notes = [f"{r.target.name} {r.scenario}: {w}" for r in loads for w in r.warnings]
    parts += [f"<p class='note'>{_e(note)}</p>" for note in notes]
    return "".join(parts)


def _html(table: Table) -> str:
    header, body = table
    return html_table(list(header), [[_e(cell) for cell in row] for row in body])


def _comparison_section(
    baseline: str | Path,
    rows: list[Row],
    results: list[DatasetResult],
    loads: Sequence[LoadResult],
) -> str:
    from transcription_benchmarks.report.compare import compare, format_comparison

    base = read_results(baseline)
    base_rows = base.results.bench_rows
    base_results = base.all_datasets
    parts = [f"<h2>Against {_e(Path(baseline).name)}</h2>"]
    if loads and base.loads and (changes := compare_load(base.loads, loads)):
        parts.append(f"<pre>{_e(format_load_comparison(changes))}</pre>")
    if rows and base_rows:
        comparison = compare(base_rows, rows)
        parts.append(f"<pre>{_e(format_comparison(comparison))}</pre>")
    if results and base_results:

        def key(r: DatasetResult) -> tuple[str, str, str, int | None]:
            return (r.model.requested, r.backend, r.dataset.name, r.batch_size)

        before = {key(r): r for r in base_results}
        body = []
        for result in results:
            old = before.get(key(result))
            if old is None:
                continue
            model = result.model.requested
            body.append(
                [
                    _e(" · ".join(clip(t) for t in (model, result.backend, result.dataset.name))),
                    _e(f"{old.score.wer:.2%} -> {result.score.wer:.2%}"),
                    _e(f"{old.rtfx:.1f} -> {result.rtfx:.1f} ({result.rtfx / old.rtfx:.2f}x)"),
                ]
            )
        if body:
            parts.append(html_table(["Run", "WER", "RTFx"], body))
    if len(parts) == 1:
        parts.append("<p>No result in common with the baseline.</p>")
    return "".join(parts)


def _environment_section(environment: Environment) -> str:
    facts = [
        ("Python", environment.python),
        ("Platform", environment.platform),
        ("CPU", f"{environment.cpu} ({environment.cpu_count} cores)"),
        ("GPU", environment.gpu_name or "none"),
        (
            "Driver / CUDA",
            f"{environment.driver_version or '-'} / {environment.cuda_runtime or '-'}",
        ),
    ]
    facts += [(name, version or "not installed") for name, version in environment.packages.items()]
    return "<h2>Environment</h2>" + html_table(["", ""], [[_e(k), _e(v)] for k, v in facts])
