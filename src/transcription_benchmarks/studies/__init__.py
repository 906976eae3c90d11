"""Studies: what runs bench() many times and reads the results together. Auto-tune (a search
against a memory budget and a WER tolerance), memory against audio length, determinism and
engine parity. They sit above bench() and the matrix runner; metrics sit below."""
