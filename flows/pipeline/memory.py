"""Memory settings for the link stage: freed memory is reused instead of given back.

The link stage makes and drops tables of millions of rows step after step. By default
numpy asks the kernel for 2 MiB pages for every array over 4 MiB, Arrow's allocator
returns freed memory to the kernel at once, and DuckDB flushes its allocator after any
task that used more than 128 MiB. So each step's new arrays arrive as fresh pages that
the kernel must zero first: at 2,000,000 persons a quarter of the exact path's CPU time
was the kernel's, half of it clearing pages (perf: clear_page_erms under huge-page
faults). Measured in docs/scale.md ("Stop 24").

`reused_memory()` turns the first two off for the stage and back on after it; DuckDB's
threshold is a setting of each connection (`duckdb_connection`). The tables stay the
same; only where freed memory goes changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

# Above the stage's own peak (2.7-2.8 GiB at 2,000,000 persons): DuckDB never flushes its
# allocator mid-stage; memory goes back when a connection closes.
DUCKDB_FLUSH_THRESHOLD = "8GiB"


def duckdb_connection() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection as every step of the link stage uses it: no progress
    bar, and freed memory kept for the next task of the query (see the module docstring)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET allocator_flush_threshold = '{DUCKDB_FLUSH_THRESHOLD}'")
    con.execute(f"SET allocator_bulk_deallocation_flush_threshold = '{DUCKDB_FLUSH_THRESHOLD}'")
    return con


@contextmanager
def reused_memory() -> Iterator[None]:
    """Within: numpy uses normal pages and Arrow allocates from jemalloc without giving
    freed memory back; after: numpy's pages and Arrow's default pool as they were, and
    the memory jemalloc kept returned (jemalloc's own purging stays off: nothing else
    allocates from it)."""
    import numpy as np
    import pyarrow as pa

    set_huge = getattr(np._core.multiarray, "_set_madvise_hugepage", None)
    huge = set_huge(False) if set_huge is not None else None
    previous = pa.default_memory_pool()
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # an Arrow build without jemalloc: keep its default pool
        pool = None
    if pool is not None:
        pa.jemalloc_set_decay_ms(-1)
        pa.set_memory_pool(pool)
    try:
        yield
    finally:
        if pool is not None:
            pa.set_memory_pool(previous)
            pool.release_unused()
        if set_huge is not None:
            set_huge(huge)
