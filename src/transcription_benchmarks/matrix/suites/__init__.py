"""The shipped matrix files (package data): cpu.toml, gpu.toml. See matrix/spec.py for the format."""
