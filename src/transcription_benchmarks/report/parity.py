"""Parity verdicts as a report: the file `tbench parity --json` writes, read back and rendered
as Markdown tables, one per kind (engines on the same weights; batched against sequential)."""

from __future__ import annotations

import json
from pathlib import Path, PurePath

from pydantic import TypeAdapter, ValidationError

from transcription_benchmarks.errors import BenchError, describe_validation_error
from transcription_benchmarks.report.table import markdown_header
from transcription_benchmarks.studies.engines import ParityRow

TITLES = {"engines": "Engines on the same weights", "batch": "Batched against sequential"}


class ParityFileError(BenchError):
    """A file that is not a list of parity verdicts."""


def read_parity(path: str | Path) -> list[ParityRow]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return TypeAdapter(list[ParityRow]).validate_python(data)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParityFileError(f"cannot read parity verdicts from {path}: {exc}") from exc
    except ValidationError as exc:
        raise ParityFileError(
            f"{path} is not a list of parity verdicts (tbench parity --json): "
            + describe_validation_error(exc)
        ) from None


def is_parity_file(path: str | Path) -> bool:
    """A JSON array (what `tbench parity --json` writes), not a results JSONL file."""
    path = Path(path)
    if path.suffix != ".json" or not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(64).lstrip().startswith(b"[")


def parity_table(rows: list[ParityRow]) -> str:
    """The verdicts as a Markdown table: agreement, first differing word, boundaries."""
    lines = markdown_header(
        (
            "File",
            "First",
            "Second",
            "Agreement",
            "First difference",
            "Segments",
            "Max start/end diff",
            "WER first / second",
        )
    )
    for row in rows:
        p = row.parity
        d = p.divergence
        where = "same words" if d is None else f"word {d.word_index}: '{d.left}' vs '{d.right}'"
        diffs = (
            "-"
            if p.max_start_diff_s is None
            else f"{p.max_start_diff_s:.2f} / {p.max_end_diff_s:.2f} s"
        )
        wer = " / ".join("-" if w is None else f"{w:.1%}" for w in row.wer)
        lines.append(
            f"| {PurePath(row.test_file).name} | {row.first} | {row.second} | {p.agreement:.1%} "
            f"| {where} | {p.segments[0]} / {p.segments[1]} | {diffs} | {wer} |"
        )
    return "\n".join(lines)


def parity_report(rows: list[ParityRow]) -> str:
    """A section per kind present, each with its table."""
    sections = []
    for kind, title in TITLES.items():
        if chosen := [r for r in rows if r.kind == kind]:
            sections.append(f"## {title}\n\n{parity_table(chosen)}\n")
    return "\n".join(sections)


def write_parity_report(path: str | Path, out_dir: str | Path) -> list[Path]:
    """report.md from a parity verdicts file."""
    path, out_dir = Path(path), Path(out_dir)
    rows = read_parity(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "report.md"
    markdown.write_text(f"# Parity report: {path.name}\n\n{parity_report(rows)}")
    return [markdown]
