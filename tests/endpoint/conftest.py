"""Which endpoint the suite runs against, chosen by the environment:

  LOCAL=1            the local endpoint: the one answering on $TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL
                     (default http://127.0.0.1:8080), else one started here from the packaged
                     tiny.en artifact (packaged, unpacked, served) and stopped afterwards
  AWS_ENDPOINT=name  a deployed SageMaker endpoint, through aws.predict.SageMakerEndpoint
  neither            the whole suite is skipped, with that reason

The tests see only serving.client.EndpointClient, so both targets run the same cases.
"""

from __future__ import annotations

import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from transcription_benchmarks.serving.client import EndpointClient, LocalEndpoint

HERE = Path(__file__).parent
SKIP_REASON = (
    "endpoint suite: set LOCAL=1 (local Multi Model Server, needs Java) or "
    "AWS_ENDPOINT=<name> (a deployed SageMaker endpoint) to run it"
)


def _target() -> str | None:
    if os.environ.get("LOCAL", "") not in ("", "0"):
        return "local"
    if os.environ.get("AWS_ENDPOINT"):
        return "aws"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _target() is not None:
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def endpoint_target() -> str:
    target = _target()
    if target is None:
        pytest.skip(SKIP_REASON)
    return target


def _local_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EndpointClient]:
    from transcription_benchmarks.serving.local import local_url, start_local_endpoint
    from transcription_benchmarks.serving.package import package

    url = local_url()
    with LocalEndpoint(url) as running:
        if running.ping() is not None:  # a server the user started: use it, leave it running
            yield running
            return
    # The real test of packaging: serve from the unpacked artifact, as SageMaker would.
    out = tmp_path_factory.mktemp("artifact")
    artifact = package("Systran/faster-whisper-tiny.en", out, "faster-whisper")
    unpacked = out / "model"
    with tarfile.open(artifact) as tar:
        tar.extractall(unpacked, filter="data")
    host, _, port = url.removeprefix("http://").partition(":")
    with (
        start_local_endpoint(unpacked, host=host, port=int(port or 80)) as server,
        LocalEndpoint(server.url) as client,
    ):
        yield client


def _aws_endpoint(name: str) -> Iterator[EndpointClient]:
    # The AWS target: aws.predict.SageMakerEndpoint speaks the same EndpointClient interface.
    from transcription_benchmarks.aws.predict import SageMakerEndpoint

    yield SageMakerEndpoint(name)


@pytest.fixture(scope="session")
def endpoint(
    endpoint_target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EndpointClient]:
    if endpoint_target == "local":
        yield from _local_endpoint(tmp_path_factory)
    else:
        yield from _aws_endpoint(os.environ["AWS_ENDPOINT"])


@pytest.fixture(scope="session")
def jfk_bytes(jfk: Path) -> bytes:
    return jfk.read_bytes()


def free_ports(count: int) -> list[int]:
    """Ports in 8081-8099 nothing listens on (MMS refuses some high ports: "Invalid port")."""
    free = []
    for candidate in range(8081, 8100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
        free.append(candidate)
        if len(free) == count:
            return free
    pytest.skip(f"no {count} free port(s) in 8081-8099")
