"""Bad rows arriving through `make_twin` are caught in the release files as read back.

Each twin here comes from a stand-in sampler plugged in where the fitted model would be, so
its rows take the sampler's own dtypes and pass through restore_dtypes, twin.parquet and
twin.csv exactly as a real twin does (an earlier gate compared a sampled twin's categoricals
with the real table's floats and could not see a single copied row).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

import synthetic.make as make
from synthetic.fit import FittedTwin, Stratum
from synthetic.prepare import area_columns, coarsen
from synthetic.settings import TwinSettings

pytestmark = pytest.mark.slow

# fewer attacks and quality rows than an event uses: these tests are about which rows the gate
# sees and refuses, and every figure they assert is far from its threshold
SETTINGS = TwinSettings(seed=5, attack_count=200, eval_rows=1500)
QI = ["wijk_code", "buurt_code", "po_brin", "geslacht", "geboortejaar"]


class StandIn:
    """A 'synthesizer' drawing rows from `source` (model-frame form), then `tweak`ing them."""

    def __init__(self, source: pd.DataFrame, tweak: Callable[[pd.DataFrame], pd.DataFrame]):
        self.source, self.tweak = source.reset_index(drop=True), tweak
        self.rng = np.random.default_rng(1)

    def sample(self, num_rows: int) -> pd.DataFrame:
        if num_rows <= len(self.source):  # each source row once, as far as they go
            picks = self.rng.permutation(len(self.source))[:num_rows]
        else:
            picks = self.rng.integers(0, len(self.source), num_rows)
        return self.tweak(self.source.iloc[picks].reset_index(drop=True))


def plug(monkeypatch, source=None, tweak=lambda df: df, redraw: bool = True) -> None:
    """Replace fitting by a StandIn over `source(training frame)` (default: the training rows
    themselves); `redraw=False` also breaks the redraw, as the earlier dtype bug did."""

    def fit(frame, labels, schema, info, settings, progress=None, fit_map=None):
        rows = frame if source is None else source(frame)
        return FittedTwin([Stratum("rest", len(frame), StandIn(rows, tweak))], list(frame), "x")

    monkeypatch.setattr(make, "fit_twin", fit)
    if not redraw:
        sample = make.sample_twin
        monkeypatch.setattr(
            make, "sample_twin", lambda fitted, rows, seed, reject=None: sample(fitted, rows, seed)
        )


def invented(schema, table_maker) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Rows of another invented population, in the model frame's form: no real person."""
    other, info = coarsen(table_maker(3000, seed=21), schema, SETTINGS)
    return lambda frame: other.drop(columns=area_columns(SETTINGS, info))[list(frame)]


def check(build, name):
    found = build.gate.check(name)
    assert found is not None, f"{name} was not measured"
    return found


def test_a_sampler_copying_its_training_rows_is_refused(monkeypatch, schema, small_table):
    plug(monkeypatch, redraw=False)
    build = make.make_twin(small_table, schema, SETTINGS)
    assert build.gate.files == ("twin.parquet", "twin.csv") and not build.gate.passed
    unique = check(build, "replicated uniques")
    assert not unique.passed and unique.value > 0.5 * len(build.twin)
    identical = check(build, "identical rows")
    assert not identical.passed and identical.value > 0.95  # coarsening changed a few
    assert not check(build, "DCR overfitting protection").passed
    attacks = {r.name: r for r in build.gate.attacks}
    assert set(attacks) == {
        "singling out (univariate)",
        "singling out (multivariate)",
        "linkability",
        "inference: migratieachtergrond",
        "inference: inkomen_decile",
    }
    failed = [c.name for c in build.gate.failures if c.name.startswith("anonymeter ")]
    # a copied row gives its secret away: inference fails far from the limit (singling out
    # sits near it at 200 attacks and is settled by a later round either way)
    assert {f"anonymeter inference: {c}" for c in ("migratieachtergrond", "inkomen_decile")} <= set(
        failed
    ), build.gate.attacks
    assert all(0 <= r.ci[0] <= r.risk <= r.ci[1] <= 1 for r in attacks.values())


def test_redraw_removes_copied_unique_rows_in_the_sampler_own_dtypes(
    monkeypatch, schema, small_table, table_maker
):
    fresh = invented(schema, table_maker)
    # half the draws copy a training row, half come from another invented population
    plug(monkeypatch, source=lambda frame: pd.concat([frame, fresh(frame)], ignore_index=True))
    build = make.make_twin(small_table, schema, SETTINGS)
    assert build.context.redrawn["replicated uniques"] > 1000
    unique = check(build, "replicated uniques")
    assert unique.passed and unique.value == 0
    assert "twin.csv" not in unique.detail  # both files read back to the same figure


def test_small_groups_rare_values_and_an_erased_gradient_are_refused(
    monkeypatch, schema, small_table, table_maker, advice_gap
):
    real = small_table.copy()
    other_school = real.loc[real["wijk_code"] != "WK001401", "po_brin"].iloc[0]
    group = ["WK001401", "BU00140101", other_school, "V", 2007]
    real.loc[[0, 1], QI] = group  # two real pupils share this combination, nobody else
    top = float(pd.to_numeric(real["eindtoets_score"]).max())
    fresh = invented(schema, table_maker)

    def tweak(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df.loc[0, QI] = group
        df.loc[1, "eindtoets_score"] = top
        shuffled = np.random.default_rng(3).permutation(len(df))
        df["inkomen_decile"] = df["inkomen_decile"].to_numpy()[shuffled]
        return df

    plug(monkeypatch, source=fresh, tweak=tweak, redraw=False)
    build = make.make_twin(real, schema, SETTINGS, {"advieskloof": [advice_gap]})
    k = check(build, "k-anonymity")
    assert not k.passed and k.value >= 1
    rare = check(build, "rare values")
    assert not rare.passed and "eindtoets_score" in rare.detail
    fidelity = check(build, "fidelity advieskloof/advice_gap")
    assert not fidelity.passed
    assert check(build, "replicated uniques").passed  # invented rows copy no one


def test_a_twin_collapsing_columns_fails_quality(monkeypatch, schema, small_table, table_maker):
    def collapse(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        for name in list(df.columns)[::2]:
            df[name] = df[name].mode().iloc[0]
        return df

    plug(monkeypatch, source=invented(schema, table_maker), tweak=collapse, redraw=False)
    build = make.make_twin(small_table, schema, SETTINGS)
    quality = check(build, "quality")
    assert not quality.passed and quality.value < 0.8
