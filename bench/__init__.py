"""Benchmarks: ratios against real peers in one run (``make bench``), not timed tests."""
