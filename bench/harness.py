"""Small helpers shared by the benchmarks: timing, peak memory, result rows."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    """One measurement, optionally against a baseline measured in the same run."""

    name: str
    measured: float
    unit: str = "s"
    baseline: float | None = None
    target_ratio: float | None = None  # measured/baseline must be <= this
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if not self.baseline else self.measured / self.baseline

    @property
    def ok(self) -> bool | None:
        if self.target_ratio is None or self.ratio is None:
            return None
        return self.ratio <= self.target_ratio

    def row(self) -> list[str]:
        fmt = lambda v: "" if v is None else f"{v:,.2f} {self.unit}"  # noqa: E731
        return [
            self.name,
            fmt(self.measured),
            fmt(self.baseline),
            "" if self.ratio is None else f"{self.ratio:.2f}x",
            "" if self.target_ratio is None else f"<= {self.target_ratio}x",
            {None: "", True: "yes", False: "NO"}[self.ok],
            self.notes,
        ]

    def as_dict(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "ok": self.ok}


def measure_subprocess(code: str, env: dict | None = None) -> tuple[float, float, dict]:
    """Run Python `code` in a fresh interpreter; return (wall s, peak RSS MiB, its JSON output).

    A fresh process per measurement keeps peak memory honest (ru_maxrss of the child only).
    `code` may print one JSON object on its last stdout line to report extra figures.
    """
    wrapper = (
        "import resource, time, json, sys\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "sys.stdout.flush()\n"
        "print('\\n__BENCH__' + json.dumps({'wall': time.perf_counter() - t0, "
        "'rss_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    lines = proc.stdout.strip().splitlines()
    stats = json.loads(lines[-1].removeprefix("__BENCH__"))
    extra = {}
    for line in reversed(lines[:-1]):
        if line.startswith("{"):
            extra = json.loads(line)
            break
    return stats["wall"], stats["rss_mib"], extra


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out
