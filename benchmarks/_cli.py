"""The benchmarks' command line: ``--help`` prints the module's docstring, a bad argument is one sentence."""

from __future__ import annotations

import argparse


def rounds(doc: str | None, default: int) -> int:
    """How many rounds to run: the one optional argument of a benchmark that repeats itself."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rounds", nargs="?", type=int, default=default, help=f"rounds to run (default: {default})")
    count: int = parser.parse_args().rounds
    if count < 1:
        parser.error(f"rounds must be at least 1, not {count}")
    return count
