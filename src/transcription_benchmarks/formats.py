"""The versions of what this package stores, the history of each, and the steps that read older
ones.

A results file is a promise: what an earlier version wrote keeps loading. Each stored object
begins with `schema_version`. Before pydantic validates it, `upgrade` brings an older object up
to date one version at a time, one small function per step (asv's `update_to_N`), and refuses a
newer one with a message that names both versions, rather than reading it half right.

History (a new version adds a line here, a step below and a frozen file under tests/data/formats):

BenchResult (`tbench bench --json`, `BenchResult.save`, the `result` inside a matrix row)
  1  2026-11  first version.
  2  2026-12  `timing` keeps the raw runs only (`runs_s`, `warmup_s`); median, mean, min, max
              and stdev are derived from them when read, so they cannot disagree with the runs.
              Step: drop the stored copies. `args` is read as the data it was recorded as, so an
              option renamed or removed later leaves old files readable (no step needed).
              `environment.cpu_flags` added: the kernel-selecting instruction-set extensions
              (None in older files: not recorded, and never taken as a difference).
              `timing.runs_j`: the GPU energy of each timed run (None where not reported).

Row (one line of a matrix results JSONL)
  1  2026-11  first version; its `result` carries its own BenchResult version.

DatasetResult (`tbench dataset --out`, one JSON line per model x dataset run)
  1  2026-12  first version.

LoadResult (`tbench load --out`, one JSON line per target x scenario)
  1  2026-12  first version.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from transcription_benchmarks.errors import BenchError

Kind = Literal["BenchResult", "Row", "DatasetResult", "LoadResult"]

CURRENT: dict[Kind, int] = {"BenchResult": 2, "Row": 1, "DatasetResult": 1, "LoadResult": 1}


class FormatVersionError(BenchError):
    """A stored object was written by a newer version of this package, or names no version
    this package can read."""


def _result_1_to_2(data: dict[str, Any]) -> dict[str, Any]:
    timing = data.get("timing")
    if not isinstance(timing, dict):
        return data  # not what version 1 wrote: left for validation to name
    derived = ("median", "mean", "min", "max", "stdev")
    return {**data, "timing": {k: v for k, v in timing.items() if k not in derived}}


_STEPS: dict[tuple[Kind, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("BenchResult", 1): _result_1_to_2,
}
"""(kind, version N) -> the function that turns version N into N + 1."""


def _package_version() -> str:
    try:
        return version("transcription-benchmarks")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "(not installed)"


def upgrade(kind: Kind, data: Any) -> Any:
    """`data` (a stored object of `kind`, parsed from JSON) at the current version; anything
    that is not a JSON object is returned as it is, for pydantic to refuse."""
    if not isinstance(data, dict):
        return data
    current = CURRENT[kind]
    # Every version wrote schema_version first: an object without it is one built in code now.
    stored = data.get("schema_version", current)
    if isinstance(stored, bool) or not isinstance(stored, int) or stored < 1:
        raise FormatVersionError(
            f"{kind} schema_version {stored!r} is not a version (a whole number from 1)"
        )
    if stored > current:
        raise FormatVersionError(
            f"{kind} schema_version {stored} was written by a newer transcription-benchmarks: "
            f"this one ({_package_version()}) reads versions 1 to {current}; upgrade it to "
            "read this file"
        )
    while stored < current:
        data = {**_STEPS[(kind, stored)](data), "schema_version": stored + 1}
        stored += 1
    return data
