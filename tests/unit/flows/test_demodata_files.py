"""The demo extracts: deterministic bytes and the formats promised in docs/data.md."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flows.demodata import simulate, write_sources
from flows.demodata.extracts import FILES, KWB_HEADER
from flows.demodata.names import elfproef

PERSONS = 3_000


def _hashes(paths: dict[str, Path]) -> dict[str, str]:
    return {name: hashlib.sha256(p.read_bytes()).hexdigest() for name, p in paths.items()}


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    return write_sources(simulate(PERSONS, 11), tmp_path_factory.mktemp("demo"))


def _rows(path: Path, encoding: str) -> list[dict[str, str]]:
    with open(path, encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=";"))


def test_same_seed_gives_identical_files_and_other_seed_differs(files, tmp_path):
    again = write_sources(simulate(PERSONS, 11), tmp_path / "again")
    other = write_sources(simulate(PERSONS, 12), tmp_path / "other")
    assert sorted(files) == sorted(FILES)
    assert _hashes(again) == _hashes(files)
    differ = [n for n in FILES if _hashes(other)[n] != _hashes(files)[n]]
    assert set(differ) >= {"brp_personen.csv", "duo_onderwijs.csv"}
    assert not list((tmp_path / "again").glob(".*tmp"))  # no temporary files left


def test_brp_is_cp1252_with_valid_bsns_and_plain_postcodes(files):
    raw = files["brp_personen.csv"].read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # a real cp1252 export, not UTF-8
    rows = _rows(files["brp_personen.csv"], "cp1252")
    assert len(rows) == PERSONS
    assert any(not r["geslachtsnaam"].isascii() or not r["voornamen"].isascii() for r in rows)
    assert all(elfproef(r["bsn"]) for r in rows)
    assert len({r["bsn"] for r in rows}) == PERSONS
    assert all(re.fullmatch(r"\d{4}[A-Z]{2}", r["postcode"]) for r in rows)
    assert all(re.fullmatch(r"\d{8}", r["geboortedatum"]) for r in rows)
    parents = [r["bsn_ouder1"] for r in rows if r["bsn_ouder1"]]
    assert parents and all(elfproef(b) for b in parents)
    assert {r["migratieachtergrond"] for r in rows} >= {"Nederland", "Marokko", "Turkije"}


def test_duo_postcodes_have_a_space_and_rows_without_bsn_keep_link_fields(files):
    rows = _rows(files["duo_onderwijs.csv"], "utf-8")
    assert all(re.fullmatch(r"\d{4} [A-Z]{2}", r["postcode"]) for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["geboortedatum"]) for r in rows)
    without = [r for r in rows if not r["bsn"]]
    assert 0.03 < len(without) / len(rows) < 0.2
    assert all(
        r["geboortedatum"] and r["geslacht"] in ("M", "V") and r["postcode"] for r in without
    )
    assert all(elfproef(r["bsn"]) for r in rows if r["bsn"])
    assert {r["onderwijssoort"] for r in rows} == {"po", "vo", "mbo", "hbo"}
    assert all(re.fullmatch(r"\d{2}[A-Z]{2}", r["brin"]) for r in rows)
    po = [r for r in rows if r["onderwijssoort"] == "po"]
    assert all(501 <= int(r["eindtoets_score"]) <= 550 and r["schooladvies"] for r in po)


def test_cbs_file_has_bom_quotes_decimal_comma_padded_codes_and_suppression(files):
    raw = files["kwb_2023_statline.csv"].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    text = raw.decode("utf-8-sig")
    first = text.splitlines()[0]
    assert first == ";".join(f'"{h}"' for h in KWB_HEADER)
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))[1:]
    assert all(line.startswith('"') and line.endswith('"') for line in text.splitlines()[1:])
    kinds = [r[2] for r in rows]
    assert kinds[0] == "Gemeente  " and kinds.count("Wijk      ") == 12
    assert all(len(r[3]) == 10 for r in rows)
    assert rows[0][3] == "GM0014    " and rows[1][3].startswith("WK0014")
    assert any("," in r[6] for r in rows)
    assert any(r[6] == "." for r in rows if r[2].strip() == "Buurt")  # tiny buurten suppressed
    assert all(r[6] != "." for r in rows if r[2].strip() == "Wijk")


def test_pc6hnr_codes_are_integers_without_leading_zeros(files):
    rows = _rows(files["pc6hnr_2023_gwb.csv"], "utf-8")
    assert list(rows[0]) == ["PC6", "Huisnummer", "Buurt2023", "Wijk2023", "Gemeente2023"]
    assert all(r["Gemeente2023"] == "14" for r in rows)
    assert all(re.fullmatch(r"14\d{4}", r["Buurt2023"]) for r in rows)
    assert all(re.fullmatch(r"14\d{2}", r["Wijk2023"]) for r in rows)
    assert len({(r["PC6"], r["Huisnummer"]) for r in rows}) == len(rows)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", "demo-data", *args], capture_output=True, text=True
    )


def _in_process(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`hackgap demo-data ARGS` through the real entry point in this process: (exit, stderr)."""
    from flows import cli

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["hackgap", "demo-data", *args])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code or 0, capsys.readouterr().err


@pytest.mark.slow  # a fresh interpreter importing the whole CLI
def test_cli_writes_files_and_reports_user_errors_with_exit_2(tmp_path, monkeypatch, capsys):
    ok = _cli("--persons", "500", "--seed", "1", str(tmp_path / "out"))
    assert ok.returncode == 0, ok.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(FILES)
    assert "duo_onderwijs.csv" in ok.stdout
    code, err = _in_process(monkeypatch, capsys, "--persons", "0", str(tmp_path / "x"))
    assert code == 2 and "--persons 0 is not a positive number" in err
    assert "Traceback" not in err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    code, err = _in_process(monkeypatch, capsys, "--persons", "100", str(a_file))
    assert code == 2 and "is a file" in err


def test_demo_data_user_errors_are_one_sentence(tmp_path):
    from flows.commands.demo import DemoDataError, demo_data

    with pytest.raises(DemoDataError, match="--persons -5 is not a positive number"):
        demo_data(tmp_path / "x", persons=-5, seed=1, no_bsn_share=0.1)
    with pytest.raises(DemoDataError, match=r"outside 0\.\.1"):
        demo_data(tmp_path / "x", persons=10, seed=1, no_bsn_share=1.5)
    target = Path("/proc/hackgap-no/out")  # cannot be created, even by root
    with pytest.raises(DemoDataError, match="is not writable"):
        demo_data(target, persons=10, seed=1, no_bsn_share=0.1)
    assert not (tmp_path / "x").exists()
