"""Load on an endpoint: N concurrent requests, every one accounted for.

Sends --requests (default 50) transcriptions of one file at once against the local endpoint
(the one answering on --url, else one started here with tiny.en and stopped afterwards), then
prints successes and failures by status, latency percentiles, throughput, and the server's RSS
(MMS's Java frontend plus its Python workers) before and after.

    python benchmarks/endpoint_load.py [--requests 50] [--file jfk.flac] [--workers 1]
    python benchmarks/endpoint_load.py --params '{"batch": {"batch_size": 8}}'
    python benchmarks/endpoint_load.py --rounds 4   # RSS after each round: plateau or leak?

Test audio names are looked up as everywhere else (test_audio/, then
$TRANSCRIPTION_BENCHMARKS_AUDIO_PATH, e.g. ../shared/test_audio). The server reads
SAGEMAKER_MODEL_SERVER_VMARGS from this environment when started here.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from urllib.parse import urlparse

import numpy as np
import psutil

from transcription_benchmarks.audio import find_test_audio
from transcription_benchmarks.serving.client import LocalEndpoint
from transcription_benchmarks.serving.local import local_url, start_local_endpoint
from transcription_benchmarks.serving.protocol import parse_prediction


def server_processes(port: int) -> list[psutil.Process]:
    """The process listening on the port (MMS's Java frontend) and its descendants (workers)."""
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            root = psutil.Process(conn.pid)
            return [root, *root.children(recursive=True)]
    return []


def rss_mb(port: int) -> tuple[float, int, str]:
    """Total RSS of the server's processes, their count, and the split by process name (the
    Java frontend and the Python workers grow for different reasons)."""
    processes = server_processes(port)
    by_name: Counter[str] = Counter()
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            by_name[process.name()] += process.memory_info().rss
    split = " + ".join(f"{name} {rss / 2**20:.0f}" for name, rss in sorted(by_name.items()))
    return sum(by_name.values()) / 2**20, len(processes), split


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--file", default="jfk.flac")
    parser.add_argument(
        "--url", default=None, help="default: $TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL"
    )
    parser.add_argument("--workers", type=int, default=1, help="MMS workers when starting one")
    parser.add_argument("--params", default=None, help="JSON request parameters")
    parser.add_argument("--timeout", type=float, default=300, help="client seconds per request")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the burst; RSS is printed after each"
    )
    opts = parser.parse_args()
    url = opts.url or local_url()
    port = urlparse(url).port or 80
    body = find_test_audio(opts.file).read_bytes()
    params = json.loads(opts.params) if opts.params else None

    with ExitStack() as stack:
        client = stack.enter_context(LocalEndpoint(url, timeout_s=opts.timeout))
        if client.ping() is None:
            print(f"nothing answers on {url}: starting the local endpoint (tiny.en)")
            host = urlparse(url).hostname or "127.0.0.1"
            stack.enter_context(start_local_endpoint(host=host, port=port, workers=opts.workers))
        client.invoke(body, params=params)  # warm-up: first-request costs are not load
        before, count, before_split = rss_mb(port)

        def one(_: int) -> tuple[str, float]:
            started = time.perf_counter()
            try:
                response = client.invoke(body, params=params)
            except Exception as exc:  # counted, never lost: the point of the benchmark
                return f"no answer ({type(exc).__name__})", time.perf_counter() - started
            elapsed = time.perf_counter() - started
            if response.ok:
                parse_prediction(response.body)
                return "200", elapsed
            return str(response.status), elapsed

        outcomes: list[tuple[str, float]] = []
        rss_after: list[tuple[float, int, str]] = []
        started = time.perf_counter()
        for _ in range(opts.rounds):
            with ThreadPoolExecutor(max_workers=opts.requests) as pool:
                outcomes += pool.map(one, range(opts.requests))
            rss_after.append(rss_mb(port))
        wall = time.perf_counter() - started

    sent = opts.requests * opts.rounds
    statuses = Counter(status for status, _ in outcomes)
    latencies = np.array([elapsed for status, elapsed in outcomes if status == "200"])
    rounds = f" x {opts.rounds} rounds" if opts.rounds > 1 else ""
    print(f"{opts.requests} concurrent requests{rounds} of {opts.file} ({len(body) / 1e3:.0f} kB)")
    print(f"answered: {len(outcomes)} of {sent}; by status: {dict(statuses)}")
    if len(latencies):
        p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
        print(f"latency s: p50 {p50:.2f}  p90 {p90:.2f}  p99 {p99:.2f}  max {latencies.max():.2f}")
    print(f"throughput: {statuses['200'] / wall:.2f} requests/s over {wall:.1f} s")
    after = ", ".join(f"{mb:.0f}" for mb, _, _ in rss_after)
    print(f"server RSS ({count} processes): {before:.0f} MB before, after each round: {after} MB")
    print(f"  by process, MB: before {before_split}; after the last round {rss_after[-1][2]}")
    if len(outcomes) != sent or statuses["200"] != sent:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
