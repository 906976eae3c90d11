"""Templates for an artifact's code/: inference.py (the same for every engine) and the head of
requirements.txt, whose pins come from the served engine (Backend.container_requirements);
container.txt lists what the DLC itself brings."""
