"""Load the CUDA 12 cuBLAS that pip installed before ctranslate2 asks the loader for it.

Every ctranslate2 release so far dlopens `libcublas.so.12` by name. pip's nvidia-cublas-cu12
puts it in site-packages/nvidia/cublas/lib, which the loader does not search: it is found only
after `import torch` (whose RPATH reaches it; torch >= 2.11 brings CUDA 13's instead) or with
that directory on LD_LIBRARY_PATH, which must be set before the process starts. torch solves the
same problem for itself by loading its nvidia-* libraries by path first; this does so for
ctranslate2: once a library is loaded, a later dlopen of its soname returns it.

Standard library only: the compat probe runs this file in envs that hold only torch and
ctranslate2 (see probe.py's resolve_after_preload step).
"""

from __future__ import annotations

import ctypes
import os
import sys

# soname -> where pip's wheel puts it under site-packages, and what it needs loaded first.
PIP_LIBRARIES = {
    "libcublas.so.12": ("nvidia/cublas/lib", ("libcublasLt.so.12",)),
}

_preloaded: list[str] = []


def _loadable(soname: str) -> bool:
    """Whether the loader finds `soname` as things stand (system CUDA, LD_LIBRARY_PATH, or a
    library some import already loaded). A successful probe loads it, which is harmless."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def preload_pip_cuda_libraries(sonames: tuple[str, ...] = ("libcublas.so.12",)) -> list[str]:
    """Load each soname from pip's nvidia-* package when the loader cannot find it on its own.
    Returns the paths loaded by this call; preloaded() lists every one this process loaded."""
    loaded = []
    for soname in sonames:
        if soname not in PIP_LIBRARIES or _loadable(soname):
            continue
        folder, dependencies = PIP_LIBRARIES[soname]
        for entry in sys.path:
            lib = os.path.join(entry or os.curdir, *folder.split("/"))
            paths = [os.path.join(lib, name) for name in (*dependencies, soname)]
            if not all(os.path.isfile(path) for path in paths):
                continue
            for path in paths:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                loaded.append(path)
            break
    _preloaded.extend(loaded)
    return loaded


def preloaded() -> list[str]:
    """Every library preload_pip_cuda_libraries loaded in this process, in order."""
    return list(_preloaded)
