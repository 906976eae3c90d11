"""The load scenarios against the SageMaker-style endpoint (LOCAL=1: the local Multi Model
Server serving the packaged tiny.en; AWS_ENDPOINT=name: a deployed endpoint), and, locally,
`tbench load` against it and faster-whisper-server side by side in one table."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from transcription_benchmarks.load import Clip, LoadSettings, run_load
from transcription_benchmarks.load.targets import SageMakerTarget, TargetInfo, is_local_url
from transcription_benchmarks.serving.client import EndpointClient


def _target(endpoint: EndpointClient) -> SageMakerTarget:
    location = getattr(endpoint, "url", None) or getattr(endpoint, "endpoint", "deployed")
    local = isinstance(location, str) and is_local_url(location)
    info = TargetInfo(
        name="SageMaker-style (MMS)", kind="sagemaker", location=location, local=local
    )
    return SageMakerTarget(endpoint, info)


def test_scenarios_and_bad_input_on_the_sagemaker_style_endpoint(endpoint, jfk):
    target = _target(endpoint)
    settings = LoadSettings(requests=3, rate_rps=0.4, duration_s=6.0, bound_s=10.0)
    results = run_load(
        target, [Clip.of(jfk)], ["bad-input", "single-stream", "offline", "server"], settings
    )
    by = {r.scenario: r for r in results}
    for scenario in ("single-stream", "offline", "server"):
        f = by[scenario].figures
        assert f is not None and f.requests >= 1
        assert (f.ok, f.wrong, f.failed, f.unanswered) == (f.requests, 0, 0, 0), by[scenario]
        assert f.latency and f.latency.p50_s > 0.05
    assert by["server"].figures and by["server"].figures.bound_held
    answers = {a.label: a for a in by["bad-input"].bad_input}
    # Our handler refuses each with a 4xx naming the problem (tests/endpoint/test_endpoint.py
    # checks the messages); nothing is a 5xx and the endpoint still serves afterwards.
    assert [answers[label].status for label in ("empty", "corrupt", "oversized")] == [400, 400, 413]
    assert answers["wrong field"].status == 400 and "beams" in (
        answers["wrong field"].message or ""
    )
    assert answers["jfk.flac after them"].status == 200, answers
    assert by["bad-input"].still_serving is True
    if target.info.local:
        assert by["offline"].server_rss_before_mb and by["offline"].server_rss_after_mb
        assert by["offline"].server_processes  # the Java frontend and the Python worker


@pytest.mark.skipif(not os.environ.get("LOCAL"), reason="side by side runs on the local endpoint")
def test_tbench_load_puts_both_local_servers_in_one_table(endpoint, jfk, tmp_path):
    pytest.importorskip("faster_whisper_server", reason="the load extra is not installed")
    out = tmp_path / "load.jsonl"
    run = subprocess.run(
        [
            sys.executable, "-m", "transcription_benchmarks", "load", "local",
            "faster-whisper-server", "-s", "single-stream", "-s", "offline", "-s", "server",
            "-s", "bad-input", "--requests", "3", "--rate", "0.4", "--duration", "6",
            "--file", str(jfk), "-o", str(out),
        ],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    for name in ("SageMaker-style (MMS)", "faster-whisper-server"):
        for scenario in ("single-stream", "offline", "server"):
            assert any(
                line.startswith(f"| {name}") and f"| {scenario} |" in line
                for line in run.stdout.splitlines()
            ), (name, scenario, run.stdout)
    assert "| still serving after them | yes | yes |" in run.stdout
    assert len(out.read_text().splitlines()) == 8
