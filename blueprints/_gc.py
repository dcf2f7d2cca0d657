"""Pausing the cyclic garbage collector while large, acyclic structures are built.

Loading and compiling a blueprint allocates hundreds of thousands of small objects; each allocation burst
triggers generational collections that rescan everything built so far, which made YAML loading 3-4 times
slower at 1,000 templates. Nothing built here is cyclic garbage, so collection simply waits until the end.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic GC for the block (re-entrant; restores the previous state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
