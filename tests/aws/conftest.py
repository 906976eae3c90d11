"""AWS tests talk to moto running as a real HTTP server on 127.0.0.1, never to AWS: boto3 finds
it through AWS_ENDPOINT_URL, the same way the code under test would find any endpoint."""

from __future__ import annotations

import socket
from collections.abc import Iterator

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
