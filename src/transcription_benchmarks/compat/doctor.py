"""`tbench doctor`: the compat probe on this environment, plus the NVIDIA driver.

An issue *applies* when it will break this machine: its symptom or condition was observed and
either it breaks without a GPU (torch does not import) or a GPU is here to hit it. On a CPU-only
machine a CUDA-only problem (cuBLAS off the path, say) is reported as latent, not as a failure.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pydantic import BaseModel

from transcription_benchmarks.compat.probe import probe
from transcription_benchmarks.compat.registry import KnownIssue, get_issue
from transcription_benchmarks.compat.verdict import (
    CUBLAS_IDS,
    observed_issues,
    preloaded_cublas,
    runtime_facts,
)
from transcription_benchmarks.measure import gpus

# CUDA 12 runtimes run on drivers from 525.60.13 on (minor-version compatibility), CUDA 13 on
# 580; these are NVIDIA's published minimums, not something NVML can be asked.
MIN_DRIVER = {12: (525, 60, 13), 13: (580, 0, 0)}


class Driver(BaseModel):
    version: str | None = None
    max_cuda: str | None = None
    gpus: int = 0
    error: str | None = None


class Finding(BaseModel):
    issue: KnownIssue
    applies: bool
    evidence: str
    handled_by: str | None = None
    """What keeps the issue out of this project's way although the env shows it (the
    faster-whisper backend's cuBLAS preload)."""


class Diagnosis(BaseModel):
    python: str
    ld_library_path: str
    driver: Driver
    facts: dict[str, Any]
    steps: list[dict[str, Any]]
    findings: list[Finding]

    @property
    def failing(self) -> bool:
        return any(f.applies for f in self.findings)


def nvidia_driver() -> Driver:
    """Driver version and the newest CUDA it supports (NVML); empty without a driver."""
    found = gpus.nvidia_driver()
    return Driver(
        version=found.version, max_cuda=found.max_cuda, gpus=found.gpu_count, error=found.error
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def driver_findings(driver: Driver, facts: dict[str, Any]) -> list[Finding]:
    """driver-too-old when the driver is older than a runtime this env brings needs."""
    if not driver.version:
        return []
    runtimes = []
    if facts.get("torch_cuda"):
        runtimes.append(("torch", int(facts["torch_cuda"].split(".")[0])))
    if facts.get("ct2_cublas"):
        runtimes.append(("ctranslate2", int(facts["ct2_cublas"].rsplit(".", 1)[1])))
    have = _version_tuple(driver.version)
    for who, major in runtimes:
        need = MIN_DRIVER.get(major)
        if need and have < need:
            evidence = (
                f"driver {driver.version} (CUDA <= {driver.max_cuda}); {who} needs a CUDA "
                f"{major} runtime, driver >= {'.'.join(map(str, need))}"
            )
            return [Finding(issue=get_issue("driver-too-old"), applies=True, evidence=evidence)]
    return []


def evidence(report: dict[str, Any], issue: KnownIssue) -> str:
    """The step error that shows `issue`, or the resolve results behind a cuBLAS condition."""
    for step in report["steps"]:
        text = step.get("error") or ""
        if step["status"] == "error" and issue.matches(text):
            lines = text.strip().splitlines()
            shown = next((line for line in reversed(lines) if issue.matches(line)), lines[-1])
            return f"{step['name']}: {shown.strip()}"
    if issue.id == "cublas-off-path":
        return "libcublas.so.12 resolves only after `import torch`, not as ctranslate2 alone"
    if issue.id == "cublas12-missing":
        return "libcublas.so.12 resolves neither alone nor after `import torch`"
    return "observed by the probe"


def _resolved(step: dict[str, Any]) -> str:
    parts = []
    for name, found in (step.get("data") or {}).items():
        parts.append(
            f"{name} -> {found.get('path') or 'found'}"
            if found.get("found")
            else f"{name} not found"
        )
    return ": " + ", ".join(parts) if parts else ""


def diagnose() -> Diagnosis:
    driver = nvidia_driver()
    report = probe()
    facts = runtime_facts(report)
    observed, unexplained = observed_issues(report)
    has_gpu = driver.gpus > 0
    preloaded = preloaded_cublas(report)
    findings = []
    for issue in map(get_issue, observed):
        handled = None
        if issue.id in CUBLAS_IDS and preloaded:
            handled = f"the faster-whisper backend preloads {preloaded} (compat/preload.py)"
        findings.append(
            Finding(
                issue=issue,
                applies=(has_gpu or not issue.gpu_only) and handled is None,
                evidence=evidence(report, issue),
                handled_by=handled,
            )
        )
    findings += driver_findings(driver, facts)
    if driver.version:
        findings.append(
            Finding(
                issue=get_issue("nvidia-smi-cuda-version"),
                applies=False,
                evidence=(
                    f"nvidia-smi would say CUDA {driver.max_cuda}; torch's runtime is "
                    f"{facts.get('torch_cuda')}"
                ),
            )
        )
    for text in unexplained:
        print(f"unexplained failure (no known issue): {text}", file=sys.stderr)
    return Diagnosis(
        python=sys.executable,
        ld_library_path=os.environ.get("LD_LIBRARY_PATH", ""),
        driver=driver,
        facts=facts,
        steps=report["steps"],
        findings=findings,
    )


def render(d: Diagnosis) -> str:
    f = d.facts
    driver = (
        f"{d.driver.version}, CUDA <= {d.driver.max_cuda}, {d.driver.gpus} GPU(s)"
        if d.driver.version
        else d.driver.error or "none"
    )
    lines = [
        f"python          {d.python}",
        f"LD_LIBRARY_PATH {d.ld_library_path or '(unset)'}",
        f"NVIDIA driver   {driver}",
        f"torch           {f['torch'] or 'not importable'} (CUDA {f['torch_cuda']}, cuDNN {f['torch_cudnn']})",
        f"ctranslate2     {f['ct2'] or 'not importable'} (needs {f['ct2_cublas']}, cuDNN {f['ct2_cudnn_major'] or 'none'})",
        "",
    ]
    for step in d.steps:
        detail = ""
        if step["status"] == "error":
            detail = (step.get("error") or "").strip().splitlines()[-1:]
            detail = f": {detail[0]}" if detail else ""
        elif step["status"] == "skipped":
            detail = f": {step['data']['skipped']}"
        elif step["name"].startswith("resolve"):
            detail = _resolved(step)
        lines.append(f"  {step['name']:<22} {step['status']}{detail}")
    lines.append("")
    if not d.findings:
        lines.append("No known issue applies.")
    for finding in d.findings:
        issue = finding.issue
        if finding.applies:
            state = "APPLIES"
        elif finding.handled_by:
            state = "handled"
        elif issue.severity == "info":
            state = "note"
        else:
            state = "latent (needs a GPU to bite)"
        lines += [
            f"[{state}] {issue.id}: {issue.title}",
            f"    evidence: {finding.evidence}",
            *([f"    handled:  {finding.handled_by}"] if finding.handled_by else []),
            f"    cause:    {issue.cause}",
            f"    fix:      {issue.fix}",
        ]
    return "\n".join(lines)


def render_summary(d: Diagnosis) -> str:
    """One line per issue that applies to this machine, with its evidence and fix; "" when none
    does. What a run that must not start on a broken stack prints before stopping."""
    return "\n".join(
        f"{f.issue.id}: {f.evidence}. Fix: {f.issue.fix}" for f in d.findings if f.applies
    )
