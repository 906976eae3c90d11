"""The CUDA stack chooser (compat/stack.py) on recorded drivers: no NVIDIA driver runs here, so
NVML is a stand-in (tests/nvml_stand_in.py) answering as the named machines would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nvml_stand_in import StandInNvml
from transcription_benchmarks.compat.matrix import default_matrix
from transcription_benchmarks.compat.stack import (
    NoStackError,
    choice_for,
    choice_for_this_machine,
    choose_stack,
    runnable_cuda_majors,
)

CUDA12 = ["torch==2.10.0", "ctranslate2==4.8.5"]
CUDA13 = ["torch==2.15.0", "ctranslate2==4.8.5", "nvidia-cublas-cu12"]


@pytest.mark.parametrize(
    ("driver", "capability", "requirements", "majors"),
    [
        ("525.60.13", "7.5", CUDA12, [12]),  # the first driver of CUDA 12's minor-version compat
        ("535.183.01", "7.5", CUDA12, [12]),  # g4dn (T4) on al2-ami-sagemaker-inference-gpu-2
        ("550.90.07", "8.6", CUDA12, [12]),  # g5 (A10G)
        ("570.172.08", "9.0", CUDA12, [12]),
        ("580.65.06", "9.0", CUDA13, [13, 12]),  # CUDA 13's first driver
        ("590.44.01", "10.0", CUDA13, [13, 12]),
        ("580.65.06", "7.0", CUDA12, [12]),  # a V100: CUDA 13 dropped Volta
    ],
)
def test_each_driver_gets_the_newest_stack_it_runs(driver, capability, requirements, majors):
    assert runnable_cuda_majors(driver, capability) == majors
    stack = choose_stack(driver, capability)
    assert stack.requirements == requirements
    assert not stack.overridden
    assert stack.reason.startswith(f"driver {driver} on compute capability {capability} runs ")
    assert "ctranslate2 4.8.5 (CUDA 12, no cuDNN needed)" in stack.reason
    if 13 in majors:
        assert stack.torch_cuda == "13.2"
        assert stack.reason.endswith(
            "nvidia-cublas-cu12 beside it for ctranslate2's libcublas.so.12"
        )
    else:
        assert stack.torch_cuda == "12.8"
        assert stack.reason.endswith("cuBLAS 12 from torch's own nvidia-cublas-cu12")


def test_the_choice_follows_the_facts_not_a_hard_coded_list():
    # Each CUDA 12 torch is older than every CUDA 13 torch, and the chooser took the newest.
    matrix = default_matrix()
    cuda12 = [v for v, b in matrix.torch.items() if b.cuda.startswith("12.")]
    newest = max(cuda12, key=lambda v: tuple(map(int, v.split("."))))
    assert choose_stack("535.183.01").torch == f"torch=={newest}"
    # A ctranslate2 that needs cuDNN is never chosen, however new.
    assert all(not matrix.ctranslate2[v].cudnn for v in ("4.6.3", "4.8.5"))
    assert matrix.ctranslate2["4.6.0"].cudnn == "9"


@pytest.mark.parametrize("driver", ["470.256.02", "525.60.12", "418.226.00"])
def test_a_driver_too_old_for_cuda_12_is_refused_with_the_upgrade(driver):
    with pytest.raises(NoStackError) as raised:
        choose_stack(driver, "7.5")
    message = str(raised.value)
    assert message.startswith(f"driver {driver} on compute capability 7.5 runs no CUDA runtime")
    assert "CUDA 12 needs driver >= 525.60.13" in message
    assert "InferenceAmiVersion to al2-ami-sagemaker-inference-gpu-2 (driver 535)" in message


def test_torch_spec_overrides_the_torch_and_keeps_ctranslate2_fitting():
    older = choose_stack("580.65.06", "9.0", torch_spec="torch==2.6.0")
    assert older.overridden
    assert older.requirements == ["torch==2.6.0", "ctranslate2==4.8.5"]  # CUDA 12.4: cuBLAS 12
    assert "torch from TORCH_SPEC (torch==2.6.0, CUDA 12.4)" in older.reason
    index = "torch --index-url https://download.pytorch.org/whl/cu126"
    unknown = choose_stack("535.183.01", torch_spec=index)
    assert unknown.requirements == [
        "torch",
        "--index-url",
        "https://download.pytorch.org/whl/cu126",
        "ctranslate2==4.8.5",
        "nvidia-cublas-cu12",  # whose CUDA the facts cannot say: cuBLAS 12 to be sure
    ]
    assert unknown.torch_cuda is None
    too_new = choose_stack("535.183.01", torch_spec="torch==2.13.0")
    assert too_new.requirements[0] == "torch==2.13.0"  # the user's word stands...
    assert "this driver cannot run it: CUDA 13.0 needs driver >= 580" in too_new.reason  # ...said


def test_torch_spec_comes_from_the_environment_unless_given(monkeypatch):
    monkeypatch.setenv("TORCH_SPEC", "torch==2.7.1")
    assert choice_for("550.90.07").stack.torch == "torch==2.7.1"
    assert choice_for("550.90.07", torch_spec="").stack.torch == "torch==2.10.0"
    refused = choice_for("470.256.02")
    assert refused.stack is None and "runs no CUDA runtime" in refused.refusal


def test_this_machine_is_read_through_nvml(monkeypatch):
    monkeypatch.delenv("TORCH_SPEC", raising=False)
    t4 = StandInNvml(driver="535.183.01", cuda=12020, capabilities=((7, 5),), name=b"Tesla T4")
    monkeypatch.setitem(sys.modules, "pynvml", t4)
    choice = choice_for_this_machine()
    assert choice.gpu and choice.driver == "535.183.01"
    assert choice.stack.requirements == CUDA12
    mixed = StandInNvml(driver="580.65.06", capabilities=((9, 0), (7, 0)))  # an H100 and a V100
    monkeypatch.setitem(sys.modules, "pynvml", mixed)
    assert choice_for_this_machine().stack.requirements == CUDA12  # the oldest GPU decides
    monkeypatch.setitem(sys.modules, "pynvml", StandInNvml(fail_init=True))
    none = choice_for_this_machine()
    assert not none.gpu and "no NVIDIA driver" in none.error


def test_the_command_answers_for_another_machine():
    command = [sys.executable, "-m", "transcription_benchmarks.compat.stack"]
    out = subprocess.run(
        [*command, "--driver", "535.183.01", "--compute-capability", "7.5", "--torch-spec", ""],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    answer = json.loads(out)
    assert answer["stack"]["torch"] == "torch==2.10.0"
    here = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    assert here["gpu"] is False  # this machine has no NVIDIA driver


def test_doctor_fix_prints_the_install_line_for_this_machine(monkeypatch):
    from typer.testing import CliRunner

    from transcription_benchmarks.cli import app

    monkeypatch.delenv("TORCH_SPEC", raising=False)
    g5 = StandInNvml(driver="550.90.07", cuda=12040, capabilities=((8, 6),), name=b"NVIDIA A10G")
    monkeypatch.setitem(sys.modules, "pynvml", g5)
    result = CliRunner().invoke(app, ["doctor", "--fix"])
    assert result.exit_code == 0, result.output
    reason, line = result.output.strip().splitlines()
    assert reason.startswith("# driver 550.90.07 on compute capability 8.6 runs CUDA 12: ")
    assert line == f"{sys.executable} -m pip install torch==2.10.0 ctranslate2==4.8.5"
    monkeypatch.setitem(sys.modules, "pynvml", StandInNvml(driver="470.256.02", cuda=11040))
    refused = CliRunner().invoke(app, ["doctor", "--fix"])
    assert refused.exit_code == 1
    assert "No CUDA stack fits this machine: driver 470.256.02" in refused.output
    monkeypatch.setitem(sys.modules, "pynvml", StandInNvml(fail_init=True))
    none = CliRunner().invoke(app, ["doctor", "--fix"])
    assert none.exit_code == 0 and none.output.startswith("No NVIDIA GPU here")


def test_gpu_bench_without_a_gpu_exits_0_and_says_why():
    import shutil
    from pathlib import Path

    nox = shutil.which("nox")
    if nox is None:
        pytest.skip("nox is not installed in this environment")
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run(
        [nox, "-s", "gpu_bench", "--no-install", "--reuse-existing-virtualenvs"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "no CUDA GPU here (no NVIDIA driver" in run.stderr
    assert "GPU session skipped" in run.stderr


def test_the_deployed_container_runs_on_the_driver_of_the_ami_deploy_asks_for():
    from transcription_benchmarks.aws.deploy import INFERENCE_AMI_VERSION
    from transcription_benchmarks.serving.package import CONTAINER_CUDA

    # SageMaker's AMI table: al2-ami-sagemaker-inference-gpu-2 brings driver 535 (CUDA 12.2);
    # the default AMI of g4dn, g5, p3 and p4d brings 470, which runs no CUDA 12 at all.
    assert INFERENCE_AMI_VERSION == "al2-ami-sagemaker-inference-gpu-2"
    assert int(CONTAINER_CUDA.split(".")[0]) in runnable_cuda_majors("535.183.01", "7.5")
    assert runnable_cuda_majors("470.256.02", "7.5") == []
