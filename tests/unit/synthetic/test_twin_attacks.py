"""anonymeter's attacks (real anonymeter, its own environment): an interval spanning the limit is
settled by a later round with more attacks, not by the first point estimate."""

from __future__ import annotations

import pytest

from synthetic.attacks import ESCALATION, AttackSpec, run_attacks

pytestmark = pytest.mark.slow

KNOWN = ("geboortejaar", "geslacht", "buurt_code", "po_brin")
SECRETS = ("migratieachtergrond", "inkomen_decile")


@pytest.fixture(scope="module")
def frames(small_table):
    """Training rows, holdout and a 'twin' that is the training rows with a third shuffled:
    a real inference risk, well inside (0, 1), so its interval has room either side."""
    train, holdout = small_table.iloc[:1500], small_table.iloc[1500:]
    twin = train.copy()
    cut = len(twin) // 3
    for secret in SECRETS:
        twin.iloc[:cut, twin.columns.get_loc(secret)] = (
            twin[secret].iloc[:cut].sample(frac=1, random_state=3).to_numpy()
        )
    return train, holdout, twin


def spec(**kw) -> AttackSpec:
    base = dict(
        columns=KNOWN + SECRETS,
        link_groups=(("geboortejaar", "geslacht"), ("buurt_code", "po_brin")),
        known=KNOWN,
        secrets=SECRETS,
        n_attacks=100,
        n_cols=2,
        seed=5,
        max_attacks=1_000,
    )
    return AttackSpec(**(base | kw))


def test_an_interval_spanning_the_limit_is_run_again_with_more_attacks(frames, schema, tmp_path):
    train, holdout, twin = frames
    first = {r.name: r for r in run_attacks(train, holdout, twin, schema, spec(), tmp_path)}
    target = first["inference: inkomen_decile"]
    low, high = target.ci
    assert target.n_attacks == 100 and low < high, target
    limit = (low + high) / 2  # inside this attack's interval by construction
    spanning = {n for n, r in first.items() if r.ci[0] < limit <= r.ci[1]}
    settled = {r.name: r for r in run_attacks(
        train, holdout, twin, schema, spec(), tmp_path, limit=limit
    )}  # fmt: skip

    again = settled["inference: inkomen_decile"]
    assert again.rounds[0] == 100 and again.n_attacks > 100, again
    assert again.ci[1] - again.ci[0] < high - low  # more attacks, a narrower interval
    assert "interval spanned the limit" in again.detail() and "after 100" in again.detail()
    for name, risk in settled.items():  # only the attacks whose interval spanned it ran again
        assert (risk.rounds != ()) == (name in spanning), (name, risk)
        if name not in spanning:
            assert risk == first[name]
    # it stops at max_attacks; the holdout's 1,500 rows bound it too
    assert max(r.n_attacks for r in settled.values()) <= 1_000
    if again.n_attacks == 100 * ESCALATION:  # a third round only while it still spans
        assert not again.ci[0] < limit <= again.ci[1]


def test_no_second_round_when_every_interval_is_clear_of_the_limit(frames, schema, tmp_path):
    train, holdout, twin = frames
    risks = run_attacks(train, holdout, twin, schema, spec(), tmp_path, limit=1.01)
    assert all(r.rounds == () and r.n_attacks <= 100 for r in risks), risks
    assert len(list(tmp_path.iterdir())) == 1  # one anonymeter run


def test_the_risks_are_the_same_for_any_number_of_threads(frames, schema, tmp_path):
    """The gate gives anonymeter every core (`n_jobs`): its nearest-neighbour searches are
    split by target, so the risks do not change, and a cached round is re-used whatever
    the thread count."""
    train, holdout, twin = frames
    one = run_attacks(train, holdout, twin, schema, spec(n_jobs=1), tmp_path / "one")
    two = run_attacks(train, holdout, twin, schema, spec(n_jobs=2), tmp_path / "two")
    assert {r.name for r in one} >= {"linkability", "inference: inkomen_decile"}
    # every figure the gate reads; not the multivariate singling-out baseline rate, which
    # anonymeter draws from polars' unique() in no fixed order (it differs between two runs
    # with one thread too, and enters no risk)
    assert [_figures(r) for r in one] == [_figures(r) for r in two]
    again = run_attacks(train, holdout, twin, schema, spec(n_jobs=2), tmp_path / "one")
    assert again == one and len(list((tmp_path / "one").iterdir())) == 1


def _figures(r):
    return r.name, r.risk, r.ci, r.attack_rate, r.control_rate, r.n_attacks
