"""Studies: what runs bench() many times and reads the results together (memory against audio
length; determinism and engine parity live in quality/ for now and belong here)."""
