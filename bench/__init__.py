"""Benchmark harness of gpudedup: ``python -m bench`` (see bench/README.md)."""
