"""Loading and checking packs: built-ins, the search path, and one sentence per problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import jsonschema
import pandas as pd
import pytest
import yaml

from challenges import (
    STATISTICS,
    ChallengeError,
    FidelityCheck,
    Pack,
    load_pack,
    load_packs,
    pack_ids,
    validate_pack,
)
from challenges.pack import BUILTIN_DIR, PATH_ENV, challenge_schema

FIXTURES = Path(__file__).with_name("fixtures")
SCHEMA_FILE = Path(__file__).parents[3] / "flows" / "schemas" / "analysis_table.yaml"
BUILTIN = ["advieskloof", "doorstroom", "uitval-eerste-jaar"]


@pytest.fixture(scope="module")
def analysis_columns() -> list[str]:
    return list(yaml.safe_load(SCHEMA_FILE.read_text(encoding="utf-8"))["columns"])


def _copy(name: str, tmp_path: Path, new_name: str | None = None) -> Path:
    target = tmp_path / (new_name or name)
    shutil.copytree(FIXTURES / name, target)
    return target


def _edit(pack_dir: Path, change) -> Path:
    file = pack_dir / "challenge.yaml"
    data = yaml.safe_load(file.read_text(encoding="utf-8"))
    change(data)
    file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return pack_dir


def _problems(path: Path, columns: list[str] | None = None) -> list[str]:
    with pytest.raises(ChallengeError) as exc:
        validate_pack(load_pack(path), available_columns=columns)
    return exc.value.problems


# --- the built-in packs ---------------------------------------------------------------


def test_the_three_built_in_packs_load_and_validate(analysis_columns):
    packs = load_packs()
    assert [p.id for p in packs] == BUILTIN
    for pack in packs:
        validate_pack(pack, available_columns=analysis_columns)
        assert isinstance(pack, Pack)
        assert set(pack.title) == {"nl", "en"} and set(pack.question) == {"nl", "en"}
        assert 2 <= len(pack.fidelity) <= 4
        assert 4 <= len(pack.rubric.criteria) <= 6
        assert sum(c.weight for c in pack.rubric.criteria) == pytest.approx(1)
        assert (pack.rubric.scale_min, pack.rubric.scale_max) == (1, 5)
        rules = pack.output_rules
        assert (rules.min_cell_count, rules.round_to, rules.dominance_n, rules.dominance_k) == (
            10,
            5,
            2,
            0.9,
        )
        assert pack.path == BUILTIN_DIR / pack.id
        for check in pack.fidelity:
            assert check.statistic in STATISTICS
            assert set(check.columns) <= set(pack.columns)
            assert check.tolerance > 0


def test_interface_names_the_twin_gate_uses():
    pack = load_pack("advieskloof", search_path=None)
    check = pack.fidelity[0]
    assert isinstance(check, FidelityCheck)
    assert check.name == "havo_plus_gap_income"
    assert pack.key_check is check
    # compute() runs the named statistic with the pack's params on any DataFrame.
    advice = pd.Categorical(
        ["vwo", "havo", "vmbo-gt", "pro"],
        categories=["pro", "vmbo-b/k", "vmbo-gt", "vmbo-gt/havo", "havo", "havo/vwo", "vwo"],
        ordered=True,
    )
    df = pd.DataFrame(
        {"schooladvies": advice, "inkomen_decile": [9, 8, 2, 1], "eindtoets_score": [540] * 4}
    )
    assert check.compute(df) == 1.0  # one band: high income 2/2 havo+, low income 0/2
    with pytest.raises(AttributeError):
        check.tolerance = 1.0  # frozen


def test_rubric_weighted_score():
    rubric = load_pack("advieskloof").rubric
    scores = {c.id: 4 for c in rubric.criteria}
    assert rubric.weighted(scores) == pytest.approx(4)


def test_json_schema_accepts_the_built_in_packs():
    for pack_id in BUILTIN:
        data = yaml.safe_load((BUILTIN_DIR / pack_id / "challenge.yaml").read_text("utf-8"))
        jsonschema.validate(data, challenge_schema())


# --- finding packs --------------------------------------------------------------------


def test_event_directory_pack_overrides_a_built_in_and_adds_its_own(tmp_path):
    event_challenges = tmp_path / "challenges"
    _copy("ok-minimal", event_challenges)
    override = event_challenges / "advieskloof"
    shutil.copytree(BUILTIN_DIR / "advieskloof", override)
    _edit(override, lambda d: d["title"].update(en="Our own advice gap"))
    assert pack_ids([event_challenges]) == [*BUILTIN[:1], "doorstroom", "ok-minimal", BUILTIN[2]]
    assert load_pack("advieskloof", [event_challenges]).title["en"] == "Our own advice gap"
    assert load_pack("advieskloof").title["en"] == "The advice gap"
    assert load_pack("ok-minimal", [event_challenges]).path == event_challenges / "ok-minimal"


def test_environment_search_path(tmp_path, monkeypatch):
    _copy("ok-minimal", tmp_path)
    monkeypatch.setenv(PATH_ENV, str(tmp_path))
    assert "ok-minimal" in pack_ids()
    assert load_pack("ok-minimal").id == "ok-minimal"


def test_unknown_pack_id_names_where_it_looked(tmp_path):
    with pytest.raises(ChallengeError) as exc:
        load_pack("bestaat-niet", [tmp_path])
    (sentence,) = exc.value.problems
    assert sentence.startswith("challenge 'bestaat-niet', challenge.yaml: no pack with this id in")
    assert str(tmp_path) in sentence
    assert exc.value.hackgap_user_error is True


def test_load_packs_reports_problems_of_every_pack_together(tmp_path):
    for name in ("bad-weights", "unknown-statistic"):
        _copy(name, tmp_path)
    with pytest.raises(ChallengeError) as exc:
        load_packs(["bad-weights", "unknown-statistic"], search_path=[tmp_path])
    assert len(exc.value.problems) == 2


# --- the broken fixtures: one sentence each -------------------------------------------

EXPECTED = {
    "bad-weights": "challenge 'bad-weights', challenge.yaml, rubric.weights: the weights sum to "
    "0.9; make them sum to 1.",
    "invalid-yaml": "challenge 'invalid-yaml', challenge.yaml: not valid YAML at line 4; fix the "
    "indentation or quoting there.",
    "unknown-statistic": "challenge 'unknown-statistic', challenge.yaml, fidelity[0].statistic: "
    "unknown statistic 'median_share'; use one of group_share, share_difference, rate_ratio, "
    "share_difference_at_equal_covariates, logit_coefficient.",
    "unknown-column": "challenge 'unknown-column', challenge.yaml, fidelity[0].params: statistic "
    "'vsv_share' names column 'ouder_opleiding', which the linked analysis table lacks; use one "
    "of its columns (flows/schemas/analysis_table.yaml).",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_fixture_fails_with_its_sentence(name, analysis_columns):
    assert _problems(FIXTURES / name, analysis_columns) == [EXPECTED[name]]


def test_missing_file_names_the_pack_the_file_and_the_field():
    (sentence,) = _problems(FIXTURES / "missing-brief")
    assert sentence.startswith(
        "challenge 'missing-brief', brief.md, files.brief: the file is missing"
    )
    assert sentence.endswith("or fix files.brief in challenge.yaml.")


def test_missing_challenge_yaml(tmp_path):
    (tmp_path / "leeg").mkdir()
    (sentence,) = _problems(tmp_path / "leeg")
    assert sentence.startswith("challenge 'leeg', challenge.yaml: the file is missing from")


def test_the_minimal_fixture_is_valid(analysis_columns):
    validate_pack(load_pack(FIXTURES / "ok-minimal"), available_columns=analysis_columns)


# --- what the schema and the semantic checks say --------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: d.pop("question"),
            "challenge 'ok-minimal', challenge.yaml, question: required but missing; add it.",
        ),
        (
            lambda d: d.update(colour="blue"),
            "challenge 'ok-minimal', challenge.yaml: unknown key(s) colour; remove them or use "
            "one of id, version, title, question, datasets, columns, key_statistic, "
            "tolerance_reference_rows, fidelity, "
            "rubric, output_rules, verification, files.",
        ),
        (
            lambda d: d["title"].pop("en"),
            "challenge 'ok-minimal', challenge.yaml, title.en: required but missing; add it.",
        ),
        (
            lambda d: d.update(datasets=["bank"]),
            "challenge 'ok-minimal', challenge.yaml, datasets[0]: must be one of municipal, cbs, "
            "postcodes, school; fix the value.",
        ),
        (
            lambda d: d["fidelity"][0].update(tolerance="small"),
            "challenge 'ok-minimal', challenge.yaml, fidelity[0].tolerance: must be of type number "
            "(got str); fix the value.",
        ),
        (
            lambda d: d.update(id="other-id"),
            "challenge 'other-id', challenge.yaml, id: 'other-id' differs from the directory name "
            "'ok-minimal'; rename one so they match.",
        ),
        (
            lambda d: d["fidelity"][0]["params"].update(group="wijk_ses_tertiel >="),
            "challenge 'ok-minimal', challenge.yaml, fidelity[0].params.group: "
            "'wijk_ses_tertiel >=' has no value after '>='; fix the condition.",
        ),
        (
            lambda d: d["fidelity"][0]["params"].update(colour="blue"),
            "challenge 'ok-minimal', challenge.yaml, fidelity[0].params.colour: 'group_share' has "
            "no parameter 'colour'; use condition, group, where.",
        ),
        (
            lambda d: d["fidelity"][0]["params"].update(where="geslacht == V"),
            "challenge 'ok-minimal', challenge.yaml, fidelity[0].params: 'vsv_share' reads "
            "column(s) geslacht, which the pack does not declare; add them to columns.",
        ),
        (
            lambda d: d["fidelity"].append(dict(d["fidelity"][0])),
            "challenge 'ok-minimal', challenge.yaml, fidelity[1].name: 'vsv_share' appears twice; "
            "make it unique.",
        ),
        (
            lambda d: d.update(key_statistic="elders"),
            "challenge 'ok-minimal', challenge.yaml, key_statistic: 'elders' is not a fidelity "
            "check of this pack; name one of its checks.",
        ),
        (
            lambda d: d["rubric"]["scale"].update(min=5, max=1),
            "challenge 'ok-minimal', challenge.yaml, rubric.scale: min must be below max; fix the "
            "scale (e.g. 1 to 5).",
        ),
    ],
)
def test_problem_sentences(tmp_path, change, expected):
    pack_dir = _edit(_copy("ok-minimal", tmp_path), change)
    assert _problems(pack_dir) == [expected]


def test_brief_with_an_unknown_placeholder(tmp_path):
    pack_dir = _copy("ok-minimal", tmp_path)
    (pack_dir / "brief.md").write_text("# {{ evnt.title }}\n", encoding="utf-8")
    (sentence,) = _problems(pack_dir)
    assert sentence == (
        "challenge 'ok-minimal', brief.md: 'evnt' is undefined; use only event, data, challenge, "
        "columns and rules (see docs/challenges.md)."
    )


def test_brief_with_a_template_syntax_error(tmp_path):
    pack_dir = _copy("ok-minimal", tmp_path)
    (pack_dir / "brief.md").write_text("# Titel\n\n{% for x in %}\n", encoding="utf-8")
    (sentence,) = _problems(pack_dir)
    assert sentence.startswith("challenge 'ok-minimal', brief.md, line 3: template error (")


def test_notebook_without_a_parameters_cell(tmp_path):
    import nbformat

    pack_dir = _copy("ok-minimal", tmp_path)
    nb = nbformat.read(pack_dir / "starter.ipynb", as_version=4)
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    nbformat.write(nb, pack_dir / "starter.ipynb")
    (sentence,) = _problems(pack_dir)
    assert sentence == (
        "challenge 'ok-minimal', starter.ipynb, cells: found 0 cells tagged 'parameters'; tag "
        "exactly one code cell (it receives TWIN_PATH and CODEBOOK_PATH)."
    )


def test_notebook_that_is_not_json(tmp_path):
    pack_dir = _copy("ok-minimal", tmp_path)
    (pack_dir / "starter.ipynb").write_text("not a notebook", encoding="utf-8")
    (sentence,) = _problems(pack_dir)
    assert sentence.startswith(
        "challenge 'ok-minimal', starter.ipynb: not a valid Jupyter notebook"
    )
