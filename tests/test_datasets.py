"""Datasets: each source on local data, runs scored like the Open ASR Leaderboard on the real
tiny.en, bad utterances named, the leaderboard-style CLI row, and the HTML report in a real
headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from transcription_benchmarks import BenchArgs
from transcription_benchmarks.audio.generate import available_engines
from transcription_benchmarks.datasets import (
    DatasetError,
    DatasetResult,
    folder_dataset,
    manifest_dataset,
    open_dataset,
    read_dataset_results,
    run_dataset,
)
from transcription_benchmarks.models import PACKAGED_ID
from transcription_benchmarks.quality.metrics import corpus_error_rates, error_rates

UTTERANCES = 16
GREEDY = BenchArgs(device="cpu", beam_size=1, temperature=0.0)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    if not available_engines():
        pytest.skip("no speech engine (piper or espeak-ng) to generate the dataset with")
    from transcription_benchmarks.datasets.generated import generated_dataset

    return generated_dataset(UTTERANCES)


def test_the_generated_dataset_is_utterances_of_2_to_20_seconds_with_exact_text(generated):
    audio = sorted(generated.glob("utt-*.flac"))
    assert len(audio) == UTTERANCES
    manifest = [
        json.loads(line) for line in (generated / "manifest.jsonl").read_text().split("\n") if line
    ]
    assert [m["audio_filepath"] for m in manifest] == [a.name for a in audio]
    assert all(2.0 <= m["duration"] <= 20.0 for m in manifest)
    for entry in manifest:
        text = (generated / entry["audio_filepath"]).with_suffix(".txt").read_text().strip()
        assert text == entry["text"] and text.endswith((".", "?", "!"))
    decoded = folder_dataset(generated).decoded()
    assert [round(d.duration_s, 3) for d in decoded] == [m["duration"] for m in manifest]


def test_a_manifest_and_a_saved_hf_dataset_read_the_same_utterances(generated, tmp_path):
    datasets = pytest.importorskip("datasets")
    folder = folder_dataset(generated).decoded(limit=4)
    # A NeMo manifest beside copies of the files, with relative paths.
    for d in folder:
        shutil.copy(d.utterance.path, tmp_path / d.utterance.path.name)
    lines = [
        json.dumps(
            {
                "audio_filepath": d.utterance.path.name,
                "duration": d.duration_s,
                "text": d.utterance.reference,
            }
        )
        for d in folder
    ]
    (tmp_path / "set.jsonl").write_text("\n".join(lines) + "\n")
    manifest = open_dataset(str(tmp_path / "set.jsonl")).decoded()
    # An HF dataset built from the same files, saved with save_to_disk.
    table = datasets.Dataset.from_dict(
        {
            "audio": [str(d.utterance.path) for d in folder],
            "text": [d.utterance.reference for d in folder],
            "id": [d.utterance.id for d in folder],
        }
    ).cast_column("audio", datasets.Audio(sampling_rate=16_000))
    table.save_to_disk(str(tmp_path / "hf"))
    saved = open_dataset(str(tmp_path / "hf"))
    assert saved.kind == "hf-disk"
    hf = saved.decoded()
    for a, b, c in zip(folder, manifest, hf, strict=True):
        assert a.utterance.reference == b.utterance.reference == c.utterance.reference
        assert (a.samples == b.samples).all() and (a.samples == c.samples).all()
    assert [u.utterance.id for u in hf] == [u.utterance.id for u in folder]


def test_limits_stop_reading_early(generated):
    assert len(folder_dataset(generated).decoded(limit=3)) == 3
    short = folder_dataset(generated).decoded(max_duration_s=20.0)
    assert sum(d.duration_s for d in short) <= 20.0 or len(short) == 1


def test_bad_utterances_are_named(generated, tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"audio_filepath": "gone.flac", "text": "x"}))
    with pytest.raises(DatasetError, match=r"utterance 'gone': audio file .*gone.flac is missing"):
        manifest_dataset(tmp_path / "a.jsonl").decoded()
    (tmp_path / "broken.flac").write_bytes(b"fLaC" + b"\0" * 100)
    (tmp_path / "b.jsonl").write_text(json.dumps({"audio_filepath": "broken.flac", "text": "x"}))
    with pytest.raises(DatasetError, match="utterance 'broken': unreadable audio"):
        manifest_dataset(tmp_path / "b.jsonl").decoded()
    (tmp_path / "c.jsonl").write_text(json.dumps({"audio_filepath": "broken.flac"}))
    with pytest.raises(DatasetError, match=r"utterance 'broken' .*has no text"):
        manifest_dataset(tmp_path / "c.jsonl").decoded()
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(next(generated.glob("utt-*.flac")), folder / "lonely.flac")
    with pytest.raises(
        DatasetError, match=r"utterance 'lonely': no transcript beside lonely\.flac"
    ):
        folder_dataset(folder).decoded()
    with pytest.raises(DatasetError, match="no dataset at"):
        open_dataset(str(tmp_path / "nothing-here"))


def test_corpus_wer_sums_errors_and_matches_kaldialign():
    references = ["the cat sat on the mat", "hello world"]
    hypotheses = ["the cat sat on a mat", "goodbye"]
    corpus = corpus_error_rates(hypotheses, references)
    # 1 substitution in 6 words, 1 substitution + 1 deletion in 2: 3 errors in 8 words.
    assert corpus.wer == pytest.approx(3 / 8)
    mean_of_utterances = (1 / 6 + 2 / 2) / 2
    assert corpus.wer != pytest.approx(mean_of_utterances)
    assert corpus.kaldialign_wer == pytest.approx(corpus.wer)
    assert (corpus.utterances, corpus.reference_words) == (2, 8)
    per = [error_rates(h, r) for h, r in zip(hypotheses, references, strict=True)]
    assert sum(p.substitutions + p.deletions + p.insertions for p in per) == 3


@pytest.fixture(scope="module")
def runs(generated) -> dict[str, DatasetResult]:
    dataset = str(generated)
    return {
        "sequential": run_dataset(PACKAGED_ID, dataset, GREEDY),
        "batched": run_dataset(PACKAGED_ID, dataset, GREEDY.model_copy(update={"batch_size": 8})),
        "transformers": run_dataset(
            PACKAGED_ID,
            dataset,
            GREEDY.model_copy(update={"backend": "transformers", "batch_size": 8}),
        ),
    }


def test_a_dataset_run_is_scored_like_the_leaderboard(runs):
    result = runs["sequential"]
    assert result.dataset.utterances == len(result.utterances) == UTTERANCES
    assert result.rtfx == pytest.approx(result.dataset.audio_s / result.transcribe_s)
    assert result.transcribe_s == pytest.approx(sum(result.batch_times_s))
    assert len(result.batch_times_s) == UTTERANCES  # one utterance at a time
    assert result.score.wer < 0.10  # tiny.en on clean generated speech
    assert result.score.kaldialign_wer == pytest.approx(result.score.wer)
    errors = sum(u.substitutions + u.deletions + u.insertions for u in result.utterances)
    words = sum(u.reference_words for u in result.utterances)
    assert result.score.wer == pytest.approx(errors / words)
    assert result.latency is not None
    assert result.latency.p50_s <= result.latency.p90_s <= result.latency.p99_s
    assert result.latency.max_s == pytest.approx(max(u.time_s for u in result.utterances))
    assert result.warmup_s is not None and result.decode_s > 0
    # Kept rows rescore to the same figures without transcribing again.
    assert result.rescore().wer == pytest.approx(result.score.wer)


def test_batched_runs_give_the_same_corpus_wer_within_a_bound(runs):
    sequential, batched = runs["sequential"], runs["batched"]
    assert batched.batch_size == 8 and len(batched.batch_times_s) == -(-UTTERANCES // 8)
    assert "sorted by duration" in batched.batching
    durations = {u.id: u.duration_s for u in batched.utterances}
    first_batch = [u.id for u in batched.utterances if u.batch == 0]
    assert min(durations[i] for i in first_batch) >= max(
        d for i, d in durations.items() if i not in first_batch
    )  # longest first
    # Same words on most utterances: batched decoding drops timestamps and conditioning.
    assert abs(batched.score.wer - sequential.score.wer) <= 0.02
    assert [u.id for u in batched.utterances] == [u.id for u in sequential.utterances]
    assert batched.latency is None  # per-utterance latency means nothing inside a batch
    assert abs(runs["transformers"].score.wer - sequential.score.wer) <= 0.02


def test_the_cli_prints_the_leaderboard_row_and_the_report_renders(runs, generated, tmp_path):
    results = tmp_path / "datasets.jsonl"
    for run in runs.values():
        run.save(results)
    assert [r.backend for r in read_dataset_results(results)] == [
        "faster-whisper",
        "faster-whisper",
        "transformers",
    ]
    done = subprocess.run(
        [
            *(sys.executable, "-m", "transcription_benchmarks", "dataset", str(generated)),
            *("-m", PACKAGED_ID, "--device", "cpu", "--beam-size", "1", "--limit", "3"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "| Model | Engine | Batching | Dataset | Utterances | Audio | WER | CER | RTFx |" in (
        done.stdout
    )
    assert "| faster-whisper | sequential |" in done.stdout and "RTFx" in done.stdout
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "transcription_benchmarks",
            "report",
            str(results),
            "-o",
            str(tmp_path / "report"),
            "--baseline",
            str(results),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert "## Datasets" in (tmp_path / "report" / "report.md").read_text()
    assert (tmp_path / "report" / "wer_vs_rtfx.png").stat().st_size > 10_000
    _check_in_chromium(tmp_path / "report" / "report.html", tmp_path / "screenshot.png")


def _check_in_chromium(page_path: Path, screenshot: Path) -> None:
    """Load the page from disk in a real headless Chromium: no console error, no request
    leaving the file, every table and image rendered, and a screenshot with content."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    playwright = pytest.importorskip("playwright.sync_api")
    text = page_path.read_text()
    assert "http://" not in text and "https://" not in text and "<script" not in text
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        problems: list[str] = []
        page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_path.as_uri())
        tables = page.eval_on_selector_all("table", "ts => ts.map(t => t.rows.length)")
        images = page.eval_on_selector_all(
            "img",
            "is => is.map(i => [i.complete, i.naturalWidth, i.getBoundingClientRect().height])",
        )
        headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    assert not problems, problems
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert len(tables) >= 3 and all(rows >= 2 for rows in tables)  # header and a row, each
    assert images and all(done and width > 0 and height > 0 for done, width, height in images)
    assert {"Datasets", "Environment"} <= set(headings)
    assert any(h.startswith("Against ") for h in headings)
    assert screenshot.stat().st_size > 20_000


def test_a_dataset_cell_runs_in_a_matrix_and_reports_apart(generated, tmp_path):
    from transcription_benchmarks.matrix.rows import Results
    from transcription_benchmarks.matrix.runner import run_cell
    from transcription_benchmarks.matrix.spec import parse_matrix
    from transcription_benchmarks.report import compare, write_report

    spec = parse_matrix(
        {
            "name": "datasets",
            "defaults": {"device": "cpu", "beam_size": 1},
            "cells": [
                {"model": PACKAGED_ID, "dataset": str(generated), "dataset_limit": 4},
                {"model": PACKAGED_ID, "test_file": "jfk.flac", "repeats": 1},
            ],
        }
    )
    dataset_cell, bench_cell = spec.cells
    assert dataset_cell.dataset == str(generated) and dataset_cell.id != bench_cell.id
    with pytest.raises(Exception, match="dataset_limit must be a positive whole number"):
        parse_matrix({"name": "x", "cells": [{"model": PACKAGED_ID, "dataset_limit": 3}]})
    out = tmp_path / "rows.jsonl"
    for cell in spec.cells:
        row = run_cell("datasets", cell)
        out.open("a").write(row.model_dump_json() + "\n")
    results = Results.read(out)
    [dataset_row] = [r for r in results.current if r.cell.dataset]
    assert dataset_row.status == "ok" and dataset_row.result is None
    assert dataset_row.dataset_result.dataset.utterances == 4
    assert [r.cell.test_file for r in results.bench_rows] == ["jfk.flac"]
    assert compare(results, results).cells  # compare reads the bench cell only
    paths = write_report(out, tmp_path / "report")
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "## Datasets" in markdown and "| jfk.flac |" in markdown
    assert {p.name for p in paths} >= {"report.html", "wer_vs_rtfx.png", "report.md"}


def test_a_dataset_reads_again_from_the_start(generated):
    dataset = folder_dataset(generated)
    first = [d.utterance.id for d in dataset.decoded(limit=2)]
    assert [d.utterance.id for d in dataset.decoded(limit=2)] == first
