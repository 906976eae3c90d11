"""Build model_artifact.tar.gz: the model files at the root and code/ beside them.

code/ holds inference.py (a few lines handing over to serving.handlers), serving.json (how to
load the model), requirements.txt pinned for the container, and a wheel of this package that
requirements.txt installs: one implementation, shipped with every artifact, never a copy.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import warnings
from importlib import resources
from pathlib import Path

from transcription_benchmarks.args import BackendName
from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.models import resolve
from transcription_benchmarks.models.resolve import ModelFormat
from transcription_benchmarks.serving.config import CONFIG_FILE, ServingConfig

ARTIFACT_NAME = "model_artifact.tar.gz"
WHEEL_PLACEHOLDER = "{wheel}"
MODEL_FORMATS: dict[BackendName, ModelFormat] = {
    "faster-whisper": "ctranslate2",
    "transformers": "transformers",
}
PROJECT_ROOT = Path(__file__).resolve().parents[3]


class PackagingError(BenchError):
    """The artifact cannot be built: no project source to build the wheel from, or pip failed."""


def template_dir(backend: BackendName) -> Path:
    """The backend's code/ templates inside the installed package."""
    package = resources.files("transcription_benchmarks.serving.artifact")
    return Path(str(package.joinpath(backend.replace("-", "_"))))


def container_requirements(backend: BackendName) -> list[str]:
    """The backend's pins from its requirements.txt, without the line that installs the wheel:
    what the local endpoint's env installs besides this package."""
    text = (template_dir(backend) / "requirements.txt").read_text()
    return [
        line.strip()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#") and WHEEL_PLACEHOLDER not in line
    ]


def stage(
    model: str,
    dest: Path,
    *,
    config: ServingConfig | None = None,
    wheel: Path | None = None,
    link: bool = False,
) -> Path:
    """Lay out an unpacked artifact in `dest`: the model files and code/. `link` symlinks the
    model files instead of copying them (the local endpoint serves in place)."""
    config = config or ServingConfig()
    resolved = resolve(model, MODEL_FORMATS[config.backend])
    if config.backend == "transformers" and not (resolved.path / "vocab.json").is_file():
        warnings.warn(
            f"{resolved.path} was saved by transformers 5 (no vocab.json; v5 tokenizer and "
            "processor configs): the inference container's transformers 4.51 cannot load it. "
            "Package a checkpoint saved by transformers 4.x for the transformers backend.",
            stacklevel=2,
        )
    dest.mkdir(parents=True, exist_ok=True)
    for item in sorted(resolved.path.iterdir()):
        if item.name == "code" or item.name.startswith("."):
            continue
        target = dest / item.name
        if link:
            target.symlink_to(item.resolve(), target_is_directory=item.is_dir())
        elif item.is_dir():
            shutil.copytree(item, target)
        else:
            shutil.copy2(item, target)
    code = dest / "code"
    code.mkdir()
    templates = template_dir(config.backend)
    shutil.copy2(templates / "inference.py", code / "inference.py")
    (code / CONFIG_FILE).write_text(config.model_dump_json(indent=2) + "\n")
    if wheel is not None:
        shutil.copy2(wheel, code / wheel.name)
        requirements = (templates / "requirements.txt").read_text()
        (code / "requirements.txt").write_text(requirements.replace(WHEEL_PLACEHOLDER, wheel.name))
    return dest


def build_wheel(out_dir: Path, project: Path = PROJECT_ROOT) -> Path:
    """A wheel of this package from its source tree (pip wheel --no-deps)."""
    if not (project / "pyproject.toml").is_file():
        raise PackagingError(
            f"no project source at {project} to build the wheel from; package from a checkout "
            "of transcription-benchmarks"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out_dir), str(project)],
        capture_output=True,
        text=True,
    )
    wheels = sorted(out_dir.glob("transcription_benchmarks-*.whl"))
    if built.returncode or not wheels:
        raise PackagingError(f"pip wheel failed for {project}:\n{built.stderr[-2000:]}")
    return wheels[-1]


def package(
    model: str,
    out_dir: str | Path,
    backend: BackendName = "faster-whisper",
    *,
    config: ServingConfig | None = None,
) -> Path:
    """Build out_dir/model_artifact.tar.gz for `model` (anything models.resolve takes) served
    by `backend`'s handler; returns its path."""
    config = (config or ServingConfig()).model_copy(update={"backend": backend})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    artifact = out / ARTIFACT_NAME
    with tempfile.TemporaryDirectory(prefix="tb-package-") as tmp:
        wheel = build_wheel(Path(tmp) / "wheel")
        staged = stage(model, Path(tmp) / "artifact", config=config, wheel=wheel)
        partial = artifact.with_suffix(".partial")
        # SageMaker unpacks the archive into /opt/ml/model: members are relative to its root.
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for item in sorted(staged.iterdir()):
                tar.add(item, arcname=item.name)
        partial.replace(artifact)
    return artifact
