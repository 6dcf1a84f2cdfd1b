"""A large register is streamed in chunks: memory grows with the result, not twice the file.

Runs the reader in a fresh subprocess and compares its peak resident memory (ru_maxrss)
before and after reading a ~50 MB cp1252 register; no timing is asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HEADER = (
    "bsn;voornamen;geslachtsnaam;geboortedatum;geslacht;straatnaam;huisnummer;huisletter;"
    "postcode;woonplaats;huishoudnummer;bsn_ouder1;bsn_ouder2;inkomen_huishouden;"
    "inkomen_decile;migratieachtergrond;datum_vertrek"
)
FIXTURE = Path(__file__).with_name("fixtures_sources") / "brp_personen.csv"

MEASURE = """
import json, resource, sys
from pathlib import Path
from flows.pipeline.readers import read_municipal
read_municipal(Path(sys.argv[2]))  # warm up: imports, pandera schemas
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
result = read_municipal(Path(sys.argv[1]))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({
    "growth": peak - base,
    "frame": int(result.frame.memory_usage(deep=True).sum()),
    "rows": len(result.frame),
    "rows_read": result.rows_read,
    "encoding": result.detected["encoding"],
}))
"""


def _unique_bsns(start: int, n: int) -> tuple[list[str], int]:
    """n distinct 9-digit numbers passing the elfproef, from 8-digit prefixes >= start."""
    prefix = np.arange(start, start + 2 * n) + 10_000_000
    digits = (prefix[:, None] // 10 ** np.arange(7, -1, -1)) % 10
    check = (digits @ np.array([9, 8, 7, 6, 5, 4, 3, 2])) % 11
    ok = check < 10
    bsns = [f"{p}{c}" for p, c in zip(prefix[ok][:n], check[ok][:n], strict=True)]
    return bsns, int(prefix[ok][n - 1]) - 10_000_000 + 1


def write_register(path: Path, target_bytes: int, seed: int = 1) -> int:
    rng = np.random.default_rng(seed)
    rows = nxt = written = 0
    with open(path, "w", encoding="cp1252", newline="") as fh:
        fh.write(HEADER + "\r\n")
        while written < target_bytes:
            n = 20_000
            bsn, nxt = _unique_bsns(nxt, n)
            y, m, d = rng.integers(1950, 2015, n), rng.integers(1, 13, n), rng.integers(1, 29, n)
            chunk = "".join(
                f"{bsn[i]};Jan Pieter;Brontë;{y[i]:04d}{m[i]:02d}{d[i]:02d};{'MV'[i % 2]};"
                f"Herestraat;{1 + i % 200};;9711AB;Groningen;HH{rows + i:08d};;;"
                f"{30000 + i % 5000};{1 + i % 10};Nederland;\r\n"
                for i in range(n)
            )
            fh.write(chunk)
            written += len(chunk)
            rows += n
    return rows


@pytest.mark.slow
def test_large_register_streams_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "brp_groot.csv"
    rows = write_register(path, 50_000_000)
    size = path.stat().st_size
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(FIXTURE)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[3],
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"file {size / 2**20:.0f} MiB, frame {got['frame'] / 2**20:.0f} MiB, "
        f"peak growth {got['growth'] / 2**20:.0f} MiB"
    )
    assert got["rows"] == got["rows_read"] == rows
    assert got["encoding"] == "cp1252"
    # The result must be in memory once; what comes on top (one chunk of text, the
    # concatenation of the numeric columns) stays below one more result and a margin.
    assert got["growth"] < 2 * got["frame"] + 64 * 2**20
