"""The readers read the demo generator's four extracts back into the frames it invented."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.demodata import World, simulate, write_sources
from flows.pipeline.readers import read_cbs, read_municipal, read_postcodes, read_school


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, dict[str, Path]]:
    world = simulate(3000, 20261126)
    return world, write_sources(world, tmp_path_factory.mktemp("sources"))


def _same(read: pd.DataFrame, truth: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        read.reset_index(drop=True), truth.reset_index(drop=True), check_dtype=True
    )


def test_register_round_trip(demo: tuple[World, dict[str, Path]]) -> None:
    world, files = demo
    result = read_municipal(files["brp_personen.csv"])
    assert result.detected["encoding"] == "cp1252"
    assert result.rejected == {}
    _same(result.frame, world.persons)


def test_cbs_round_trip(demo: tuple[World, dict[str, Path]]) -> None:
    world, files = demo
    result = read_cbs(files["kwb_2023_statline.csv"], municipality="GM0014", year=2023)
    assert result.detected["shape"] == "statline"
    suppressed = world.cbs[["inwoners", "gem_inkomen_per_inwoner", "pct_laag_inkomen"]]
    assert result.detected["suppressed_cells"] >= int(suppressed.isna().sum().sum())
    _same(result.frame, world.cbs)


def test_postcodes_round_trip(demo: tuple[World, dict[str, Path]]) -> None:
    world, files = demo
    _same(read_postcodes(files["pc6hnr_2023_gwb.csv"]).frame, world.postcodes)


def test_school_round_trip(demo: tuple[World, dict[str, Path]]) -> None:
    world, files = demo
    result = read_school(files["duo_onderwijs.csv"])
    assert result.detected["rows_without_bsn"] == int(world.school["bsn"].isna().sum()) > 0
    _same(result.frame, world.school.drop(columns=["true_bsn"]))
