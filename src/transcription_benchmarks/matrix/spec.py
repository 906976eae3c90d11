"""Matrix files: a named list of cells (model x options x test file) in TOML.

```toml
name = "cpu"                          # required: rows are matched by (name, cell id)
description = "..."                   # optional

[defaults]                            # BenchArgs fields (and timeout_s) for every cell
device = "cpu"
warmup = 1
repeats = 3
timeout_s = 300

[[cells]]                             # one cell
model = "Systran/faster-whisper-tiny.en"
label = "int8, beam 1"                # optional: the report's Config column
fallback = "synthetic:whisper-tiny"   # optional: run this when `model` cannot be had
timeout_s = 120                       # optional: this cell's limit, seconds
test_file = "jfk.flac"                # any other key is a BenchArgs field
compute_type = "int8"
beam_size = 1

[[grid]]                              # a cross product: models x configs x test_files
models = ["Systran/faster-whisper-tiny.en"]
test_files = ["jfk.flac", "1min.flac"]
configs = [{ label = "beam 1", beam_size = 1 }, { label = "beam 5", beam_size = 5 }]
device = "cpu"                        # other keys apply to every cell of this grid
```

A cell's options are `[defaults]`, then the grid's keys, then its config (or the cell's own
keys), later ones winning. Each cell's options are validated with `BenchArgs.build` (the backend
need not be installed: a cell whose engine's packages are missing here is recorded as
"unavailable", with the install command, instead of being dropped). Special forms:

- `model = "python:package.module:function"`: the worker calls `function(**options)` instead of
  `bench()`; it returns a BenchResult or raises. The extension point for your own transcriber;
  its options are the function's business and are not checked against BenchArgs.
- `dataset = "generated:20"` in a `[[cells]]` entry (with an optional `dataset_limit`): a dataset
  cell. The worker calls `run_dataset()` on it (what `tbench dataset` takes: a folder, a
  manifest, a saved HF dataset, generated[:N], shared) instead of `bench()` on a test file; the
  row carries a DatasetResult, which reports show in their dataset table.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from transcription_benchmarks.args import BenchArgs
from transcription_benchmarks.errors import BenchError
from transcription_benchmarks.matrix.rows import Cell
from transcription_benchmarks.models.synthetic_nemo import known_architectures, nemo_arch
from transcription_benchmarks.tomlfile import read_toml

BUILTIN_MATRICES = ("cpu", "gpu")
PYTHON_PREFIX = "python:"

TOP_KEYS = {"name", "description", "defaults", "cells", "grid"}
CELL_KEYS = {"model", "label", "fallback", "timeout_s", "dataset", "dataset_limit"}
GRID_KEYS = {"models", "test_files", "configs", "label", "fallback", "timeout_s"}
ARG_KEYS = set(BenchArgs.model_fields)


class MatrixFileError(BenchError):
    """A matrix file cannot be read, or one of its cells is invalid."""


class Matrix(BaseModel):
    name: str
    description: str = ""
    cells: list[Cell] = Field(default_factory=list)


def builtin_matrix(name: str) -> Path:
    """The path of a shipped matrix file: 'cpu' or 'gpu'."""
    if name not in BUILTIN_MATRICES:
        raise MatrixFileError(
            f"no built-in matrix {name!r}; built-in: {', '.join(BUILTIN_MATRICES)} (or pass a path)"
        )
    return Path(str(resources.files("transcription_benchmarks.matrix.suites") / f"{name}.toml"))


def find_matrix(name_or_path: str | Path) -> Path:
    """A built-in name ('cpu', 'gpu') or the path of a matrix file."""
    if str(name_or_path) in BUILTIN_MATRICES:
        return builtin_matrix(str(name_or_path))
    path = Path(name_or_path).expanduser()
    if not path.is_file():
        raise MatrixFileError(
            f"matrix file {path} not found (built-in matrices: {', '.join(BUILTIN_MATRICES)})"
        )
    return path


def load_matrix(path: str | Path) -> Matrix:
    """Read and validate a matrix file; MatrixFileError names the file, the cell and the problem."""
    data = read_toml(path, "matrix file", MatrixFileError)
    return parse_matrix(data, source=str(path))


def parse_matrix(data: dict[str, Any], *, source: str = "<matrix>") -> Matrix:
    """Validate an already parsed matrix (the TOML document as a dict)."""

    def fail(problem: str) -> MatrixFileError:
        return MatrixFileError(f"{source}: {problem}")

    _check_keys(data, TOP_KEYS, "top level", fail)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("'name' is required (a non-empty string)")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("'description' must be a string")

    defaults = _table(data.get("defaults", {}), "[defaults]", fail)
    _check_keys(defaults, ARG_KEYS | {"timeout_s"}, "[defaults]", fail)

    # (where, fields) for each cell, in file order: [[cells]] first, then [[grid]] expansions.
    raw: list[tuple[str, dict[str, Any]]] = []
    for index, entry in enumerate(_tables(data.get("cells", []), "cells", fail)):
        where = f"[[cells]] #{index + 1}"
        _check_keys(entry, CELL_KEYS | ARG_KEYS, where, fail)
        raw.append((where, {**defaults, **entry}))
    for index, grid in enumerate(_tables(data.get("grid", []), "grid", fail)):
        where = f"[[grid]] #{index + 1}"
        _check_keys(grid, GRID_KEYS | ARG_KEYS, where, fail)
        models = _strings(grid.get("models"), f"{where} 'models'", fail, required=True)
        test_files = _strings(grid.get("test_files"), f"{where} 'test_files'", fail)
        if test_files and "test_file" in grid:
            raise fail(f"{where}: give 'test_file' or 'test_files', not both")
        configs = _tables(grid.get("configs", [{}]), f"{where} 'configs'", fail) or [{}]
        shared = {k: v for k, v in grid.items() if k not in ("models", "test_files", "configs")}
        for c, config in enumerate(configs):
            _check_keys(config, CELL_KEYS - {"model"} | ARG_KEYS, f"{where} configs[{c}]", fail)
        for model in models:
            for c, config in enumerate(configs):
                for test_file in test_files or [None]:
                    fields = {**defaults, **shared, **config, "model": model}
                    if test_file is not None:
                        fields["test_file"] = test_file
                    raw.append((f"{where} ({model}, configs[{c}], {test_file})", fields))

    if not raw:
        raise fail("the matrix has no cells: add [[cells]] or [[grid]] entries")

    cells: list[Cell] = []
    seen: dict[str, tuple[int, str]] = {}
    for index, (where, fields) in enumerate(raw):
        cell = _build_cell(
            fields, lambda problem, i=index, w=where: fail(f"cell {i} {w}: {problem}")
        )
        described = f"cell {index} ({cell.label or cell.model})"
        if cell.id in seen:
            first, first_label = seen[cell.id]
            raise fail(
                f"{described} duplicates cell {first} ({first_label}): same model and options "
                f"(test file {cell.test_file})"
            )
        seen[cell.id] = (index, cell.label or cell.model)
        cells.append(cell)
    return Matrix(name=name.strip(), description=description.strip(), cells=cells)


def _build_cell(fields: dict[str, Any], fail) -> Cell:
    model = fields.get("model")
    if not isinstance(model, str) or not model.strip():
        raise fail("'model' is required (a non-empty string)")
    label = fields.get("label", "")
    if not isinstance(label, str):
        raise fail("'label' must be a string")
    fallback = fields.get("fallback")
    if fallback is not None and (not isinstance(fallback, str) or not fallback.strip()):
        raise fail("'fallback' must be a model id")
    if fallback and fallback.startswith("synthetic:") and not nemo_arch(fallback):
        try:
            from transcription_benchmarks.models.synthetic import resolve_arch

            resolve_arch(fallback)
        except ImportError:  # the synthetic extra is missing: the worker reports it
            pass
        except ValueError as exc:
            raise fail(f"fallback: {exc}; NeMo: {known_architectures()}") from None
    timeout = fields.get("timeout_s")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise fail(f"timeout_s must be a positive number of seconds, got {timeout!r}")
    args = {k: v for k, v in fields.items() if k in ARG_KEYS}
    if model.startswith(PYTHON_PREFIX):
        if parse_python_target(model) is None:
            raise fail(f"{model!r}: expected 'python:package.module:function'")
    else:
        try:
            BenchArgs.build(**args)
        except BenchError as exc:
            raise fail(str(exc)) from None
    dataset = fields.get("dataset")
    if dataset is not None and (not isinstance(dataset, str) or not dataset.strip()):
        raise fail("'dataset' must be what `tbench dataset` takes, e.g. 'generated:20'")
    limit = fields.get("dataset_limit")
    if limit is not None and (
        dataset is None or isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
    ):
        raise fail(
            f"dataset_limit must be a positive whole number on a dataset cell, got {limit!r}"
        )
    return Cell(
        model=model.strip(),
        args=args,
        label=label or describe_args(args),
        fallback=fallback,
        timeout_s=float(timeout) if timeout is not None else None,
        dataset=dataset,
        dataset_limit=limit,
    )


def parse_python_target(model: str) -> tuple[str, str] | None:
    """('package.module', 'function') for 'python:package.module:function', else None."""
    module, sep, function = model.removeprefix(PYTHON_PREFIX).partition(":")
    names = [*module.split("."), function]
    if not sep or not all(part.isidentifier() for part in names):
        return None
    return module, function


def describe_args(args: dict[str, Any]) -> str:
    """A default label: the options that are not about where and how often it runs."""
    skipped = {"test_file", "device", "warmup", "repeats"}
    return ", ".join(f"{k}={v}" for k, v in args.items() if k not in skipped)


def _check_keys(table: dict[str, Any], allowed: set[str], where: str, fail) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise fail(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
            f"{', '.join(sorted(allowed))}"
        )


def _table(value: Any, where: str, fail) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise fail(f"{where} must be a table")
    return value


def _tables(value: Any, where: str, fail) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise fail(f"{where} must be a list of tables ([[{where}]] or [{{...}}, ...])")
    return value


def _strings(value: Any, where: str, fail, *, required: bool = False) -> list[str]:
    if value is None and not required:
        return []
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(v, str) and v.strip() for v in value)
    ):
        raise fail(f"{where} must be a non-empty list of strings")
    return value
