"""The local endpoint's front (serving/front.py): what its extra hop adds to one request.

An upstream that answers at once (a small asyncio HTTP/1.1 server in its own process, on a unix
socket and on a TCP port, reading the whole body and answering ~1 KB of JSON as a transcription
would) stands in for Multi Model Server, so that only the hop is measured. One client (httpx,
kept-alive connections) sends the same body, interleaved, to:

- direct-tcp: the upstream's TCP port (what a client of MMS alone does);
- direct-uds: the upstream's unix socket;
- front: the front on TCP, which forwards over the unix socket.

Prints p50/p90 per target, the front's p50 over direct-tcp's, and the front process's CPU time
per request (user + system, from /proc: the part of the hop that does not depend on how busy
the machine is).

    python benchmarks/front_overhead.py [--body-kb 300] [--requests 500] [--warmup 50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h11
import httpx

ANSWER = b'{"segments": [' + b'{"text": "ask not what your country can do for you"},' * 20 + b"{}]}"


async def _answer_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(256 * 1024))
            elif isinstance(event, h11.EndOfMessage):
                headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(ANSWER))),
                ]
                data = conn.send(h11.Response(status_code=200, headers=headers))
                writer.write(
                    data + conn.send(h11.Data(data=ANSWER)) + conn.send(h11.EndOfMessage())
                )
                await writer.drain()
                conn.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
    except (h11.ProtocolError, ConnectionError):
        pass
    finally:
        writer.close()


def _upstream(
    uds: str, ready: multiprocessing.synchronize.Event, port: multiprocessing.Value
) -> None:
    async def serve() -> None:
        await asyncio.start_unix_server(_answer_connection, path=uds)
        tcp = await asyncio.start_server(_answer_connection, "127.0.0.1", 0)
        port.value = tcp.sockets[0].getsockname()[1]
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(serve())


def _start_front(uds: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    command = [sys.executable, "-m", "transcription_benchmarks.serving.front"]
    command += ["--listen", "127.0.0.1:0", "--upstream", f"unix:{uds}", "--concurrency", "1"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while not (match := re.search(r"listening on (http://[\d.]+:\d+)", log.read_text())):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the front did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return process, match.group(1)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--body-kb", type=int, default=300)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=50)
    args = parser.parse_args()
    body = os.urandom(args.body_kb * 1000)
    with tempfile.TemporaryDirectory(prefix="front-bench-") as tmp:
        uds = str(Path(tmp) / "up.sock")
        ready = multiprocessing.Event()
        port = multiprocessing.Value("i", 0)
        upstream = multiprocessing.Process(target=_upstream, args=(uds, ready, port), daemon=True)
        upstream.start()
        assert ready.wait(30)
        front, front_url = _start_front(uds, Path(tmp) / "front.log")
        clients = {
            "direct-tcp": httpx.Client(base_url=f"http://127.0.0.1:{port.value}"),
            "direct-uds": httpx.Client(
                base_url="http://upstream", transport=httpx.HTTPTransport(uds=uds)
            ),
            "front": httpx.Client(base_url=front_url),
        }
        times: dict[str, list[float]] = {name: [] for name in clients}
        headers = {"Content-Type": "application/octet-stream"}
        try:
            for i in range(args.warmup + args.requests):
                if i == args.warmup:
                    cpu_before = _cpu_s(front.pid)
                for name, client in clients.items():
                    started = time.perf_counter()
                    response = client.post("/invocations", content=body, headers=headers)
                    elapsed = time.perf_counter() - started
                    assert response.status_code == 200 and response.content == ANSWER, name
                    if i >= args.warmup:
                        times[name].append(elapsed)
            front_cpu_s = _cpu_s(front.pid) - cpu_before
        finally:
            for client in clients.values():
                client.close()
            front.send_signal(signal.SIGTERM)
            front.wait(10)
            upstream.terminate()
    print(f"{args.requests} requests per target, {len(body)} byte body, {os.cpu_count()} CPUs")
    p50 = {}
    for name, values in times.items():
        p50[name] = statistics.median(values)
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"  {name:11s} p50 {p50[name] * 1e3:6.3f} ms   p90 {p90 * 1e3:6.3f} ms")
    extra = p50["front"] - p50["direct-tcp"]
    print(f"front's extra hop: {extra * 1e3:.3f} ms at p50 over direct-tcp")
    print(f"front's CPU time: {front_cpu_s / args.requests * 1e3:.3f} ms per request")


if __name__ == "__main__":
    main()
