"""The local endpoint's front: what SageMaker's own front end does before a request reaches the
container, done on this machine in front of Multi Model Server.

MMS 1.1's netty frontend has no idle, read or header timeout, so connections that send a request
line and nothing more pile up until its file limit is spent; and it computes every queued
request even when the client has given up. On SageMaker the container is reached only through
SageMaker's front end, which bounds both. This process stands in for it:

- it parses client HTTP/1.1 with h11 (a well-kept parser, rather than one written here), and
  closes connections that do not send a request head within --header-timeout-s (or, kept alive,
  whose next request does not start within --idle-timeout-s), bodies that go silent for
  --header-timeout-s, heads over 64 KiB (431) and bodies over --max-body-bytes (413);
- only GET|POST /ping and POST /invocations go on; anything else is answered here (404 or 405,
  the project's ErrorBody) and never reaches MMS (MMS's management API in particular);
- at most --concurrency requests (MMS's workers) are in flight upstream; the rest wait here,
  and one whose client closes while it waits is dropped before MMS sees it. A request already
  in flight cannot be cancelled in MMS: it runs to its end and its answer is discarded;
- the request goes on over MMS's unix socket (inference_address=unix:/path) through a pool of
  kept-alive httpx connections; the answer's status, Content-Type, X-Amzn-* headers and body
  come back; an unreachable or failing upstream is a 502 (504 past --upstream-timeout-s);
- at most --max-connections client connections are open at once: more are closed on arrival.

    python -m transcription_benchmarks.serving.front --listen 127.0.0.1:8080 \\
        --upstream unix:/tmp/mms.sock --concurrency 2

It logs (stdlib logging, INFO) one line when listening ("listening on http://HOST:PORT"), one
per refused or dropped request, and counts on exit; SIGTERM or SIGINT end it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import signal
import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus

import h11  # HTTP/1.1 parsing by a well-kept library (httpx's own dependency), not by hand
import httpx

from transcription_benchmarks.serving.protocol import (
    JSON_CONTENT_TYPE,
    MAX_REALTIME_BODY_BYTES,
    ErrorBody,
)

logger = logging.getLogger("transcription_benchmarks.serving.front")  # __main__ under -m

DEFAULT_LISTEN = "127.0.0.1:8080"
MAX_HEAD_BYTES = 64 * 1024
"""A request line and headers larger than this are refused (431) before they are complete."""
READ_CHUNK = 256 * 1024
LINGER_S = 2.0
"""After refusing a request whose body is still arriving, read and drop what comes for at most
this long before closing: closing on unread data resets the connection, and the client may then
lose the answer it has not read yet."""
ROUTES: dict[bytes, frozenset[bytes]] = {
    b"/ping": frozenset({b"GET", b"POST"}),
    b"/invocations": frozenset({b"POST"}),
}
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"host",
        b"content-length",  # the body is forwarded whole; httpx sets its length
        b"expect",  # 100-continue is answered here
    }
)
"""Request headers that describe this hop, not the request: not forwarded."""


@dataclass
class FrontConfig:
    upstream: str
    """unix:/path/to/socket (MMS's inference_address), or http://host:port."""
    concurrency: int
    """Requests in flight upstream at once: MMS's worker count."""
    host: str = "127.0.0.1"
    port: int = 8080
    idle_timeout_s: float = 60.0
    header_timeout_s: float = 10.0
    max_body_bytes: int = MAX_REALTIME_BODY_BYTES
    max_connections: int = 10_000
    max_head_bytes: int = MAX_HEAD_BYTES
    upstream_timeout_s: float = 600.0
    """Safety net only: MMS answers its own timeout first (60 s locally)."""
    ping_concurrency: int = 4
    """/ping does not wait behind inferences (MMS answers it without a worker): its own slots."""


@dataclass
class FrontStats:
    connections: int = 0
    refused_connections: int = 0
    forwarded: int = 0
    refused_requests: int = 0
    dropped_in_queue: int = 0
    abandoned_in_flight: int = 0
    timed_out: int = 0
    upstream_errors: int = 0


class Slots:
    """A first-come, first-served counting semaphore: whoever waits longest goes next. A waiter
    cancelled after its slot was handed over passes the slot on."""

    def __init__(self, count: int) -> None:
        self.free = count
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return sum(1 for waiter in self._waiters if not waiter.done())

    def try_acquire(self) -> bool:
        """Take a free slot now, if there is one and nobody waits for it."""
        if self.free > 0 and not self.waiting:
            self.free -= 1
            return True
        return False

    async def acquire(self) -> None:
        if self.try_acquire():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over just as we gave up
            raise

    def release(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self.free += 1


@dataclass
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    reason: bytes = b""


def error_answer(status: int, error: str, message: str) -> Answer:
    body = ErrorBody(status=status, error=error, message=message).model_dump_json().encode()
    return Answer(status, [(b"content-type", JSON_CONTENT_TYPE.encode())], body)


def relayed_header(name: bytes) -> bool:
    lower = name.lower()
    return lower == b"content-type" or lower.startswith(b"x-amzn-")


class _EndConnectionError(Exception):
    """Stop serving this client connection (closed, silent too long, or refused)."""


class _ClientTooSlowError(_EndConnectionError):
    pass


class Front:
    def __init__(self, config: FrontConfig) -> None:
        self.config = config
        self.stats = FrontStats()
        self.slots = Slots(config.concurrency)
        self.ping_slots = Slots(config.ping_concurrency)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._refusal_logged_at = 0.0
        self._refusals_unlogged = 0
        self._stopping = False
        pool = config.concurrency + config.ping_concurrency
        limits = httpx.Limits(
            max_connections=pool, max_keepalive_connections=pool, keepalive_expiry=60.0
        )
        timeout = httpx.Timeout(config.upstream_timeout_s, connect=5.0, pool=None)
        if config.upstream.startswith("unix:"):
            transport = httpx.AsyncHTTPTransport(
                uds=config.upstream.removeprefix("unix:"), limits=limits, retries=1
            )
            base_url = "http://upstream"  # the host is not used over a unix socket
        else:
            transport = httpx.AsyncHTTPTransport(limits=limits, retries=1)
            base_url = config.upstream
        self.client = httpx.AsyncClient(transport=transport, base_url=base_url, timeout=timeout)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None and self._server.sockets
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept,
            self.config.host,
            self.config.port,
            backlog=4096,
            limit=READ_CHUNK,
        )
        host, port = self.address
        logger.info(
            "listening on http://%s:%d, upstream %s, concurrency %d, at most %d connections",
            host,
            port,
            self.config.upstream,
            self.config.concurrency,
            self.config.max_connections,
        )

    async def close(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.aclose()
        logger.info("stopped: %s", self.stats)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tasks) >= self.config.max_connections:
            writer.transport.abort()  # frees the descriptor at once
            self.stats.refused_connections += 1
            self._log_refused_connection()
            return
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.stats.connections += 1
        try:
            await _Client(self, reader, writer).serve()
            await self._flush(writer)
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("serving a connection failed")
        finally:
            self._tasks.discard(task)
            writer.transport.abort()  # at once, whatever the client does

    async def _flush(self, writer: asyncio.StreamWriter) -> None:
        """Before closing, let the last answer leave (abort would drop what is still buffered),
        for at most the header timeout."""
        transport = writer.transport
        if self._stopping or transport.is_closing() or not transport.get_write_buffer_size():
            return
        transport.set_write_buffer_limits(high=0)  # drain() now waits for an empty buffer
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(self.config.header_timeout_s):
                await writer.drain()

    def _log_refused_connection(self) -> None:
        self._refusals_unlogged += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= 1.0:
            logger.info(
                "refused %d connection(s) over the limit of %d open connections (%d in all)",
                self._refusals_unlogged,
                self.config.max_connections,
                self.stats.refused_connections,
            )
            self._refusal_logged_at = now
            self._refusals_unlogged = 0

    async def forward(
        self, method: bytes, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        """One request upstream; an answer whatever happens (502/504 when upstream fails)."""
        try:
            response = await self.client.request(
                method.decode("ascii"), path.decode("ascii"), headers=headers, content=body
            )
        except httpx.TimeoutException as exc:
            self.stats.upstream_errors += 1
            logger.info("upstream timed out on %s: %r", path.decode(), exc)
            return error_answer(
                504, "UpstreamTimeout", f"the model server did not answer in time ({exc!r})"
            )
        except httpx.HTTPError as exc:
            self.stats.upstream_errors += 1
            logger.info("upstream failed on %s: %r", path.decode(), exc)
            return error_answer(502, "UpstreamError", f"the model server is unreachable ({exc!r})")
        self.stats.forwarded += 1
        kept = [(name, value) for name, value in response.headers.raw if relayed_header(name)]
        return Answer(response.status_code, kept, response.content, response.reason_phrase.encode())


class _Client:
    """One client connection: requests read with h11, answered one at a time (pipelined ones
    wait in h11's buffer)."""

    def __init__(
        self, front: Front, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.front = front
        self.config = front.config
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.config.max_head_bytes)
        self._read: asyncio.Task[bytes] | None = None
        self.gone = False
        """The client closed (or reset) its side."""
        self.peer = writer.get_extra_info("peername")

    # --- reading --------------------------------------------------------------------------

    def _start_read(self) -> asyncio.Task[bytes]:
        if self._read is None:
            self._read = asyncio.ensure_future(self.reader.read(READ_CHUNK))
        return self._read

    def _take_read(self) -> None:
        """Hand a finished read to h11; an empty one (or a reset) is the client closing."""
        task, self._read = self._read, None
        assert task is not None
        try:
            data = task.result()
        except OSError:
            data = b""
        self._receive(data)

    def _receive(self, data: bytes) -> None:
        if not data:
            self.gone = True
        if data or not self.conn.trailing_data[1]:
            self.conn.receive_data(data)

    async def _fill(self, timeout: float) -> None:
        if self._read is None:  # the usual case: no watch left a read pending, none to start
            try:
                async with asyncio.timeout(max(timeout, 0.0)):
                    data = await self.reader.read(READ_CHUNK)
            except TimeoutError:
                raise _ClientTooSlowError from None
            except OSError:
                data = b""
            self._receive(data)
            return
        done, _ = await asyncio.wait({self._read}, timeout=max(timeout, 0.0))
        if not done:
            raise _ClientTooSlowError
        self._take_read()

    async def _head(self, kept_alive: bool) -> h11.Request | h11.ConnectionClosed:
        """The next request head: within header_timeout_s of connecting, or, kept alive, of the
        first byte that follows idle_timeout_s of waiting."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        waited_for_bytes = kept_alive and not self.conn.trailing_data[0]
        deadline = started + (
            self.config.idle_timeout_s if waited_for_bytes else self.config.header_timeout_s
        )
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                assert isinstance(event, h11.Request | h11.ConnectionClosed), event
                return event
            await self._fill(deadline - loop.time())
            if waited_for_bytes and self.conn.trailing_data[0]:
                waited_for_bytes = False  # the next request has started: its head has its time
                deadline = loop.time() + self.config.header_timeout_s

    async def _event(self) -> object:
        """The next body event; the body may go silent for header_timeout_s at most."""
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            await self._fill(self.config.header_timeout_s)

    # --- writing --------------------------------------------------------------------------

    async def _send(self, answer: Answer, *, close: bool = False) -> None:
        headers = [*answer.headers, (b"content-length", str(len(answer.body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        reason = answer.reason or _phrase(answer.status)
        data = self.conn.send(
            h11.Response(status_code=answer.status, headers=headers, reason=reason)
        )
        data += self.conn.send(h11.Data(data=answer.body)) if answer.body else b""
        data += self.conn.send(h11.EndOfMessage())
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        if self.gone or self.writer.transport.is_closing():
            raise _EndConnectionError
        self.writer.write(data)
        try:
            async with asyncio.timeout(self.config.idle_timeout_s):
                await self.writer.drain()
        except (OSError, TimeoutError) as exc:
            raise _EndConnectionError from exc

    async def _refuse(
        self,
        request: h11.Request | None,
        status: int,
        error: str,
        message: str,
        headers: Iterable[tuple[bytes, bytes]] = (),
    ) -> None:
        """Answer here, forward nothing. The connection stays open only when the request has
        been read whole (no body, or a body already here)."""
        self.front.stats.refused_requests += 1
        what = (
            f"{request.method.decode('ascii', 'replace')} "
            f"{request.target[:200].decode('ascii', 'replace')}"
            if request
            else "request"
        )
        logger.info("refused %s from %s: %d %s: %s", what, self.peer, status, error, message)
        with contextlib.suppress(h11.RemoteProtocolError):
            while self.conn.their_state is h11.SEND_BODY:
                if self.conn.next_event() is h11.NEED_DATA:  # what is here, without waiting
                    break
        complete = self.conn.their_state is h11.DONE
        answer = error_answer(status, error, message)
        answer.headers.extend(headers)
        await self._send(answer, close=not complete)
        if not complete:
            await self._linger()
            raise _EndConnectionError

    async def _linger(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            if self.writer.can_write_eof():
                self.writer.write_eof()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + LINGER_S
        with contextlib.suppress(_ClientTooSlowError):
            while not self.gone and loop.time() < deadline:
                task = self._start_read()
                done, _ = await asyncio.wait({task}, timeout=deadline - loop.time())
                if not done:
                    break
                self._read = None
                try:
                    self.gone = not task.result()
                except OSError:
                    self.gone = True

    # --- serving --------------------------------------------------------------------------

    async def serve(self) -> None:
        kept_alive = False
        try:
            while True:
                try:
                    event = await self._head(kept_alive)
                except _ClientTooSlowError:
                    self.front.stats.timed_out += 1
                    logger.debug("closed %s: no request head in time", self.peer)
                    return
                if isinstance(event, h11.ConnectionClosed):
                    return
                await self._handle(event)
                if self.gone or self.conn.our_state is not h11.DONE:
                    return
                if self.conn.their_state is not h11.DONE:
                    return
                self.conn.start_next_cycle()
                kept_alive = True
        except h11.RemoteProtocolError as exc:
            if self.gone:
                return
            status = exc.error_status_hint
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                name = "RequestHeaderFieldsTooLarge" if status == 431 else "BadRequest"
                with contextlib.suppress(_EndConnectionError, h11.LocalProtocolError):
                    await self._refuse(None, status, name, f"malformed HTTP request: {exc}")
        except _ClientTooSlowError:
            self.front.stats.timed_out += 1
            logger.info("closed %s: the request body stopped arriving", self.peer)
        except _EndConnectionError:
            return
        finally:
            if self._read is not None:
                self._read.cancel()

    async def _handle(self, request: h11.Request) -> None:
        path = request.target.split(b"?", 1)[0]
        allowed = ROUTES.get(path)
        if allowed is None:
            await self._refuse(
                request, 404, "NotFound", "only /ping and /invocations are served here"
            )
            return
        if request.method not in allowed:
            methods = ", ".join(sorted(m.decode() for m in allowed))
            await self._refuse(
                request,
                405,
                "MethodNotAllowed",
                f"{path.decode()} accepts {methods}",
                [(b"allow", methods.encode())],
            )
            return
        body = await self._body(request)
        if body is None:  # refused (413)
            return
        # raw_items: the names as the client spelt them (the toolkit reads some by exact name)
        headers = [(n, v) for n, v in request.headers.raw_items() if n.lower() not in HOP_BY_HOP]
        answer = await self._dispatch(request, path, headers, body)
        await self._send(answer)

    async def _body(self, request: h11.Request) -> bytes | None:
        """The whole body, or None when it is refused (413, answered here)."""
        limit = self.config.max_body_bytes
        for name, value in request.headers:
            if name == b"content-length" and int(value) > limit:  # h11 checked it is a number
                await self._refuse(request, 413, "BodyTooLarge", _too_large(int(value), limit))
                return None
        if self.conn.they_are_waiting_for_100_continue:
            await self._write(
                self.conn.send(h11.InformationalResponse(status_code=100, headers=[]))
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            event = await self._event()
            if isinstance(event, h11.Data):
                size += len(event.data)
                if size > limit:
                    await self._refuse(request, 413, "BodyTooLarge", _too_large(size, limit))
                    return None
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                return b"".join(chunks)
            else:  # ConnectionClosed mid-body raises RemoteProtocolError in h11 instead
                raise _EndConnectionError

    async def _watch(self, until: asyncio.Future[object]) -> None:
        """Wait for `until`, reading the client meanwhile to learn whether it has gone (bytes of
        a pipelined next request go to h11's buffer, up to a head's size)."""
        while not until.done():
            watching = (
                not self.gone and len(self.conn.trailing_data[0]) <= self.config.max_head_bytes
            )
            waits: set[asyncio.Future[object]] = {until}
            if watching:
                waits.add(self._start_read())
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if self._read is not None and self._read.done():
                self._take_read()
            if self.gone:
                return

    async def _queue(self, slots: Slots) -> bool:
        """Wait for a slot, watching the client: False (and no slot) if it goes meanwhile."""
        acquire = asyncio.ensure_future(slots.acquire())
        try:
            await self._watch(acquire)
        finally:
            if not acquire.done():
                acquire.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await acquire
        if not self.gone:
            return True
        if not acquire.cancelled():
            slots.release()  # granted just as the client went: pass it on
        return False

    async def _dispatch(
        self, request: h11.Request, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> Answer:
        front = self.front
        slots = front.ping_slots if path == b"/ping" else front.slots
        queued = time.monotonic()
        if not slots.try_acquire() and not await self._queue(slots):
            front.stats.dropped_in_queue += 1
            logger.info(
                "dropped %s %s: the client closed after %.2f s in the queue, before it went "
                "upstream (%d dropped so far, %d still waiting)",
                request.method.decode(),
                path.decode(),
                time.monotonic() - queued,
                front.stats.dropped_in_queue,
                slots.waiting,
            )
            raise _EndConnectionError
        try:
            upstream = asyncio.ensure_future(front.forward(request.method, path, headers, body))
            try:
                await self._watch(upstream)
                # Gone or not, the model server computes it to the end: the slot stays taken.
                answer = await asyncio.shield(upstream)
            except asyncio.CancelledError:
                upstream.cancel()
                raise
        finally:
            slots.release()
        if self.gone:
            front.stats.abandoned_in_flight += 1
            logger.info(
                "discarded the answer to %s %s: the client closed while it was in flight "
                "(%.2f s after it arrived)",
                request.method.decode(),
                path.decode(),
                time.monotonic() - queued,
            )
            raise _EndConnectionError
        return answer


def _too_large(size: int, limit: int) -> str:
    return (
        f"the request body is {size} bytes or more; this endpoint accepts at most {limit} "
        "(SageMaker's real-time limit is 6 MB: larger audio needs an asynchronous endpoint)"
    )


def _phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:
        return b""


def raise_file_limit(wanted: int) -> int:
    """Raise this process's open-file limit toward `wanted` (up to the hard limit); the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    host = host.strip("[]") or "127.0.0.1"
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--listen wants HOST:PORT, not {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m transcription_benchmarks.serving.front",
        description="SageMaker's front end, locally: timeouts, limits, routes and a queue that "
        "drops abandoned requests, in front of Multi Model Server.",
    )
    parser.add_argument("--listen", type=parse_listen, default=DEFAULT_LISTEN, help="HOST:PORT")
    parser.add_argument(
        "--upstream", required=True, help="unix:/path/to/mms.sock (or http://host:port)"
    )
    parser.add_argument("--concurrency", type=int, required=True, help="MMS's worker count")
    # the defaults are FrontConfig's own, written once there
    parser.add_argument("--idle-timeout-s", type=float, default=FrontConfig.idle_timeout_s)
    parser.add_argument("--header-timeout-s", type=float, default=FrontConfig.header_timeout_s)
    parser.add_argument("--max-body-bytes", type=int, default=FrontConfig.max_body_bytes)
    parser.add_argument("--max-connections", type=int, default=FrontConfig.max_connections)
    parser.add_argument("--upstream-timeout-s", type=float, default=FrontConfig.upstream_timeout_s)
    parser.add_argument("--log-level", default="INFO")
    return parser


def config_from_args(args: argparse.Namespace) -> FrontConfig:
    host, port = args.listen
    if args.concurrency < 1:
        raise SystemExit("--concurrency must be at least 1")
    return FrontConfig(
        upstream=args.upstream,
        concurrency=args.concurrency,
        host=host,
        port=port,
        idle_timeout_s=args.idle_timeout_s,
        header_timeout_s=args.header_timeout_s,
        max_body_bytes=args.max_body_bytes,
        max_connections=args.max_connections,
        upstream_timeout_s=args.upstream_timeout_s,
    )


async def run(config: FrontConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    reserve = 64 + 2 * (config.concurrency + config.ping_concurrency)
    limit = raise_file_limit(config.max_connections + reserve)
    if limit < config.max_connections + reserve:
        config.max_connections = max(1, limit - reserve)
        logger.warning(
            "the open-file limit is %d: serving at most %d connections",
            limit,
            config.max_connections,
        )
    front = Front(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await front.start()
        await stop.wait()
        logger.info("stopping")
    finally:
        await front.close()


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    for chatty in ("httpx", "httpcore"):  # a line per forwarded request: not wanted
        logging.getLogger(chatty).setLevel(max(logging.WARNING, logging.getLogger().level))
    asyncio.run(run(config_from_args(args)))


if __name__ == "__main__":
    main()
