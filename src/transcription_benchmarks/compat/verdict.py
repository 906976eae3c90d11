"""Observed against expected: what a probe report means in known-issue ids, and the table.

An observation is the set of known issues a probe report shows, from error texts (matched
against the registry) and from conditions the probe measured (a soname that does not resolve).
A row contradicts its expectation when the sets differ, when an error matches no known issue,
or when the wheel's CUDA/cuDNN differ from what matrix.toml says it carries.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from transcription_benchmarks.compat.matrix import CompatMatrix, Selection
from transcription_benchmarks.compat.registry import KnownIssue, get_issue, known_issues, match

CUBLAS_IDS = ("cublas-off-path", "cublas12-missing")


def _step(report: dict[str, Any], name: str) -> dict[str, Any]:
    for step in report.get("steps", []):
        if step["name"] == name:
            return step
    return {"name": name, "status": "missing", "data": None}


def _found(step: dict[str, Any], soname: str) -> bool | None:
    """Whether `soname` resolved in a resolve step; None when the step did not run."""
    if step.get("status") != "ok" or not step.get("data"):
        return None
    return bool(step["data"].get(soname, {}).get("found"))


def cublas_condition(report: dict[str, Any]) -> str | None:
    """cuBLAS as ctranslate2 will look for it: found alone, only after torch, or not at all."""
    ct2 = _step(report, "ct2_import")
    soname = (ct2.get("data") or {}).get("cublas_soname")
    if ct2.get("status") != "ok" or not soname:
        return None
    if _found(_step(report, "resolve"), soname):
        return None
    if _found(_step(report, "resolve_after_torch"), soname) is False:
        return "cublas12-missing"
    # Found after torch, or torch did not import (then whether it would have is unknown).
    return "cublas-off-path"


def preloaded_cublas(report: dict[str, Any]) -> str | None:
    """Where libcublas.so.12 came from once preload.py ran (as this project's faster-whisper
    backend runs it), when that is what made it resolve; None otherwise."""
    ct2 = _step(report, "ct2_import")
    soname = (ct2.get("data") or {}).get("cublas_soname")
    step = _step(report, "resolve_after_preload")
    if not soname or not _found(step, soname):
        return None
    return step["data"][soname].get("path") or soname


def observed_issues(
    report: dict[str, Any], *, harness: bool = False
) -> tuple[list[str], list[str]]:
    """(known-issue ids the report shows, steps whose error matches no known issue). With
    `harness`, as this project's faster-whisper backend meets them: a cuBLAS issue that its
    preload resolves is not one."""
    issues = [i for i in known_issues() if i.severity == "error"]
    seen: set[str] = set()
    unexplained: list[str] = []
    for step in report.get("steps", []):
        texts = [step.get("error") or ""] if step.get("status") == "error" else []
        cudnn_error = (step.get("data") or {}).get("cudnn_error")
        if cudnn_error:
            texts.append(cudnn_error)
        for text in texts:
            found = {issue.id for issue in match(text, tuple(issues))}
            if not found:
                unexplained.append(f"{step['name']}: {text.strip().splitlines()[-1:]}")
            seen |= found
    condition = cublas_condition(report)
    if condition:
        # One cuBLAS message, two causes: the resolve steps say which one this env has.
        seen -= set(CUBLAS_IDS)
        seen.add(condition)
    if harness and preloaded_cublas(report):
        seen -= set(CUBLAS_IDS)
    order = [i.id for i in known_issues()]
    return sorted(seen, key=order.index), unexplained


def runtime_facts(report: dict[str, Any]) -> dict[str, Any]:
    """torch's CUDA runtime and cuDNN, ctranslate2's version and needs, as the probe saw them."""
    torch = _step(report, "torch_import").get("data") or {}
    ct2 = _step(report, "ct2_import").get("data") or {}
    return {
        "torch": torch.get("version"),
        "torch_cuda": torch.get("cuda"),
        "torch_cudnn": cudnn_text(torch.get("cudnn")),
        "ct2": ct2.get("version"),
        "ct2_cudnn_major": ct2.get("cudnn_major"),
        "ct2_cublas": ct2.get("cublas_soname"),
    }


def cudnn_text(version: int | None) -> str | None:
    """torch.backends.cudnn.version() as dotted text: 8902 -> 8.9.2, 90100 -> 9.1.0."""
    if not version:
        return None
    if version >= 90000:  # cuDNN 9 changed the encoding to major*10000 + minor*100 + patch
        return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return f"{version // 1000}.{version // 100 % 10}.{version % 100}"


VerdictStatus = Literal["as expected", "CONTRADICTS", "missing"]


class Verdict(BaseModel):
    cell: str
    scenario: str
    expected: list[str]
    observed: list[str]
    unexplained: list[str]
    facts: dict[str, Any]
    fact_errors: list[str]
    status: VerdictStatus


def _fact_errors(matrix: CompatMatrix, torch_version: str, facts: dict[str, Any]) -> list[str]:
    build = matrix.torch[torch_version]
    errors = []
    if facts.get("torch_cuda") is not None and facts["torch_cuda"] != build.cuda:
        errors.append(f"torch CUDA {facts['torch_cuda']}, matrix says {build.cuda}")
    cudnn = facts.get("torch_cudnn")
    if cudnn is not None and not (cudnn + ".").startswith(build.cudnn + "."):
        errors.append(f"torch cuDNN {cudnn}, matrix says {build.cudnn}")
    return errors


def verdict_rows(matrix: CompatMatrix, selection: Selection, results_dir: Path) -> list[Verdict]:
    """One row per selected cell x scenario, from results_dir/<cell>.json."""
    rows = []
    for cell in selection.cells:
        path = results_dir / f"{cell.id}.json"
        runs = {}
        if path.exists():
            runs = {run["scenario"]: run for run in json.loads(path.read_text())["runs"]}
        for scenario in selection.scenarios:
            expected = list(cell.expect[scenario.id])
            run = runs.get(scenario.id)
            if run is None:
                rows.append(
                    Verdict(cell=cell.id, scenario=scenario.id, expected=expected, observed=[],
                        unexplained=[], facts={}, fact_errors=[], status="missing")
                )  # fmt: skip
                continue
            # Re-derive from the raw report so a registry change applies to old results too.
            harness = scenario.observe == "harness"
            observed, unexplained = observed_issues(run["report"], harness=harness)
            facts = runtime_facts(run["report"])
            fact_errors = _fact_errors(matrix, cell.torch, facts)
            agrees = set(observed) == set(expected) and not unexplained and not fact_errors
            rows.append(
                Verdict(
                    cell=cell.id,
                    scenario=scenario.id,
                    expected=expected,
                    observed=observed,
                    unexplained=unexplained,
                    facts=facts,
                    fact_errors=fact_errors,
                    status="as expected" if agrees else "CONTRADICTS",
                )
            )
    return rows


def proof_problems(rows: list[Verdict]) -> list[str]:
    """Each issue's `proven_by` rows that ran must be free of that issue: the fix works."""
    by_key = {f"{r.cell}/{r.scenario}": r for r in rows if r.status != "missing"}
    problems = []
    for issue in known_issues():
        for key in issue.proven_by:
            row = by_key.get(key)
            if row is not None and issue.id in row.observed:
                problems.append(f"{issue.id}: its fix row {key} still shows it")
    return problems


def failed(rows: list[Verdict], problems: list[str]) -> bool:
    return bool(problems) or any(r.status != "as expected" for r in rows)


def _ids(ids: list[str]) -> str:
    return ", ".join(ids) if ids else "ok"


def render_markdown(rows: list[Verdict], problems: list[str]) -> str:
    lines = [
        "| cell | scenario | torch CUDA / cuDNN | expected | observed | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        runtime = f"{r.facts.get('torch_cuda')} / {r.facts.get('torch_cudnn')}" if r.facts else ""
        observed = _ids(r.observed) if r.status != "missing" else "(no result)"
        extra = "; ".join(r.unexplained + r.fact_errors)
        if extra:
            observed += f" — {extra}"
        lines.append(
            f"| {r.cell} | {r.scenario} | {runtime} | {_ids(r.expected)} | {observed} | "
            f"{r.status} |"
        )
    seen = sorted({i for r in rows for i in r.observed}, key=[k.id for k in known_issues()].index)
    if seen:
        lines += ["", "Known issues observed, and their fixes:", ""]
        for issue_id in seen:
            issue = get_issue(issue_id)
            proofs = ", ".join(issue.proven_by) or "-"
            lines.append(f"- **{issue.id}** ({issue.title}). Fix: {issue.fix} Proven by: {proofs}.")
    contradictions = sum(r.status != "as expected" for r in rows)
    lines += ["", f"{len(rows)} rows, {contradictions} contradicting or missing."]
    lines += [f"- fix not proven: {p}" for p in problems]
    return "\n".join(lines) + "\n"


def render_json(rows: list[Verdict], problems: list[str]) -> str:
    issues: list[KnownIssue] = [get_issue(i) for i in sorted({i for r in rows for i in r.observed})]
    return json.dumps(
        {
            "rows": [r.model_dump() for r in rows],
            "proof_problems": problems,
            "issues": {i.id: {"title": i.title, "fix": i.fix} for i in issues},
            "failed": failed(rows, problems),
        },
        indent=1,
    )
