"""Time and peak memory of `hackgap demo-data` (simulate + write the four extracts).

Full: 235,000 and 2,000,000 persons; quick: 20,000 and 200,000. Each size runs in a fresh
interpreter so peak RSS is that of the generator alone. No baseline: absolute figures.
"""

from __future__ import annotations

import tempfile

from bench.harness import Result, measure_subprocess

_CODE = """
import json, tempfile, time
from flows.demodata import simulate, write_sources
t0 = time.perf_counter()
world = simulate({persons}, 20261126)
t1 = time.perf_counter()
paths = write_sources(world, {out!r})
t2 = time.perf_counter()
rows = {{name: sum(1 for _ in open(p, 'rb')) - 1 for name, p in paths.items()}}
size = sum(p.stat().st_size for p in paths.values())
print(json.dumps({{'simulate_s': t1 - t0, 'write_s': t2 - t1, 'rows': rows, 'bytes': size}}))
"""


def run(quick: bool) -> list[Result]:
    sizes = (20_000, 200_000) if quick else (235_000, 2_000_000)
    results = []
    for persons in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-demodata-") as out:
            wall, rss, extra = measure_subprocess(_CODE.format(persons=persons, out=out))
        total_rows = sum(extra["rows"].values())
        note = (
            f"{persons / wall:,.0f} persons/s, {total_rows / wall:,.0f} rows/s; simulate "
            f"{extra['simulate_s']:.1f} s, write {extra['write_s']:.1f} s; "
            f"{extra['bytes'] / 1e6:,.0f} MB; DUO {extra['rows']['duo_onderwijs.csv']:,} rows"
        )
        results.append(Result(f"demo-data {persons:,} persons: wall", wall, "s", notes=note))
        results.append(Result(f"demo-data {persons:,} persons: peak RSS", rss, "MiB"))
    return results
