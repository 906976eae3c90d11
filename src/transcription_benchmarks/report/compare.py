"""Compare two matrix runs cell by cell: each side's current rows (matrix/rows.Results), matched
by `cell_id`. A side with rows from several hosts must be narrowed to one first (--host-a,
--host-b): which host's row to compare is never picked silently.

Noise rule for speed (asv / pytest-benchmark style, on the runs' own spread): with
ratio = speed_B / speed_A (from the medians), a change is flagged only when BOTH
  1. the two runs' timed ranges [min, max] (seconds per second of audio) do not overlap, i.e. the
     B/A ratios the runs allow, [min_A / max_B, max_A / min_B], exclude 1.0; and
  2. |ratio - 1| > 10 % (the spread the timer itself calls "unstable"), so that steady or
     single-run cells do not flag trivial differences.
A standard-deviation rule (2 sigma of the combined relative stdev) was tried first: with two or
three runs the stdev of a cold first run is huge (30 %+ here) and hid a 2x slowdown.
Where both sides have at least 5 timed runs, condition 1 is a rank test instead (Mann-Whitney
U, two-sided p < 0.05, as asv does): a change is then judged by every run's rank, not by the
two extremes alone, so one slow run on the faster side no longer hides it.
Memory is flagged above max(32 MiB, 5 %) more peak VRAM; WER on any increase (same weights and
decoding give the same text). A cell that ran in A and not in B is a regression too.

Each matched cell also lists what differs between the two results' environment fingerprints
(GPU, driver, CUDA, cuDNN, CPU and its kernel-selecting flags, Python, library versions;
measure/environment.differences), and the table marks those rows; with `strict` a comparison
across differing fingerprints is refused (pytest-benchmark's machine-info check, pyperf's
checked metadata).
"""

from __future__ import annotations

from collections import Counter
from typing import Literal

from pydantic import BaseModel, Field

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.matrix.rows import Results, Row, Status
from transcription_benchmarks.measure.environment import differences
from transcription_benchmarks.measure.timer import rank_test_p
from transcription_benchmarks.report.table import (
    REASON_CHARS,
    clip,
    config_label,
    markdown_header,
    megabytes,
    model_name,
    speed_text,
    test_file_name,
)

MIN_SPEED_CHANGE = 0.10
RANK_TEST_MIN_RUNS = 5
RANK_TEST_ALPHA = 0.05
VRAM_TOLERANCE_MB = 32.0
VRAM_TOLERANCE_FRACTION = 0.05
WER_TOLERANCE = 1e-9

Direction = Literal["slower", "faster"]


class CellComparison(BaseModel):
    cell_id: str
    model: str
    config: str
    test_file: str
    status_a: Status
    status_b: Status
    speed_a: float | None = None
    speed_b: float | None = None
    speed_ratio: float | None = None
    ratio_low: float | None = Field(None, description="lowest B/A the runs' ranges allow")
    ratio_high: float | None = Field(None, description="highest B/A the runs' ranges allow")
    rank_p: float | None = Field(
        None, description="Mann-Whitney U p-value, where both sides have enough runs"
    )
    speed_change: Direction | None = None
    peak_gpu_mb_a: float | None = None
    peak_gpu_mb_b: float | None = None
    vram_delta_mb: float | None = None
    vram_regression: bool = False
    wer_a: float | None = None
    wer_b: float | None = None
    wer_delta: float | None = None
    wer_regression: bool = False
    status_regression: bool = False
    speed_text_a: str = ""
    speed_text_b: str = ""
    environment: list[str] = Field(
        default_factory=list, description="fingerprint fields that differ, 'field: A -> B'"
    )

    @property
    def regression(self) -> bool:
        return (
            self.speed_change == "slower"
            or self.vram_regression
            or self.wer_regression
            or self.status_regression
        )

    @property
    def improvement(self) -> bool:
        return self.speed_change == "faster" or (self.status_a != "ok" and self.status_b == "ok")


class OneSided(BaseModel):
    cell_id: str
    model: str
    config: str
    test_file: str
    status: Status


class Comparison(BaseModel):
    cells: list[CellComparison]
    only_a: list[OneSided]
    only_b: list[OneSided]

    @property
    def regressions(self) -> list[CellComparison]:
        return [cell for cell in self.cells if cell.regression]

    @property
    def environment_differences(self) -> Counter[str]:
        """Each fingerprint difference and how many compared cells show it."""
        return Counter(d for cell in self.cells for d in cell.environment)


class EnvironmentMismatchError(BenchError):
    """A strict comparison of results whose environment fingerprints differ."""


def _one_sided(row: Row) -> OneSided:
    return OneSided(
        cell_id=row.cell_id,
        model=model_name(row),
        config=config_label(row),
        test_file=test_file_name(row),
        status=row.status,
    )


def _compare_cell(a: Row, b: Row) -> CellComparison:
    out = CellComparison(
        cell_id=a.cell_id,
        model=model_name(b),
        config=config_label(b),
        test_file=test_file_name(b),
        status_a=a.status,
        status_b=b.status,
        speed_text_a=speed_text(a),
        speed_text_b=speed_text(b),
        status_regression=a.status == "ok" and b.status != "ok",
    )
    ra = a.result if a.status == "ok" else None
    rb = b.result if b.status == "ok" else None
    if ra is None or rb is None:
        return out
    out.environment = differences(ra.environment, rb.environment)
    out.speed_a, out.speed_b = ra.speed, rb.speed
    out.speed_ratio = rb.speed / ra.speed
    # Seconds per second of audio, so runs on files of different length still compare.
    ta, tb = ra.timing, rb.timing
    da, db = ra.audio_duration_s, rb.audio_duration_s
    out.ratio_low = (ta.min / da) / (tb.max / db)
    out.ratio_high = (ta.max / da) / (tb.min / db)
    significant = not out.ratio_low <= 1.0 <= out.ratio_high
    if min(len(ta.runs_s), len(tb.runs_s)) >= RANK_TEST_MIN_RUNS:
        out.rank_p = rank_test_p([t / da for t in ta.runs_s], [t / db for t in tb.runs_s])
        significant = out.rank_p < RANK_TEST_ALPHA
    if significant and abs(out.speed_ratio - 1) > MIN_SPEED_CHANGE:
        out.speed_change = "slower" if out.speed_ratio < 1 else "faster"
    out.peak_gpu_mb_a, out.peak_gpu_mb_b = ra.memory.peak_gpu_mb, rb.memory.peak_gpu_mb
    if out.peak_gpu_mb_a is not None and out.peak_gpu_mb_b is not None:
        out.vram_delta_mb = out.peak_gpu_mb_b - out.peak_gpu_mb_a
        tolerance = max(VRAM_TOLERANCE_MB, VRAM_TOLERANCE_FRACTION * out.peak_gpu_mb_a)
        out.vram_regression = out.vram_delta_mb > tolerance
    out.wer_a, out.wer_b = ra.wer, rb.wer
    if out.wer_a is not None and out.wer_b is not None:
        out.wer_delta = out.wer_b - out.wer_a
        out.wer_regression = out.wer_delta > WER_TOLERANCE
    return out


def compare(
    a_rows: Results | list[Row], b_rows: Results | list[Row], *, strict: bool = False
) -> Comparison:
    """Cells of B against the same cells of A; cells in only one run are listed apart. Each
    side is read through Results (its current rows; one host). With `strict`, results whose
    environment fingerprints differ raise EnvironmentMismatchError naming the differences."""
    a = (a_rows if isinstance(a_rows, Results) else Results(a_rows, "A")).by_cell("--host-a")
    b = (b_rows if isinstance(b_rows, Results) else Results(b_rows, "B")).by_cell("--host-b")
    comparison = Comparison(
        cells=[_compare_cell(a[cid], row) for cid, row in b.items() if cid in a],
        only_a=[_one_sided(row) for cid, row in a.items() if cid not in b],
        only_b=[_one_sided(row) for cid, row in b.items() if cid not in a],
    )
    if strict and (found := comparison.environment_differences):
        raise EnvironmentMismatchError(
            "not comparing results from different environments (strict): "
            + "; ".join(f"{d} ({n} cell(s))" for d, n in found.items())
        )
    return comparison


def _flag(cell: CellComparison) -> str:
    flags = []
    if cell.status_regression:
        flags.append(f"REGRESSION: now {clip(cell.speed_text_b, REASON_CHARS)}")
    elif cell.status_a != "ok" and cell.status_b == "ok":
        flags.append("fixed: runs now")
    if cell.speed_change == "slower":
        flags.append("SLOWER")
    elif cell.speed_change == "faster":
        flags.append("faster")
    if cell.vram_regression:
        flags.append("MORE VRAM")
    if cell.wer_regression:
        flags.append("HIGHER WER")
    if not flags and cell.status_a != "ok" and cell.status_b != "ok":
        return "did not run"
    verdict = ", ".join(flags) or "ok"
    return f"{verdict} (env differs)" if cell.environment else verdict


def _signed_mb(value: float | None) -> str:
    if value is None:
        return "-"
    return ("+" if value >= 0 else "-") + megabytes(abs(value))


def format_comparison(comparison: Comparison) -> str:
    """A Markdown table of the matched cells, then the cells only one run has (free text
    clipped: the Comparison keeps it whole)."""
    header = (
        "Model",
        "Config",
        "Test File",
        "Speed A",
        "Speed B",
        "B/A",
        "Runs allow",
        "VRAM Δ",
        "WER A → B",
        "Verdict",
    )
    lines = markdown_header(header)
    for cell in comparison.cells:
        wer = (
            f"{cell.wer_a:.1%} → {cell.wer_b:.1%}"
            if cell.wer_a is not None and cell.wer_b is not None
            else "-"
        )
        values = [
            clip(cell.model),
            clip(cell.config),
            clip(cell.test_file),
            clip(cell.speed_text_a, REASON_CHARS),
            clip(cell.speed_text_b, REASON_CHARS),
            f"{cell.speed_ratio:.2f}" if cell.speed_ratio is not None else "-",
            f"{cell.ratio_low:.2f}-{cell.ratio_high:.2f}" if cell.ratio_low is not None else "-",
            _signed_mb(cell.vram_delta_mb),
            wer,
            _flag(cell),
        ]
        lines.append("| " + " | ".join(v.replace("|", "\\|") for v in values) + " |")
    if found := comparison.environment_differences:
        lines.append("\nEnvironment differences (rows marked 'env differs'; --strict refuses):")
        lines += [f"- {d} ({n} cell{'s' if n != 1 else ''})" for d, n in found.items()]
    for title, side in (("Only in A", comparison.only_a), ("Only in B", comparison.only_b)):
        if side:
            lines.append(f"\n{title}:")
            lines += [
                f"- {clip(c.model)} | {clip(c.config)} | {clip(c.test_file)} ({c.status})"
                for c in side
            ]
    count = len(comparison.regressions)
    lines.append(
        f"\n{len(comparison.cells)} cells compared, {count} regression{'s' if count != 1 else ''}"
    )
    return "\n".join(lines) + "\n"
