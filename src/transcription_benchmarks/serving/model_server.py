"""Start Multi Model Server the way the Hugging Face inference container does; runs inside the
endpoint env (python -m transcription_benchmarks.serving.model_server MODEL_DIR).

The container's entry point (sagemaker_huggingface_inference_toolkit.serving) hard-codes
/opt/ml/model and writes /etc/sagemaker-mms.properties. This module builds the same properties
with the toolkit's own function (sagemaker_inference.model_server), changes the bind address
(127.0.0.1 unless asked) and the paths, and runs MMS in the foreground, so that the parent can
stop it by stopping this process's group.

The toolkit binds MMS's management API to the inference address (both
http://0.0.0.0:8080): with no authentication and any Origin, `POST /models?url=DIR` there
registers any local directory and runs its code/inference.py. On SageMaker only /invocations
and /ping reach the container; here the management API moves to a unix socket in the run
directory, which only this user can open (MMS has no setting that turns it off; when the two
addresses differ, MMS's inference side answers 404 to /models).

MMS's inference API listens on a unix socket too, and the port belongs to serving/front.py,
which does here what SageMaker's front end does before the container: idle and header
timeouts (MMS has none), only /ping and /invocations forwarded, and requests whose clients gave
up dropped before MMS computes them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from transcription_benchmarks.lifetime import die_with_parent
from transcription_benchmarks.serving.budget import workers_per_model

HANDLER_SERVICE = "sagemaker_huggingface_inference_toolkit.handler_service"


MANAGEMENT_SOCKET = "management.sock"
"""The management API's unix socket, in the run directory."""
INFERENCE_SOCKET = "inference.sock"
"""MMS's inference API's unix socket, in the run directory: the front forwards to it."""


def management_socket(run_dir: Path) -> Path:
    return run_dir / MANAGEMENT_SOCKET


def inference_socket(run_dir: Path) -> Path:
    return run_dir / INFERENCE_SOCKET


def mms_command(model_dir: Path, run_dir: Path) -> list[str]:
    """Write the MMS properties into run_dir and return the command that starts MMS."""
    from sagemaker_inference import environment
    from sagemaker_inference.model_server import (
        DEFAULT_MMS_LOG_FILE,
        DEFAULT_MMS_MODEL_NAME,
        _generate_mms_config_properties,
    )

    properties = _generate_mms_config_properties(environment.Environment(), HANDLER_SERVICE)
    inference = f"inference_address=unix:{inference_socket(run_dir)}"
    management = f"management_address=unix:{management_socket(run_dir)}"
    lines = [
        inference if line.startswith("inference_address=") else line
        for line in properties.splitlines()
        if not line.startswith("management_address=")
    ]
    properties = "\n".join([*lines, management]) + "\n"
    config = run_dir / "mms.properties"
    config.write_text(properties)
    return [
        "multi-model-server",
        "--start",
        "--foreground",
        "--model-store",
        "/",  # as the container: --models takes the model dir relative to the store
        "--mms-config",
        str(config),
        "--log-config",
        DEFAULT_MMS_LOG_FILE,
        "--models",
        f"{DEFAULT_MMS_MODEL_NAME}={model_dir}",
    ]


PARENT_PID_ENV = "TRANSCRIPTION_BENCHMARKS_SERVER_PARENT_PID"
"""Set by the local endpoint's launcher: this supervisor ends the server when that pid dies."""
STOP_GRACE_S = 15.0


def front_command(run_dir: Path, host: str, port: int, workers: int) -> list[str]:
    """The front on host:port before MMS's inference socket, as many requests in flight as MMS
    has workers, bodies up to MMS's own request cap (the handler words the real-time limit)."""
    return [
        sys.executable,
        "-m",
        "transcription_benchmarks.serving.front",
        "--listen",
        f"{host}:{port}",
        "--upstream",
        f"unix:{inference_socket(run_dir)}",
        "--concurrency",
        str(workers),
        "--max-body-bytes",
        os.environ.get("MMS_MAX_REQUEST_SIZE", "6553500"),
    ]


def supervise(commands: list[list[str]], env: dict[str, str]) -> int:
    """Run MMS's launcher and the front under this process, the leader of the server's process
    group (the front, the launcher, MMS's Java frontend and its Python workers), until one of
    them exits or this process is told to stop; then end the whole group: SIGTERM, SIGKILL for
    what outlives the grace.

    MMS's launcher starts Java and waits, and dies on SIGTERM without passing it on, so its
    Java frontend and workers would serve on; and a launcher killed with -9 leaves them all.
    Here the kernel sends this process SIGTERM when the process that started it dies
    (lifetime.die_with_parent), kill -9 of `tbench serve-local` included, and SIGTERM ends
    the group."""
    parent = os.environ.get(PARENT_PID_ENV)
    die_with_parent(int(parent) if parent else None, signal.SIGTERM)
    processes = [subprocess.Popen(command, env=env) for command in commands]

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the group's SIGTERM reaches us too
        _end_group(processes)
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    pid, status = os.wait()  # the first of them to end ends the server
    name = next((c[0] for p, c in zip(processes, commands, strict=True) if p.pid == pid), "?")
    code = os.waitstatus_to_exitcode(status)  # negative: the signal that ended it
    print(f"{Path(name).name} (pid {pid}) exited ({code}): stopping the server", flush=True)
    _end_group(processes)
    return code or 1


def _end_group(processes: list[subprocess.Popen[bytes]]) -> None:
    group = os.getpgrp()
    if group != os.getpid():  # not a group of our own: end only what we started
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        return
    import psutil

    me = psutil.Process()
    members = me.children(recursive=True)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=STOP_GRACE_S)
    for member in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.kill()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir", type=Path, help="an unpacked artifact: model files, code/")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--run-dir", type=Path, default=None, help="config and logs")
    args = parser.parse_args(argv)
    model_dir = args.model_dir.resolve()
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="tb-mms-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("LOG_LOCATION", str(run_dir / "logs"))
    # MMS keeps its pid file in the temp dir and refuses to start while that pid lives: one
    # temp dir per server keeps servers (and other users' servers) apart.
    # MMS's frontend names its worker sockets .mms.sock.<port> in the JVM's temp dir, which
    # follows TEMP (multi-model-server passes it as -Djava.io.tmpdir), not TMPDIR: without it
    # two servers on one machine share /tmp/.mms.sock.9000 and answer with each other's model.
    (run_dir / "tmp").mkdir(exist_ok=True)
    os.environ["TMPDIR"] = str(run_dir / "tmp")
    os.environ["TEMP"] = str(run_dir / "tmp")
    # MMS reads MMS_<PROPERTY> variables over its properties file (the toolkit's
    # enable_envvars_config=true): none may move the management API back onto the port.
    for name in ("MMS_MANAGEMENT_ADDRESS", "MMS_INFERENCE_ADDRESS"):
        os.environ.pop(name, None)
    # The toolkit imports code/inference.py from the model dir (handler_service.initialize).
    command = mms_command(model_dir, run_dir)
    workers = workers_per_model("cpu")  # SAGEMAKER_MODEL_SERVER_WORKERS, else one per core
    front = front_command(run_dir, args.host, args.port, workers)
    print("starting:", " ".join(command), flush=True)
    print("front:", " ".join(front), flush=True)
    os.chdir(run_dir)  # MMS writes logs/ and its pid file relative to the working directory
    bin_dir = Path(sys.executable).parent
    command[0] = str(bin_dir / command[0])
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    sys.exit(supervise([command, front], env))


if __name__ == "__main__":
    main()
