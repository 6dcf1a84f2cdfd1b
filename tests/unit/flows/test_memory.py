"""The link stage's memory settings: on for the stage, as they were after it."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from flows.pipeline.memory import DUCKDB_FLUSH_THRESHOLD, duckdb_connection, reused_memory


def _huge_pages() -> bool:
    set_huge = np._core.multiarray._set_madvise_hugepage
    current = set_huge(True)
    set_huge(current)
    return current


def test_settings_hold_inside_and_are_restored_after_even_on_error():
    before_pool, before_huge = pa.default_memory_pool().backend_name, _huge_pages()
    with pytest.raises(RuntimeError), reused_memory():
        assert pa.default_memory_pool().backend_name == "jemalloc"
        assert _huge_pages() is False
        kept = pa.array(np.arange(1_000_000))  # made inside, used after: still valid
        raise RuntimeError("a step failed")
    assert pa.default_memory_pool().backend_name == before_pool
    assert _huge_pages() is before_huge
    assert pa.compute.sum(kept).as_py() == 999_999 * 1_000_000 // 2


def test_duckdb_connections_keep_freed_memory_and_show_no_progress_bar():
    con = duckdb_connection()
    settings = dict(
        con.sql(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('allocator_flush_threshold', 'enable_progress_bar')"
        ).fetchall()
    )
    assert settings["enable_progress_bar"] == "false"
    assert settings["allocator_flush_threshold"] == DUCKDB_FLUSH_THRESHOLD
