"""The local endpoint: the real Multi Model Server and the real toolkit handler service, loading
our inference code and a model directory, on 127.0.0.1 (a free port unless one is asked for).
No Docker. Only /invocations and /ping answer on its port; MMS's management API listens on a
unix socket in the run directory (serving/model_server.py). A host other than loopback is
refused unless `expose` says the caller means it.

The toolkit 2.6.0 does not import with transformers 5, so the server runs in its own env, pinned
like the container (artifact/container.txt plus each backend's requirements.txt, CPU torch). The
env is the current interpreter when it already has the toolkit (the nox `endpoint` session),
else $TRANSCRIPTION_BENCHMARKS_ENDPOINT_PYTHON, else one built once under
~/.cache/transcription-benchmarks/endpoint-env-<hash of the pins>.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.audio import find_test_audio
from transcription_benchmarks.backends.registry import backend_names, check_name
from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.serving.client import DEFAULT_LOCAL_URL, LocalEndpoint, predict
from transcription_benchmarks.serving.config import MAX_BODY_ENV, ServedBackend, ServingConfig
from transcription_benchmarks.serving.model_server import PARENT_PID_ENV, management_socket
from transcription_benchmarks.serving.package import (
    PROJECT_ROOT,
    container_requirements,
    stage,
    template_dir,
)
from transcription_benchmarks.serving.protocol import (
    MAX_REALTIME_BODY_BYTES,
    ErrorBody,
    TranscriptionInfo,
    WireSegment,
    error_message,
)

ENDPOINT_PYTHON_ENV = "TRANSCRIPTION_BENCHMARKS_ENDPOINT_PYTHON"
ENDPOINT_URL_ENV = "TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
"""`tbench serve-local`'s port, as the container's; code that starts a server for itself
(tests, benchmarks, `tbench load local`) takes a free one (free_port)."""
START_TIMEOUT_S = 180.0
MMS_LIMITS = {
    # SageMaker's real-time limits, so the local server refuses what SageMaker would. MMS's own
    # cap sits above the handler's, so an over-size body reaches the handler, whose 413 names
    # the limit (MMS answers its own 413 with an empty body).
    "MMS_MAX_REQUEST_SIZE": str(4 * MAX_REALTIME_BODY_BYTES),
    MAX_BODY_ENV: str(MAX_REALTIME_BODY_BYTES),
    "MMS_MAX_RESPONSE_SIZE": str(MAX_REALTIME_BODY_BYTES),
    "MMS_DEFAULT_RESPONSE_TIMEOUT": "1",  # minutes: SageMaker ends a call after 60 s
}
RESPONSE_TIMEOUT_SECONDS_ENV = "MMS_DEFAULT_RESPONSE_TIMEOUT_SECONDS"


class LocalEndpointError(BenchError):
    """The local endpoint cannot be built, started or reached."""


def free_port(host: str = DEFAULT_HOST) -> int:
    """A port nothing listens on at `host` now, as the system hands them out (a race with
    another process that binds it first ends in the server's start error, naming the port)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure(host: str, port: int) -> str:
    """What serving on a non-loopback host exposes, in words."""
    return (
        f"serving on {host}:{port} lets any machine that reaches this one send /invocations "
        "(transcriptions that take this machine's CPU, memory and GPU) and /ping; nothing "
        "authenticates them. MMS's management API stays on its unix socket."
    )


def endpoint_requirements() -> list[str]:
    """Everything the endpoint env installs besides this package."""
    container = (template_dir() / "container.txt").read_text()
    pins = [
        line.strip()
        for line in container.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    for backend in backend_names():  # one env serves every engine
        try:
            needed = container_requirements(backend)
        except BenchError:
            continue  # a plug-in that does not load serves nothing here
        pins += [p for p in needed if p not in pins]
    return [*shlex.split(TORCH_SPEC), *pins]


def _has_toolkit() -> bool:
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("mms", "sagemaker_huggingface_inference_toolkit", "sagemaker_inference")
    )


def endpoint_python(*, build: bool = True) -> Path:
    """The Python that runs the server; builds the cached env on first use (about a minute
    from local wheels)."""
    if configured := os.environ.get(ENDPOINT_PYTHON_ENV):
        return Path(configured)
    if _has_toolkit():
        return Path(sys.executable)
    requirements = endpoint_requirements()
    key = hashlib.sha256("\n".join(requirements).encode()).hexdigest()[:12]
    env_dir = Path.home() / ".cache" / "transcription-benchmarks" / f"endpoint-env-{key}"
    python = env_dir / "bin" / "python"
    if (env_dir / ".complete").is_file():
        return python
    if not build:
        raise LocalEndpointError(f"the endpoint env {env_dir} is not built yet")
    if not (PROJECT_ROOT / "pyproject.toml").is_file():
        raise LocalEndpointError(
            f"no project source at {PROJECT_ROOT} to install into the endpoint env; set "
            f"{ENDPOINT_PYTHON_ENV} to a Python that has this package, multi-model-server and "
            "sagemaker-huggingface-inference-toolkit"
        )
    shutil.rmtree(env_dir, ignore_errors=True)
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    _run([sys.executable, "-m", "venv", str(env_dir)], "create the endpoint env")
    # pip, not uv: pip's configuration may point at a CPU torch on local disk (see noxfile.py).
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            *requirements,
            "-e",
            f"{PROJECT_ROOT}[serving,packaged]",
        ],
        "install the endpoint env",
    )
    (env_dir / ".complete").write_text("\n".join(requirements) + "\n")
    return python


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        raise LocalEndpointError(f"cannot {what}: {shlex.join(command)}\n{done.stderr[-3000:]}")


def _check_java() -> None:
    java_home = os.environ.get("JAVA_HOME")
    if not (java_home and Path(java_home, "bin", "java").is_file()) and not shutil.which("java"):
        raise LocalEndpointError(
            "Multi Model Server needs Java (11 or newer) and none is on PATH or in JAVA_HOME: "
            "apt-get install openjdk-17-jre-headless"
        )


@dataclass
class LocalServer:
    """A running Multi Model Server started by `start_local_endpoint`; stop() ends it."""

    url: str
    process: subprocess.Popen[bytes]
    run_dir: Path
    model_dir: Path
    _cleanup: list[Path] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.run_dir / "server.log"

    def log_tail(self, lines: int = 40) -> str:
        if not self.log.is_file():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout_s: float = 20.0) -> None:
        """End the server: the launcher, MMS's Java frontend and its Python workers, all in
        the process group it started; SIGTERM first, SIGKILL for what outlives timeout_s."""
        import psutil

        try:
            root = psutil.Process(self.process.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            processes = []
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs(processes, timeout=timeout_s)
        if alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            psutil.wait_procs(alive, timeout=5)
        self.process.wait()
        for path in self._cleanup:
            shutil.rmtree(path, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def model_loaded(management: Path) -> bool:
    """MMS's /ping says Healthy even before the model is registered: also ask its management
    API (on its unix socket) whether the model is there."""
    import httpx

    if not management.exists():
        return False
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(management))) as client:
            models = client.get("http://mms/models", timeout=5.0).json().get("models", [])
    except (httpx.HTTPError, ValueError):
        return False
    return any(m.get("modelName") == "model" for m in models)


def _handler_problem(endpoint: LocalEndpoint) -> str | None:
    """None when our handler answers. /ping stays Healthy when model_fn fails (the toolkit
    retries it on every request and answers 400), so send an empty body, which only our
    input_fn refuses with an EmptyBody error (after model_fn succeeded)."""
    response = endpoint.invoke(b"")
    try:
        if ErrorBody.model_validate_json(response.body).error == "EmptyBody":
            return None
    except ValueError:
        pass
    return f"an empty request got {response.status}: {error_message(response.body)}"


def start_local_endpoint(
    model: str | Path = "Systran/faster-whisper-tiny.en",
    *,
    backend: ServedBackend | None = None,
    host: str = DEFAULT_HOST,
    port: int | None = None,
    workers: int = 1,
    config: ServingConfig | None = None,
    timeout_s: float = START_TIMEOUT_S,
    response_timeout_s: int | None = None,
    expose: bool = False,
) -> LocalServer:
    """Serve `model` locally and wait until /ping says Healthy with the model loaded.

    `model` is an unpacked artifact (a directory with code/inference.py: served as it is) or
    anything models.resolve takes (staged with the backend's inference code, files linked).
    `port`: None takes a free one (the server's url says which). `response_timeout_s`: MMS's
    response timeout in seconds (default: SageMaker's 60 s). A `host` other than loopback is
    refused unless `expose` (exposure() says what it exposes)."""
    if not is_loopback(host) and not expose:
        raise LocalEndpointError(
            f"host {host} is not a loopback address: {exposure(host, port or DEFAULT_PORT)} "
            "Pass expose=True (tbench serve-local --expose) if that is meant."
        )
    _check_java()
    python = endpoint_python()
    port = free_port(host) if port is None else port
    url = f"http://{host}:{port}"
    with LocalEndpoint(url) as probe:
        if probe.ping() is not None:
            raise LocalEndpointError(f"something already answers on {url}; stop it first")
    run_dir = Path(tempfile.mkdtemp(prefix="tb-endpoint-"))
    cleanup = [run_dir]
    model_dir = Path(model)
    if not (model_dir / "code" / "inference.py").is_file():
        config = config or ServingConfig()
        if backend is not None:
            config = config.model_copy(update={"backend": check_name(backend)})
        model_dir = stage(str(model), run_dir / "model", config=config, link=True)
    env = {
        **os.environ,
        **MMS_LIMITS,
        "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers),
        **({RESPONSE_TIMEOUT_SECONDS_ENV: str(response_timeout_s)} if response_timeout_s else {}),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        PARENT_PID_ENV: str(os.getpid()),  # the server ends when this process does
    }
    env.pop("PYTHONPATH", None)
    log = (run_dir / "server.log").open("wb")
    process = subprocess.Popen(
        [
            str(python),
            "-m",
            "transcription_benchmarks.serving.model_server",
            str(model_dir),
            "--host",
            host,
            "--port",
            str(port),
            "--run-dir",
            str(run_dir),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,  # its own process group: stop() ends MMS and its workers
    )
    log.close()
    server = LocalServer(url, process, run_dir, model_dir, cleanup)
    try:
        _wait_until_serving(server, timeout_s)
    except BaseException:  # a failed start, Ctrl-C or SIGTERM while waiting: leave nothing
        server.stop()
        raise
    return server


def _wait_until_serving(server: LocalServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with LocalEndpoint(server.url) as probe:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise LocalEndpointError(
                    f"the model server exited ({server.process.returncode}):\n{server.log_tail()}"
                )
            if probe.healthy() and model_loaded(management_socket(server.run_dir)):
                if (problem := _handler_problem(probe)) is None:
                    return
                raise LocalEndpointError(
                    f"the handler does not serve: {problem}\n{server.log_tail()}"
                )
            time.sleep(0.5)
    raise LocalEndpointError(
        f"the model server was not Healthy after {timeout_s:.0f} s:\n{server.log_tail()}"
    )


def local_url() -> str:
    """The endpoint `tbench predict-local` talks to: $TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL,
    else `tbench serve-local`'s default address."""
    return configured_url() or DEFAULT_LOCAL_URL


def configured_url() -> str | None:
    """A running endpoint the user named ($TRANSCRIPTION_BENCHMARKS_ENDPOINT_URL): code that
    would otherwise start its own server uses that one instead, and no other. Whatever
    happens to answer on a default port is never taken for it."""
    return os.environ.get(ENDPOINT_URL_ENV) or None


def predict_local(
    test_file: str | Path,
    params: Mapping[str, Any] | BaseModel | None = None,
    *,
    url: str | None = None,
) -> tuple[list[WireSegment], TranscriptionInfo]:
    """Transcribe a file (a path or a test-audio name) on the running local endpoint."""
    url = url or local_url()
    audio = find_test_audio(test_file).read_bytes()
    if len(audio) > MAX_REALTIME_BODY_BYTES:  # refused here, as predict_aws does, not sent
        raise LocalEndpointError(
            f"{test_file} is {len(audio)} bytes; the local endpoint, like a real-time SageMaker "
            f"endpoint, takes at most {MAX_REALTIME_BODY_BYTES} (6 MB): cut the audio, or use an "
            "asynchronous SageMaker endpoint (tbench deploy --async)"
        )
    with LocalEndpoint(url) as endpoint:
        if endpoint.ping() is None:
            raise LocalEndpointError(
                f"no endpoint answers on {url}: start one with `tbench serve-local`"
            )
        return predict(endpoint, audio, params)
