"""Helpers for tests and benchmarks: tiny random models and a local Hub server."""
