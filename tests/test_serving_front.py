"""The local endpoint's front (serving/front.py) as its own process, on a free port, in front of a
stand-in for Multi Model Server on a unix socket: routes, relaying, timeouts, limits, and the
queue that drops requests whose clients have gone."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import h11
import httpx
import pytest

from transcription_benchmarks.serving.protocol import CUSTOM_ATTRIBUTES_HEADER, ErrorBody

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    names: list[str]
    """The names as they came."""
    body: bytes


class StandInUpstream:
    """Stands in for Multi Model Server's inference API on a unix socket (the front's upstream):
    an asyncio HTTP/1.1 server, in a thread of its own, that answers /ping at once and
    /invocations after `delay_s` (anything else with 200, so that a request the front should
    have refused would show), and records every request it receives in `seen`.

    /invocations echoes the body with the request's Content-Type (X-Stand-In-Repeat times), with
    the status in the request's X-Stand-In-Status header (default 200); every answer carries an
    X-Amzn-* header, which the front relays, and an X-Stand-In-Private one, which it drops."""

    def __init__(self, path: Path, delay_s: float = 0.0) -> None:
        self.path = path
        self.delay_s = delay_s
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StandInUpstream:
        self._thread.start()
        assert self._ready.wait(10), "the stand-in upstream did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_unix_server(self._connection, path=str(self.path))
        self._ready.set()
        await self._stop.wait()
        server.close()
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:  # connections still open, answers still delayed
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        await server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)

        async def next_event() -> object:
            while (event := conn.next_event()) is h11.NEED_DATA:
                conn.receive_data(await reader.read(65536))
            return event

        try:
            while isinstance(request := await next_event(), h11.Request):
                body = b""
                while not isinstance(event := await next_event(), h11.EndOfMessage):
                    assert isinstance(event, h11.Data)
                    body += event.data
                raw = [(k.decode(), v.decode()) for k, v in request.headers.raw_items()]
                status, headers, out = await self._answer(request.method, request.target, raw, body)
                data = conn.send(h11.Response(status_code=status, headers=headers, reason="Fine"))
                data += conn.send(h11.Data(data=out)) if out else b""
                writer.write(data + conn.send(h11.EndOfMessage()))
                await writer.drain()
                conn.start_next_cycle()  # kept alive, as MMS keeps its connections
        except (h11.ProtocolError, ConnectionError):
            pass
        finally:
            writer.close()

    async def _answer(
        self, method: bytes, target: bytes, raw: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        headers = {name.lower(): value for name, value in raw}
        seen = Seen(method.decode(), target.decode(), headers, [n for n, _ in raw], body)
        with self._lock:
            self.seen.append(seen)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if target != b"/ping":  # MMS answers /ping without a worker
                await asyncio.sleep(self.delay_s)
        finally:
            with self._lock:
                self.in_flight -= 1
        if target == b"/ping":
            status, content_type, out = 200, "application/json", b'{"status": "Healthy"}\n'
        else:
            status = int(headers.get("x-stand-in-status", "200"))
            content_type = headers.get("content-type", "application/octet-stream")
            out = body * int(headers.get("x-stand-in-repeat", "1"))
        return (
            status,
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(out))),
                ("X-Amzn-Invoked-Production-Variant", "AllTraffic"),
                ("X-Stand-In-Private", "not for the client"),
            ],
            out,
        )


def _short_socket_dir(tmp_path: Path) -> Path:
    """tmp_path, unless a socket path under it would pass the 107-byte limit of unix sockets."""
    if len(str(tmp_path / "mms.sock")) < 100:
        return tmp_path
    return Path(tempfile.mkdtemp(prefix="front-"))


class Front:
    """The front as a subprocess, its log in a file; `url` once it listens."""

    def __init__(self, tmp_path: Path, upstream: str, *options: str) -> None:
        self.log = tmp_path / f"front-{time.monotonic_ns()}.log"
        command = [
            sys.executable,
            "-m",
            "transcription_benchmarks.serving.front",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            upstream,
            *options,
        ]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (match := re.search(r"listening on (http://127\.0\.0\.1:\d+),", self.text())):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the front did not start:\n{self.text()}")
            time.sleep(0.05)
        self.url = match.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(STOP_TIMEOUT_S)
            return None


@contextlib.contextmanager
def front_and_upstream(
    tmp_path: Path, *options: str, delay_s: float = 0.0, concurrency: int = 2
) -> Iterator[tuple[Front, StandInUpstream]]:
    socket_dir = _short_socket_dir(tmp_path)
    try:
        with StandInUpstream(socket_dir / "mms.sock", delay_s) as upstream:
            front = Front(
                tmp_path, f"unix:{upstream.path}", "--concurrency", str(concurrency), *options
            )
            try:
                yield front, upstream
            finally:
                code = front.stop()
            assert code == 0, f"the front did not end cleanly on SIGTERM ({code}):\n{front.text()}"
            assert "Traceback" not in front.text(), front.text()
    finally:
        if socket_dir != tmp_path:
            shutil.rmtree(socket_dir, ignore_errors=True)


def _error(response: httpx.Response) -> ErrorBody:
    assert response.headers["content-type"] == "application/json"
    body = ErrorBody.model_validate_json(response.content)
    assert body.status == response.status_code
    return body


def _connect(port: int, first_bytes: bytes = b"", timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def _seconds_until_closed(sock: socket.socket, limit_s: float = 10.0) -> float:
    """Read until the front closes the connection; the seconds that took."""
    started = time.monotonic()
    sock.settimeout(limit_s)
    with contextlib.suppress(ConnectionResetError):
        while sock.recv(65536):
            pass
    return time.monotonic() - started


def _raise_file_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        if hard != resource.RLIM_INFINITY and hard < wanted:
            pytest.skip(f"this machine allows {hard} open files; the test needs {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# --- relaying and routes -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Front, StandInUpstream]]:
    with front_and_upstream(
        tmp_path_factory.mktemp("front"), "--max-body-bytes", "1000000"
    ) as pair:
        yield pair


@pytest.fixture
def front(served: tuple[Front, StandInUpstream]) -> Front:
    served[1].seen.clear()
    return served[0]


@pytest.fixture
def upstream(served: tuple[Front, StandInUpstream]) -> StandInUpstream:
    return served[1]


def test_ping_and_invocations_are_relayed(front: Front, upstream: StandInUpstream) -> None:
    body = os.urandom(300_000)
    with httpx.Client(base_url=front.url, timeout=10) as client:
        for method in ("GET", "POST"):
            ping = client.request(method, "/ping")
            assert ping.status_code == 200
            assert ping.json() == {"status": "Healthy"}
        answer = client.post(
            "/invocations?ignored=1",
            content=body,
            headers={
                "Content-Type": "audio/flac",
                "Accept": "application/json",
                CUSTOM_ATTRIBUTES_HEADER: "c29tZSBwYXJhbXM=",
                "X-Stand-In-Status": "201",
            },
        )
        again = client.post("/invocations", content=b"x", headers={"Content-Type": "audio/wav"})
    assert answer.status_code == 201
    assert answer.content == body
    assert answer.headers["content-type"] == "audio/flac"
    assert answer.headers["x-amzn-invoked-production-variant"] == "AllTraffic"
    assert "x-stand-in-private" not in answer.headers
    assert again.status_code == 200 and again.content == b"x"
    assert [(s.method, s.path) for s in upstream.seen] == [
        ("GET", "/ping"),
        ("POST", "/ping"),
        ("POST", "/invocations"),  # the query string stays here
        ("POST", "/invocations"),
    ]
    sent = upstream.seen[2]
    assert sent.body == body
    assert sent.headers["content-type"] == "audio/flac"
    assert sent.headers["accept"] == "application/json"
    assert sent.headers[CUSTOM_ATTRIBUTES_HEADER.lower()] == "c29tZSBwYXJhbXM="
    assert CUSTOM_ATTRIBUTES_HEADER in sent.names  # spelt as the client spelt it
    assert sent.headers["content-length"] == str(len(body))


def test_a_large_answer_reaches_a_slow_reader(front: Front) -> None:
    """Answers larger than the kernel's buffers wait in the front for the client to read them;
    with Connection: close the front closes only once they have left."""
    body, repeat = os.urandom(500_000), 20  # 10 MB: more than the kernel's buffers hold
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the answer waits in the front
    with sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", front.port))
        head = b"POST /invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        head += b"X-Stand-In-Repeat: %d\r\n" % repeat
        sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(0.5)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.split(b"\r\n\r\n", 1)[1] == body * repeat


def test_chunked_body_is_forwarded_whole(front: Front, upstream: StandInUpstream) -> None:
    with httpx.Client(base_url=front.url, timeout=10) as client:
        answer = client.post("/invocations", content=iter([b"ab", b"cd", b"ef"]))
    assert answer.status_code == 200 and answer.content == b"abcdef"
    assert upstream.seen[-1].headers["content-length"] == "6"
    assert "transfer-encoding" not in upstream.seen[-1].headers


@pytest.mark.parametrize(
    ("method", "target", "status", "error"),
    [
        ("POST", "/models?url=evil.tar.gz&initial_workers=1", 404, "NotFound"),
        ("GET", "/models", 404, "NotFound"),
        ("DELETE", "/models/model", 404, "NotFound"),
        ("GET", "/", 404, "NotFound"),
        ("POST", "/invocations/../models", 404, "NotFound"),
        ("GET", "/invocations", 405, "MethodNotAllowed"),
        ("PUT", "/ping", 405, "MethodNotAllowed"),
    ],
)
def test_other_routes_are_refused_here(
    front: Front, upstream: StandInUpstream, method: str, target: str, status: int, error: str
) -> None:
    with httpx.Client(base_url=front.url, timeout=10) as client:
        refused = client.request(method, target, content=b"{}")
        assert refused.status_code == status
        assert _error(refused).error == error
        if status == 405:
            assert refused.headers["allow"]
        assert client.get("/ping").status_code == 200  # the connection goes on
    assert [s.path for s in upstream.seen] == ["/ping"]


def _responses(sock: socket.socket, count: int) -> list[tuple[int, bytes]]:
    """Read `count` answers off a raw connection: (status, body) each, 1xx ones included."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())  # h11 reads answers only to requests it has seen sent
    answers: list[tuple[int, bytes]] = []
    status, body = 0, b""
    sock.settimeout(10)
    while len(answers) < count:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.InformationalResponse):
            answers.append((event.status_code, b""))
        elif isinstance(event, h11.Response):
            status, body = event.status_code, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            answers.append((status, body))
            conn.start_next_cycle()
            conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
            conn.send(h11.EndOfMessage())
    return answers


def test_pipelined_requests_are_answered_in_order(front: Front, upstream: StandInUpstream) -> None:
    requests = b"".join(
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n%d" % i
        for i in range(3)
    )
    with _connect(front.port, requests) as sock:
        assert _responses(sock, 3) == [(200, b"0"), (200, b"1"), (200, b"2")]
    assert [s.body for s in upstream.seen] == [b"0", b"1", b"2"]


def test_expect_100_continue(front: Front, upstream: StandInUpstream) -> None:
    head = (
        b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    with _connect(front.port, head) as sock:
        assert _responses(sock, 1) == [(100, b"")]
        sock.sendall(b"hello")
        sock.settimeout(10)
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"hello")
    assert "expect" not in upstream.seen[-1].headers


def test_malformed_and_oversized_heads(front: Front, upstream: StandInUpstream) -> None:
    with _connect(front.port, b"NOT HTTP AT ALL\r\n\r\n") as sock:
        sock.settimeout(10)
        assert sock.recv(65536).startswith(b"HTTP/1.1 400 ")
    with _connect(front.port, b"GET /ping HTTP/1.1\r\nX-Big: " + b"a" * 100_000) as sock:
        sock.settimeout(10)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"] == "RequestHeaderFieldsTooLarge"
    assert upstream.seen == []


def test_bodies_over_the_limit_get_413_and_stay_here(
    front: Front, upstream: StandInUpstream
) -> None:
    with httpx.Client(base_url=front.url, timeout=10) as client:
        # Content-Length over the limit: refused from the head.
        too_long = client.post("/invocations", content=b"a" * 1_000_001)
        # Chunked: refused as the chunks pass the limit.
        too_many = client.post("/invocations", content=iter([b"a" * 400_000] * 3))
        at_limit = client.post("/invocations", content=b"a" * 1_000_000)
    for refused in (too_long, too_many):
        assert refused.status_code == 413
        assert _error(refused).error == "BodyTooLarge"
    assert at_limit.status_code == 200
    # Only the head, no body: the answer comes without waiting for a body.
    with _connect(
        front.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n"
    ) as sock:
        sock.settimeout(5)
        assert sock.recv(65536).startswith(b"HTTP/1.1 413 ")
    assert [len(s.body) for s in upstream.seen] == [1_000_000]


def test_unreachable_upstream_is_a_502(tmp_path: Path) -> None:
    socket_dir = _short_socket_dir(tmp_path)
    front = Front(tmp_path, f"unix:{socket_dir / 'absent.sock'}", "--concurrency", "1")
    try:
        with httpx.Client(base_url=front.url, timeout=10) as client:
            for path in ("/ping", "/invocations"):
                answer = client.post(path, content=b"x")
                assert answer.status_code == 502
                assert _error(answer).error == "UpstreamError"
    finally:
        assert front.stop() == 0


# --- timeouts and connection limits ------------------------------------------------------------


def test_silent_connections_are_closed_after_the_header_timeout(tmp_path: Path) -> None:
    with front_and_upstream(tmp_path, "--header-timeout-s", "1", "--idle-timeout-s", "1.5") as (
        front,
        upstream,
    ):
        request_line_only = _connect(front.port, b"POST /invocations HTTP/1.1\r\n")
        nothing = _connect(front.port)
        stalled_body = _connect(
            front.port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n12345"
        )
        kept_alive = http.client.HTTPConnection("127.0.0.1", front.port, timeout=10)
        kept_alive.request("GET", "/ping")
        assert kept_alive.getresponse().read()
        with request_line_only, nothing, stalled_body:
            waits = [_seconds_until_closed(s) for s in (request_line_only, nothing, stalled_body)]
        assert waits[0] == pytest.approx(1.0, abs=0.6)
        assert max(waits) < 2.5
        assert kept_alive.sock is not None
        idle = _seconds_until_closed(kept_alive.sock)  # 1.5 s from its answer, some spent above
        kept_alive.close()
        assert idle < 2.5
        assert [s.path for s in upstream.seen] == ["/ping"]


def test_idle_connections_do_not_stop_ping(tmp_path: Path) -> None:
    count = 2000
    _raise_file_limit(count + 256)
    with front_and_upstream(tmp_path, "--header-timeout-s", "60") as (front, _):
        idle: list[socket.socket] = []
        try:
            for _ in range(count):
                idle.append(_connect(front.port, b"POST /invocations HTTP/1.1\r\n"))
            time.sleep(0.5)  # let the front accept them all
            started = time.monotonic()
            with httpx.Client(base_url=front.url, timeout=10) as client:
                assert client.get("/ping").status_code == 200
                assert client.post("/invocations", content=b"x").content == b"x"
            assert time.monotonic() - started < 5.0
            for sock in idle[:: count // 20]:  # still open: the front holds them, not refused
                sock.setblocking(False)
                with pytest.raises(BlockingIOError):
                    sock.recv(1)
        finally:
            for sock in idle:
                sock.close()


def test_connections_over_the_limit_are_closed(tmp_path: Path) -> None:
    with front_and_upstream(tmp_path, "--max-connections", "5") as (front, _):
        idle = [_connect(front.port, b"GET /ping HTTP/1.1\r\n") for _ in range(5)]
        try:
            time.sleep(0.3)
            with _connect(front.port, b"GET /ping HTTP/1.1\r\n\r\n") as extra:
                assert _seconds_until_closed(extra, 5) < 1.0
            idle.pop().close()
            time.sleep(0.3)
            with httpx.Client(base_url=front.url, timeout=10) as client:
                assert client.get("/ping").status_code == 200
        finally:
            for sock in idle:
                sock.close()
        assert "over the limit of 5 open connections" in front.text()


# --- the queue ---------------------------------------------------------------------------------


def _invoke(url: str, tag: bytes) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = httpx.post(f"{url}/invocations", content=tag, timeout=30)
    return time.monotonic() - started, response


def _send_and_leave(port: int, tag: bytes, after_s: float) -> None:
    head = f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: {len(tag)}\r\n\r\n"
    with _connect(port, head.encode() + tag):
        time.sleep(after_s)


def test_abandoned_requests_never_reach_upstream(tmp_path: Path) -> None:
    delay = 2.0
    with (
        front_and_upstream(tmp_path, delay_s=delay, concurrency=1) as (front, upstream),
        ThreadPoolExecutor(12) as pool,
    ):
        first = pool.submit(_invoke, front.url, b"first")
        time.sleep(0.2)
        leavers = [
            pool.submit(_send_and_leave, front.port, b"leaver %d" % i, 0.2) for i in range(10)
        ]
        time.sleep(0.05)
        last = pool.submit(_invoke, front.url, b"last")  # queued behind the leavers
        for leaver in leavers:
            leaver.result(10)
        first_s, first_answer = first.result(30)
        last_s, last_answer = last.result(30)
        assert first_answer.content == b"first" and last_answer.content == b"last"
        assert [s.body for s in upstream.seen] == [b"first", b"last"]
        # The last waits for the first only: under two request times, not twelve.
        assert delay <= first_s < delay + 1.5
        assert last_s < 2 * delay + 1.5
        assert front.text().count("dropped POST /invocations") == 10


def test_a_request_in_flight_runs_to_its_end(tmp_path: Path) -> None:
    """MMS cannot cancel a request it has started: its slot stays taken until it answers."""
    delay = 1.0
    with (
        front_and_upstream(tmp_path, delay_s=delay, concurrency=1) as (front, upstream),
        ThreadPoolExecutor(2) as pool,
    ):
        leaver = pool.submit(_send_and_leave, front.port, b"leaver", 0.3)
        time.sleep(0.1)
        stayer = pool.submit(_invoke, front.url, b"stayer")
        leaver.result(10)
        waited_s, answer = stayer.result(30)
        assert answer.content == b"stayer"
        assert waited_s > 2 * delay - 0.3  # behind the leaver's whole request
        assert [s.body for s in upstream.seen] == [b"leaver", b"stayer"]
        assert "discarded the answer" in front.text()


def test_at_most_concurrency_requests_go_upstream(tmp_path: Path) -> None:
    with (
        front_and_upstream(tmp_path, delay_s=0.5, concurrency=2) as (front, upstream),
        ThreadPoolExecutor(6) as pool,
    ):
        started = time.monotonic()
        answers = list(pool.map(lambda i: _invoke(front.url, b"%d" % i)[1], range(6)))
        elapsed = time.monotonic() - started
        assert all(a.status_code == 200 for a in answers)
        assert upstream.max_in_flight == 2
        assert 1.4 < elapsed < 5.0  # 6 x 0.5 s, 2 at a time
        # /ping has its own slots: it does not wait behind inferences.
        busy = [pool.submit(_invoke, front.url, b"busy") for _ in range(4)]
        time.sleep(0.1)
        ping_started = time.monotonic()
        assert httpx.get(f"{front.url}/ping", timeout=10).status_code == 200
        assert time.monotonic() - ping_started < 0.8  # not ~1 s behind them
        for request in busy:
            request.result(30)


def test_sigterm_ends_the_front_with_requests_waiting(tmp_path: Path) -> None:
    with (
        front_and_upstream(tmp_path, delay_s=5.0, concurrency=1) as (front, _),
        ThreadPoolExecutor(3) as pool,
    ):
        waiting = [pool.submit(_invoke, front.url, b"%d" % i) for i in range(3)]
        idle = _connect(front.port, b"GET /ping HTTP/1.1\r\n")
        time.sleep(0.5)
        started = time.monotonic()
        front.process.send_signal(signal.SIGTERM)
        assert front.process.wait(STOP_TIMEOUT_S) == 0
        assert time.monotonic() - started < 3.0
        for request in waiting:
            with pytest.raises(httpx.TransportError):
                request.result(10)
        with idle:
            assert _seconds_until_closed(idle, 5) < 1.0
