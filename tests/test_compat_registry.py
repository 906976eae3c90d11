"""Known-issue registry and matrix data: recorded error texts map to the right issue."""

from __future__ import annotations

import pytest

from transcription_benchmarks.compat.matrix import default_matrix, requirements, select
from transcription_benchmarks.compat.registry import get_issue, known_issues, load_issues, match

# Error texts as users and the compat probe recorded them.
RECORDED = {
    "cudnn9-ops-load": (
        "Unable to load any of {libcudnn_ops.so.9.1.0, libcudnn_ops.so.9.1, libcudnn_ops.so.9, "
        "libcudnn_ops.so}\nInvalid handle. Cannot load symbol cudnnCreateTensorDescriptor\n"
        "(killed by signal 6)"
    ),
    "cudnn8-ops-load": (
        "Could not load library libcudnn_ops_infer.so.8. Error: libcudnn_ops_infer.so.8: cannot "
        "open shared object file: No such file or directory\n(killed by signal 6)"
    ),
    "nvjitlink-symbol": (
        "ImportError: /env/lib/python3.11/site-packages/torch/lib/../../nvidia/cusparse/lib/"
        "libcusparse.so.12: undefined symbol: __nvJitLinkComplete_12_4, version libnvJitLink.so.12"
    ),
    "driver-too-old": (
        "RuntimeError: CUDA failed with error CUDA driver version is insufficient for CUDA "
        "runtime version"
    ),
    "nvidia-smi-cuda-version": (
        "| NVIDIA-SMI 470.256.02   Driver Version: 470.256.02   CUDA Version: 11.4     |"
    ),
}
CUBLAS_TEXT = "RuntimeError: Library libcublas.so.12 is not found or cannot be loaded"


@pytest.mark.parametrize(("issue_id", "text"), sorted(RECORDED.items()))
def test_recorded_text_matches_its_issue_only(issue_id: str, text: str) -> None:
    assert [i.id for i in match(text)] == [issue_id]


def test_cublas_text_names_both_causes() -> None:
    """One message, two causes; the probe's resolve steps choose (see test_compat_verdict)."""
    assert {i.id for i in match(CUBLAS_TEXT)} == {"cublas-off-path", "cublas12-missing"}


def test_unrelated_text_matches_nothing() -> None:
    assert match("ModuleNotFoundError: No module named 'torch'") == []
    assert match("") == []


def test_registry_loads_with_unique_ids_and_covers_the_faq() -> None:
    ids = [i.id for i in known_issues()]
    assert len(ids) == len(set(ids))
    assert {"cudnn9-ops-load", "nvjitlink-symbol", "nvidia-smi-cuda-version", "driver-too-old"} <= (
        set(ids)
    )
    assert "al2-ami-sagemaker-inference-gpu-2" in get_issue("driver-too-old").fix
    assert "525.60.13" in get_issue("driver-too-old").cause


def test_duplicate_ids_and_bad_patterns_are_rejected(tmp_path) -> None:
    entry = """[[issue]]
id = "x"
title = "t"
symptom = ["{pattern}"]
cause = "c"
affected = "a"
fix = "f"
gpu_only = false
severity = "error"
"""
    dup = tmp_path / "dup.toml"
    dup.write_text(entry.format(pattern="a") * 2)
    with pytest.raises(ValueError, match="duplicate"):
        load_issues(dup)
    bad = tmp_path / "bad.toml"
    bad.write_text(entry.format(pattern="(unclosed"))
    with pytest.raises(ValueError, match="missing"):
        load_issues(bad)


def test_proofs_name_real_matrix_rows() -> None:
    matrix = default_matrix()
    rows = {f"{c.id}/{s.id}" for c in matrix.cells for s in matrix.scenarios}
    for issue in known_issues():
        assert set(issue.proven_by) <= rows, issue.id


def test_expectations_name_known_issues() -> None:
    ids = {i.id for i in known_issues()}
    for cell in default_matrix().cells:
        for expected in cell.expect.values():
            assert set(expected) <= ids, cell.id


def test_matrix_covers_the_required_versions() -> None:
    matrix = default_matrix()
    assert {"2.3.1", "2.4.1", "2.5.1", "2.8.0"} <= {c.torch for c in matrix.cells}
    assert {"4.4.0", "4.5.0"} <= {c.ctranslate2 for c in matrix.cells}
    grid = {c.torch for c in matrix.cells}, {c.ctranslate2 for c in matrix.cells}
    assert len(matrix.cells) == len(grid[0]) * len(grid[1])  # a full grid
    # The chooser's candidates: every PyPI torch from 2.3.1 on (newest patch of each minor).
    assert {"2.9.1", "2.10.0", "2.11.0", "2.12.1", "2.13.0", "2.14.1", "2.15.0"} <= set(
        matrix.torch
    )
    assert grid[1] <= set(matrix.ctranslate2)


def test_select_filters_and_ids() -> None:
    matrix = default_matrix()
    assert len(select(matrix, []).cells) == len(matrix.cells)
    by_torch = select(matrix, ["torch=2.5.1"]).cells
    assert {c.torch for c in by_torch} == {"2.5.1"} and len(by_torch) == 3
    both = select(matrix, ["torch=2.5.1", "torch=2.3.1", "ct2=4.5.0"]).cells
    assert [c.id for c in both] == ["torch2.3.1-ct2-4.5.0", "torch2.5.1-ct2-4.5.0"]
    one = select(matrix, ["torch2.8.0-ct2-4.4.0", "scenario=plain", "index=pytorch"])
    assert [c.id for c in one.cells] == ["torch2.8.0-ct2-4.4.0"]
    assert [s.id for s in one.scenarios] == ["plain"] and one.index == "pytorch"
    for bad in (["nope"], ["torch=9.9"], ["colour=red"], ["scenario=nope"], ["index=conda"]):
        with pytest.raises((KeyError, ValueError)):
            select(matrix, bad)


def test_requirements_pypi_and_pytorch_index() -> None:
    matrix = default_matrix()
    cell = matrix.cell("torch2.3.1-ct2-4.4.0")
    assert requirements(matrix, cell) == ["torch==2.3.1", "ctranslate2==4.4.0"]
    assert requirements(matrix, cell, "pytorch") == [
        "torch==2.3.1+cu121",
        "ctranslate2==4.4.0",
        "--extra-index-url",
        "https://download.pytorch.org/whl/cu121",
    ]


def test_scenario_paths_expand() -> None:
    matrix = default_matrix()
    fix = next(s for s in matrix.scenarios if s.id == "fix-nvjitlink")
    assert fix.library_path("/site", "/old") == ["/site/nvidia/nvjitlink/lib", "/old"]
    plain = next(s for s in matrix.scenarios if s.id == "plain")
    assert plain.library_path("/site", "/old") == []
