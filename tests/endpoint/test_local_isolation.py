"""Items 2, 6 and 7 of the hardening issue on real local servers (LOCAL=1 only): two endpoints
on one machine keep their own workers through a worker restart and through the other's end;
a request past the response timeout ends its worker, three times, and the worker count and
latency come back; SIGTERM to `tbench serve-local` leaves no process and a free port."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from tests.endpoint.conftest import free_ports

from transcription_benchmarks.serving.client import LocalEndpoint, predict
from transcription_benchmarks.serving.config import RequestLimits, ServingConfig
from transcription_benchmarks.serving.local import start_local_endpoint
from transcription_benchmarks.serving.protocol import ErrorBody, error_message

JFK_TEXT = "ask not what your country can do for you"
RESPONSE_TIMEOUT_S = 20  # MMS applies it to the model load too: it must cover that
SLOW = {
    "single": {
        "beam_size": 10,
        "word_timestamps": True,
        "temperature": [0.0] * 10,
        "compression_ratio_threshold": 0.1,  # every window "fails" it: ten decodes per window
    }
}
"""Within the default limits, yet 1min.flac takes well over 30 s with it on two CPU cores: a
worker left running after the timeout would still be running when the next check comes."""
FIVE_BEAMS = {"single": {"beam_size": 5}}


@pytest.fixture
def two_ports(endpoint_target: str) -> tuple[int, int]:
    if endpoint_target != "local":
        pytest.skip("tests of local servers")
    a, b = free_ports(2)
    return a, b


def _serving(client: LocalEndpoint) -> bool:
    """Healthy and our handler answering (an empty body is refused by input_fn only)."""
    if not client.healthy():
        return False
    try:
        response = client.invoke(b"")
    except Exception:
        return False
    return response.status == 400 and b"EmptyBody" in response.body


def _wait_serving(client: LocalEndpoint, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _serving(client):
            return
        time.sleep(0.5)
    raise AssertionError(f"{client.url} did not come back within {timeout_s} s")


def _socket(root: int) -> str:
    """The worker socket of a server: MMS's frontend passes it to each worker it starts."""
    for child in psutil.Process(root).children(recursive=True):
        command = child.cmdline()
        if "--sock-name" in command:
            return command[command.index("--sock-name") + 1]
    raise AssertionError("no MMS worker under this server")


def _handlers(sock: str) -> list[psutil.Process]:
    """The processes doing a server's work, found by its socket anywhere on the machine (a
    leaked one is re-parented to init and leaves the server's tree). MMS's worker process
    listens on the socket and forks the process that loads the model and answers; that one
    is what a timeout used to leave running."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        try:
            command = " ".join(process.info["cmdline"] or [])
            if (
                process.info["status"] != psutil.STATUS_ZOMBIE
                and "model_service_worker" in command
                and sock in command
                and "java" not in psutil.Process(process.ppid()).name()
            ):
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


def _wait_handlers(sock: str, count: int, timeout_s: float = 60) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(handlers := _handlers(sock)) == count:
            return handlers
        time.sleep(0.5)
    raise AssertionError(f"expected {count} worker(s) on {sock}, found {len(_handlers(sock))}")


def _timed_jfk(client: LocalEndpoint, audio: bytes) -> float:
    start = time.perf_counter()
    segments, _ = predict(client, audio)
    assert JFK_TEXT in " ".join(s.text for s in segments).lower().replace(",", "")
    return time.perf_counter() - start


def test_two_endpoints_timeouts_and_sigterm(two_ports, tmp_path: Path, jfk_bytes, long_audio):
    a_port, b_port = two_ports
    a_url = f"http://127.0.0.1:{a_port}"
    # A: the CLI, default limits, a short response timeout; B: in-process, at most 3 beams,
    # so which server answered a 5-beam request is plain from its status.
    config = tmp_path / "serving.json"
    config.write_text(ServingConfig().model_dump_json())
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "transcription_benchmarks",
            "serve-local",
            "tiny.en",
            "--port",
            str(a_port),
            "--config",
            str(config),
            "--response-timeout",
            str(RESPONSE_TIMEOUT_S),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "serve-local.log").open("wb"),
    )
    b_config = ServingConfig(limits=RequestLimits(max_beam_size=3))
    try:
        with (
            start_local_endpoint("tiny.en", port=b_port, config=b_config) as b_server,
            LocalEndpoint(a_url) as a,
            LocalEndpoint(b_server.url) as b,
        ):
            _wait_serving(a)
            assert a.invoke(jfk_bytes, params=FIVE_BEAMS).ok
            assert b.invoke(jfk_bytes, params=FIVE_BEAMS).status == 400

            # 6: A's worker dies; its replacement must connect to A's socket, not B's.
            a_sock, b_sock = _socket(cli.pid), _socket(b_server.process.pid)
            assert a_sock != b_sock
            [worker] = _wait_handlers(a_sock, 1)
            worker.kill()
            _wait_serving(a)
            for _ in range(3):
                assert a.invoke(jfk_bytes, params=FIVE_BEAMS).ok, "A answered with B's model"
            assert b.invoke(jfk_bytes, params=FIVE_BEAMS).status == 400
            baseline = min(_timed_jfk(a, jfk_bytes) for _ in range(2))

            # 2: three requests past the timeout; each ends its worker, none is left running.
            for _ in range(3):
                response = a.invoke(long_audio.read_bytes(), params=SLOW)
                assert response.status in (500, 504), response.body
                if response.status == 504:
                    assert ErrorBody.model_validate_json(response.body).error == "RequestTimeout"
                else:
                    assert "Worker died" in error_message(response.body)
                _wait_serving(a)
                assert len(_handlers(a_sock)) == 1  # the timed-out one is not still decoding
            _wait_handlers(a_sock, 1)  # none left running beside the new one
            _wait_handlers(b_sock, 1)
            after = min(_timed_jfk(a, jfk_bytes) for _ in range(2))
            assert after <= max(3 * baseline, baseline + 2), (baseline, after)

        # 6: B is gone; A is still Healthy and answers.
        with LocalEndpoint(a_url) as a:
            assert a.healthy()
            _timed_jfk(a, jfk_bytes)

        # 7: SIGTERM to serve-local stops the whole tree and frees the port.
        tree = [psutil.Process(cli.pid), *psutil.Process(cli.pid).children(recursive=True)]
        assert any("java" in " ".join(p.cmdline()) for p in tree)
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(60) == 0
        _, alive = psutil.wait_procs(tree, timeout=30)
        assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        with LocalEndpoint(a_url) as a:
            assert a.ping() is None
    finally:
        if cli.poll() is None:
            cli.send_signal(signal.SIGINT)
            cli.wait(60)


@pytest.fixture(scope="module")
def long_audio() -> Path:
    from transcription_benchmarks.audio import find_test_audio

    return find_test_audio("1min.flac")
