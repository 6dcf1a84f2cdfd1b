"""`make bench`: run every benchmark module in bench/ and print one table.

A benchmark module defines `run(quick: bool) -> list[Result]`. Each Result
names what was measured, its baseline measured in the same run, and the
target ratio from the issue; the table prints measured/baseline as a ratio.
`python -m bench NAME ...` runs only the named modules; `--quick` uses small sizes.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # libraries' progress bars drown the table

from rich.console import Console
from rich.table import Table

import bench
from bench.harness import Result

console = Console()


def _modules(selected: list[str]) -> list[str]:
    names = sorted(
        m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_")
    )
    if selected:
        names = [n for n in names if n in selected or n.removeprefix("bench_") in selected]
    return names


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    selected = [a for a in argv if not a.startswith("-")]
    results: list[Result] = []
    for name in _modules(selected):
        console.rule(name)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}")
        results.extend(module.run(quick=quick))
        console.print(f"{name} took {time.perf_counter() - started:.1f} s")
    table = Table(title="hackgap benchmarks" + (" (quick)" if quick else ""))
    for col in ("benchmark", "measured", "baseline", "ratio", "target", "ok", "notes"):
        table.add_column(col)
    for r in results:
        table.add_row(*r.row())
    console.print(table)
    out = Path("bench/results")
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps([r.as_dict() for r in results], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
