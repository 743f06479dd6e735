"""SegLens benchmarks: `make bench` runs `python -m benchmarks.run`."""
