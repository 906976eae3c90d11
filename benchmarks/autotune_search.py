"""Auto-tune's search against the exhaustive grid, side by side in one run.

The grid times every configuration of the search space with the full protocol, each in its
own process; the search screens them once and confirms a few (studies/autotune.py). Figures:
- cost: the search's wall time / the grid's (goal <= 0.40);
- quality: the speed of the configuration the search picked / the speed of the grid's best
  admissible one (goal >= 0.95: within noise of the best), first as the grid measured both,
  then measured again side by side (`--rounds` interleaved pairs of full-protocol cells, ratio
  of the medians), since two grid cells minutes apart differ by scheduling noise alone.
Default space on CPU with the packaged tiny.en: faster-whisper int8/float32 and transformers
fp32, beam 1 and 5, sequential and batch 4 and 8 (18 configurations), warm-up 1 + 3 repeats.

    python benchmarks/autotune_search.py [--file 1min.flac] [--budget-mb 2048] [--finalists 3]
"""

from __future__ import annotations

import argparse
import statistics

from transcription_benchmarks.matrix.runner import run_cell, run_group
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.studies.autotune import (
    MATRIX,
    SearchSpace,
    TuneResult,
    budget_for,
    cell_for,
    grid,
    search,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file", default="1min.flac")
    parser.add_argument("--screen-file", default=None)
    parser.add_argument("--budget-mb", type=float, default=2048)
    parser.add_argument("--wer-tolerance", type=float, default=0.01)
    parser.add_argument("--finalists", type=int, default=3)
    parser.add_argument("--grid-first", action="store_true", help="run the grid before the search")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of a full protocol")
    parser.add_argument("--rounds", type=int, default=3, help="side-by-side pairs at the end")
    opts = parser.parse_args()

    base = {
        "test_file": opts.file,
        "device": "cpu",
        "warmup": 1,
        "repeats": opts.repeats,
        "temperature": 0.0,
    }
    budget = budget_for(memory_mb=opts.budget_mb, kind="cpu")
    space = SearchSpace.default("cpu")

    def run_search() -> TuneResult:
        return search(
            PACKAGED_ID,
            base,
            budget,
            space,
            run_group=lambda cells, limit: run_group(MATRIX, cells, memory_limit=limit),
            run_cell=lambda cell: run_cell(MATRIX, cell),
            wer_tolerance=opts.wer_tolerance,
            finalists=opts.finalists,
            screen_file=opts.screen_file,
        )

    def run_grid() -> TuneResult:
        return grid(
            PACKAGED_ID,
            base,
            budget,
            space,
            run_cell=lambda cell: run_cell(MATRIX, cell),
            wer_tolerance=opts.wer_tolerance,
        )

    if opts.grid_first:
        exhaustive = run_grid()
        searched = run_search()
    else:
        searched = run_search()
        exhaustive = run_grid()
    print(exhaustive.describe(), end="\n\n")
    print(searched.describe(), end="\n\n")

    print("| Configuration | Screen | Confirmed | Grid |")
    print("|---|---|---|---|")
    for probe in exhaustive.probes:
        speeds = [
            next(
                (p.speed for p in searched.probes if p.config == probe.config and p.stage == s),
                None,
            )
            for s in ("screen", "confirm")
        ]
        cells = [f"{v:.1f}x" if v else "-" for v in (*speeds, probe.speed)]
        print(f"| {probe.config.label} | {' | '.join(cells)} |")
    print()

    best, pick = exhaustive.pick, searched.pick
    if best is None or pick is None:
        print("no admissible configuration: nothing to compare")
        return
    in_grid = next(p for p in exhaustive.probes if p.config == pick.config)
    side_by_side = None
    if pick.config != best.config:
        ratios: dict[str, list[float]] = {"pick": [], "best": []}
        for _ in range(opts.rounds):
            for name, config in (("pick", pick.config), ("best", best.config)):
                row = run_cell(MATRIX, cell_for(PACKAGED_ID, base, config, "side by side"))
                ratios[name].append(row.result.speed if row.result else 0.0)
        side_by_side = statistics.median(ratios["pick"]) / statistics.median(ratios["best"])
        print(f"side by side, {opts.rounds} rounds: pick {ratios['pick']}, best {ratios['best']}")
    print(
        f"grid:   {len(exhaustive.probes)} probes, {exhaustive.wall_s:.0f} s; best admissible "
        f"{best.config.label} at {best.speed:.2f}x"
    )
    print(
        f"search: {len(searched.probes)} probes, {searched.wall_s:.0f} s; pick "
        f"{pick.config.label}, confirmed at {pick.speed:.2f}x, "
        f"{in_grid.speed or 0:.2f}x in the grid"
    )
    print(
        f"cost:    search / grid wall time = {searched.wall_s / exhaustive.wall_s:.2f} "
        "(goal <= 0.40)"
    )
    print(
        f"quality: pick's grid speed / grid best = {(in_grid.speed or 0) / best.speed:.3f} "
        "(goal >= 0.95)"
    )
    print(f"         pick's confirmed speed / grid best = {pick.speed / best.speed:.3f}")
    if side_by_side is None:
        print("         the pick is the grid's best configuration: ratio 1 by identity")
    else:
        print(f"         side by side, median pick / median best = {side_by_side:.3f}")


if __name__ == "__main__":
    main()
