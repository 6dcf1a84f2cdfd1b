"""Re-running submissions on the twin: 30 demo submissions against one submission's time.

Baseline: (30 / cores) x the time one demo submission takes alone (the mean of the two demo
notebooks, each run once by itself). Measured: the wall time of re-running 30 submissions
(the two demo notebooks, 15 copies each) through the review stage's executor, `cores` at a
time, each in its own fresh process and work tree (and, as root, its own unprivileged
account, network namespace and /tmp). Target <= 1.3x: parallel re-runs cost little more
than the work itself.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.harness import Result

SUBMISSIONS = 30


def _setup(root: Path, persons: int) -> tuple[Path, dict[str, Path]]:
    import nbformat

    from flows.demo_submissions import DEMO_TEAMS, demo_notebook
    from flows.demodata import demo_analysis_table

    table = demo_analysis_table(persons=persons, seed=7)
    twin = table.drop(columns=[c for c in ("pupil_id", "link_method") if c in table.columns])
    data = root / "data"
    data.mkdir()
    twin.to_parquet(data / "twin.parquet", index=False)
    (data / "codebook.md").write_text("# codebook\n")
    notebooks = {}
    for team, (challenge, cells) in DEMO_TEAMS.items():
        path = root / f"{team}.ipynb"
        nbformat.write(demo_notebook(challenge, cells), path)
        notebooks[team] = path
    return data, notebooks


def _spec(root: Path, data: Path, notebook: Path, index: int, python: str):
    from judging.execute import RunSpec, ensure_user, is_root

    user = None
    if is_root():
        user = f"hgb-bench-{index:02d}"
        ensure_user(user)
    return RunSpec(
        key=f"bench-{index}-{time.time_ns()}",
        notebook=notebook,
        data={"twin.parquet": data / "twin.parquet", "codebook.md": data / "codebook.md"},
        result_dir=root / "results" / f"s{index:02d}",
        runs_root=root / "runs",
        time_limit=900,
        mem_limit=3 * 2**30,
        user=user,
        python=python,
    )


def _remove_accounts(users: list[str | None]) -> None:
    import subprocess

    for user in filter(None, set(users)):
        subprocess.run(["userdel", user], capture_output=True, check=False)


def _python() -> str:
    import sys

    from judging.execute import is_root

    if not is_root():
        return sys.executable
    from sandboxes import singleuser

    return str(singleuser.ensure() / "bin" / "python")


def run(quick: bool) -> list[Result]:
    from concurrent.futures import ThreadPoolExecutor

    from judging.execute import run_notebook

    cores = os.cpu_count() or 1
    count = 2 * cores if quick else SUBMISSIONS
    persons = 20_000 if quick else 235_000
    python = _python()
    with tempfile.TemporaryDirectory(prefix="hackgap-bench-rerun-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        data, notebooks = _setup(root, persons)
        names = list(notebooks)
        singles = []
        for i, name in enumerate(names):
            started = time.perf_counter()
            result = run_notebook(_spec(root, data, notebooks[name], 90 + i, python))
            singles.append(time.perf_counter() - started)
            if not result.ok:
                raise RuntimeError(f"demo notebook {name} failed: {result.message}")
        single = sum(singles) / len(singles)
        specs = [
            _spec(root, data, notebooks[names[i % len(names)]], i, python) for i in range(count)
        ]
        started = time.perf_counter()
        try:
            with ThreadPoolExecutor(max_workers=cores) as pool:
                results = list(pool.map(run_notebook, specs))
            wall = time.perf_counter() - started
        finally:
            _remove_accounts(
                [s.user for s in specs] + [f"hgb-bench-{90 + i:02d}" for i in range(2)]
            )
    failed = [r for r in results if not r.ok]
    return [
        Result(
            name=f"re-run {count} demo submissions ({cores} at a time)",
            measured=wall,
            baseline=count / cores * single,
            target_ratio=1.3,
            notes=f"one submission alone {single:.1f} s; {persons:,} persons; {len(failed)} failed",
            extra={"single_seconds": singles, "failed": len(failed)},
        )
    ]
