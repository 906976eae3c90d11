"""The compat matrix (matrix.toml): cells, scenarios and the outcome each cell x scenario expects.

Data rather than code so that a new torch or ctranslate2 release is a TOML entry whose
expectation is reviewed like any other claim. `python -m transcription_benchmarks.compat.matrix`
answers the noxfile's questions (which cells an argument list selects, what a cell installs)
without nox importing this package.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.tomlfile import load_toml

MATRIX_FILE = Path(__file__).with_name("matrix.toml")
PYTORCH_INDEX = "https://download.pytorch.org/whl"


class TorchBuild(BaseModel):
    """What PyPI's wheel of one torch version carries; checked against the probe every run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cuda: str
    cudnn: str
    variant: str


class CudaNeeds(BaseModel):
    """What one CUDA major needs of the machine: NVIDIA's minimum driver for its minor-version
    compatibility, and the oldest GPU architecture its libraries still support."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_driver: str
    min_compute_capability: str


class Ctranslate2Build(BaseModel):
    """What PyPI's Linux wheel of one ctranslate2 release links against (probe-verified)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cuda: str
    """The CUDA major its libcublas.so.N comes from."""
    cudnn: str = ""
    """The cuDNN major it loads, "" when it needs none."""


class Scenario(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    description: str
    ld_library_path: tuple[str, ...]
    python_path: tuple[str, ...] = ()
    """PYTHONPATH entries for the probe ({cublas12}: pip's nvidia-cublas-cu12, unpacked)."""
    observe: Literal["ctranslate2", "harness"] = "ctranslate2"
    """What the observation is of: ctranslate2 used alone, or this project's faster-whisper
    backend, which preloads pip's cuBLAS 12 (a cuBLAS issue the preload resolves is not one)."""

    def library_path(self, site: str, old_nvjitlink: str) -> list[str]:
        return [p.format(site=site, old_nvjitlink=old_nvjitlink) for p in self.ld_library_path]

    def module_path(self, cublas12: str) -> list[str]:
        return [p.format(cublas12=cublas12) for p in self.python_path]


class StackPair(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    torch: str
    ctranslate2: str
    expect: dict[str, tuple[str, ...]]

    @property
    def id(self) -> str:
        return f"torch{self.torch}-ct2-{self.ctranslate2}"


class CompatMatrix(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    old_nvjitlink: str
    cublas12: str
    cuda: dict[str, CudaNeeds]
    torch: dict[str, TorchBuild]
    ctranslate2: dict[str, Ctranslate2Build]
    scenarios: tuple[Scenario, ...] = Field(alias="scenario")
    cells: tuple[StackPair, ...] = Field(alias="cell")

    @model_validator(mode="after")
    def _complete(self) -> CompatMatrix:
        """Every cell expects something of every scenario, and its torch is described."""
        scenario_ids = {s.id for s in self.scenarios}
        for cell in self.cells:
            if set(cell.expect) != scenario_ids:
                raise ValueError(
                    f"{cell.id}: expectations for {sorted(cell.expect)}, scenarios are "
                    f"{sorted(scenario_ids)}"
                )
            if cell.torch not in self.torch:
                raise ValueError(f"{cell.id}: torch {cell.torch} has no [torch.{cell.torch!r}]")
            if cell.ctranslate2 not in self.ctranslate2:
                raise ValueError(
                    f"{cell.id}: ctranslate2 {cell.ctranslate2} has no "
                    f"[ctranslate2.{cell.ctranslate2!r}]"
                )
        for name, build in (*self.torch.items(), *self.ctranslate2.items()):
            major = build.cuda.split(".")[0]
            if major not in self.cuda:
                raise ValueError(f"{name} is a CUDA {major} build and [cuda.{major!r}] is missing")
        ids = [c.id for c in self.cells]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate cells: {ids}")
        return self

    def cell(self, cell_id: str) -> StackPair:
        for cell in self.cells:
            if cell.id == cell_id:
                return cell
        raise KeyError(f"no compat cell {cell_id!r}; cells: {', '.join(c.id for c in self.cells)}")


def load_matrix(path: Path = MATRIX_FILE) -> CompatMatrix:
    return load_toml(CompatMatrix, path, "compat matrix", BenchError)


@cache
def default_matrix() -> CompatMatrix:
    return load_matrix()


class Selection(BaseModel):
    """Which cells and scenarios to run, and from which index torch comes."""

    cells: tuple[StackPair, ...]
    scenarios: tuple[Scenario, ...]
    index: str = "pypi"


def select(matrix: CompatMatrix, args: list[str]) -> Selection:
    """Cells named by `args`: cell ids, or torch=V / ct2=V / ctranslate2=V filters (repeatable,
    OR within a key, AND across keys); scenario=ID limits scenarios; index=pytorch takes torch
    from the PyTorch wheel index (+cuXXX builds). No cell argument selects every cell."""
    filters: dict[str, set[str]] = {}
    named: list[str] = []
    index = "pypi"
    scenarios: set[str] = set()
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            matrix.cell(arg)  # raises with the list of cells
            named.append(arg)
        elif key in ("torch", "ct2", "ctranslate2"):
            filters.setdefault("ctranslate2" if key == "ct2" else key, set()).add(value)
        elif key == "scenario":
            scenarios.add(value)
        elif key == "index":
            if value not in ("pypi", "pytorch"):
                raise ValueError(f"index must be pypi or pytorch, got {value!r}")
            index = value
        else:
            raise ValueError(f"unknown compat argument {arg!r}")
    cells = [
        c
        for c in matrix.cells
        if (not named or c.id in named)
        and all(getattr(c, key) in values for key, values in filters.items())
    ]
    if not cells:
        raise ValueError(f"no compat cell matches {' '.join(args)}")
    unknown = scenarios - {s.id for s in matrix.scenarios}
    if unknown:
        raise ValueError(f"unknown scenarios {sorted(unknown)}")
    chosen = tuple(s for s in matrix.scenarios if not scenarios or s.id in scenarios)
    return Selection(cells=tuple(cells), scenarios=chosen, index=index)


def requirements(matrix: CompatMatrix, cell: StackPair, index: str = "pypi") -> list[str]:
    """Arguments for `pip install` / `uv pip install` that build the cell's env."""
    if index == "pypi":
        return [f"torch=={cell.torch}", f"ctranslate2=={cell.ctranslate2}"]
    variant = matrix.torch[cell.torch].variant
    # The local version pins the CUDA build; that index also mirrors torch's nvidia-* deps.
    return [
        f"torch=={cell.torch}+{variant}",
        f"ctranslate2=={cell.ctranslate2}",
        "--extra-index-url",
        f"{PYTORCH_INDEX}/{variant}",
    ]


def main(argv: list[str] | None = None) -> int:
    """`select ARGS...` prints the chosen cell ids; `requirements CELL [index=...]` prints JSON."""
    parser = argparse.ArgumentParser(prog="python -m transcription_benchmarks.compat.matrix")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("select").add_argument("args", nargs="*")
    req = sub.add_parser("requirements")
    req.add_argument("cell")
    req.add_argument("args", nargs="*")
    ns = parser.parse_args(argv)
    matrix = default_matrix()
    try:
        if ns.command == "select":
            print(" ".join(c.id for c in select(matrix, ns.args).cells))
        else:
            index = select(matrix, ns.args).index if ns.args else "pypi"
            print(json.dumps(requirements(matrix, matrix.cell(ns.cell), index)))
    except (KeyError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
