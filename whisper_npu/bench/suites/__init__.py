"""Benchmark suites, one module each with the same shape: ``main(argv) -> exit status`` over argparse.

Run them with ``python scripts/bench.py --suite NAME [options]`` (``--suite NAME --help`` for a suite's options).
"""
