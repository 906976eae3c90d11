"""Templates for an artifact's code/: inference.py and a requirements.txt pinned for the
container, one directory per backend; container.txt lists what the DLC itself brings."""
