"""Auto-tune on the real tiny.en with an RSS budget: every probe is an isolated cell."""

from __future__ import annotations

import subprocess
import sys

import pytest

from transcription_benchmarks import InvalidOptionError
from transcription_benchmarks.matrix.autotune import autotune, budget_for, fits
from transcription_benchmarks.matrix.runner import run_cell
from transcription_benchmarks.models import PACKAGED_ID


def run(cell):
    return run_cell("autotune-test", cell)


@pytest.fixture(scope="module")
def base(jfk):
    return {"test_file": str(jfk), "device": "cpu", "warmup": 0, "repeats": 1, "temperature": 0.0}


def test_generous_budget_fits_every_batch_size_and_picks_the_fastest(base):
    budget = budget_for(memory_mb=64 * 1024, kind="cpu")
    result = autotune(PACKAGED_ID, base, budget, run, batch_sizes=(1, 4))
    assert result.largest_batch_size == 4
    assert [p.cell.args["batch_size"] for p in result.probes] == [1, 4, 1, 4]
    assert all(p.status == "ok" for p in result.probes)
    fastest = result.fastest
    best_wer = min(p.result.wer for p in result.probes)
    assert fastest.result.wer <= best_wer + result.wer_tolerance
    assert fastest.result.speed == max(
        p.result.speed for p in result.probes if p.result.wer <= best_wer + result.wer_tolerance
    )
    assert "largest batch size that fits 4" in result.describe()


def test_budget_below_the_model_fits_nothing(base):
    # tiny.en alone needs several hundred MiB of RSS: 64 MiB cannot hold it.
    budget = budget_for(memory_mb=64, kind="cpu")
    result = autotune(PACKAGED_ID, base, budget, run, batch_sizes=(1, 4))
    assert result.largest_batch_size is None
    assert len(result.probes) == 1  # the search stops at the first size that does not fit
    assert not fits(result.probes[0], budget)
    assert result.probes[0].result.memory.peak_rss_mb > 64
    assert "nothing fits" in result.describe()


def test_instance_types_name_their_gpu_memory():
    g4dn = budget_for("ml.g4dn.xlarge")
    assert g4dn.kind == "gpu"
    assert g4dn.memory_mb == pytest.approx(16 * 1024 * 0.9)
    assert "T4" in g4dn.source
    assert budget_for("ml.p4d.24xlarge").memory_mb == pytest.approx(40 * 1024 * 0.9)
    with pytest.raises(InvalidOptionError, match=r"unknown instance family 'ml\.x9'"):
        budget_for("ml.x9.large")


def test_cli_reports_the_tuned_batch_size(jfk, tmp_path):
    out = tmp_path / "tune.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "transcription_benchmarks",
            "autotune",
            PACKAGED_ID,
            "--device",
            "cpu",
            "--memory-mb",
            "65536",
            "-f",
            str(jfk),
            "--batch-size",
            "2",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "largest batch size that fits 2" in done.stdout
    assert len(out.read_text().splitlines()) == 2  # beam 1 and beam 5 at batch 2
