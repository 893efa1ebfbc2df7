"""``python -m bench``: run the benchmark harness (bench/run.py)."""

from bench.run import main

raise SystemExit(main())
