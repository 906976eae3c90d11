"""The local launcher itself (LOCAL=1 only, like the rest of this directory): where it binds,
that stop() ends every process it started, and that a handler whose model_fn fails is reported
instead of being called ready (MMS's /ping stays Healthy in that case)."""

from __future__ import annotations

import re

import psutil
import pytest
from tests.endpoint.conftest import free_ports

from transcription_benchmarks.serving.client import LocalEndpoint, predict
from transcription_benchmarks.serving.config import ServingConfig
from transcription_benchmarks.serving.local import LocalEndpointError, start_local_endpoint
from transcription_benchmarks.serving.protocol import ErrorBody

JFK_TEXT = "ask not what your country can do for you"


@pytest.fixture
def port(endpoint_target: str) -> int:
    if endpoint_target != "local":
        pytest.skip("tests of the local launcher")
    return free_ports(1)[0]


def test_serves_on_loopback_and_stops_every_process(port, jfk):
    with start_local_endpoint("tiny.en", port=port) as server:
        properties = (server.run_dir / "mms.properties").read_text()
        # MMS on unix sockets alone; the port is the front's, on loopback
        assert f"inference_address=unix:{server.run_dir}/inference.sock" in properties
        assert f"management_address=unix:{server.run_dir}/management.sock" in properties
        assert "http://" not in properties
        assert server.url == f"http://127.0.0.1:{port}"
        group = [
            p for p in psutil.process_iter(["pid"]) if _pgid(p.info["pid"]) == server.process.pid
        ]
        assert any("java" in " ".join(p.cmdline()) for p in group)  # MMS's frontend
        with LocalEndpoint(server.url) as client:
            assert client.healthy()
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in group)
    with LocalEndpoint(server.url) as client:
        assert client.ping() is None


def test_a_failing_model_fn_is_reported_with_the_log(port):
    if _cuda_available():
        pytest.skip("device=cuda loads here; the failure needs a machine without CUDA")
    with pytest.raises(LocalEndpointError, match="handler does not serve") as raised:
        start_local_endpoint("tiny.en", port=port, config=ServingConfig(device="cuda"))
    assert "CUDA" in str(raised.value)


def test_transformers_artifact_serves_in_the_container_stack(port, jfk_bytes):
    # The container's transformers (4.51) loading our transformers-5-written tiny.en copy, as
    # package.stage rewrites it: chunked and batched, then a refusal, then served again.
    with (
        start_local_endpoint("tiny.en", backend="transformers", port=port) as server,
        LocalEndpoint(server.url) as client,
    ):
        params = {"chunk_length_s": 10, "batch_size": 2, "return_timestamps": True}
        segments, info = predict(client, jfk_bytes, params)
        assert info.backend == "transformers"
        assert len(segments) >= 2 and segments[-1].end <= info.duration + 0.5
        assert JFK_TEXT in _words(" ".join(s.text for s in segments))
        refused = client.invoke(jfk_bytes, params={"language": "de"})
        assert refused.status == 400
        assert "English-only" in ErrorBody.model_validate_json(refused.body).message
        segments, _ = predict(client, jfk_bytes)
        assert JFK_TEXT in _words(segments[0].text)


def test_nemo_artifact_serves_in_the_container_stack(port, jfk_bytes):
    # NeMo beside the container's transformers 4.51, through the one handler: a synthetic
    # parakeet-TDT (fixed work: one token every 4 encoder frames, 35 for jfk.flac's 11 s).
    with (
        start_local_endpoint("synthetic:parakeet-tdt-tiny", backend="nemo", port=port) as server,
        LocalEndpoint(server.url) as client,
    ):
        segments, info = predict(client, jfk_bytes)
        assert info.backend == "nemo" and info.pipeline == "EncDecRNNTBPEModel.transcribe"
        assert sum(len(s.tokens) for s in segments) == 35
        assert info.duration == pytest.approx(11.0, abs=0.05)
        refused = client.invoke(jfk_bytes, params={"task": "translate"})
        assert refused.status == 400
        assert "cannot translate" in ErrorBody.model_validate_json(refused.body).message
        segments, info = predict(client, jfk_bytes, {"word_timestamps": True})
        assert info.options["timestamps"] is True and segments[0].start >= 0.0


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def _pgid(pid: int) -> int | None:
    import os

    try:
        return os.getpgid(pid)
    except OSError:
        return None


def _cuda_available() -> bool:
    import ctranslate2

    return ctranslate2.get_cuda_device_count() > 0
