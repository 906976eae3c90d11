"""Auto-tune on the real tiny.en with an RSS budget: the search against the grid, the budget's
ladder, the WER filter, and the group runner the screen uses (crashes included)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from transcription_benchmarks import InvalidOptionError
from transcription_benchmarks.matrix.rows import Cell, above_failed_rung, record_rung
from transcription_benchmarks.matrix.runner import run_cell, run_group
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.studies.autotune import (
    MATRIX,
    Config,
    SearchSpace,
    budget_for,
    grid,
    pareto_front,
    search,
)


def isolated(cell):
    return run_cell(MATRIX, cell)


def grouped(cells, limit):
    return run_group(MATRIX, cells, memory_limit=limit)


@pytest.fixture(scope="module")
def base(jfk):
    return {"test_file": str(jfk), "device": "cpu", "warmup": 0, "repeats": 2, "temperature": 0.0}


# faster-whisper int8 decodes tiny.en about three times as fast as transformers fp32 on a CPU:
# a gap no scheduling noise closes, so both methods must agree on the best.
TWO_ENGINES = SearchSpace(
    engines={"faster-whisper": ["int8"], "transformers": ["fp32"]},
    beam_sizes=[1],
    batch_sizes=[None],
)


def test_search_picks_the_grids_best_with_one_process_per_engine(base):
    budget = budget_for(memory_mb=64 * 1024, kind="cpu")
    exhaustive = grid(PACKAGED_ID, base, budget, TWO_ENGINES, run_cell=isolated)
    groups = []

    def counting(cells, limit):
        groups.append([cell.args["backend"] for cell in cells])
        return grouped(cells, limit)

    searched = search(
        PACKAGED_ID, base, budget, TWO_ENGINES, run_group=counting, run_cell=isolated, finalists=1
    )
    assert [p.stage for p in exhaustive.probes] == ["grid", "grid"]
    assert exhaustive.pick.config.engine == "faster-whisper"
    assert searched.pick.config == exhaustive.pick.config
    assert groups == [["faster-whisper"], ["transformers"]]  # one screening process each
    screens = [p for p in searched.probes if p.stage == "screen"]
    assert len(screens) == 2
    assert all(p.row.cell.args["repeats"] == 1 for p in screens)
    assert [p.row.cell.args["warmup"] for p in screens] == [1, 1]  # each group's first only
    confirmed = [p for p in searched.probes if p.stage == "confirm"]
    assert [p.config for p in confirmed] == [searched.pick.config]  # one finalist asked for
    assert confirmed[0].row.cell.args["repeats"] == 2  # the caller's protocol
    assert len(confirmed[0].row.result.timing.runs_s) == 2
    # Fastest first on the front; transformers, slower and heavier at the same WER, is not on it.
    assert searched.front[0].config == searched.pick.config
    assert "transformers" not in {p.config.engine for p in searched.front}
    text = searched.describe()
    assert f"pick: {searched.pick.config.label}" in text
    assert "Pareto front" in text


def test_a_budget_below_the_model_stops_each_ladder_at_its_first_rung(base):
    budget = budget_for(memory_mb=64, kind="cpu")  # tiny.en alone needs several hundred MiB
    space = SearchSpace(engines={"faster-whisper": ["int8"]}, beam_sizes=[1], batch_sizes=[1, 4])
    result = search(PACKAGED_ID, base, budget, space, run_group=grouped, run_cell=isolated)
    assert [p.config.batch_size for p in result.probes] == [1]  # batch 4 never ran
    assert result.probes[0].row.result.memory.peak_rss_mb > 64
    assert not budget.holds(result.probes[0].row)
    assert result.pick is None and result.front == []
    assert result.largest_batch_size() is None
    assert "nothing fits" in result.describe()


def test_the_wer_filter_keeps_only_configurations_near_the_best(base, short):
    """Real screens on short.flac; the tolerance then decides on the measured WERs."""
    budget = budget_for(memory_mb=64 * 1024, kind="cpu")
    space = SearchSpace(engines={"faster-whisper": ["int8"]}, beam_sizes=[1, 5], batch_sizes=[None])
    args = {**base, "test_file": str(short)}
    strict = search(
        PACKAGED_ID, args, budget, space, run_group=grouped, run_cell=isolated, wer_tolerance=0.0
    )
    screens = [p for p in strict.probes if p.stage == "screen"]
    best = min(p.wer for p in screens)
    for probe in strict.probes:
        if probe.stage == "confirm":
            assert probe.wer is not None
    assert strict.pick.wer <= best  # a zero tolerance admits only the most accurate
    worst = max(p.wer for p in screens)
    if worst > best:  # the beams disagree on this CPU: the less accurate one is never confirmed
        assert all(p.wer == best for p in strict.probes if p.stage == "confirm")


def test_pareto_front_drops_what_another_configuration_beats_on_every_axis(base):
    budget = budget_for(memory_mb=64 * 1024, kind="cpu")
    space = SearchSpace(engines={"faster-whisper": ["int8"]}, beam_sizes=[1], batch_sizes=[None])
    result = search(PACKAGED_ID, base, budget, space, run_group=grouped, run_cell=isolated)
    screen = result.probes[0]
    slower = screen.model_copy(
        update={
            "config": screen.config.model_copy(update={"beam_size": 5}),
            "row": screen.row.model_copy(
                update={
                    "result": screen.row.result.model_copy(
                        update={"timing": _slower(screen.row.result.timing)}
                    )
                }
            ),
        }
    )
    assert pareto_front([screen, slower], budget) == [screen]


def _slower(timing):
    return timing.model_copy(update={"runs_s": [run * 2 for run in timing.runs_s]})


def test_space_and_configs():
    space = SearchSpace.default(
        "cpu", ["faster-whisper", "transformers"], beam_sizes=[5, 1], batch_sizes=[8, None]
    )
    labels = [c.label for c in space.configs()]
    assert labels[:4] == [
        "faster-whisper int8, beam 1, sequential",
        "faster-whisper int8, beam 1, batch 8",
        "faster-whisper int8, beam 5, sequential",
        "faster-whisper int8, beam 5, batch 8",
    ]
    assert len(labels) == 12  # int8, float32 and fp32, two beams, two batches
    sequential_only = SearchSpace(
        engines={"openai-whisper": ["fp32"]}, beam_sizes=[1], batch_sizes=[None, 8]
    )
    assert [c.batch_size for c in sequential_only.configs()] == [None]  # it does not batch
    assert Config(engine="transformers", precision="bf16", beam_size=2).args() == {
        "backend": "transformers",
        "dtype": "bf16",
        "beam_size": 2,
        "batch_size": None,
    }
    bad = SearchSpace(engines={"faster-whisper": ["int9"]}, beam_sizes=[1], batch_sizes=[None])
    with pytest.raises(InvalidOptionError, match=r"faster-whisper int9, beam 1.*compute_type"):
        bad.check({"device": "cpu"})


def test_ladder_rungs():
    def cell(batch):
        return Cell(model="m", args={"beam_size": 1, "batch_size": batch})

    failed: dict[str, int] = {}
    record_rung(cell(8), True, failed)
    assert not above_failed_rung(cell(16), failed)
    record_rung(cell(16), False, failed)
    assert above_failed_rung(cell(24), failed)
    assert not above_failed_rung(cell(8), failed)
    assert not above_failed_rung(cell(None), failed)  # sequential is not on the ladder
    other = Cell(model="m", args={"beam_size": 5, "batch_size": 24})
    assert not above_failed_rung(other, failed)  # another ladder
    rerun = Cell(model="m", args={"beam_size": 1, "batch_size": 24, "warmup": 1, "repeats": 9})
    assert above_failed_rung(rerun, failed)  # how often a cell runs is not another ladder


def test_group_runner_survives_a_crash_and_goes_on_in_a_new_process(cells_importable):
    cells = [
        Cell(model="python:matrix_cells:raise_error", label="a"),
        Cell(model="python:matrix_cells:sigkill", label="b"),
        Cell(model="python:matrix_cells:out_of_memory", label="c"),
    ]
    rows = run_group("m", cells)
    assert [row.cell.label for row in rows] == ["a", "b", "c"]
    assert [row.status for row in rows] == ["error", "abort", "oom"]
    assert "SIGKILL" in rows[1].reason


def test_instance_types_name_their_gpu_memory():
    g4dn = budget_for("ml.g4dn.xlarge")
    assert g4dn.kind == "gpu"
    assert g4dn.memory_mb == pytest.approx(16 * 1024 * 0.9)
    assert "T4" in g4dn.source
    assert budget_for("ml.p4d.24xlarge").memory_mb == pytest.approx(40 * 1024 * 0.9)
    with pytest.raises(InvalidOptionError, match=r"unknown instance family 'ml\.x9'"):
        budget_for("ml.x9.large")


def test_cli_searches_and_prints_the_pick_and_front(jfk, tmp_path):
    out = tmp_path / "tune.jsonl"
    command = [sys.executable, "-m", "transcription_benchmarks", "autotune", PACKAGED_ID]
    command += ["--device", "cpu", "--memory-mb", "65536", "-f", str(jfk), "--out", str(out)]
    command += ["--precision", "faster-whisper=int8", "--beam-size", "1"]
    command += ["--batch-size", "0", "--batch-size", "2", "--warmup", "0", "--repeats", "1"]
    command += ["--finalists", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "largest batch size that fits: 2" in done.stdout
    assert "pick: faster-whisper int8, beam 1" in done.stdout
    assert "| Configuration | Speed | Peak MiB | WER | Confirmed |" in done.stdout
    labels = [line.split('"label":"')[1].split('"')[0] for line in out.read_text().splitlines()]
    assert labels[:2] == [
        "screen: faster-whisper int8, beam 1, sequential",
        "screen: faster-whisper int8, beam 1, batch 2",
    ]
    assert len(labels) == 3 and labels[2].startswith("confirm: ")

    bad = subprocess.run(
        [*command[:5], "--device", "cpu", "--memory-mb", "1", "--engine", "whisperx"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert "unknown backend 'whisperx'; choose one of faster-whisper, transformers" in bad.stderr
