"""Linking school records to the register: exact on the pseudonym, else probabilistic.

School rows carrying a person number are linked exactly on its pseudonym. Rows
without one are linked the way CBS links files without a BSN: a Fellegi-Sunter model
(Splink, DuckDB backend) on birth date, sex and postcode. Each distinct school identity
(birth date + sex + postcode among rows without a person number) is scored against
the register's persons of school age who are not already linked exactly; it takes its
best candidate only if that candidate clears the match-probability threshold and is
clearly ahead of the runner-up. Ties and low-confidence pairs stay unlinked and are
counted, never guessed.

The model: u-probabilities from random sampling (fixed seed), m-probabilities from the
school records linked exactly (known true pairs), smoothed so an unseen level is rare,
not impossible. A school file with too few person numbers to give MIN_LABELLED known
pairs (some deliveries carry none) is trained without labels instead: Splink's
expectation-maximisation over the same blocking and comparisons, and the report says so.
Documented false-link rate: at most 1% of probabilistic links (the tests check it
against the demo generator's truth for 0%, 10%, 50% and 100% of pupils without a
person number; figures in docs/data.md).

Everything here works on pseudonymised frames in memory; what leaves this module for
reports is counts only (`ExactStats`, `ProbabilisticStats`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from flows.pipeline.memory import duckdb_connection

# Link outcomes per school row (column `link_status`).
EXACT = "exact"
PROBABILISTIC = "probabilistic"
NOT_IN_REGISTER = "bsn_not_in_register"
NO_CANDIDATE = "no_candidate"
BELOW_THRESHOLD = "below_threshold"
TIE = "tie"
UNLINKED_REASONS = (NOT_IN_REGISTER, NO_CANDIDATE, BELOW_THRESHOLD, TIE)

# The blocking rules, as named in the report (Splink's match_key is their index).
# The third rule catches a birth-date typo together with a move within the same PC4; it
# is kept within the PC4 because birth month and sex alone grow with the square of the
# population (at 2,000,000 persons: tens of millions of pairs, nearly all of them).
BLOCKING_RULES = ("birth date", "postcode + sex", "birth year-month + sex + PC4")


@dataclass(frozen=True)
class LinkSettings:
    """Knobs of the probabilistic link; defaults documented in docs/data.md."""

    threshold: float = 0.95  # minimum match probability (event.yaml secure_zone.match_threshold)
    margin: float = 3.0  # best candidate must beat the runner-up by this many match-weight bits
    seed: int = 20261126  # random sampling for u-estimation
    u_max_pairs: float = 2e6
    threads: int = 2


@dataclass
class ExactStats:
    rows_with_bsn: int = 0
    rows_linked: int = 0
    rows_not_in_register: int = 0
    duplicate_person_keys: int = 0  # register rows sharing a person number (extra copies dropped)


@dataclass
class ProbabilisticStats:
    rows: int = 0  # school rows without a person number
    rows_linked: int = 0
    identities: int = 0
    identities_linked: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # unlinked identities by reason
    candidates: int = 0  # register persons scored against
    pairs_compared: int = 0
    pairs_by_rule: dict[str, int] = field(default_factory=dict)
    weight_histogram: dict[int, int] = field(default_factory=dict)  # best-candidate weight bins
    seconds_total: float = 0.0
    seconds_predict: float = 0.0
    skipped: str = ""  # why Splink did not run, if it did not
    training: str = ""  # how the model was trained: TRAINED_ON_LABELS or TRAINED_BY_EM
    labelled_pairs: int = 0  # known true pairs available for training


@dataclass
class LinkResult:
    """All school rows with `person_key`, `link_method` (None if unlinked) and `link_status`."""

    school: pd.DataFrame
    exact: ExactStats
    probabilistic: ProbabilisticStats

    @property
    def linked(self) -> pd.DataFrame:
        return self.school[self.school["link_method"].notna()]


def normalise_postcode(values: pd.Series) -> pd.Series:
    """`9711 AB` / `9711ab` -> `9711AB`; empty -> missing."""
    # Arrow strings: the replace and upper run as Arrow kernels, not per Python object
    out = values.astype("string[pyarrow]").str.replace(" ", "", regex=False).str.upper()
    return out.mask(out == "")


def to_dates(values: pd.Series) -> pd.Series:
    """Birth dates in any of the canonical forms (date, datetime, YYYY-MM-DD, YYYYMMDD)."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.normalize()
    text = values.astype("string").str.replace("-", "", regex=False)
    return pd.to_datetime(text, format="%Y%m%d", errors="coerce")


def unique_persons(persons: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Register rows with one row per person number (first kept); also the duplicates dropped."""
    keys = pa.table({"k": arrow_keys(persons["bsn"])})
    if len(persons) and duck_column("SELECT count(k) = count(DISTINCT k) FROM t", t=keys)[0]:
        dup = np.zeros(len(persons), dtype=bool)  # the usual case, counted in parallel
    else:
        dup = (persons["bsn"].notna() & persons["bsn"].duplicated(keep="first")).to_numpy()
    return persons[~dup], int(dup.sum())


def duck_column(sql: str, **tables: pa.Table) -> np.ndarray:
    """The first column of a DuckDB query over Arrow tables, as numpy (keys stay in memory)."""
    con = duckdb_connection()
    try:
        for name, table in tables.items():
            con.register(name, table)
        return con.sql(sql).to_arrow_table().column(0).to_numpy()
    finally:
        con.close()


def arrow_keys(values: pd.Series) -> pa.ChunkedArray | pa.Array:
    """The Arrow strings behind a key column (zero-copy for string[pyarrow])."""
    arr = pa.array(values, from_pandas=True)
    return arr if pa.types.is_large_string(arr.type) else arr.cast(pa.large_string())


def key_isin(values: pd.Series, keys: pd.Series) -> np.ndarray:
    """Which `values` occur among the non-null `keys`, as a numpy bool array (missing: False).

    A DuckDB hash join: pandas' isin on Arrow strings builds its value set in Python, and
    Arrow's is_in is single-threaded.
    """
    out = np.zeros(len(values), dtype=bool)
    if len(values) == 0 or not keys.notna().any():
        return out
    q = pa.table({"k": arrow_keys(values), "j": pa.array(np.arange(len(values)))})
    p = pa.table({"k": arrow_keys(keys)})
    out[duck_column("SELECT j FROM q WHERE k IN (SELECT k FROM p)", q=q, p=p)] = True
    return out


def exact_link(school: pd.DataFrame, persons: pd.DataFrame) -> tuple[pd.DataFrame, ExactStats]:
    """Link rows whose pseudonymised person number is in the register; mark the rest."""
    has_bsn = school["bsn"].notna().to_numpy()
    found = has_bsn & key_isin(school["bsn"], persons["bsn"])
    out = school.copy(deep=False)
    out["person_key"] = school["bsn"].where(found)
    # filled by mask (one shared object per value), not np.where over string arrays
    method = np.full(len(school), None, dtype=object)
    method[found] = EXACT
    status = np.full(len(school), "", dtype=object)
    status[has_bsn] = NOT_IN_REGISTER
    status[found] = EXACT
    out["link_method"] = pd.Series(method, index=school.index)
    out["link_status"] = pd.Series(status, index=school.index)
    stats = ExactStats(
        rows_with_bsn=int(has_bsn.sum()),
        rows_linked=int(found.sum()),
        rows_not_in_register=int((has_bsn & ~found).sum()),
    )
    return out, stats


# The columns Splink's features are made of. Rows are selected with these alone: a row
# mask copies every column it keeps (seconds for the school file's twenty at 2,000,000).
_COMPARED = ("geboortedatum", "geslacht", "postcode")


def _features(frame: pd.DataFrame, dob: pd.Series, postcode: pd.Series) -> pd.DataFrame:
    """Splink's comparison columns, without a Python object per value: pandas' strftime and
    `.dt.date` made one each (14 of the 27 s of the link step at 2,000,000 persons).

    `ym` is the birth year and month as one number (Splink only tests it for equality);
    the dates become DuckDB dates on their way to Splink (`_splink_input`).
    """
    dob = dob.dt.normalize()
    day, month = dob.dt.day, dob.dt.month
    swappable = dob.notna() & (day <= 12) & (day != month)
    swapped = pd.to_datetime(
        {
            "year": dob.dt.year.where(swappable, 2000),
            "month": day.where(swappable, 1),
            "day": month.where(swappable, 1),
        }
    ).where(swappable)
    return pd.DataFrame(
        {
            "dob": dob,
            "dob_swap": swapped,
            "ym": (dob.dt.year * 100 + month).astype("Int64"),  # missing stays NULL, not NaN
            "geslacht": frame["geslacht"].astype("string[pyarrow]"),
            "postcode": postcode,
            "pc4": postcode.str.slice(0, 4),
        }
    )


def _splink_input(frame: pd.DataFrame) -> pa.Table:
    """A frame as Splink's input table: Arrow, which DuckDB scans without converting values
    one by one, with the birth dates as dates."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for name in ("dob", "dob_swap"):
        if name in table.column_names:
            i = table.column_names.index(name)
            table = table.set_column(i, name, table.column(name).cast(pa.date32()))
    return table


def _settings(n_candidates: int):
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    dob = cl.CustomComparison(
        output_column_name="dob",
        comparison_levels=[
            cll.NullLevel("dob"),
            cll.ExactMatchLevel("dob"),
            cll.CustomLevel(
                "dob_swap_l = dob_r OR dob_l = dob_swap_r", label_for_charts="day-month swap"
            ),
            cll.CustomLevel("abs(date_diff('day', dob_l, dob_r)) <= 1", "one day off"),
            cll.CustomLevel("ym_l = ym_r", "same year and month"),
            cll.ElseLevel(),
        ],
    )
    postcode = cl.CustomComparison(
        output_column_name="postcode",
        comparison_levels=[
            cll.NullLevel("postcode"),
            cll.ExactMatchLevel("postcode"),
            cll.CustomLevel("pc4_l = pc4_r", "same PC4"),
            cll.ElseLevel(),
        ],
    )
    return SettingsCreator(
        link_type="link_only",
        comparisons=[dob, cl.ExactMatch("geslacht"), postcode],
        blocking_rules_to_generate_predictions=[
            block_on("dob"),
            block_on("postcode", "geslacht"),
            block_on("ym", "geslacht", "pc4"),
        ],
        # each school identity has about one true match among the candidates
        probability_two_random_records_match=1.0 / max(n_candidates, 2),
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def _connect(settings: LinkSettings) -> duckdb.DuckDBPyConnection:
    con = duckdb_connection()
    con.execute(f"SET threads = {int(settings.threads)}")
    return con


def _smooth(model: dict, n_labels: int, u_pairs: float) -> dict:
    """Additive smoothing of m (and a floor on u) so unseen levels are rare, not impossible.

    A level never seen among the labelled true pairs (e.g. a day-month swap in a small
    file) would otherwise get m = 1e-6 and veto every such link.
    """
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        k = len(levels)
        for lv in levels:
            m = lv.get("m_probability")
            m = m if isinstance(m, float | int) else 0.0
            lv["m_probability"] = (m * n_labels + 1.0) / (n_labels + k)
            u = lv.get("u_probability")
            u = u if isinstance(u, float | int) else 0.0
            lv["u_probability"] = max(u, 1.0 / u_pairs)
    return model


def train_model(
    labelled: pd.DataFrame, right: pd.DataFrame, labels: pd.DataFrame, settings: LinkSettings
) -> dict:
    """Splink model: u from random sampling, m from the known true pairs of the exact link.

    The school records linked exactly on the person number are pairs whose truth is known,
    which is sturdier than EM on a few hundred unlabelled identities.
    """
    from splink import DuckDBAPI, Linker

    con = _connect(settings)
    try:
        db = DuckDBAPI(connection=con)
        sdf_l = db.register(_splink_input(labelled), dataset_display_name="duo")
        sdf_r = db.register(_splink_input(right), dataset_display_name="brp")
        linker = Linker([sdf_l, sdf_r], _settings(len(right)), log_level=logging.ERROR)
        linker.training.estimate_u_using_random_sampling(
            max_pairs=settings.u_max_pairs, seed=settings.seed
        )
        pairs = pd.DataFrame(
            {
                "source_dataset_l": "duo",
                "unique_id_l": labels["sid"].to_numpy(np.int64),
                "source_dataset_r": "brp",
                "unique_id_r": labels["pid"].to_numpy(np.int64),
            }
        )
        linker.training.estimate_m_from_pairwise_labels(
            db.register(_splink_input(pairs), dataset_display_name="labels")
        )
        model = linker.misc.save_model_to_json()
    finally:
        con.close()
    return _smooth(model, len(labels), settings.u_max_pairs)


# EM sessions: each blocks on some comparisons and estimates the m of the others.
_EM_BLOCKS = (("dob",), ("postcode", "geslacht"))


def train_model_em(left: pd.DataFrame, right: pd.DataFrame, settings: LinkSettings) -> dict:
    """Splink model without known pairs: u from random sampling, m by expectation-maximisation.

    Used when the school file carries (almost) no person numbers. Blocking on the birth
    date estimates sex and postcode; blocking on postcode and sex estimates the birth date.
    """
    from splink import DuckDBAPI, Linker, block_on

    con = _connect(settings)
    try:
        db = DuckDBAPI(connection=con)
        sdf_l = db.register(_splink_input(left), dataset_display_name="duo")
        sdf_r = db.register(_splink_input(right), dataset_display_name="brp")
        linker = Linker([sdf_l, sdf_r], _settings(len(right)), log_level=logging.ERROR)
        linker.training.estimate_u_using_random_sampling(
            max_pairs=settings.u_max_pairs, seed=settings.seed
        )
        for columns in _EM_BLOCKS:
            linker.training.estimate_parameters_using_expectation_maximisation(
                block_on(*columns), estimate_without_term_frequencies=True
            )
        model = linker.misc.save_model_to_json()
    finally:
        con.close()
    return _smooth(model, len(left), settings.u_max_pairs)


# Per school identity, its best and runner-up candidate among Splink's scored pairs, in
# DuckDB: the pairs grow with the population (millions at 2,000,000 persons) and never
# need to leave the database. Order: highest weight first, then lowest person id.
_BEST_TWO = """
WITH p AS (
  SELECT CASE WHEN source_dataset_l = 'brp' THEN unique_id_r ELSE unique_id_l END AS sid,
         CASE WHEN source_dataset_l = 'brp' THEN unique_id_l ELSE unique_id_r END AS pid,
         match_weight AS weight, match_probability AS prob
  FROM {pairs}),
r AS (SELECT *, row_number() OVER (PARTITION BY sid ORDER BY weight DESC, pid) AS rn
      FROM p QUALIFY rn <= 2)
SELECT sid, any_value(pid) FILTER (WHERE rn = 1) AS pid,
       any_value(weight) FILTER (WHERE rn = 1) AS weight,
       any_value(weight) FILTER (WHERE rn = 2) AS second,
       any_value(prob) FILTER (WHERE rn = 1) AS prob
FROM r GROUP BY sid ORDER BY sid
"""


@dataclass
class _Scored:
    best: pd.DataFrame  # per sid: pid, weight, second, prob (best two candidates)
    pairs: int
    by_rule: dict[int, int]
    seconds_predict: float


def _score(left: pd.DataFrame, right: pd.DataFrame, model: dict, settings: LinkSettings) -> _Scored:
    """Score all blocked pairs (Splink, DuckDB); keep each identity's best two candidates."""
    from splink import DuckDBAPI, Linker

    model = {**model, "probability_two_random_records_match": 1.0 / max(len(right), 2)}
    con = _connect(settings)
    try:
        db = DuckDBAPI(connection=con)
        sdf_l = db.register(_splink_input(left), dataset_display_name="duo")
        sdf_r = db.register(_splink_input(right), dataset_display_name="brp")
        linker = Linker([sdf_l, sdf_r], model, log_level=logging.ERROR)
        t0 = time.perf_counter()
        scored = linker.inference.predict(warning_mode="never")
        seconds = time.perf_counter() - t0
        table = scored.physical_name
        rules = con.sql(f"SELECT CAST(match_key AS BIGINT), count(*) FROM {table} GROUP BY 1")
        by_rule = {int(k): int(n) for k, n in rules.fetchall()}
        best = con.sql(_BEST_TWO.format(pairs=table)).df()
    finally:
        con.close()
    best = best.astype({"sid": np.int64, "pid": np.int64}).set_index("sid")
    return _Scored(best, sum(by_rule.values()), by_rule, seconds)


def _status(best: pd.DataFrame, threshold: float, margin: float) -> pd.DataFrame:
    """Accept the best candidate if above threshold and clear of the runner-up."""
    clear = best["second"].isna() | (best["weight"] - best["second"] >= margin)
    above = best["prob"] >= threshold
    best["status"] = np.where(above & clear, PROBABILISTIC, np.where(above, TIE, BELOW_THRESHOLD))
    return best


def decide(pairs: pd.DataFrame, threshold: float, margin: float) -> pd.DataFrame:
    """Per school identity: best candidate, runner-up weight, and accept/why not.

    `pairs` has columns sid, pid, weight, prob. Returns one row per sid with
    columns pid, weight, second, status. (The link itself picks the best two in
    DuckDB, `_BEST_TWO`, in the same order.)
    """
    ordered = pairs.sort_values(["sid", "weight", "pid"], ascending=[True, False, True])
    best = ordered.drop_duplicates("sid", keep="first").set_index("sid")
    second = ordered[ordered.duplicated("sid", keep="first")].drop_duplicates("sid")
    best["second"] = second.set_index("sid")["weight"].reindex(best.index)
    return _status(best, threshold, margin)


MIN_LABELLED = 100  # fewer known true pairs than this: train without labels (EM)
TRAINED_ON_LABELS = "known pairs"
TRAINED_BY_EM = "expectation-maximisation (no labels)"
MAX_LABELLED = 20_000  # known true pairs used to estimate m; more adds time, not accuracy


def _labelled(
    school: pd.DataFrame, pool: pd.DataFrame, settings: LinkSettings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """School identities linked exactly (features as DUO has them) and their true person."""
    rows = school.loc[school["link_method"] == EXACT, ["person_key", *_COMPARED]]
    position = pd.Series(np.arange(len(pool)), index=pool["bsn"].to_numpy())
    pid = rows["person_key"].map(position)
    rows, pid = rows[pid.notna()], pid[pid.notna()]
    feats = _features(rows, to_dates(rows["geboortedatum"]), normalise_postcode(rows["postcode"]))
    feats["pid"] = pid.to_numpy(np.int64)
    feats = feats.drop_duplicates(["dob", "geslacht", "postcode", "pid"])
    if len(feats) > MAX_LABELLED:
        feats = feats.sample(MAX_LABELLED, random_state=settings.seed)
    feats = feats.reset_index(drop=True)
    feats["unique_id"] = np.arange(len(feats), dtype=np.int64)
    labels = feats[["unique_id", "pid"]].rename(columns={"unique_id": "sid"})
    return feats.drop(columns="pid"), labels


def probabilistic_link(
    school: pd.DataFrame, persons: pd.DataFrame, settings: LinkSettings
) -> tuple[pd.DataFrame, ProbabilisticStats]:
    """Fill person_key/link_method/link_status of rows without a person number (Splink)."""
    started = time.perf_counter()
    out = school.copy(deep=False)
    todo = out["bsn"].isna().to_numpy()
    stats = ProbabilisticStats(rows=int(todo.sum()))
    if not stats.rows:
        stats.skipped = "every school row has a person number"
        return out, stats

    rows = out.loc[todo, list(_COMPARED)]
    dob = to_dates(rows["geboortedatum"])
    postcode = normalise_postcode(rows["postcode"])
    ident = pd.DataFrame({"dob": dob, "sex": rows["geslacht"].astype("string"), "pc": postcode})
    sid = ident.groupby(["dob", "sex", "pc"], dropna=False, sort=True).ngroup().to_numpy()
    left = _features(rows, dob, postcode).assign(unique_id=sid).drop_duplicates("unique_id")
    stats.identities = len(left)

    # Register persons of school age: the training pool; minus those already linked
    # exactly, the candidates.
    pdob = to_dates(persons["geboortedatum"])
    lo, hi = dob.min() - pd.DateOffset(years=1), dob.max() + pd.DateOffset(years=1)
    in_pool = (persons["bsn"].notna() & pdob.between(lo, hi)).to_numpy()
    pool = persons.loc[in_pool, ["bsn", *_COMPARED]]
    pool_features = _features(pool, pdob[in_pool], normalise_postcode(pool["postcode"]))
    pool_features["unique_id"] = np.arange(len(pool), dtype=np.int64)
    taken = out.loc[out["link_method"] == EXACT, "person_key"]
    is_cand = ~key_isin(pool["bsn"], taken)
    right = pool_features[is_cand].reset_index(drop=True)
    cand_keys = pool["bsn"].to_numpy()[is_cand]
    right["unique_id"] = np.arange(len(right), dtype=np.int64)
    stats.candidates = len(right)

    decision = pd.DataFrame(columns=["pid", "weight", "second", "prob", "status"])
    labelled, labels = _labelled(out, pool, settings)
    stats.labelled_pairs = len(labels)
    if stats.candidates:
        if len(labels) >= MIN_LABELLED:
            stats.training = TRAINED_ON_LABELS
            model = train_model(labelled, pool_features, labels, settings)
        else:
            stats.training = TRAINED_BY_EM
            model = train_model_em(left.reset_index(drop=True), pool_features, settings)
        scored = _score(left.reset_index(drop=True), right, model, settings)
        stats.seconds_predict = scored.seconds_predict
        stats.pairs_compared = scored.pairs
        stats.pairs_by_rule = {
            name: scored.by_rule.get(i, 0) for i, name in enumerate(BLOCKING_RULES)
        }
        if len(scored.best):
            decision = _status(scored.best, settings.threshold, settings.margin)
            bins = np.floor(decision["weight"].clip(-20, 40)).astype(int).value_counts()
            stats.weight_histogram = {int(k): int(v) for k, v in sorted(bins.items())}

    status = pd.Series(NO_CANDIDATE, index=left["unique_id"].to_numpy(), dtype=object)
    status.update(decision["status"])
    keys = cand_keys
    person = pd.Series(pd.NA, index=status.index, dtype="string")
    accepted = decision[decision["status"] == PROBABILISTIC]
    person.loc[accepted.index] = keys[accepted["pid"].to_numpy(dtype=np.int64)]

    row_status = status.reindex(sid).to_numpy()
    idx = out.index[todo]
    out.loc[idx, "link_status"] = row_status
    out.loc[idx, "person_key"] = person.reindex(sid).to_numpy()
    out.loc[idx, "link_method"] = np.where(row_status == PROBABILISTIC, PROBABILISTIC, None)

    counts = status.value_counts()
    stats.identities_linked = int(counts.get(PROBABILISTIC, 0))
    stats.reasons = {r: int(counts.get(r, 0)) for r in (NO_CANDIDATE, BELOW_THRESHOLD, TIE)}
    stats.rows_linked = int((row_status == PROBABILISTIC).sum())
    stats.seconds_total = time.perf_counter() - started
    return out, stats


def link_school(
    school: pd.DataFrame, persons: pd.DataFrame, settings: LinkSettings | None = None
) -> LinkResult:
    """Exact link, then probabilistic link of the rest, on pseudonymised frames."""
    settings = settings or LinkSettings()
    persons, duplicates = unique_persons(persons)
    linked, exact = exact_link(school, persons)
    exact.duplicate_person_keys = duplicates
    linked, prob = probabilistic_link(linked, persons, settings)
    return LinkResult(linked, exact, prob)
