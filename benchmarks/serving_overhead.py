"""Serving overhead: one request's latency through the local endpoint (Multi Model Server and
our handler) and through faster-whisper-server, against the same transcription in-process.

Targets, all on the same weights (the packaged CTranslate2 tiny.en directory) with
faster-whisper's default decoding options:

- bare: faster_whisper.WhisperModel.transcribe(path) with its segments consumed, timed in the
  process that runs it (spawned in a session of its own, as each server runs in its own: Linux
  shares a busy CPU between sessions, so a shared session would slow this side only);
- served: the local SageMaker-style endpoint (serving.local.start_local_endpoint), the audio's
  bytes as the body, no parameters, through the project's client;
- fws: faster-whisper-server (load.servers), the file uploaded, response_format=verbose_json;
- served-direct (optional): the same endpoint's MMS on its own inference socket, past the
  local endpoint's front (serving/front.py), where MMS listens on one;
- mms-echo (optional): MMS and the toolkit serving a handler that answers at once (on MMS's
  own socket where there is one): what MMS costs by itself.

Every server is started and warmed up first; then requests go out interleaved, one per target
in turn (bare, served, fws, bare, served, fws, ...; --rotate starts each round one target
later), so background load hits all alike. Every
answer is checked against the in-process one: the endpoint's info.options against
TranscriptionInfo.transcription_options (a difference stops the run), and each target's
segments (start, end, text, tokens, temperature; faster-whisper-server reports no options, only
task, language and segments). Prints p50/p90 per target, the ratio of each p50 to bare's, and
each target's resident memory (every process a server runs), per file. Goal: served p50 <=
1.05x bare and <= faster-whisper-server's.

    python benchmarks/serving_overhead.py [--files jfk.flac 1min.flac] [--requests 15]
        [--warmup 2] [--targets bare served fws [served-direct] [mms-echo]] [--port PORT]
        [--rotate]

Run it with the endpoint env's Python (nox -s endpoint: .nox/endpoint/bin/python), which has
Multi Model Server, the toolkit and faster-whisper-server (the `load` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import socket
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

BARE, SERVED, FWS, DIRECT, ECHO = "bare", "served", "fws", "served-direct", "mms-echo"
TARGETS = (BARE, SERVED, FWS, DIRECT, ECHO)
MMS_PORTS = range(8081, 8100)
"""MMS refuses some high ports: the local endpoint gets a free one of these."""
MODEL = "Systran/faster-whisper-tiny.en"
AUDIO_HEADERS = {"Content-Type": "application/octet-stream", "Accept": "application/json"}

ECHO_HANDLER = '''"""An inference.py that answers every request at once: MMS and the toolkit alone."""
import json

def model_fn(model_dir, context=None):
    return None

def input_fn(input_data, content_type, context=None):
    return len(input_data or b"")

def predict_fn(size, model, context=None):
    return size

def output_fn(size, accept, context=None):
    if not size:  # what the local launcher's start-up check expects of an empty body
        return json.dumps({"status": 400, "error": "EmptyBody", "message": "empty"}).encode()
    return json.dumps({"received": size}).encode()
'''


@dataclasses.dataclass(frozen=True)
class Answer:
    """What a target answered, for the checks: segments as dicts, and the reported options."""

    segments: list[dict[str, Any]]
    options: dict[str, Any] | None = None
    processing_s: float | None = None
    """The endpoint's info.processing_s."""
    elapsed_s: float | None = None
    """The target's own timing, where it has one (bare: transcribe alone, no pipe)."""


Runner = Callable[[Path, bytes], Answer]


def port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_mms(model: str | Path, port: int | None, stack: ExitStack) -> Any:
    """A local endpoint (serving.local.LocalServer) on `port`, else on the first free port of
    MMS_PORTS that MMS takes; stopped when `stack` closes."""
    from transcription_benchmarks.serving.local import LocalEndpointError, start_local_endpoint

    tried = [port] if port else [p for p in MMS_PORTS if port_is_free(p)]
    last: Exception | None = None
    for candidate in tried:
        try:
            server = start_local_endpoint(model, port=candidate)
        except LocalEndpointError as exc:  # a port MMS refuses, or one taken meanwhile
            last = exc
            continue
        stack.callback(server.stop)
        return server
    raise RuntimeError(f"the local endpoint did not start on any of {tried}: {last}")


def mms_socket(server: Any) -> Path | None:
    """MMS's own inference socket behind the local endpoint's front, where it has one."""
    try:
        from transcription_benchmarks.serving.model_server import inference_socket
    except ImportError:  # MMS listens on the port itself
        return None
    path = inference_socket(server.run_dir)
    return path if path.is_socket() else None


def _bare_worker(connection: Any, model_dir: str) -> None:
    """The in-process engine, in a session of its own (see the module's docstring). Times each
    transcription itself: nothing but WhisperModel.transcribe and consuming its segments."""
    os.setsid()
    from faster_whisper import WhisperModel

    from transcription_benchmarks.backends.base import jsonable

    model = WhisperModel(model_dir)
    connection.send("ready")
    while (path := connection.recv()) is not None:
        started = time.perf_counter()
        segments, info = model.transcribe(path)
        found = list(segments)
        elapsed = time.perf_counter() - started
        options = jsonable(dataclasses.asdict(info.transcription_options))
        connection.send((elapsed, [dataclasses.asdict(s) for s in found], options))


def bare_target(model_dir: Path, stack: ExitStack) -> tuple[Runner, int]:
    """The in-process runner and the pid of the process it runs in."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_bare_worker, args=(theirs, str(model_dir)), daemon=True)
    process.start()

    def stop() -> None:
        with contextlib.suppress(OSError):
            ours.send(None)
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()

    stack.callback(stop)
    if ours.recv() != "ready":
        raise RuntimeError("the in-process engine did not start")

    def run(path: Path, _: bytes) -> Answer:
        ours.send(str(path))
        elapsed, segments, options = ours.recv()
        return Answer(segments, options, elapsed_s=elapsed)

    assert process.pid is not None
    return run, process.pid


def served_target(url: str, uds: Path | None = None) -> Runner:
    """The endpoint at `url` (through the project's client), or MMS on its socket `uds`."""
    import httpx

    from transcription_benchmarks.serving.client import LocalEndpoint
    from transcription_benchmarks.serving.protocol import error_message

    if uds is None:
        client = LocalEndpoint(url)

        def post(body: bytes) -> tuple[int, bytes]:
            response = client.invoke(body)
            return response.status, response.body

    else:
        http = httpx.Client(timeout=120.0, transport=httpx.HTTPTransport(uds=str(uds)))

        def post(body: bytes) -> tuple[int, bytes]:
            response = http.post("http://mms/invocations", content=body, headers=AUDIO_HEADERS)
            return response.status_code, response.content

    def run(_: Path, body: bytes) -> Answer:
        status, content = post(body)
        if not 200 <= status < 300:
            raise RuntimeError(f"{url or uds}: {status} {error_message(content)}")
        answer = json.loads(content)
        info = answer["info"]
        return Answer(answer["segments"], info["options"], info["processing_s"])

    return run


def fws_target(url: str) -> Runner:
    import httpx

    client = httpx.Client(timeout=120.0)

    def run(path: Path, body: bytes) -> Answer:
        response = client.post(
            f"{url}/v1/audio/transcriptions",
            files={"file": (path.name, body)},
            data={"response_format": "verbose_json"},
        )
        response.raise_for_status()
        answer = response.json()
        if (answer["task"], answer["language"]) != ("transcribe", "en"):
            raise RuntimeError(f"fws: task {answer['task']}, language {answer['language']}")
        return Answer(answer["segments"])

    return run


def echo_target(url: str, uds: Path | None) -> Runner:
    import httpx

    transport = httpx.HTTPTransport(uds=str(uds)) if uds else None
    client = httpx.Client(timeout=30.0, transport=transport)
    base = "http://mms" if uds else url

    def run(_: Path, body: bytes) -> Answer:
        response = client.post(f"{base}/invocations", content=body, headers=AUDIO_HEADERS)
        if response.status_code != 200 or response.json().get("received") != len(body):
            raise RuntimeError(f"mms-echo: {response.status_code} {response.content[:200]!r}")
        return Answer([])

    return run


SEGMENT_FIELDS = ("start", "end", "text", "tokens", "temperature")


def check(name: str, answer: Answer, reference: Answer) -> list[str]:
    """Differences from the in-process answer: other options stop the run; other segments are
    returned, to be reported."""
    if answer.options is not None and reference.options is not None:
        differ = {
            k: (answer.options.get(k, "(missing)"), v)
            for k, v in reference.options.items()
            if answer.options.get(k, "(missing)") != v
        }
        if differ:
            raise SystemExit(f"{name} decoded with other options than in-process: {differ}")
    if name == ECHO:
        return []
    mine = [tuple(s.get(f) for f in SEGMENT_FIELDS) for s in answer.segments]
    theirs = [tuple(s.get(f) for f in SEGMENT_FIELDS) for s in reference.segments]
    return [] if mine == theirs else [f"{name}: segments differ from in-process"]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and everything it started."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += process.memory_info().rss
    return total / 2**20


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM unwinds like Ctrl-C: the ExitStack stops every server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", nargs="+", default=["jfk.flac", "1min.flac"])
    parser.add_argument("--requests", type=int, default=15, help="timed requests per target")
    parser.add_argument("--warmup", type=int, default=2, help="untimed requests per target")
    parser.add_argument("--targets", nargs="+", default=[BARE, SERVED, FWS], choices=TARGETS)
    parser.add_argument("--port", type=int, default=None, help="the local endpoint's port")
    parser.add_argument(
        "--rotate",
        action="store_true",
        help="start each round one target later (bare, served, fws; served, fws, bare; ...), so "
        "that no target always follows the same one",
    )
    opts = parser.parse_args()
    if BARE not in opts.targets:
        parser.error("the ratios are to bare: keep it among --targets")
    if DIRECT in opts.targets and SERVED not in opts.targets:
        parser.error(f"{DIRECT} is the {SERVED} target's MMS: name both")

    from transcription_benchmarks.audio import find_test_audio, probe_audio
    from transcription_benchmarks.load.servers import packaged_tiny_en, start_faster_whisper_server

    signal.signal(signal.SIGTERM, _interrupt)
    model_dir = packaged_tiny_en()
    files = [find_test_audio(f) for f in opts.files]
    targets = [t for t in TARGETS if t in opts.targets]
    with ExitStack() as stack:
        runners: dict[str, Runner] = {}
        pids: dict[str, int] = {}
        for name in targets:  # start everything before timing anything
            started = time.perf_counter()
            if name == BARE:
                runners[name], pids[name] = bare_target(model_dir, stack)
            elif name == SERVED:
                served = start_mms(MODEL, opts.port, stack)
                runners[name], pids[name] = served_target(served.url), served.process.pid
            elif name == DIRECT:
                if (uds := mms_socket(served)) is None:
                    raise SystemExit(
                        f"{DIRECT}: this local endpoint's MMS has no socket of its own"
                    )
                runners[name] = served_target("", uds)
            elif name == FWS:
                fws = start_faster_whisper_server(model_dir)
                stack.callback(fws.stop)
                runners[name], pids[name] = fws_target(fws.url), fws.process.pid
            else:
                code = Path(tempfile.mkdtemp(prefix="tb-echo-")) / "code"
                code.mkdir()
                (code / "inference.py").write_text(ECHO_HANDLER)
                echo = start_mms(code.parent, None, stack)
                runners[name], pids[name] = (
                    echo_target(echo.url, mms_socket(echo)),
                    echo.process.pid,
                )
            print(f"{name}: ready in {time.perf_counter() - started:.0f} s", flush=True)

        print(f"\n{MODEL} ({model_dir}), faster-whisper's defaults, {os.cpu_count()} CPUs")
        for path in files:
            body = path.read_bytes()
            duration = probe_audio(path).duration_s
            reference = runners[BARE](path, body)
            problems: list[str] = []
            for name in targets:  # warm-up, and the options check
                for _ in range(opts.warmup):
                    problems += check(name, runners[name](path, body), reference)
            times: dict[str, list[float]] = {name: [] for name in targets}
            handler_s: list[float] = []
            for index in range(opts.requests):
                shift = index % len(targets) if opts.rotate else 0
                for name in targets[shift:] + targets[:shift]:
                    started = time.perf_counter()
                    answer = runners[name](path, body)
                    elapsed = time.perf_counter() - started
                    times[name].append(answer.elapsed_s or elapsed)
                    problems += check(name, answer, reference)
                    if name == SERVED and answer.processing_s is not None:
                        handler_s.append(answer.processing_s)
            base = statistics.median(times[BARE])
            print(f"\n{path.name} ({duration:.1f} s), {opts.requests} requests each, interleaved")
            print(f"{'target':14s} {'p50 s':>7s} {'p90 s':>7s} {'p50/bare':>9s} {'RSS MiB':>8s}")
            for name in targets:
                p50 = statistics.median(times[name])
                memory = f"{tree_rss_mb(pids[name]):8.0f}" if name in pids else f"{'-':>8s}"
                print(
                    f"{name:14s} {p50:7.3f} {percentile(times[name], 0.9):7.3f} "
                    f"{p50 / base:8.3f}x {memory}"
                )
            if handler_s:
                print(
                    f"served: the handler's processing_s p50 {statistics.median(handler_s):.3f} s"
                )
            for problem in sorted(set(problems)):
                print(f"  warning: {problem} ({problems.count(problem)} answers)")
        print("\nRSS: bare, the process that runs it; a server, every process it runs")


if __name__ == "__main__":
    main()
