"""`python build.py bench [--quick]`: DPoser-X against retrained baselines on the held-out split, and its speed
against the compute floor, written to docs/benchmarks.md (never shipped in the extension)."""
