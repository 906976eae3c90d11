"""Which torch + ctranslate2 (+ cuBLAS) this machine's NVIDIA driver can run, and why.

Chosen from the compat facts in matrix.toml (each torch wheel's CUDA, each ctranslate2's CUDA
and cuDNN needs, each CUDA major's minimum driver and GPU architecture), so that a new release
is a TOML entry, not code. The rule: the newest torch whose CUDA major the driver runs (minor-
version compatibility: any 12.x runtime from driver 525.60.13 on, any 13.x from 580), the newest
ctranslate2 that needs no cuDNN, and a CUDA 12 cuBLAS beside a CUDA 13 torch, since every
ctranslate2 so far is a CUDA 12 build that dlopens libcublas.so.12.

`python -m transcription_benchmarks.compat.stack` prints the choice for this machine as JSON
(the noxfile's `gpu_bench` asks it, as it asks compat.matrix for cells).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version
from pydantic import BaseModel, ConfigDict

from transcription_benchmarks.compat.matrix import CompatMatrix, Ctranslate2Build, default_matrix
from transcription_benchmarks.compat.registry import get_issue
from transcription_benchmarks.errors import BenchError

TORCH_SPEC_ENV = "TORCH_SPEC"


class NoStackError(BenchError):
    """No torch + ctranslate2 in the compat facts runs on this driver; the message is the fix."""


class Stack(BaseModel):
    """What to install for GPU runs on one machine, and the one line that says why."""

    model_config = ConfigDict(frozen=True)

    torch: str
    """A pip requirement: `torch==2.10.0`, or what TORCH_SPEC said."""
    torch_cuda: str | None
    """The CUDA runtime that torch brings (None: a TORCH_SPEC torch the facts do not know)."""
    ctranslate2: str
    extra: tuple[str, ...] = ()
    """Libraries the pair needs beside it (nvidia-cublas-cu12 next to a CUDA 13 torch)."""
    reason: str
    overridden: bool = False
    """True when TORCH_SPEC (or an explicit spec) chose torch instead of the driver."""

    @property
    def requirements(self) -> list[str]:
        """Arguments for `pip install`: TORCH_SPEC's own words (an --index-url included)."""
        return [*shlex.split(self.torch), f"ctranslate2=={self.ctranslate2}", *self.extra]

    def install_command(self, python: str = "python") -> list[str]:
        return [python, "-m", "pip", "install", *self.requirements]


def _version(text: str) -> tuple[int, ...]:
    """A driver version as numbers: '535.183.01' -> (535, 183, 1)."""
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def runnable_cuda_majors(
    driver_version: str, compute_capability: str | None = None, matrix: CompatMatrix | None = None
) -> list[int]:
    """The CUDA majors this driver (and GPU architecture, when known) runs, newest first."""
    matrix = matrix or default_matrix()
    have = _version(driver_version)
    majors = []
    for major, needs in matrix.cuda.items():
        if have < _version(needs.min_driver):
            continue
        if compute_capability and Version(compute_capability) < Version(
            needs.min_compute_capability
        ):
            continue
        majors.append(int(major))
    return sorted(majors, reverse=True)


def ctranslate2_for(
    cuda_majors: list[int], matrix: CompatMatrix | None = None
) -> tuple[str, Ctranslate2Build]:
    """The newest ctranslate2 built for one of `cuda_majors` that needs no cuDNN (so it cannot
    meet the cuDNN load failures), with its build facts."""
    matrix = matrix or default_matrix()
    choices = sorted(
        (
            (Version(v), v, build)
            for v, build in matrix.ctranslate2.items()
            if int(build.cuda) in cuda_majors and not build.cudnn
        ),
        reverse=True,
    )
    if not choices:
        raise NoStackError(
            f"no ctranslate2 in the compat facts is built for CUDA "
            f"{'/'.join(map(str, cuda_majors))} without cuDNN"
        )
    _, version, build = choices[0]
    return version, build


def _spec_version(spec: str) -> str | None:
    """torch's pinned version in a spec such as 'torch==2.6.0 --index-url ...', if pinned."""
    for word in shlex.split(spec):
        try:
            requirement = Requirement(word)
        except InvalidRequirement:
            continue
        if requirement.name == "torch":
            pins = [s.version for s in requirement.specifier if s.operator in ("==", "===")]
            return pins[0].split("+")[0] if pins else None
    return None


def choose_stack(
    driver_version: str,
    compute_capability: str | None = None,
    *,
    torch_spec: str | None = None,
    matrix: CompatMatrix | None = None,
) -> Stack:
    """The stack for a machine whose NVIDIA driver is `driver_version` (NVML's answer) and whose
    oldest GPU has `compute_capability`; `torch_spec` overrides the torch part. Raises
    NoStackError, with the driver upgrade as the fix, where nothing fits."""
    matrix = matrix or default_matrix()
    majors = runnable_cuda_majors(driver_version, compute_capability, matrix)
    gpu = f" on compute capability {compute_capability}" if compute_capability else ""
    if not majors:
        oldest = min(matrix.cuda.items(), key=lambda item: _version(item[1].min_driver))
        raise NoStackError(
            f"driver {driver_version}{gpu} runs no CUDA runtime torch or ctranslate2 ship "
            f"(CUDA {oldest[0]} needs driver >= {oldest[1].min_driver}). "
            f"{get_issue('driver-too-old').fix}"
        )
    ct2, ct2_build = ctranslate2_for(majors, matrix)
    runs = f"driver {driver_version}{gpu} runs CUDA {'/'.join(map(str, majors))}"

    if torch_spec:
        version = _spec_version(torch_spec)
        build = matrix.torch.get(version) if version else None
        torch_cuda = build.cuda if build else None
        torch_part = f"torch from {TORCH_SPEC_ENV} ({torch_spec}"
        torch_part += f", CUDA {torch_cuda})" if torch_cuda else ", CUDA not in the compat facts)"
        if torch_cuda and int(torch_cuda.split(".")[0]) not in majors:
            need = matrix.cuda[torch_cuda.split(".")[0]]
            torch_part += (
                f" [this driver cannot run it: CUDA {torch_cuda} needs driver >= "
                f"{need.min_driver} and compute capability >= {need.min_compute_capability}]"
            )
        torch, overridden = torch_spec, True
    else:
        candidates = sorted(
            (
                (Version(v), v, build)
                for v, build in matrix.torch.items()
                if int(build.cuda.split(".")[0]) in majors
            ),
            reverse=True,
        )
        _, version, build = candidates[0]
        torch_cuda = build.cuda
        torch_part = f"torch {version} (CUDA {torch_cuda}, the newest it runs)"
        torch, overridden = f"torch=={version}", False

    cublas = f"nvidia-cublas-cu{ct2_build.cuda}"
    same_major = torch_cuda is not None and torch_cuda.split(".")[0] == ct2_build.cuda
    extra = () if same_major else (cublas,)
    cublas_part = (
        f"cuBLAS {ct2_build.cuda} from torch's own {cublas}"
        if same_major
        else f"{cublas} beside it for ctranslate2's libcublas.so.{ct2_build.cuda}"
    )
    reason = (
        f"{runs}: {torch_part}, ctranslate2 {ct2} (CUDA {ct2_build.cuda}, no cuDNN needed), "
        f"{cublas_part}"
    )
    return Stack(
        torch=torch,
        torch_cuda=torch_cuda,
        ctranslate2=ct2,
        extra=extra,
        reason=reason,
        overridden=overridden,
    )


class Choice(BaseModel):
    """What the chooser says of this machine: no GPU, a stack, or why none fits."""

    gpu: bool
    driver: str | None = None
    stack: Stack | None = None
    refusal: str | None = None
    error: str | None = None


def choice_for(
    driver_version: str, compute_capability: str | None = None, torch_spec: str | None = None
) -> Choice:
    """choose_stack as an answer rather than an exception; TORCH_SPEC from the environment
    unless `torch_spec` is given ("" chooses from the driver whatever the environment says)."""
    spec = torch_spec if torch_spec is not None else os.environ.get(TORCH_SPEC_ENV, "")
    try:
        stack = choose_stack(driver_version, compute_capability, torch_spec=spec or None)
    except NoStackError as exc:
        return Choice(gpu=True, driver=driver_version, refusal=str(exc))
    return Choice(gpu=True, driver=driver_version, stack=stack)


def choice_for_this_machine(torch_spec: str | None = None) -> Choice:
    """The driver and oldest GPU as NVML reports them, then choice_for."""
    from transcription_benchmarks.measure.gpus import nvidia_driver

    driver = nvidia_driver()
    if not driver.gpu_count or not driver.version:
        return Choice(gpu=False, error=driver.error)
    return choice_for(driver.version, driver.compute_capability, torch_spec)


def main(argv: list[str] | None = None) -> int:
    """Print this machine's Choice as JSON; `--driver V [--compute-capability C]` asks for
    another machine instead of reading NVML."""
    parser = argparse.ArgumentParser(prog="python -m transcription_benchmarks.compat.stack")
    parser.add_argument("--driver", help="an NVIDIA driver version, e.g. 535.183.01")
    parser.add_argument("--compute-capability", help="the oldest GPU's, e.g. 7.5")
    parser.add_argument(
        "--torch-spec", help=f"overrides the torch choice (default ${TORCH_SPEC_ENV})"
    )
    ns = parser.parse_args(argv)
    if ns.driver:
        choice = choice_for(ns.driver, ns.compute_capability, ns.torch_spec)
    else:
        choice = choice_for_this_machine(ns.torch_spec)
    print(choice.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
