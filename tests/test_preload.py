"""compat/preload.py: pip's libcublas.so.12 loaded by path, so that ctranslate2's dlopen by name
finds it without LD_LIBRARY_PATH or torch. The real check unpacks nvidia-cublas-cu12 (the
version torch 2.8-2.10 pin; ~600 MB once, into the compat side cache; skipped offline)."""

from __future__ import annotations

import _json
import ctypes
import shutil
import sys
from pathlib import Path

import pytest

from transcription_benchmarks.compat import preload, probe
from transcription_benchmarks.compat.scenarios import side_install
from transcription_benchmarks.measure.environment import Environment, fingerprint


def _not_on_the_loader_path(soname: str) -> None:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return
    pytest.skip(f"{soname} already resolves here: nothing for a preload to do")


def test_libraries_are_loaded_from_pips_folder_in_dependency_order(tmp_path, monkeypatch):
    _not_on_the_loader_path("libcublas.so.12")
    lib = tmp_path / "nvidia" / "cublas" / "lib"
    lib.mkdir(parents=True)
    # Any real shared object stands in for cuBLAS's two files: loading by path is what is tested.
    for name in ("libcublasLt.so.12", "libcublas.so.12"):
        shutil.copy(_json.__file__, lib / name)
    monkeypatch.setattr(sys, "path", [str(tmp_path / "elsewhere"), str(tmp_path)])
    before = preload.preloaded()
    loaded = preload.preload_pip_cuda_libraries()
    assert loaded == [str(lib / "libcublasLt.so.12"), str(lib / "libcublas.so.12")]
    assert preload.preloaded() == [*before, *loaded]
    assert preload.preload_pip_cuda_libraries(("libunknown.so.1",)) == []


def test_nothing_is_loaded_where_pip_installed_nothing(tmp_path, monkeypatch):
    _not_on_the_loader_path("libcublas.so.12")
    (tmp_path / "nvidia" / "cublas" / "lib").mkdir(parents=True)  # the folder, not the files
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    assert preload.preload_pip_cuda_libraries() == []


def test_the_fingerprint_records_preloads_and_old_fingerprints_still_load():
    assert fingerprint().preloaded_libraries == preload.preloaded()
    old = fingerprint().model_dump(mode="json")
    del old["preloaded_libraries"]  # as result files written before this field read
    assert Environment.model_validate(old).preloaded_libraries == []


@pytest.mark.slow
def test_pips_cublas12_resolves_by_name_after_the_preload():
    """As ctranslate2 does it: dlopen("libcublas.so.12") in a process where only pip's package
    holds it. Without the preload the loader cannot find it; after it, it finds pip's file."""
    _not_on_the_loader_path("libcublas.so.12")
    try:
        target = side_install("nvidia-cublas-cu12==12.8.4.1")
    except Exception as exc:  # offline: uv cannot fetch the wheel
        pytest.skip(f"cannot fetch nvidia-cublas-cu12 (offline?): {exc}")
    code = f"import sys; sys.path.insert(0, {str(target)!r})\n" + probe.RESOLVE_STEP
    params = {"WITH_TORCH": False, "SONAMES": ["libcublas.so.12"]}
    plain = probe.run_step("resolve", code, {**params, "PRELOAD": None})
    assert plain["data"]["libcublas.so.12"]["found"] is False
    after = probe.run_step("resolve", code, {**params, "PRELOAD": probe.PRELOAD_FILE})
    found = after["data"]["libcublas.so.12"]
    assert found["found"] is True
    assert Path(found["path"]) == target / "nvidia" / "cublas" / "lib" / "libcublas.so.12"
