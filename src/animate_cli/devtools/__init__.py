"""Builders of tiny random models for tests, the demo fallback and benchmarks (not used by real runs)."""
