"""Tolerances widen with sampling noise below the size they were calibrated at."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from challenges import ChallengeError, FidelityCheck, load_pack, load_packs

FIXTURES = Path(__file__).with_name("fixtures")


def _check(reference_rows: int | None) -> FidelityCheck:
    return FidelityCheck(
        name="gap",
        statistic="group_share",
        params={"condition": "vsv"},
        tolerance=0.05,
        description="d",
        reference_rows=reference_rows,
    )


def test_allowed_grows_as_one_over_sqrt_rows_below_the_reference():
    check = _check(40_000)
    assert check.allowed(10_000) == pytest.approx(0.10)  # a quarter of the rows: twice
    assert check.allowed(2_500) == pytest.approx(0.20)


def test_allowed_never_drops_below_the_tolerance():
    assert _check(40_000).allowed(40_000) == pytest.approx(0.05)
    assert _check(40_000).allowed(1_000_000) == pytest.approx(0.05)


def test_without_reference_rows_the_tolerance_holds_at_any_size():
    assert _check(None).allowed(100) == 0.05


def test_built_in_packs_carry_the_demo_calibration_size():
    for pack in load_packs():
        assert {c.reference_rows for c in pack.fidelity} == {44_424}, pack.id


def _pack_with(tmp_path: Path, value) -> Path:
    target = tmp_path / "ok-minimal"
    shutil.copytree(FIXTURES / "ok-minimal", target)
    file = target / "challenge.yaml"
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    data["tolerance_reference_rows"] = value
    file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return target


def test_pack_level_reference_rows_reach_every_check(tmp_path):
    pack = load_pack(_pack_with(tmp_path, 12_000))
    assert all(c.reference_rows == 12_000 for c in pack.fidelity)
    assert all(c.reference_rows is None for c in load_pack(FIXTURES / "ok-minimal").fidelity)


def test_reference_rows_must_be_a_positive_whole_number(tmp_path):
    with pytest.raises(ChallengeError) as exc:
        load_pack(_pack_with(tmp_path, 0))
    assert exc.value.problems == [
        "challenge 'ok-minimal', challenge.yaml, tolerance_reference_rows: 0 is less than the "
        "minimum of 1; fix the value."
    ]
