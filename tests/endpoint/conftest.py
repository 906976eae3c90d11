"""Which endpoint the suite runs against, chosen by the environment:

  LOCAL=1            the local endpoint: one started here on a free port from the packaged
                     tiny.en artifact (packaged, unpacked, served) and stopped afterwards; a
                     server the user started only where it is named, in
                     $TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL (whatever else answers on a port,
                     8080 included, is never taken for it)
  AWS_ENDPOINT=name  a deployed SageMaker endpoint, through aws.predict.SageMakerEndpoint
  neither            the whole suite is skipped, with that reason

The tests see only serving.client.EndpointClient, so both targets run the same cases; the
header of the run says which endpoint it tests.
"""

from __future__ import annotations

import os
import socket
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from transcription_benchmarks.serving.client import EndpointClient, LocalEndpoint
from transcription_benchmarks.serving.local import LocalServer

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


def describe_target() -> str:
    target = _target()
    if target == "aws":
        return f"endpoint suite: the SageMaker endpoint {os.environ['AWS_ENDPOINT']}"
    if target == "local":
        from transcription_benchmarks.serving.local import ENDPOINT_URL_ENV, configured_url

        if (url := configured_url()) is not None:
            return f"endpoint suite: the server named by {ENDPOINT_URL_ENV}, {url}"
        return (
            "endpoint suite: a local endpoint started here on a free port (packaged tiny.en); "
            f"set {ENDPOINT_URL_ENV} to test a server of your own"
        )
    return f"endpoint suite: skipped ({SKIP_REASON})"


def pytest_report_header(config: pytest.Config) -> str:
    return describe_target()


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


SUITE_MEMORY_BUDGET_MB = 1024.0
"""The served artifact's memory budget per request: a small instance's share, so that the
suite sees the budget refuse audio that its limit in seconds would let in."""


def _local_endpoint(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[EndpointClient, LocalServer | None]]:
    from transcription_benchmarks.serving.config import ServingConfig
    from transcription_benchmarks.serving.local import configured_url, start_local_endpoint
    from transcription_benchmarks.serving.package import package

    if (url := configured_url()) is not None:  # the server the user named: used, left running
        with LocalEndpoint(url) as named:
            if named.ping() is None:
                pytest.exit(f"nothing answers /ping on {url}, the endpoint named for the suite")
            yield named, None
        return
    # The real test of packaging: serve from the unpacked artifact, as SageMaker would.
    out = tmp_path_factory.mktemp("artifact")
    config = ServingConfig(memory_budget_mb=SUITE_MEMORY_BUDGET_MB)
    artifact = package("Systran/faster-whisper-tiny.en", out, "faster-whisper", config=config)
    unpacked = out / "model"
    with tarfile.open(artifact) as tar:
        tar.extractall(unpacked, filter="data")
    with start_local_endpoint(unpacked) as server, LocalEndpoint(server.url) as client:
        print(f"\nendpoint suite: serving on {server.url} (log: {server.log})")
        yield client, server


def _aws_endpoint(name: str) -> Iterator[EndpointClient]:
    # The AWS target: aws.predict.SageMakerEndpoint speaks the same EndpointClient interface.
    from transcription_benchmarks.aws.predict import SageMakerEndpoint

    yield SageMakerEndpoint(name)


@pytest.fixture(scope="session")
def _served(
    endpoint_target: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[EndpointClient, LocalServer | None]]:
    if endpoint_target == "local":
        yield from _local_endpoint(tmp_path_factory)
    else:
        yield from ((client, None) for client in _aws_endpoint(os.environ["AWS_ENDPOINT"]))


@pytest.fixture(scope="session")
def endpoint(_served: tuple[EndpointClient, LocalServer | None]) -> EndpointClient:
    return _served[0]


@pytest.fixture(scope="session")
def local_server(_served: tuple[EndpointClient, LocalServer | None]) -> LocalServer:
    """The server this suite started (its processes, its run directory); tests that look inside
    the server skip against one they did not start."""
    if _served[1] is None:
        pytest.skip("looks inside the server, and this suite did not start the one it tests")
    return _served[1]


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
