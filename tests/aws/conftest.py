"""AWS tests talk to moto running as a real HTTP server on 127.0.0.1, never to AWS: boto3 finds
it through AWS_ENDPOINT_URL, the same way the code under test would find any endpoint."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/moto-test-role"  # moto's fixed fake account


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(
        ip_address="127.0.0.1", port=_free_port(), verbose=False
    )
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every boto3 client in the test goes to the moto server with fake credentials; state is
    reset afterwards so tests do not see each other's endpoints and buckets."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    for var in (
        "AWS_PROFILE",
        "TRANSCRIPTION_BENCHMARKS_SAGEMAKER_ROLE",
        "TRANSCRIPTION_BENCHMARKS_S3_BUCKET",
    ):
        monkeypatch.delenv(var, raising=False)
    yield moto_endpoint
    import urllib.request

    urllib.request.urlopen(
        urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")
    ).close()


@dataclass(frozen=True)
class HandlerAnswers:
    """What the real faster-whisper handler answers (tiny.en): moto cannot run the container,
    so tests queue these bodies as the endpoint's results."""

    transcription: bytes
    not_audio: bytes
    wrong_content_type: bytes


@pytest.fixture(scope="session")
def answers(jfk: Path) -> HandlerAnswers:
    from transcription_benchmarks.models.resolve import resolve
    from transcription_benchmarks.serving import handler

    model = handler.model_fn(str(resolve("Systran/faster-whisper-tiny.en", "ctranslate2").path))

    def answer(body: bytes, content_type: str) -> bytes:
        request = handler.input_fn(body, content_type)
        return handler.output_fn(handler.predict_fn(request, model), "application/json")

    return HandlerAnswers(
        transcription=answer(jfk.read_bytes(), "audio/flac"),
        not_audio=answer(b"this is not audio" * 10, "application/octet-stream"),
        wrong_content_type=answer(b"{}", "application/json"),
    )


def queue_results(moto: str, kind: str, results: list[dict[str, Any]]) -> None:
    """Queue what moto's sagemaker-runtime answers next, over HTTP like any client would."""
    request = urllib.request.Request(
        f"{moto}/moto-api/static/sagemaker/{kind}",
        data=json.dumps({"region": REGION, "results": results}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    urllib.request.urlopen(request).close()
