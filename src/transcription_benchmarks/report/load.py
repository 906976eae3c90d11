"""Load results in reports: the one table that puts targets side by side, the capacity table
with its cost, the bad-input table, and comparing two runs' load results.

Comparison rule (no repeats to take a spread from, unlike bench cells): a figure is flagged
when it moved more than LOAD_CHANGE (20 %) the wrong way, which is above the run-to-run spread
seen for the same server here (about 10 % on p50), or when the verdict itself changed: a
server run that held its bound and no longer does, errors where there were none, a capacity
that fell by more than the search's own tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

from transcription_benchmarks.load.result import LoadResult
from transcription_benchmarks.report.prices import money
from transcription_benchmarks.report.table import clip, markdown_header

LOAD_CHANGE = 0.20

HEADER = (
    "Target",
    "Scenario",
    "Load",
    "OK / wrong / failed",
    "p50",
    "p90",
    "p99",
    "Throughput",
    "Audio s/s",
    "Bound",
    "Server RSS",
)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def _load(result: LoadResult) -> str:
    settings = result.settings
    if result.scenario == "single-stream":
        return f"{settings.get('requests')} requests, one at a time"
    if result.scenario == "offline":
        in_flight = settings.get("concurrency") or settings.get("requests")
        return f"{settings.get('requests')} requests at once ({in_flight} in flight)"
    if result.scenario == "server":
        return f"Poisson {settings.get('rate_rps', 0):.3g} rps for {settings.get('duration_s')} s"
    capacity = result.capacity
    if capacity is None or capacity.sustained_rps is None:
        return "capacity: no rate held"
    return f"capacity: {capacity.sustained_rps:.3g} rps held ({len(capacity.trials)} trials)"


def _bound(result: LoadResult) -> str:
    figures = result.figures
    if figures is None or figures.bound_s is None:
        return "-"
    verdict = "held" if figures.bound_held else "NOT held"
    return f"p99 <= {figures.bound_s:g} s: {verdict}"


def _rss(result: LoadResult) -> str:
    before, after = result.server_rss_before_mb, result.server_rss_after_mb
    if before is None or after is None:
        return "-"
    return f"{before:.0f} → {after:.0f} MiB"


def _target(result: LoadResult) -> str:
    model = f" ({clip(result.target.model)})" if result.target.model else ""
    return f"{clip(result.target.name)}{model}"


Table = tuple[Sequence[str], list[list[str]]]
"""A header and its rows of cells: Markdown and HTML render the same table."""


def markdown(table: Table) -> str:
    header, body = table
    lines = markdown_header(tuple(header))
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def load_table(results: Sequence[LoadResult]) -> Table:
    """One line per target and scenario: what a user compares across servers."""
    body = []
    for result in results:
        figures = result.figures
        if result.scenario == "bad-input":
            continue
        if figures is None:
            values = [_target(result), result.scenario, _load(result)] + ["-"] * 8
        else:
            latency = figures.latency
            counts = f"{figures.ok} / {figures.wrong} / {figures.failed + figures.unanswered}"
            values = [
                _target(result),
                result.scenario,
                _load(result),
                counts,
                _seconds(latency and latency.p50_s),
                _seconds(latency and latency.p90_s),
                _seconds(latency and latency.p99_s),
                f"{figures.throughput_rps:.2f} req/s",
                f"{figures.audio_s_per_s:.1f}",
                _bound(result),
                _rss(result),
            ]
        body.append(values)
    return HEADER, body


def capacity_table(results: Sequence[LoadResult]) -> Table:
    """The capacity searches: sustained rate, audio hours per hour, cost."""
    found = [r for r in results if r.capacity is not None]
    header = (
        "Target",
        "p99 bound",
        "Sustained",
        "Lowest failed",
        "Audio h per h",
        "Converged",
        "Instance",
        "$ / audio h",
        "For the daily volume",
    )
    body = []
    for result in found:
        capacity = result.capacity
        assert capacity is not None
        price = capacity.cost
        volume = "-"
        if price is not None and price.instances is not None:
            volume = (
                f"{price.daily_audio_hours:g} h/day (peak x{price.peak_to_average:g}): "
                f"{price.instances} instance(s), {money(price.daily_cost, price.currency)}/day, "
                f"{money(price.per_audio_hour_at_volume, price.currency)} / audio h"
            )
        values = [
            _target(result),
            f"{capacity.bound_s:g} s",
            f"{capacity.sustained_rps:.3g} rps" if capacity.sustained_rps else "none held",
            f"{capacity.lowest_failed_rps:.3g} rps" if capacity.lowest_failed_rps else "-",
            f"{capacity.audio_s_per_s:.1f}" if capacity.audio_s_per_s else "-",
            "yes" if capacity.converged else f"no ({len(capacity.trials)} trials)",
            f"{price.instance_type} ({price.region}, {price.prices_as_of})" if price else "-",
            money(price.per_audio_hour, price.currency) if price else "-",
            volume,
        ]
        body.append(values)
    return header, body


def bad_input_table(results: Sequence[LoadResult]) -> Table:
    """What each target answered to each bad request, side by side."""
    probed = [r for r in results if r.scenario == "bad-input"]
    labels = list(dict.fromkeys(a.label for r in probed for a in r.bad_input))
    body = []
    for label in labels:
        cells = []
        for result in probed:
            answer = next((a for a in result.bad_input if a.label == label), None)
            if answer is None:
                cells.append("-")
                continue
            status = "no answer" if answer.status == 0 else str(answer.status)
            message = (answer.message or "")[:120]
            cells.append(f"{status}: {message}" if message else status)
        body.append([label, *cells])
    if probed:
        body.append(
            ["still serving after them", *("yes" if r.still_serving else "NO" for r in probed)]
        )
    return ("Bad input", *[_target(r) for r in probed]), body


def load_report(results: Sequence[LoadResult]) -> str:
    """The Markdown section: the table, then capacity and bad input where present."""
    text = markdown(load_table(results))
    if (capacity := capacity_table(results))[1]:
        text += "\nCapacity (the highest Poisson rate within the p99 bound):\n\n"
        text += markdown(capacity)
    if (bad := bad_input_table(results))[1]:
        text += f"\nBad input:\n\n{markdown(bad)}"
    warnings = [f"- {_target(r)} {r.scenario}: {w}" for r in results for w in r.warnings]
    if warnings:
        text += "\nWarnings:\n" + "\n".join(warnings) + "\n"
    return text


class LoadChange(BaseModel):
    """One load result of B against the same key in A."""

    key: list[str]
    changes: list[str] = Field(default_factory=list, description="what moved the wrong way")
    improvements: list[str] = Field(default_factory=list)

    @property
    def regression(self) -> bool:
        return bool(self.changes)


def _worse(name: str, a: float | None, b: float | None, higher_is_worse: bool) -> str | None:
    if a is None or b is None or a <= 0:
        return None
    ratio = b / a
    if (ratio > 1 + LOAD_CHANGE) if higher_is_worse else (ratio < 1 - LOAD_CHANGE):
        return f"{name} {a:.3g} → {b:.3g} ({ratio:.2f}x)"
    return None


def _better(name: str, a: float | None, b: float | None, higher_is_worse: bool) -> str | None:
    return _worse(name, b, a, higher_is_worse)


def compare_load(a: Sequence[LoadResult], b: Sequence[LoadResult]) -> list[LoadChange]:
    """B's load results against A's with the same key (the last of each key on each side)."""
    latest_a = {r.key: r for r in a}
    out = []
    for key, result in {r.key: r for r in b}.items():
        base = latest_a.get(key)
        if base is None:
            continue
        change = LoadChange(key=list(key))
        fa, fb = base.figures, result.figures
        pairs: list[tuple[str, float | None, float | None, bool]] = []
        if fa is not None and fb is not None:
            pairs = [
                ("p50", fa.latency and fa.latency.p50_s, fb.latency and fb.latency.p50_s, True),
                ("p99", fa.latency and fa.latency.p99_s, fb.latency and fb.latency.p99_s, True),
                ("throughput", fa.throughput_rps, fb.throughput_rps, False),
            ]
            if fb.errors > fa.errors:
                change.changes.append(f"errors {fa.errors} → {fb.errors}")
            if fa.bound_held and fb.bound_held is False:
                change.changes.append("the p99 bound no longer holds")
        if base.capacity is not None and result.capacity is not None:
            tolerance = result.settings.get("tolerance", LOAD_CHANGE)
            ca, cb = base.capacity.sustained_rps or 0.0, result.capacity.sustained_rps or 0.0
            if ca > 0 and cb < ca * (1 - max(tolerance, LOAD_CHANGE)):
                change.changes.append(f"capacity {ca:.3g} → {cb:.3g} rps")
            elif ca > 0 and cb > ca * (1 + max(tolerance, LOAD_CHANGE)):
                change.improvements.append(f"capacity {ca:.3g} → {cb:.3g} rps")
        for name, va, vb, higher in pairs:
            if (worse := _worse(name, va, vb, higher)) is not None:
                change.changes.append(worse)
            elif (better := _better(name, va, vb, higher)) is not None:
                change.improvements.append(better)
        out.append(change)
    return out


def format_load_comparison(changes: Sequence[LoadChange]) -> str:
    if not changes:
        return ""
    lines = markdown_header(("Target", "Scenario", "Verdict"))
    for change in changes:
        verdict = "; ".join(change.changes) or "ok"
        if change.improvements:
            verdict += " (better: " + "; ".join(change.improvements) + ")"
        lines.append(f"| {change.key[0]} | {' '.join(change.key[2:])} | {verdict} |")
    count = sum(c.regression for c in changes)
    lines.append(f"\n{len(changes)} load results compared, {count} regression(s)")
    return "\n".join(lines) + "\n"


def load_json(results: Sequence[LoadResult]) -> list[dict]:
    """report.json's summary of each load result (the results file keeps every request)."""
    out = []
    for result in results:
        figures, capacity = result.figures, result.capacity
        latency = figures.latency if figures else None
        out.append(
            {
                "target": result.target.name,
                "location": result.target.location,
                "model": result.target.model,
                "scenario": result.scenario,
                "settings": result.settings,
                "requests": figures.requests if figures else None,
                "ok": figures.ok if figures else None,
                "errors": figures.errors if figures else None,
                "p50_s": latency.p50_s if latency else None,
                "p99_s": latency.p99_s if latency else None,
                "throughput_rps": figures.throughput_rps if figures else None,
                "audio_s_per_s": figures.audio_s_per_s if figures else None,
                "bound_held": figures.bound_held if figures else None,
                "sustained_rps": capacity.sustained_rps if capacity else None,
                "per_audio_hour": capacity.cost.per_audio_hour
                if capacity and capacity.cost
                else None,
                "server_rss_before_mb": result.server_rss_before_mb,
                "server_rss_after_mb": result.server_rss_after_mb,
                "bad_input": [a.model_dump() for a in result.bad_input],
            }
        )
    return out
