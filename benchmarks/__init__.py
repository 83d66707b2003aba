"""Benchmarks of the pipeline against plain Keras, run as `python -m benchmarks` (see README-section.md)."""
