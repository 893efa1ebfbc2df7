"""Benchmark harness of gpudedup: ``python -m bench`` (see bench/README.md).

Modules, one job each: ``data`` (the images and codes measured), ``peers`` (gpudedup and its
peers as :class:`~bench.peers.Method`), ``timing`` (the timer and the round-robin of repeats),
``sections`` (the phash and range-search benchmarks: timing, checks, JSON rows), ``report``
(machine record, markdown table, JSON file) and ``run`` (the command).
"""

import sys


def log(message: str) -> None:
    """Progress on stderr, so that stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)
