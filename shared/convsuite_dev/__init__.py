"""Development helpers for convsuite's tests and benchmarks (not shipped in any wheel)."""
