"""Benchmark matrices: cells of model x config x file, each run in its own process."""
