"""Verdict logic (observed vs expected, proofs, table) and `tbench doctor` / `compat-table`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from transcription_benchmarks.cli import app
from transcription_benchmarks.compat import doctor
from transcription_benchmarks.compat.matrix import default_matrix, select
from transcription_benchmarks.compat.registry import get_issue
from transcription_benchmarks.compat.verdict import (
    cudnn_text,
    failed,
    observed_issues,
    proof_problems,
    render_json,
    render_markdown,
    verdict_rows,
)

CUDNN9 = "Unable to load any of {libcudnn_ops.so.9.1.0, libcudnn_ops.so.9.1, libcudnn_ops.so.9, libcudnn_ops.so}"
NVJITLINK = "ImportError: libcusparse.so.12: undefined symbol: __nvJitLinkComplete_12_4, version libnvJitLink.so.12"


def ok(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "status": "ok", "returncode": 0, "data": data}


def error(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "status": "error", "returncode": -6, "data": None, "error": text}


def skipped(name: str) -> dict[str, Any]:
    return {"name": name, "status": "skipped", "returncode": None, "data": {"skipped": "why"}}


def report(
    *,
    torch: dict[str, Any] | None = None,
    torch_error: str | None = None,
    cublas_alone: bool = True,
    cublas_after_torch: bool | None = True,
    cudnn_error: str | None = None,
    cublas_after_preload: str | None = None,
) -> dict[str, Any]:
    """A probe report shaped like probe.probe()'s, for torch 2.5.1 + ctranslate2 4.5.0."""
    torch = torch or {"version": "2.5.1+cu124", "cuda": "12.4", "cudnn": 90100}
    ct2 = {"version": "4.5.0", "cublas_soname": "libcublas.so.12", "cudnn_major": 9}
    steps = [error("torch_import", torch_error) if torch_error else ok("torch_import", torch)]
    steps.append(ok("ct2_import", ct2))
    steps.append(ok("resolve", {"libcublas.so.12": {"found": cublas_alone}}))
    steps.append(error("cudnn_call", cudnn_error) if cudnn_error else ok("cudnn_call", {}))
    if cublas_after_torch is None:
        steps += [skipped("resolve_after_torch"), skipped("cudnn_call_after_torch")]
    else:
        steps.append(ok("resolve_after_torch", {"libcublas.so.12": {"found": cublas_after_torch}}))
    found = {"found": bool(cublas_after_preload), "path": cublas_after_preload}
    steps.append(ok("resolve_after_preload", {"libcublas.so.12": found}))
    steps.append(skipped("gpu_transcribe"))
    return {"python": "py", "ld_library_path": "", "steps": steps}


def test_clean_report_observes_nothing() -> None:
    assert observed_issues(report()) == ([], [])


def test_cublas_condition_chooses_the_cause() -> None:
    assert observed_issues(report(cublas_alone=False))[0] == ["cublas-off-path"]
    missing = report(cublas_alone=False, cublas_after_torch=False)
    assert observed_issues(missing)[0] == ["cublas12-missing"]
    unknown = report(cublas_alone=False, cublas_after_torch=None, torch_error=NVJITLINK)
    assert observed_issues(unknown)[0] == ["nvjitlink-symbol", "cublas-off-path"]


def test_gpu_error_text_is_resolved_by_the_condition() -> None:
    rep = report(cublas_alone=False, cublas_after_torch=False)
    rep["steps"][-1] = error(
        "gpu_transcribe", "Library libcublas.so.12 is not found or cannot be loaded"
    )
    assert observed_issues(rep) == (["cublas12-missing"], [])


def test_errors_map_to_issues_or_are_unexplained() -> None:
    assert observed_issues(report(cudnn_error=CUDNN9))[0] == ["cudnn9-ops-load"]
    seen, unexplained = observed_issues(report(cudnn_error="Segmentation fault"))
    assert seen == [] and unexplained == ["cudnn_call: ['Segmentation fault']"]


def test_cudnn_version_text() -> None:
    assert cudnn_text(8902) == "8.9.2"
    assert cudnn_text(90100) == "9.1.0"
    assert cudnn_text(91002) == "9.10.2"
    assert cudnn_text(None) is None


def write_cell(results: Path, cell_id: str, runs: dict[str, dict[str, Any]]) -> None:
    body = {"runs": [{"scenario": s, "report": r} for s, r in runs.items()]}
    (results / f"{cell_id}.json").write_text(json.dumps(body))


def test_rows_agree_contradict_and_go_missing(tmp_path: Path) -> None:
    matrix = default_matrix()
    cell = matrix.cell("torch2.5.1-ct2-4.5.0")
    assert cell.expect["fix-lib-path"] == ()
    assert set(cell.expect["old-toolkit"]) >= {"nvjitlink-symbol"}
    write_cell(
        tmp_path,
        cell.id,
        {
            "fix-lib-path": report(),
            # expected cudnn9 + cublas-off-path + nvjitlink; only nvjitlink seen: contradiction
            "old-toolkit": report(torch_error=NVJITLINK, cublas_after_torch=None),
        },
    )
    selection = select(matrix, [cell.id, "scenario=fix-lib-path", "scenario=old-toolkit"])
    rows = verdict_rows(matrix, selection, tmp_path)
    status = {r.scenario: r.status for r in rows}
    assert status == {"old-toolkit": "CONTRADICTS", "fix-lib-path": "as expected"}
    assert failed(rows, [])
    plain = verdict_rows(matrix, select(matrix, [cell.id, "scenario=plain"]), tmp_path)
    assert plain[0].status == "missing"


def test_wrong_wheel_facts_contradict(tmp_path: Path) -> None:
    matrix = default_matrix()
    cell = matrix.cell("torch2.5.1-ct2-4.5.0")
    write_cell(tmp_path, cell.id, {"fix-lib-path": report(torch={"cuda": "12.1", "cudnn": 8902})})
    (row,) = verdict_rows(matrix, select(matrix, [cell.id, "scenario=fix-lib-path"]), tmp_path)
    assert row.status == "CONTRADICTS"
    assert row.fact_errors == [
        "torch CUDA 12.1, matrix says 12.4",
        "torch cuDNN 8.9.2, matrix says 9.1.0",
    ]


def test_proof_rows_must_be_free_of_their_issue(tmp_path: Path) -> None:
    matrix = default_matrix()
    proof = "torch2.5.1-ct2-4.5.0/fix-lib-path"
    assert proof in get_issue("cudnn9-ops-load").proven_by
    write_cell(tmp_path, "torch2.5.1-ct2-4.5.0", {"fix-lib-path": report(cudnn_error=CUDNN9)})
    rows = verdict_rows(
        matrix, select(matrix, ["torch2.5.1-ct2-4.5.0", "scenario=fix-lib-path"]), tmp_path
    )
    problems = proof_problems(rows)
    assert problems == [f"cudnn9-ops-load: its fix row {proof} still shows it"]
    markdown = render_markdown(rows, problems)
    assert (
        "| torch2.5.1-ct2-4.5.0 | fix-lib-path | 12.4 / 9.1.0 | ok | cudnn9-ops-load | CONTRADICTS |"
        in markdown
    )
    assert "**cudnn9-ops-load**" in markdown and "fix not proven" in markdown
    body = json.loads(render_json(rows, problems))
    assert body["failed"] and "cudnn9-ops-load" in body["issues"]


def test_compat_table_command_exit_codes(tmp_path: Path) -> None:
    runner = CliRunner()
    write_cell(tmp_path, "torch2.5.1-ct2-4.5.0", {"fix-lib-path": report()})
    args = ["compat-table", str(tmp_path), "torch2.5.1-ct2-4.5.0", "scenario=fix-lib-path"]
    good = runner.invoke(app, args)
    assert good.exit_code == 0, good.output
    assert "as expected" in good.output and (tmp_path / "table.json").exists()
    bad = runner.invoke(app, ["compat-table", str(tmp_path), "torch=2.5.1"])
    assert bad.exit_code == 1 and "(no result)" in bad.output


def test_driver_findings() -> None:
    facts = {"torch_cuda": "12.4", "ct2_cublas": "libcublas.so.12"}
    old = doctor.Driver(version="470.256.02", max_cuda="11.4", gpus=1)
    (finding,) = doctor.driver_findings(old, facts)
    assert finding.issue.id == "driver-too-old" and finding.applies
    assert "470.256.02" in finding.evidence
    assert doctor.driver_findings(doctor.Driver(version="535.104.05", max_cuda="12.2"), facts) == []
    cuda13 = {"torch_cuda": "13.0"}
    assert doctor.driver_findings(doctor.Driver(version="570.1", max_cuda="12.8"), cuda13)
    assert doctor.driver_findings(doctor.Driver(error="no NVIDIA driver"), facts) == []


def test_no_driver_here_degrades_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    from transcription_benchmarks.measure.gpus import nvidia_gpu_count

    if nvidia_gpu_count():
        pytest.skip("this machine has an NVIDIA driver")
    driver = doctor.nvidia_driver()
    assert driver.version is None and driver.error and driver.error.startswith("no NVIDIA driver")


def test_latent_gpu_issue_does_not_fail_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "probe", lambda: report(cublas_alone=False))
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: doctor.Driver(error="no NVIDIA driver"))
    diagnosis = doctor.diagnose()
    assert [f.issue.id for f in diagnosis.findings] == ["cublas-off-path"]
    assert not diagnosis.failing
    assert "[latent (needs a GPU to bite)] cublas-off-path" in doctor.render(diagnosis)
    gpu = doctor.Driver(version="535.104.05", max_cuda="12.2", gpus=1)
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: gpu)
    diagnosis = doctor.diagnose()
    assert diagnosis.failing
    assert {f.issue.id for f in diagnosis.findings} == {
        "cublas-off-path",
        "nvidia-smi-cuda-version",
    }


def test_a_cublas_issue_the_preload_resolves_is_shown_but_handled(monkeypatch) -> None:
    pip = "/env/site-packages/nvidia/cublas/lib/libcublas.so.12"
    missing = report(cublas_alone=False, cublas_after_torch=False, cublas_after_preload=pip)
    assert observed_issues(missing)[0] == ["cublas12-missing"]  # ctranslate2 alone: as before
    monkeypatch.setattr(doctor, "probe", lambda: missing)
    gpu = doctor.Driver(version="580.65.06", max_cuda="13.0", gpus=1)
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: gpu)
    diagnosis = doctor.diagnose()
    assert not diagnosis.failing  # a GPU is here, and still nothing in this harness's way
    [cublas] = [f for f in diagnosis.findings if f.issue.id == "cublas12-missing"]
    assert not cublas.applies
    assert cublas.handled_by == f"the faster-whisper backend preloads {pip} (compat/preload.py)"
    assert "[handled] cublas12-missing" in doctor.render(diagnosis)
    unresolved = report(cublas_alone=False, cublas_after_torch=False)  # no pip cuBLAS 12
    monkeypatch.setattr(doctor, "probe", lambda: unresolved)
    assert doctor.diagnose().failing


def test_import_failure_applies_without_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        doctor, "probe", lambda: report(torch_error=NVJITLINK, cublas_after_torch=None)
    )
    monkeypatch.setattr(doctor, "nvidia_driver", lambda: doctor.Driver(error="no NVIDIA driver"))
    diagnosis = doctor.diagnose()
    assert diagnosis.failing
    assert "[APPLIES] nvjitlink-symbol" in doctor.render(diagnosis)


def test_doctor_command_on_this_env() -> None:
    """Here (no GPU, CPU torch): whatever ctranslate2 lacks is latent, so doctor exits 0."""
    pytest.importorskip("ctranslate2")
    from transcription_benchmarks.measure.gpus import nvidia_gpu_count

    result = CliRunner().invoke(app, ["doctor"])
    assert "ctranslate2" in result.output and "NVIDIA driver" in result.output
    if nvidia_gpu_count() == 0:
        assert result.exit_code == 0, result.output
