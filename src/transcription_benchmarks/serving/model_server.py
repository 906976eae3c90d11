"""Start Multi Model Server the way the Hugging Face inference container does; runs inside the
endpoint env (python -m transcription_benchmarks.serving.model_server MODEL_DIR).

The container's entry point (sagemaker_huggingface_inference_toolkit.serving) hard-codes
/opt/ml/model and writes /etc/sagemaker-mms.properties. This module builds the same properties
with the toolkit's own function (sagemaker_inference.model_server), changes only the bind
address (127.0.0.1 unless asked) and the paths, and runs MMS in the foreground, so that the
parent can stop it by stopping this process's group.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HANDLER_SERVICE = "sagemaker_huggingface_inference_toolkit.handler_service"


def mms_command(model_dir: Path, run_dir: Path, host: str, port: int) -> list[str]:
    """Write the MMS properties into run_dir and return the command that starts MMS."""
    os.environ["SAGEMAKER_BIND_TO_PORT"] = str(port)
    from sagemaker_inference import environment
    from sagemaker_inference.model_server import (
        DEFAULT_MMS_LOG_FILE,
        DEFAULT_MMS_MODEL_NAME,
        _generate_mms_config_properties,
    )

    properties = _generate_mms_config_properties(environment.Environment(), HANDLER_SERVICE)
    properties = properties.replace("http://0.0.0.0:", f"http://{host}:")
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
    # The toolkit imports code/inference.py from the model dir (handler_service.initialize).
    command = mms_command(model_dir, run_dir, args.host, args.port)
    print("starting:", " ".join(command), flush=True)
    os.chdir(run_dir)  # MMS writes logs/ and its pid file relative to the working directory
    bin_dir = Path(sys.executable).parent
    os.execvpe(
        str(bin_dir / command[0]),
        command,
        {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )


if __name__ == "__main__":
    main()
