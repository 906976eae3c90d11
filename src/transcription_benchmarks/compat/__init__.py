"""Compatibility of the CUDA stack: a torch x ctranslate2 matrix, known issues, and `doctor`.

matrix.toml   cells (torch x ctranslate2), scenarios, expected outcome per cell x scenario
probe.py      stdlib-only script run with a target env's python; one subprocess per step
scenarios.py  runs the probe under each scenario's library path, records what it saw
registry.py   known issues (known_issues.toml) and matching of error texts
verdict.py    observed against expected: Markdown and JSON table, contradictions
doctor.py     the probe on the current env plus the NVIDIA driver
stack.py      which torch + ctranslate2 (+ cuBLAS 12) a machine's driver runs, from the facts
preload.py    stdlib-only: pip's libcublas.so.12 loaded by path before ctranslate2 asks for it
"""
