"""What one request must not do to the endpoint (issue 27): a decode bomb or hours of silence
refused before they take a worker's memory (the worker's peak measured while the request runs),
nothing but /invocations and /ping reachable on the port, and a server tree that ends with
`tbench serve-local` however that ends."""

from __future__ import annotations

import io
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import av
import httpx
import numpy as np
import psutil
import pytest
from tests.endpoint.conftest import SUITE_MEMORY_BUDGET_MB

from transcription_benchmarks.serving.client import LocalEndpoint
from transcription_benchmarks.serving.local import LocalServer, free_port
from transcription_benchmarks.serving.model_server import management_socket
from transcription_benchmarks.serving.protocol import ErrorBody

MIB = 1024 * 1024


def wav_at_one_sample_per_second(data_bytes: int) -> bytes:
    """A valid 16-bit mono WAV whose header says 1 sample per second: 6 MB of data is 833 h."""
    data = b"\x00\x01" * (data_bytes // 2)
    fmt = struct.pack("<IHHIIHH", 16, 1, 1, 1, 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )


@pytest.fixture(scope="session")
def four_hours_of_silence() -> bytes:
    """3 h 59 min of digital silence as FLAC: a few MB that decode to 230 million samples."""
    out = io.BytesIO()
    with av.open(out, mode="w", format="flac") as container:
        stream = container.add_stream("flac", rate=16_000, layout="mono")
        minute = np.zeros((1, 16_000 * 60), dtype=np.int16)
        for _ in range(239):
            frame = av.AudioFrame.from_ndarray(minute, format="s16", layout="mono")
            frame.sample_rate = 16_000
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return out.getvalue()


def _workers(server: LocalServer) -> list[psutil.Process]:
    root = psutil.Process(server.process.pid)
    return [
        p for p in root.children(recursive=True) if "model_service_worker" in " ".join(p.cmdline())
    ]


@contextmanager
def peak_worker_growth(server: LocalServer) -> Iterator[dict[str, float]]:
    """The largest growth of any worker's RSS over its RSS before, sampled every 10 ms."""
    workers = _workers(server)
    assert workers, "no MMS worker found under the server"
    before = {w.pid: w.memory_info().rss for w in workers}
    seen = {"growth_mib": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            for worker in workers:
                try:
                    growth = (worker.memory_info().rss - before[worker.pid]) / MIB
                except psutil.NoSuchProcess:
                    continue
                seen["growth_mib"] = max(seen["growth_mib"], growth)
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        done.set()
        sampler.join()


@pytest.mark.parametrize(
    ("data_bytes", "claimed"), [(6_000_000, "833.3 h"), (30_000, "4.2 h")], ids=["6MB", "30KB"]
)
def test_1_a_decode_bomb_is_refused_from_its_header(
    endpoint, local_server, jfk_bytes, data_bytes, claimed
):
    body = wav_at_one_sample_per_second(data_bytes)
    started = time.monotonic()
    with peak_worker_growth(local_server) as peak:
        response = endpoint.invoke(body, content_type="audio/wav")
    took = time.monotonic() - started
    error = ErrorBody.model_validate_json(response.body)
    assert (response.status, error.error) == (400, "LimitExceeded"), error.message
    assert "long by its header" in error.message and claimed in error.message
    # Before: the worker grew about 150 MB/s past 9 GB; now nothing is decoded.
    assert peak["growth_mib"] < 100, peak
    assert took < 10
    assert endpoint.invoke(jfk_bytes).status == 200  # the same worker serves on


def test_2_hours_of_silence_are_refused_by_the_memory_budget(
    endpoint, local_server, jfk_bytes, four_hours_of_silence
):
    # 3 h 59 min is inside limits.max_audio_s (4 h), and took a worker past 9 GB; the suite's
    # artifact gives a request 1024 MiB, which holds far less audio than that.
    with peak_worker_growth(local_server) as peak:
        response = endpoint.invoke(four_hours_of_silence, content_type="audio/flac")
    error = ErrorBody.model_validate_json(response.body)
    assert (response.status, error.error) == (400, "LimitExceeded"), error.message
    assert f"a memory budget of {SUITE_MEMORY_BUDGET_MB:.0f} MiB per request" in error.message
    assert "MiB per audio minute for this engine" in error.message
    assert "(4.0 h) long by its header" in error.message
    assert peak["growth_mib"] < 100, peak
    assert endpoint.invoke(jfk_bytes).status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/models"),
        ("POST", "/models?url=/tmp&model_name=x&initial_workers=1&synchronous=true"),
        ("PUT", "/models/model?min_worker=3"),
        ("DELETE", "/models/model"),
    ],
)
def test_3_the_management_api_is_not_on_the_port(
    endpoint, local_server, jfk_bytes, tmp_path, method, path
):
    # A directory whose inference.py would leave a mark if MMS ever ran it.
    mark = tmp_path / "ran"
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(f"open({str(mark)!r}, 'w').write('ran')\n")
    path = path.replace("url=/tmp", f"url={tmp_path / 'model'}")
    response = httpx.request(method, local_server.url + path, timeout=30)
    assert response.status_code == 404, response.text
    assert not mark.exists()
    # The management API answers on its unix socket in the run directory alone.
    sock = management_socket(local_server.run_dir)
    assert sock.exists() and oct(sock.parent.stat().st_mode & 0o077) == "0o0"
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(sock))) as manager:
        models = manager.get("http://mms/models").json()["models"]
    assert [m["modelName"] for m in models] == ["model"]
    assert endpoint.invoke(jfk_bytes).status == 200


def test_11_kill_9_of_serve_local_ends_the_server_tree(local_server):
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    cli = subprocess.Popen(
        [sys.executable, "-m", "transcription_benchmarks", "serve-local", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with LocalEndpoint(url) as client:
            deadline = time.monotonic() + 180
            while not client.healthy():
                assert cli.poll() is None, cli.stderr.read().decode() if cli.stderr else ""
                assert time.monotonic() < deadline, "serve-local did not come up"
                time.sleep(0.5)
            tree = psutil.Process(cli.pid).children(recursive=True)
            assert any("java" in " ".join(p.cmdline()) for p in tree)
            cli.send_signal(signal.SIGKILL)
            cli.wait()
            _, alive = psutil.wait_procs(tree, timeout=30)
            assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE], alive
            assert client.ping() is None  # the port is free for the next serve-local
    finally:
        if cli.poll() is None:
            cli.kill()


def test_11_a_non_loopback_host_needs_expose():
    done = subprocess.run(
        [sys.executable, "-m", "transcription_benchmarks", "serve-local", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "--expose" in done.stderr and "not a loopback address" in done.stderr


def test_12_the_suite_tests_the_server_it_started(endpoint, local_server):
    assert endpoint.url == local_server.url
    assert local_server.process.poll() is None
    assert psutil.Process(local_server.process.pid).ppid() == os.getpid()
    assert Path(local_server.run_dir).is_dir()


def _raw_request(url: str, body: bytes) -> bytes:
    host = url.removeprefix("http://").partition(":")[0]
    head = (
        f"POST /invocations HTTP/1.1\r\nHost: {host}\r\nContent-Type: audio/flac\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _connect(url: str) -> socket.socket:
    host, _, port = url.removeprefix("http://").partition(":")
    return socket.create_connection((host, int(port)), timeout=30)


def test_7_idle_connections_do_not_starve_the_endpoint(endpoint, local_server, jfk_bytes):
    # A request line and nothing more, 2,000 times over: MMS's frontend has no header timeout,
    # and 20,000 of these spent its file limit. The front holds them, closes them at its header
    # timeout, and answers everyone else meanwhile.
    idle = []
    try:
        for _ in range(2000):
            connection = _connect(local_server.url)
            connection.sendall(b"POST /invocations HTTP/1.1\r\n")
            idle.append(connection)
        with LocalEndpoint(local_server.url, timeout_s=30) as fresh:
            assert fresh.healthy()
            assert fresh.invoke(jfk_bytes, content_type="audio/flac").status == 200
        # the front's header timeout (10 s) ends them: the first one is closed, unanswered
        idle[0].settimeout(30)
        assert idle[0].recv(1024) == b""
    finally:
        for connection in idle:
            connection.close()


def test_8_requests_whose_clients_left_are_not_computed(endpoint, local_server, jfk_bytes):
    from transcription_benchmarks.audio import find_test_audio

    one = time.monotonic()
    assert endpoint.invoke(jfk_bytes).status == 200
    jfk_s = time.monotonic() - one
    log_before = local_server.log.read_text(errors="replace").count("dropped POST /invocations")
    minute = find_test_audio("1min.flac").read_bytes()
    ended = {}

    def busy() -> None:  # the one worker, busy for several jfk-lengths
        with LocalEndpoint(local_server.url) as client:
            assert client.invoke(minute).status == 200
        ended["busy"] = time.monotonic()

    worker = threading.Thread(target=busy, daemon=True)
    worker.start()
    time.sleep(0.3)
    gone = []
    for _ in range(10):  # fire and forget: sent whole, then the client leaves
        connection = _connect(local_server.url)
        connection.sendall(_raw_request(local_server.url, jfk_bytes))
        gone.append(connection)
    time.sleep(0.3)
    for connection in gone:
        connection.close()
    with LocalEndpoint(local_server.url) as last:
        assert last.invoke(jfk_bytes).status == 200
    done = time.monotonic()
    worker.join()
    # Computed, the ten would have run between the busy request and the last one: 10 x jfk_s.
    assert done - ended["busy"] < 4 * jfk_s + 1, (done - ended["busy"], jfk_s)
    log = local_server.log.read_text(errors="replace")
    assert log.count("dropped POST /invocations") - log_before == 10


def test_the_server_memory_counts_mms_behind_the_front(local_server):
    from transcription_benchmarks.load.servers import server_memory

    memory = server_memory(local_server.url)
    assert memory is not None
    names = " ".join(memory.by_name)
    # the front listens; MMS's Java frontend and its Python worker are counted beside it
    assert "java" in names and memory.processes >= 4, memory
    assert memory.rss_mb > 300, memory  # the worker holds the model
