"""Privacy checks of a candidate twin against the real table (secure zone only).

Every function returns figures (counts, shares, scores), never a real value, so results can
be printed, logged and published in the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sdmetrics.single_table import DisclosureProtection

from synthetic.prepare import OTHER
from synthetic.schema import TableSchema

_NA = "\u2205"
_TRUE = {"true", "1", "yes", "ja", "j", "y"}
_FALSE = {"false", "0", "no", "nee", "n"}


def _number_text(x: float) -> str:
    """One text per number: whole numbers without a decimal point, others rounded to 6."""
    if not np.isfinite(x):
        return _NA if np.isnan(x) else str(x)
    x = round(float(x), 6)
    return str(int(x)) if x.is_integer() else repr(x)


def _level_text(value: object) -> str:
    """A category or ordinal level as text: 9, 9.0, "9" and "9.0" are the same level."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.number)):
        return _number_text(float(value))
    text = str(value).strip()
    try:
        number = float(text)
    except ValueError:
        return text
    return _number_text(number) if np.isfinite(number) else text


def _bool_text(value: object) -> str:
    text = _level_text(value).lower()
    return "true" if text in _TRUE else "false" if text in _FALSE else text


def canonical_text(
    df: pd.DataFrame, schema: TableSchema | None, columns: Sequence[str]
) -> pd.DataFrame:
    """Each column as text by its declared type, never by the pandas dtype of the moment.

    The same value reads the same whether it came from the sampler (categoricals of ints),
    the linked table (floats), twin.parquet or twin.csv (strings): numerical columns as
    numbers, booleans as true/false, categories and ordinal levels as their level text.
    """
    out = {}
    for name in columns:
        col = df[name]
        kind = schema[name].type if schema and name in schema.names else "categorical"
        if kind == "numerical":
            values = pd.to_numeric(col.astype(object), errors="coerce").astype(float)
            codes, uniques = pd.factorize(values, use_na_sentinel=True)
            texts = np.array([_number_text(v) for v in uniques] + [_NA], dtype=object)
        else:
            codes, uniques = pd.factorize(col.astype(object), use_na_sentinel=True)
            as_text = _bool_text if kind == "boolean" else _level_text
            texts = np.array([as_text(v) for v in uniques] + [_NA], dtype=object)
        out[name] = texts[codes]  # code -1 (missing) takes the last entry
    return pd.DataFrame(out, index=df.index)


def row_hashes(df: pd.DataFrame, schema: TableSchema, columns: Sequence[str]) -> np.ndarray:
    """64-bit hash of each row's schema-typed text in `columns`."""
    return pd.util.hash_pandas_object(canonical_text(df, schema, columns), index=False).to_numpy()


def unique_hashes(hashes: np.ndarray) -> np.ndarray:
    """The hashes that occur exactly once: rows unique in their table."""
    values, counts = np.unique(hashes, return_counts=True)
    return values[counts == 1]


@dataclass
class QuasiIdentifiers:
    """The coarsened quasi-identifier key (buurt -> wijk, values rarer than `minimum` -> other)
    and how often each key occurs in the real table."""

    columns: tuple[str, ...]
    frequent: dict[str, set[str]]
    real_counts: pd.Series
    schema: TableSchema

    @classmethod
    def from_real(
        cls,
        real: pd.DataFrame,
        schema: TableSchema,
        columns: Sequence[str],
        coarsen: Sequence[tuple[str, str]],
        minimum: int,
    ) -> QuasiIdentifiers:
        mapped = [dict(coarsen).get(c, c) for c in columns]
        mapped = tuple(dict.fromkeys(c for c in mapped if c in real.columns))
        text = canonical_text(real, schema, mapped)
        frequent = {}
        for name in mapped:
            counts = text[name].value_counts()
            frequent[name] = set(counts[counts >= minimum].index)
        qi = cls(mapped, frequent, pd.Series(dtype=int), schema)
        qi.real_counts = qi.keys(real).value_counts()
        return qi

    def keys(self, df: pd.DataFrame) -> pd.Series:
        text = canonical_text(df, self.schema, self.columns)
        for name in self.columns:
            text[name] = text[name].where(text[name].isin(self.frequent[name]), OTHER)
        first, *rest = self.columns
        return text[first].str.cat([text[c] for c in rest], sep="|")

    def small_group_mask(self, twin: pd.DataFrame, k: int) -> np.ndarray:
        """True for twin rows whose key matches fewer than k (but at least one) real people."""
        counts = self.keys(twin).map(self.real_counts).fillna(0).to_numpy()
        return (counts > 0) & (counts < k)


def rare_value_rows(
    real: pd.DataFrame, twin: pd.DataFrame, schema: TableSchema, minimum: int
) -> dict[str, int]:
    """Per column, twin rows showing a value rarer than `minimum` in the real table (or, for
    numbers, beyond the real `minimum`-th smallest/largest value)."""
    found = {}
    for spec in schema.synthesised:
        if spec.name not in twin.columns:
            continue
        if spec.type == "numerical":
            values = np.sort(pd.to_numeric(real[spec.name], errors="coerce").dropna().to_numpy())
            k = min(minimum, len(values)) - 1
            lo, hi = values[k], values[len(values) - 1 - k]
            t = pd.to_numeric(twin[spec.name], errors="coerce").astype(float)
            bad = int(((t < lo - 1e-9) | (t > hi + 1e-9)).sum())
        else:
            real_text = canonical_text(real, schema, [spec.name])[spec.name]
            counts = real_text[real_text != _NA].value_counts()
            twin_text = canonical_text(twin, schema, [spec.name])[spec.name]
            twin_counts = twin_text.map(counts).fillna(0)
            real_value = twin_text.isin(counts.index)
            bad = int(((twin_counts < minimum) & real_value).sum())
        if bad:
            found[spec.name] = bad
    return found


def closest_distances(
    dataset: pd.DataFrame, reference: pd.DataFrame, sdtypes: dict[str, str], chunk: int = 128
) -> np.ndarray:
    """SDMetrics' distance to closest record (sdmetrics dcr_utils.calculate_dcr), in numpy.

    Per column: numbers |a - b| / range of the reference (capped at 1, 1 if one side is null,
    0 if both), categories 0 if equal (null equals null) else 1; the row distance is the mean
    over columns, and each dataset row gets its smallest distance to any reference row.
    A unit test pins this to SDMetrics; SDMetrics' cross-join takes ~10 s per 1,000 x 1,000.
    """
    cols = list(dataset.columns)
    num = [c for c in cols if sdtypes[c] == "numerical"]
    cat = [c for c in cols if sdtypes[c] != "numerical"]
    d_num = dataset[num].to_numpy(dtype=float)
    r_num = reference[num].to_numpy(dtype=float)
    ranges = np.nanmax(r_num, axis=0) - np.nanmin(r_num, axis=0) if len(r_num) else np.ones(0)
    codes_d, codes_r = [], []
    for c in cat:
        both = pd.concat([dataset[c], reference[c]], ignore_index=True).astype(object)
        codes = pd.factorize(both.where(both.notna(), "\0null"))[0]
        codes_d.append(codes[: len(dataset)])
        codes_r.append(codes[len(dataset) :])
    d_cat = np.array(codes_d).T if cat else np.zeros((len(dataset), 0), dtype=int)
    r_cat = np.array(codes_r).T if cat else np.zeros((len(reference), 0), dtype=int)
    out = np.empty(len(dataset))
    for start in range(0, len(dataset), chunk):
        a_num = d_num[start : start + chunk, None, :]
        diff = np.abs(a_num - r_num[None, :, :])
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = np.where(ranges == 0, (diff > 0).astype(float), np.minimum(diff / ranges, 1.0))
        na_a, na_r = np.isnan(a_num), np.isnan(r_num)[None, :, :]
        scaled = np.where(na_a ^ na_r, 1.0, np.where(na_a & na_r, 0.0, scaled))
        total = scaled.sum(axis=2)
        total += (d_cat[start : start + chunk, None, :] != r_cat[None, :, :]).sum(axis=2)
        out[start : start + chunk] = total.min(axis=1) / len(cols)
    return out


def dcr_overfitting(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    twin: pd.DataFrame,
    sdtypes: dict[str, str],
    rows: int,
    seed: int,
    schema: TableSchema | None = None,
) -> tuple[float, float]:
    """SDMetrics DCROverfittingProtection on seeded equal-size samples.

    Returns (score, share of twin rows closer to the training rows than to the holdout);
    score = min(2 * (1 - share), 1), so a share near 50% means no memorised training rows.
    """
    n = min(rows, len(train), len(holdout), len(twin))
    sample = lambda df, s: df.sample(n=n, random_state=seed + s).reset_index(drop=True)  # noqa: E731
    sdt = {c: ("numerical" if t == "numerical" else "categorical") for c, t in sdtypes.items()}
    tr, tw, ho = (
        _as_metric_frame(sample(df, i), sdt, schema) for i, df in enumerate((train, twin, holdout))
    )
    to_train = closest_distances(tw, tr, sdt)
    to_holdout = closest_distances(tw, ho, sdt)
    closer = float((to_train < to_holdout).mean())
    return min((1.0 - closer) * 2, 1.0), closer


def _as_metric_frame(
    df: pd.DataFrame, sdtypes: dict[str, str], schema: TableSchema | None = None
) -> pd.DataFrame:
    """Numbers as floats, everything else as its schema-typed text."""
    out = {}
    for name in df.columns:
        if sdtypes[name] == "numerical":
            out[name] = pd.to_numeric(df[name].astype(object), errors="coerce").astype(float)
        else:
            out[name] = canonical_text(df, schema, [name])[name]
    return pd.DataFrame(out)


def cap_disclosure(
    real: pd.DataFrame,
    twin: pd.DataFrame,
    known: Sequence[str],
    sensitive: str,
    continuous: Sequence[str] = (),
) -> float:
    """SDMetrics DisclosureProtection (method 'cap') computed with a group-by.

    Same preprocessing (SDMetrics' own binning and null categories) and the same formula:
    score = min(CAP protection / baseline, 1), where CAP protection is 1 - the mean share of
    twin rows with a real row's known values that also carry its sensitive value. SDMetrics
    loops row by row in Python (minutes at 20,000 rows); a unit test pins the two together.
    """
    known = list(known)
    r, t = DisclosureProtection._discretize_and_fillna(
        real, twin, known, [sensitive], list(continuous) or None, 10
    )
    baseline = DisclosureProtection._compute_baseline(r, [sensitive])
    key_r = r[known].astype(str).agg("\x1f".join, axis=1)
    key_t = t[known].astype(str).agg("\x1f".join, axis=1)
    sens_r, sens_t = r[sensitive].astype(str), t[sensitive].astype(str)
    per_key = key_t.value_counts()
    per_pair = (
        pd.Series(1, index=pd.MultiIndex.from_arrays([key_t, sens_t])).groupby(level=[0, 1]).sum()
    )
    found = key_r.isin(per_key.index).to_numpy()
    if not found.any() or baseline == 0:
        return float("nan")
    pairs = pd.MultiIndex.from_arrays([key_r[found], sens_r[found]])
    hits = per_pair.reindex(pairs).fillna(0).to_numpy()
    share = hits / per_key.reindex(key_r[found]).to_numpy()
    return float(min((1.0 - share.mean()) / baseline, 1.0))


def disclosure_protection(
    real: pd.DataFrame,
    twin: pd.DataFrame,
    known: Sequence[str],
    sensitive: Sequence[str],
    numerical: Sequence[str],
    rows: int,
    seed: int,
    schema: TableSchema | None = None,
) -> dict[str, float]:
    """DisclosureProtection per sensitive column, attacker knowing `known` (seeded samples)."""
    n = min(rows, len(real), len(twin))
    r = real.sample(n=n, random_state=seed).reset_index(drop=True)
    t = twin.sample(n=n, random_state=seed + 1).reset_index(drop=True)
    cols = list(dict.fromkeys([*known, *sensitive]))
    sdt = {c: ("numerical" if c in numerical else "categorical") for c in cols}
    r, t = _as_metric_frame(r[cols], sdt, schema), _as_metric_frame(t[cols], sdt, schema)
    continuous = [c for c in known if c in numerical]
    return {c: cap_disclosure(r, t, known, c, continuous) for c in sensitive}
