"""Check the linked table and coarsen it before any synthesizer sees it.

Coarsening is the first privacy layer: categories rarer than `rare_category_min` are merged
("other" for categoricals, the nearest frequent level for ordinals, suppressed for booleans)
and numerical columns are top/bottom coded at their 10th smallest/largest value, so nothing
rare in the real data can be learnt, let alone reproduced. Only counts and column names
leave this module in messages; the merged values themselves are never recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from synthetic.errors import TwinError
from synthetic.schema import ColumnSpec, TableSchema
from synthetic.settings import TwinSettings

OTHER = "other"


@dataclass
class Coarsening:
    """What coarsening did, per column: enough for the codebook and to rebuild dtypes."""

    allowed: dict[str, list[Any]] = field(default_factory=dict)  # categorical/ordinal levels kept
    merged: dict[str, int] = field(default_factory=dict)  # column -> rows whose value was merged
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # numerical top/bottom
    integer: set[str] = field(default_factory=set)  # numerical columns holding whole numbers
    area_lookup: dict[str, pd.DataFrame] = field(default_factory=dict)  # code -> area figures


def check_input(
    real: pd.DataFrame,
    schema: TableSchema,
    required: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Raise TwinError naming the first column a challenge or the schema needs but cannot use."""
    for owner, columns in (required or {}).items():
        for col in columns:
            if col not in real.columns:
                raise TwinError(
                    f"linked table: column '{col}' needed by challenge '{owner}' is missing; "
                    "re-run `hackgap link` or remove the challenge from event.yaml."
                )
    for spec in schema.synthesised:
        if spec.name not in real.columns:
            raise TwinError(
                f"linked table: declared column '{spec.name}' is missing; re-run `hackgap link` "
                "with the current schema."
            )
        values = real[spec.name]
        non_null = int(values.notna().sum())
        if non_null == 0:
            raise TwinError(
                f"linked table: column '{spec.name}' is empty (all null); check the source "
                "extract that fills it, or drop the column from the schema."
            )
        if values.nunique(dropna=True) < 2:
            raise TwinError(
                f"linked table: column '{spec.name}' holds a single value in all "
                f"{non_null} non-null rows; check the source extract, or drop the column."
            )
    if len(real) < 200:
        raise TwinError(
            f"linked table: {len(real)} rows is too few to release a twin safely; "
            "link at least 200 pupils."
        )


def _plain(series: pd.Series) -> pd.Series:
    """Object values with None for missing: what SDV's encoders expect for discrete columns."""
    out = series.astype(object)
    return out.where(series.notna(), None)


def _filled(series: pd.Series) -> pd.Series:
    return series.astype(object).where(series.notna(), "\0")


def _merge_ordinal(series: pd.Series, spec: ColumnSpec, minimum: int) -> tuple[pd.Series, list]:
    counts = series.value_counts(dropna=True)
    order = [v for v in spec.order or () if counts.get(v, 0) > 0]
    frequent = [i for i, v in enumerate(order) if counts.get(v, 0) >= minimum]
    if not frequent:
        return pd.Series([None] * len(series), index=series.index, dtype=object), []
    mapping = {}
    for i, value in enumerate(order):
        nearest = min(frequent, key=lambda j: (abs(j - i), j))
        mapping[value] = order[nearest]
    return series.map(mapping).astype(object).where(series.notna(), None), [
        order[j] for j in frequent
    ]


def _merge_categorical(series: pd.Series, minimum: int) -> tuple[pd.Series, list]:
    values = (
        series.astype(object).where(series.notna(), None).map(lambda v: v if v is None else str(v))
    )
    counts = values.value_counts(dropna=True)
    rare = set(counts[counts < minimum].index)
    if not rare:
        return values, sorted(counts.index)
    merged = values.where(~values.isin(rare), OTHER)
    if int(counts[list(rare)].sum()) < minimum:  # "other" itself would be rare: suppress
        merged = merged.where(merged != OTHER, None)
    kept = sorted(set(merged.dropna().unique()))
    return merged, kept


def _top_bottom(series: pd.Series, minimum: int) -> tuple[pd.Series, tuple[float, float]]:
    values = pd.to_numeric(series, errors="coerce").astype(float)
    ordered = np.sort(values.dropna().to_numpy())
    k = min(minimum, len(ordered)) - 1
    lo, hi = float(ordered[k]), float(ordered[len(ordered) - 1 - k])
    if lo > hi:  # fewer than 2*minimum values: collapse to the median
        lo = hi = float(np.median(ordered))
    return values.clip(lo, hi), (lo, hi)


def coarsen(
    real: pd.DataFrame, schema: TableSchema, settings: TwinSettings
) -> tuple[pd.DataFrame, Coarsening]:
    """The real table as the synthesizers see it: no keys, rare values merged, plain dtypes."""
    minimum = settings.thresholds.rare_category_min
    info = Coarsening()
    out = {}
    for spec in schema.synthesised:
        col = real[spec.name]
        if spec.type == "numerical":
            before = pd.to_numeric(col, errors="coerce")
            out[spec.name], info.bounds[spec.name] = _top_bottom(col, minimum)
            info.merged[spec.name] = int((out[spec.name] != before).sum() - before.isna().sum())
            whole = before.dropna()
            if len(whole) and bool((whole == np.round(whole)).all()):
                info.integer.add(spec.name)
        elif spec.type == "ordinal":
            out[spec.name], info.allowed[spec.name] = _merge_ordinal(col, spec, minimum)
            info.merged[spec.name] = int((_filled(_plain(col)) != _filled(out[spec.name])).sum())
        elif spec.type == "boolean":
            values = _plain(col).map(lambda v: v if v is None else bool(v))
            counts = values.value_counts(dropna=True)
            rare = [v for v, n in counts.items() if n < minimum]
            out[spec.name] = values.where(~values.isin(rare), None)
            info.merged[spec.name] = int(counts[rare].sum()) if rare else 0
            info.allowed[spec.name] = [v for v in (False, True) if counts.get(v, 0) >= minimum]
        else:
            out[spec.name], info.allowed[spec.name] = _merge_categorical(col, minimum)
            info.merged[spec.name] = int(
                (
                    _filled(_plain(col).map(lambda v: v if v is None else str(v)))
                    != _filled(out[spec.name])
                ).sum()
            )
    frame = pd.DataFrame(out, index=real.index).reset_index(drop=True)
    for code, attributes in settings.area_attributes:
        present = [a for a in attributes if a in frame.columns]
        if code in frame.columns and present:
            table = frame.groupby(code, dropna=True)[present].agg(
                lambda s: s.mode(dropna=True).iloc[0] if s.notna().any() else None
            )
            if OTHER in table.index:  # merged areas have no single figure
                table.loc[OTHER] = None
            info.area_lookup[code] = table
    return frame, info


def area_columns(settings: TwinSettings, info: Coarsening) -> list[str]:
    """Columns re-attached from an area code after sampling (not fitted)."""
    return [a for table in info.area_lookup.values() for a in table.columns]


def attach_areas(twin: pd.DataFrame, info: Coarsening) -> pd.DataFrame:
    """Fill each area attribute from its area code, as the real table is built."""
    twin = twin.copy()
    for code, table in info.area_lookup.items():
        looked_up = table.reindex(twin[code].to_numpy())
        for attribute in table.columns:
            twin[attribute] = looked_up[attribute].to_numpy()
    return twin


def restore_dtypes(
    twin: pd.DataFrame, real: pd.DataFrame, schema: TableSchema, info: Coarsening
) -> pd.DataFrame:
    """Give the twin the real table's column order and dtypes so challenge code runs on both."""
    out = {}
    for spec in schema.synthesised:
        col = twin[spec.name]
        real_dtype = real[spec.name].dtype
        if spec.type == "ordinal":
            out[spec.name] = pd.Categorical(
                col.where(col.notna(), None), categories=list(spec.order or ()), ordered=True
            )
        elif spec.type == "boolean":
            out[spec.name] = col.map(lambda v: None if v is None or pd.isna(v) else bool(v)).astype(
                "boolean"
            )
        elif spec.type == "numerical":
            values = pd.to_numeric(col, errors="coerce").astype(float)
            if spec.name in info.integer:
                values = values.round()
                out[spec.name] = (
                    values.astype("Int64")
                    if not pd.api.types.is_float_dtype(real_dtype)
                    else values
                )
            else:
                out[spec.name] = values
        else:
            values = col.astype(object).where(col.notna(), None)
            if isinstance(real_dtype, pd.CategoricalDtype):
                values = pd.Categorical(values)
            elif pd.api.types.is_string_dtype(real_dtype) and real_dtype is not np.dtype(object):
                values = values.astype(real_dtype)
            out[spec.name] = values
    return pd.DataFrame(out)
