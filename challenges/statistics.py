"""The statistics a challenge pack can name, as plain functions on DataFrames.

One definition serves every stage that compares numbers: the twin's release gate
(twin vs real), the judges' twin-vs-real comparison and the packs' own tests. Each
function takes a DataFrame with the columns its parameters name, drops the rows where
any of those columns is null, and returns one float.

Conditions are short strings an organiser writes in challenge.yaml:

    vsv                                  a boolean column is true
    schooladvies >= havo                 ordered categorical (by its order) or a number
    inkomen_decile <= 3
    mbo_uitstroom == onbekend            also != ; values compare as text, or as numbers
    mbo_vooropleiding in [vmbo-b, pro]   also `not in`

Messages carry column names, conditions and counts, never a value from a row.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from challenges.errors import ChallengeError


class StatisticError(ChallengeError):
    """The data cannot support the statistic (an empty group, a model that does not fit)."""


# --- conditions -------------------------------------------------------------------------

_COLUMN = r"[A-Za-z_][A-Za-z0-9_]*"
_CONDITION = re.compile(
    rf"^\s*(?P<column>{_COLUMN})\s*"
    r"(?:(?P<op>==|!=|>=|<=|>|<|\bnot\s+in\b|\bin\b)\s*(?P<value>.*?))?\s*$"
)
_ORDERING = {">=", "<=", ">", "<"}
_TRUE = {"true", "1", "j", "ja", "yes", "y"}
_FALSE = {"false", "0", "n", "nee", "no"}


@dataclass(frozen=True)
class Condition:
    """A parsed condition: `column`, or `column op value(s)`."""

    text: str
    column: str
    op: str | None
    values: tuple[str, ...]


def parse_condition(text: str) -> Condition:
    """Parse a condition string; raise ValueError with a short reason if it is malformed."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(
            "a condition must be a non-empty text like 'vsv' or 'schooladvies >= havo'"
        )
    match = _CONDITION.match(text)
    if not match:
        raise ValueError(
            f"'{text}' is not a condition; write 'column', 'column >= value' or 'column in [a, b]'"
        )
    op = match["op"]
    raw = (match["value"] or "").strip()
    if op is None:
        return Condition(text, match["column"], None, ())
    op = " ".join(op.split())
    if not raw:
        raise ValueError(f"'{text}' has no value after '{op}'")
    if op in {"in", "not in"}:
        if not (raw.startswith("[") and raw.endswith("]")):
            raise ValueError(f"'{text}' needs a list after '{op}', like [a, b]")
        values = tuple(_unquote(v) for v in raw[1:-1].split(",") if v.strip())
        if not values:
            raise ValueError(f"'{text}' has an empty list")
    else:
        values = (_unquote(raw),)
    return Condition(text, match["column"], op, values)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _as_bool(series: pd.Series, column: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series):
        return series.astype(bool).to_numpy()
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype(float).to_numpy()
        if np.isin(values, [0.0, 1.0]).all():
            return values == 1.0
    else:
        text = series.astype(str).str.strip().str.lower()
        if text.isin(_TRUE | _FALSE).all():
            return text.isin(_TRUE).to_numpy()
    raise StatisticError(
        f"column '{column}' is not a yes/no column, so it cannot be a condition on its own; "
        f"compare it with a value instead (e.g. '{column} == ...')."
    )


def _literal_bool(value: str, cond: Condition) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise StatisticError(
        f"condition '{cond.text}': column '{cond.column}' is yes/no, so compare it with "
        "true or false."
    )


def _numbers(values: Iterable[str], cond: Condition) -> list[float]:
    try:
        return [float(v) for v in values]
    except ValueError:
        raise StatisticError(
            f"condition '{cond.text}': column '{cond.column}' holds numbers, so compare it "
            "with a number."
        ) from None


def evaluate(condition: str | Condition, df: pd.DataFrame) -> np.ndarray:
    """Boolean mask of the rows of `df` that meet the condition (rows must be non-null)."""
    cond = parse_condition(condition) if isinstance(condition, str) else condition
    if cond.column not in df.columns:
        raise StatisticError(
            f"condition '{cond.text}' names column '{cond.column}', which the data lacks; "
            "use a column of the analysis table."
        )
    series = df[cond.column]
    if cond.op is None:
        return _as_bool(series, cond.column)
    if isinstance(series.dtype, pd.CategoricalDtype):
        return _evaluate_categorical(cond, series)
    if pd.api.types.is_bool_dtype(series):
        flags = series.astype(bool).to_numpy()
        wanted = [_literal_bool(v, cond) for v in cond.values]
        if cond.op in _ORDERING:
            raise StatisticError(
                f"condition '{cond.text}': yes/no columns have no order; use == or !=."
            )
        return _compare_set(flags, wanted, cond.op)
    if pd.api.types.is_numeric_dtype(series):
        values = series.astype(float).to_numpy()
        wanted = _numbers(cond.values, cond)
        if cond.op in _ORDERING:
            return _compare_order(values, wanted[0], cond.op)
        return _compare_set(values, wanted, cond.op)
    if cond.op in _ORDERING:
        raise StatisticError(
            f"condition '{cond.text}': column '{cond.column}' is text without an order; make it an "
            "ordered categorical (the analysis table's order) or use 'in [...]'."
        )
    return _compare_set(series.astype(str).to_numpy(), list(cond.values), cond.op)


def _evaluate_categorical(cond: Condition, series: pd.Series) -> np.ndarray:
    categories = [str(c) for c in series.cat.categories]
    if cond.op in _ORDERING:
        if not series.cat.ordered:
            raise StatisticError(
                f"condition '{cond.text}': column '{cond.column}' is an unordered category; "
                "make it ordered (the analysis table's order) or use 'in [...]'."
            )
        if cond.values[0] not in categories:
            raise StatisticError(
                f"condition '{cond.text}': '{cond.values[0]}' is not a level of '{cond.column}'; "
                f"use one of {', '.join(categories)}."
            )
        return _compare_order(
            series.cat.codes.to_numpy().astype(float),
            float(categories.index(cond.values[0])),
            cond.op,
        )
    labels = np.asarray(categories, dtype=object)[series.cat.codes.to_numpy()]
    return _compare_set(labels, list(cond.values), cond.op)


def _compare_order(values: np.ndarray, bound: float, op: str) -> np.ndarray:
    return {
        ">=": values >= bound,
        "<=": values <= bound,
        ">": values > bound,
        "<": values < bound,
    }[op]


def _compare_set(values: np.ndarray, wanted: list[Any], op: str) -> np.ndarray:
    hit = np.isin(
        values, np.asarray(wanted, dtype=values.dtype if values.dtype != object else object)
    )
    return ~hit if op in {"!=", "not in"} else hit


# --- the registry -----------------------------------------------------------------------

# Parameter kinds: "condition" (a condition string), "columns" (list of column names),
# "widths" (mapping column -> band width), "term" (a coefficient name), "condition?" etc.
# for optional ones.
StatisticFunction = Callable[..., float]
STATISTICS: dict[str, StatisticFunction] = {}
PARAMETERS: dict[str, dict[str, str]] = {}


def _statistic(**params: str) -> Callable[[StatisticFunction], StatisticFunction]:
    def register(func: StatisticFunction) -> StatisticFunction:
        STATISTICS[func.__name__] = func
        PARAMETERS[func.__name__] = params
        return func

    return register


def check_params(statistic: str, params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Problems with a statistic's parameters, as (parameter, reason-and-fix) pairs."""
    spec = PARAMETERS[statistic]
    problems: list[tuple[str, str]] = []
    for name in params:
        if name not in spec:
            problems.append((name, f"'{statistic}' has no parameter '{name}'; use {_names(spec)}"))
    for name, kind in spec.items():
        optional = kind.endswith("?")
        kind = kind.rstrip("?")
        if name not in params or params[name] is None:
            if not optional:
                problems.append((name, f"'{statistic}' needs parameter '{name}'; add it"))
            continue
        value = params[name]
        reason = _check_kind(kind, value)
        if reason:
            problems.append((name, reason))
    if statistic == "logit_coefficient" and not problems:
        problems.extend(
            ("reference", f"'{column}' is not a categorical predictor; list it under categorical")
            for column in params.get("reference") or {}
            if column not in (params.get("categorical") or [])
        )
        problems.extend(_check_logit_params(params))
    if statistic == "share_difference_at_equal_covariates" and not problems:
        problems.extend(
            ("bins", f"'{column}' is not one of the strata; add it to strata or remove it")
            for column in params.get("bins") or {}
            if column not in params["strata"]
        )
    return problems


def _names(spec: Mapping[str, str]) -> str:
    return ", ".join(spec)


def _check_kind(kind: str, value: Any) -> str | None:
    if kind == "condition":
        try:
            parse_condition(value)
        except ValueError as exc:
            return f"{exc}; fix the condition"
        return None
    if kind == "conditions":
        for text in value if isinstance(value, list) else [value]:
            reason = _check_kind("condition", text)
            if reason:
                return reason
        return None
    if kind == "levels":
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        return None if ok else "must map column names to a level; fix the mapping"
    if kind == "columns":
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            return "must be a non-empty list of column names; fix the list"
        return None
    if kind == "widths":
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool) and v > 0
            for k, v in value.items()
        )
        return None if ok else "must map column names to positive band widths; fix the mapping"
    if kind == "term":
        return None if isinstance(value, str) and value else "must be a coefficient name; fix it"
    raise AssertionError(kind)


def _check_logit_params(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    predictors = params["predictors"]
    problems = [
        ("categorical", f"'{c}' is not one of the predictors; add it to predictors or remove it")
        for c in params.get("categorical") or []
        if c not in predictors
    ]
    term = params["term"]
    base = term.split("[", 1)[0]
    if base not in predictors:
        problems.append(
            ("term", f"'{term}' is not a predictor; name a predictor or 'predictor[level]'")
        )
    elif ("[" in term) != (base in (params.get("categorical") or [])):
        problems.append(
            (
                "term",
                f"'{term}': categorical predictors need 'name[level]' and numeric ones a plain "
                "name; fix the term",
            )
        )
    return problems


def statistic_columns(statistic: str, params: Mapping[str, Any]) -> tuple[str, ...]:
    """The columns a statistic reads, in order of first mention (params must be valid)."""
    seen: dict[str, None] = {}
    for name, kind in PARAMETERS[statistic].items():
        value = params.get(name)
        if value is None:
            continue
        kind = kind.rstrip("?")
        if kind == "condition":
            seen[parse_condition(value).column] = None
        elif kind == "conditions":
            seen.update(dict.fromkeys(c.column for c in _conditions(value)))
        elif kind in {"columns", "widths"}:
            seen.update(dict.fromkeys(value))
    return tuple(seen)


def _complete(df: pd.DataFrame, columns: Iterable[str], statistic: str) -> pd.DataFrame:
    columns = list(dict.fromkeys(columns))
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StatisticError(
            f"statistic '{statistic}' needs column(s) {', '.join(missing)}, which the data lacks; "
            "compute it on the analysis table or the twin."
        )
    return df.loc[df[columns].notna().all(axis=1), columns]


def _conditions(value: str | list[str] | None) -> list[Condition]:
    if value is None:
        return []
    return [parse_condition(v) for v in (value if isinstance(value, list) else [value])]


def _rows(
    df: pd.DataFrame,
    statistic: str,
    conditions: Mapping[str, str | None],
    extra: Iterable[str] = (),
    where: str | list[str] | None = None,
) -> pd.DataFrame:
    """The complete rows for the named columns, restricted to the `where` population."""
    parsed = [parse_condition(v) for v in conditions.values() if v is not None]
    filters = _conditions(where)
    columns = [c.column for c in parsed + filters] + list(extra)
    data = _complete(df, columns, statistic)
    for cond in filters:
        data = data.loc[evaluate(cond, data)]
    return data


def _share(mask: np.ndarray, condition: np.ndarray, label: str, statistic: str) -> float:
    n = int(mask.sum())
    if n == 0:
        raise StatisticError(f"statistic '{statistic}': {label} has no rows with complete data.")
    return float(condition[mask].mean())


# --- the statistics ---------------------------------------------------------------------


@_statistic(condition="condition", group="condition?", where="conditions?")
def group_share(
    df: pd.DataFrame, condition: str, group: str | None = None, where: str | list[str] | None = None
) -> float:
    """Share of rows meeting `condition` among the rows in `group` (all rows if no group).

    `where` restricts the population first (e.g. 'mbo_diploma' for graduates only).
    """
    data = _rows(df, "group_share", {"condition": condition, "group": group}, where=where)
    in_group = evaluate(group, data) if group else np.ones(len(data), dtype=bool)
    return _share(in_group, evaluate(condition, data), f"group '{group or 'all'}'", "group_share")


@_statistic(condition="condition", group_a="condition", group_b="condition", where="conditions?")
def share_difference(
    df: pd.DataFrame,
    condition: str,
    group_a: str,
    group_b: str,
    where: str | list[str] | None = None,
) -> float:
    """Share meeting `condition` in group_a minus the share in group_b (a gap in shares)."""
    data = _rows(
        df,
        "share_difference",
        {"condition": condition, "a": group_a, "b": group_b},
        where=where,
    )
    hit = evaluate(condition, data)
    a = _share(evaluate(group_a, data), hit, f"group_a '{group_a}'", "share_difference")
    b = _share(evaluate(group_b, data), hit, f"group_b '{group_b}'", "share_difference")
    return a - b


@_statistic(condition="condition", group_a="condition", group_b="condition", where="conditions?")
def rate_ratio(
    df: pd.DataFrame,
    condition: str,
    group_a: str,
    group_b: str,
    where: str | list[str] | None = None,
) -> float:
    """Share meeting `condition` in group_a divided by the share in group_b (a relative risk)."""
    data = _rows(
        df, "rate_ratio", {"condition": condition, "a": group_a, "b": group_b}, where=where
    )
    hit = evaluate(condition, data)
    a = _share(evaluate(group_a, data), hit, f"group_a '{group_a}'", "rate_ratio")
    b = _share(evaluate(group_b, data), hit, f"group_b '{group_b}'", "rate_ratio")
    if b == 0:
        raise StatisticError(
            f"statistic 'rate_ratio': no row of group_b '{group_b}' meets '{condition}', so the "
            "ratio is undefined; use share_difference instead."
        )
    return a / b


@_statistic(
    condition="condition",
    group_a="condition",
    group_b="condition",
    strata="columns",
    bins="widths?",
    where="conditions?",
)
def share_difference_at_equal_covariates(
    df: pd.DataFrame,
    condition: str,
    group_a: str,
    group_b: str,
    strata: list[str],
    bins: Mapping[str, float] | None = None,
    where: str | list[str] | None = None,
) -> float:
    """The gap in shares between two groups among comparable rows.

    Rows are grouped into strata (numeric columns cut into bands of `bins` width, e.g.
    eindtoets_score in bands of 5 points); within each stratum that holds both groups the
    gap share_a - share_b is taken, and the gaps are averaged weighted by the stratum's
    rows in the two groups. Strata with only one group are left out.
    """
    name = "share_difference_at_equal_covariates"
    bins = dict(bins or {})
    data = _rows(
        df, name, {"condition": condition, "a": group_a, "b": group_b}, strata, where=where
    )
    frame = pd.DataFrame(
        {
            "hit": evaluate(condition, data).astype(float),
            "a": evaluate(group_a, data),
            "b": evaluate(group_b, data),
        },
        index=data.index,
    )
    keys = []
    for i, column in enumerate(strata):
        values = data[column]
        if column in bins:
            if not pd.api.types.is_numeric_dtype(values):
                raise StatisticError(
                    f"statistic '{name}': bins names '{column}', which is not numeric; "
                    "remove it from bins."
                )
            frame[f"_s{i}"] = np.floor(values.astype(float).to_numpy() / bins[column])
        else:
            frame[f"_s{i}"] = values.astype(str).to_numpy()
        keys.append(f"_s{i}")
    a = frame[frame["a"]].groupby(keys)["hit"].agg(["mean", "size"])
    b = frame[frame["b"]].groupby(keys)["hit"].agg(["mean", "size"])
    both = a.join(b, lsuffix="_a", rsuffix="_b", how="inner")
    if both.empty:
        raise StatisticError(
            f"statistic '{name}': no stratum of {', '.join(strata)} holds both group_a "
            f"'{group_a}' and group_b '{group_b}'; use wider bins."
        )
    weights = both["size_a"] + both["size_b"]
    return float(((both["mean_a"] - both["mean_b"]) * weights).sum() / weights.sum())


@_statistic(
    outcome="condition",
    predictors="columns",
    term="term",
    categorical="columns?",
    reference="levels?",
    where="conditions?",
)
def logit_coefficient(
    df: pd.DataFrame,
    outcome: str,
    predictors: list[str],
    term: str,
    categorical: list[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    where: str | list[str] | None = None,
) -> float:
    """Coefficient (log odds) of `term` in a logistic regression of `outcome` on predictors.

    Numeric predictors enter as numbers; ordered categoricals with numeric levels (e.g.
    inkomen_decile) as those numbers, other ordered ones as their rank (0, 1, ...); yes/no
    as 0/1. Predictors listed in `categorical` enter as indicator columns against a
    reference level (`reference[column]`, else the first level), and their terms are named
    'column[level]'. A non-reference level whose rows all share one outcome would have an
    infinite coefficient; its rows are left out (as Stata does). Fitted with statsmodels Logit.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationWarning

    name = "logit_coefficient"
    categorical = list(categorical or [])
    reference = {k: str(v) for k, v in (reference or {}).items()}
    data = _rows(df, name, {"outcome": outcome}, predictors, where=where)
    y = pd.Series(evaluate(outcome, data).astype(float), index=data.index)
    labels, levels, bases = {}, {}, {}
    for column in categorical:
        series = data[column]
        labels[column] = series.astype(str)
        order = (
            [str(c) for c in series.cat.categories]
            if isinstance(series.dtype, pd.CategoricalDtype)
            else sorted(labels[column].unique())
        )
        levels[column] = [lv for lv in order if (labels[column] == lv).any()]
        bases[column] = reference.get(column, levels[column][0] if levels[column] else None)
        if bases[column] not in levels[column]:
            raise StatisticError(
                f"statistic '{name}': reference level '{bases[column]}' of '{column}' has no "
                "rows with complete data; choose a more common reference level."
            )
        # A level whose rows all have the same outcome predicts it perfectly: its
        # coefficient is infinite. Leave those rows out, as Stata does.
        for level in levels[column]:
            rows = labels[column] == level
            if level != bases[column] and y[rows].nunique() == 1:
                if term == f"{column}[{level}]":
                    raise StatisticError(
                        f"statistic '{name}': every row with {column} = {level} has the same "
                        f"outcome '{outcome}', so term '{term}' is infinite; merge that level."
                    )
                keep = ~rows
                data, y = data[keep], y[keep]
                labels = {k: v[keep] for k, v in labels.items()}
        levels[column] = [lv for lv in levels[column] if (labels[column] == lv).any()]
    if len(y) == 0 or y.min() == y.max():
        raise StatisticError(
            f"statistic '{name}': outcome '{outcome}' does not vary in the data, so no model fits."
        )
    parts = []
    for column in predictors:
        if column in categorical:
            parts.extend(
                pd.Series((labels[column] == level).astype(float), name=f"{column}[{level}]")
                for level in levels[column]
                if level != bases[column]
            )
        else:
            parts.append(pd.Series(_numeric(data[column], column), index=data.index, name=column))
    design = sm.add_constant(pd.concat(parts, axis=1), has_constant="add")
    if term not in design.columns:
        raise StatisticError(
            f"statistic '{name}': term '{term}' is not in the model (the reference level has no "
            f"term of its own); use one of {', '.join(map(str, design.columns[1:]))}."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            result = sm.Logit(y.to_numpy(), design).fit(disp=0, maxiter=200)
        except (np.linalg.LinAlgError, PerfectSeparationWarning, ValueError) as exc:
            raise StatisticError(
                f"statistic '{name}': the model for '{outcome}' cannot be fitted "
                f"({type(exc).__name__}); drop a predictor or widen the groups."
            ) from None
    value = float(result.params[term])
    if not result.mle_retvals.get("converged", True) or not math.isfinite(value):
        raise StatisticError(
            f"statistic '{name}': the model for '{outcome}' did not converge; drop a predictor "
            "or widen the groups."
        )
    return value


def _numeric(series: pd.Series, column: str) -> np.ndarray:
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = series.cat.categories
        if pd.api.types.is_numeric_dtype(categories):
            return np.asarray(categories, dtype=float)[series.cat.codes.to_numpy()]
        if series.cat.ordered:
            return series.cat.codes.to_numpy().astype(float)
    elif pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype(float).to_numpy()
    raise StatisticError(
        f"statistic 'logit_coefficient': predictor '{column}' is neither numeric nor ordered; "
        "list it under categorical."
    )
