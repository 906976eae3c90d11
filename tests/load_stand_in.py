"""A stand-in OpenAI-compatible transcription server whose behaviour a test sets: how long each
answer takes (one request at a time, like a single-worker server), what text it answers, and
which requests fail.

It is a stand-in, and says so: it transcribes nothing. The load tests use it only where they
need a server whose capacity, errors or wrong answers are known beforehand (a capacity search
must converge on a known service time; the correctness check must catch a server that answers
wrong text). Everything else in tests/test_load.py runs against real servers.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Behaviour:
    text: str
    service_s: float = 0.0
    fail_every: int | None = None
    """Every fail_every-th request (1-based) is answered 500."""
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(behaviour: Behaviour) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            self.rfile.read(length)
            with behaviour.lock:  # one request served at a time: a single worker
                behaviour.requests += 1
                number = behaviour.requests
                time.sleep(behaviour.service_s)
            if behaviour.fail_every and number % behaviour.fail_every == 0:
                body, status = {"error": {"message": "stand-in failure"}}, 500
            else:
                body, status = {"text": behaviour.text}, 200
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def stand_in_server(behaviour: Behaviour) -> Iterator[str]:
    """Serve on a free port of 127.0.0.1; yields the base URL (ending in /v1)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(behaviour))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
