"""The link stage reads its four extracts side by side (threads); what it reads and what a bad
file tells the organiser are those of a one-by-one read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from flows.pipeline import readers
from flows.pipeline.errors import SourceError
from flows.pipeline.steps import REGISTER_NOT_READ, read_extracts

FIXTURES = Path(__file__).parent / "fixtures_sources"
FILES = {
    "municipal": "brp_personen.csv",
    "cbs": "kwb_2023_statline.csv",
    "postcodes": "pc6hnr_2023_gwb.csv",
    "school": "duo_onderwijs.csv",
}


def _sources(tmp_path: Path) -> dict[str, Path]:
    paths = {}
    for which, name in FILES.items():
        paths[which] = tmp_path / name
        shutil.copy(FIXTURES / name, paths[which])
    return paths


def _read(paths: dict[str, Path]) -> dict:
    return read_extracts(paths, municipality="GM0014", year=2023)


def _break_school(path: Path) -> None:
    """Line 3 gets a sex that is neither M nor V."""
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[2] = lines[2].replace(";V;", ";X;", 1).replace(";M;", ";X;", 1)
    path.write_text("".join(lines), encoding="utf-8")


def test_threaded_read_gives_the_frames_of_one_by_one_reads(tmp_path: Path) -> None:
    paths = _sources(tmp_path)
    read = _read(paths)
    assert list(read) == ["municipal", "cbs", "postcodes", "school"]
    alone = {
        "municipal": readers.read_municipal(paths["municipal"], drop=REGISTER_NOT_READ),
        "postcodes": readers.read_postcodes(paths["postcodes"]),
        "school": readers.read_school(paths["school"]),
    }
    for which, got in alone.items():
        pd.testing.assert_frame_equal(read[which].frame, got.frame)
        assert read[which].rows_read == got.rows_read


def test_a_bad_school_file_gives_its_own_sentence(tmp_path: Path) -> None:
    paths = _sources(tmp_path)
    _break_school(paths["school"])
    with pytest.raises(SourceError) as err:
        _read(paths)
    assert str(err.value).startswith(
        "duo_onderwijs.csv: column 'geslacht' has 1 value that is not M or V (first at line 3)"
    )


def test_two_bad_files_name_the_register_first_as_a_one_by_one_read_did(tmp_path: Path) -> None:
    paths = _sources(tmp_path)
    _break_school(paths["school"])
    shutil.copy(FIXTURES / "brp_bad_date.csv", paths["municipal"])
    with pytest.raises(SourceError) as err:
        _read(paths)
    assert str(err.value).startswith(
        "brp_personen.csv: column 'geboortedatum' has 1 value that is not an existing calendar "
        "date (first at line 3)"
    )
