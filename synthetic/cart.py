"""Sequential CART synthesis: synthpop's default method, one decision tree per column.

Why: the challenges rest on conditional structure a copula cannot hold - associations
between unordered categories (prior education -> first-year dropout, background -> going
missing after the diploma) and gradients at equal covariates (advice by income at equal
test score). Sequential CART, the method statistics offices use (R synthpop's `cart`, used
by CBS/ODISSEI), keeps them: columns are synthesised one at a time in a visit sequence,
each modelled by a decision tree on the columns before it.

- Discrete columns (categorical, ordinal, boolean) use a classifier; null is a level of its
  own, so stage columns stay structurally empty for pupils not seen in that stage.
- Numerical columns first draw "is null" with a classifier, then a value with a regressor.
- Sampling drops each synthetic row down the tree and takes the value of a random REAL
  row in its leaf (donor sampling; for a classifier that is drawing from the leaf's class
  shares). Numbers get Gaussian smoothing (Silverman bandwidth of the leaf) clipped to the
  leaf's range, so real values are not copied verbatim.
- Every leaf holds at least `min_leaf` real rows: each sampled value comes from a pool of
  at least that many people (a privacy floor). The first column is drawn from its marginal.
- A hierarchy child (buurt within wijk) gets one tree per parent value, so a buurt is only
  ever drawn from its own wijk; area figures are looked up from the area code and offered
  to later trees as predictors, as the real table is built.

Fitted models hold real leaf values: secure-zone objects, pickled to the secure bucket only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from synthetic.prepare import Coarsening
from synthetic.schema import TableSchema
from synthetic.settings import TwinSettings

_NULL = "\0null"


def visit_sequence(
    columns: Sequence[str],
    first: Sequence[str],
    last: Sequence[str] = (),
    hierarchies: Sequence[Sequence[str]] = (),
) -> list[str]:
    """`first`, the rest in schema order, then `last` (each only where present); a hierarchy
    child follows its parent, because it is drawn within the parent's value.

    Columns visited last are drawn conditional on everything yet predict nothing: the place
    for many-valued identifiers (buurt, school) and noise (birth month), whose splits would
    otherwise crowd out the weak effects the challenges are about."""
    ends = set(first) | set(last)
    order = [c for c in first if c in columns] + [c for c in columns if c not in ends]
    order += [c for c in last if c in columns and c not in first]
    for levels in hierarchies:
        for parent, child in pairwise(levels):
            if parent in order and child in order and order.index(child) < order.index(parent):
                order.remove(child)
                order.insert(order.index(parent) + 1, child)
    return order


class _Features:
    """Turns one column's values into predictor columns (floats, NaN for null)."""

    def __init__(self, name: str, kind: str, levels: Sequence) -> None:
        self.name, self.kind, self.levels = name, kind, list(levels)
        self.rank = {v: float(i) for i, v in enumerate(self.levels)}

    def encode(self, values: pd.Series) -> np.ndarray:
        if self.kind == "numerical":
            return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)[:, None]
        if self.kind in ("ordinal", "boolean"):  # rank keeps the order for a split
            return values.map(self.rank).to_numpy(dtype=float)[:, None]
        codes = values.map(self.rank).to_numpy(dtype=float)  # categorical: a code, null last
        return np.where(np.isnan(codes), len(self.levels), codes)[:, None]


class _Ordered:
    """Unordered categories, re-ranked for each tree by the target's mean per category.

    A tree splits a category only into "codes below / above a cut", so one-hot columns or
    arbitrary codes let it peel off one category at a time, each split gaining little: a
    moderate association with a 7-level background never beats noise splits. Ranking the
    categories by the target's mean makes the best binary partition a single cut (Breiman's
    result for a two-class or numerical target; rpart, hence synthpop, does the same); for
    more classes each class gets its own ranking (one column per class).
    """

    def __init__(self, cats: Sequence[tuple[int, int]]) -> None:
        self.cats = list(cats)  # (column in x, number of codes including null)
        self.ranks: list[list[np.ndarray]] = []

    def fit(self, x: np.ndarray, target: np.ndarray) -> _Ordered:
        prior = target.mean(axis=0)
        for column, size in self.cats:
            codes = x[:, column].astype(int)
            counts = np.bincount(codes, minlength=size).astype(float)[:, None]
            sums = np.stack([np.bincount(codes, t, size) for t in target.T], axis=1)
            self._rank(counts, sums, prior)
        return self

    def fit_classes(self, x: np.ndarray, index: np.ndarray, classes: int) -> _Ordered:
        """As `fit` with the one-hot target of class `index` (0..classes-1), without building
        it: rows x classes floats is the largest array of a many-class column (a school)."""
        shares = np.bincount(index, minlength=classes).astype(float) / len(index)
        prior = shares[1:] if classes == 2 else shares  # two classes: one target column
        for column, size in self.cats:
            codes = x[:, column].astype(int)
            size = max(size, int(codes.max()) + 1) if len(codes) else size
            counts = np.bincount(codes, minlength=size).astype(float)[:, None]
            sums = np.bincount(codes * classes + index, minlength=size * classes)
            sums = sums.reshape(size, classes).astype(float)
            self._rank(counts, sums[:, 1:] if classes == 2 else sums, prior)
        return self

    def _rank(self, counts: np.ndarray, sums: np.ndarray, prior: np.ndarray) -> None:
        means = (sums + prior) / (counts + 1)  # an empty category sits at the mean
        self.ranks.append([np.argsort(np.argsort(m, kind="stable")) for m in means.T])

    def transform(self, x: np.ndarray) -> np.ndarray:
        """The tree's input, float32 as sklearn's trees read it (ranks and the float32 cast
        of every value are exact), written into one array: with one rank column per class
        and categorical predictor, a many-class target makes this rows x thousands."""
        keep = np.ones(x.shape[1], bool)
        for column, _size in self.cats:
            keep[column] = False
        width = int(keep.sum()) + sum(len(ranks) for ranks in self.ranks)
        out = np.empty((len(x), width), dtype=np.float32)
        out[:, : keep.sum()] = x[:, keep]
        at = int(keep.sum())
        for (column, _size), ranks in zip(self.cats, self.ranks, strict=True):
            codes = x[:, column].astype(int)
            for rank in ranks:
                out[:, at] = rank[codes]
                at += 1
        return out


@dataclass
class _Leaves:
    """Real donor values per leaf of a regression tree, with each leaf's smoothing width."""

    values: np.ndarray  # donor values sorted by leaf
    start: np.ndarray  # per tree node: first donor index (leaves only)
    count: np.ndarray
    low: np.ndarray
    high: np.ndarray
    width: np.ndarray

    @classmethod
    def build(cls, leaf: np.ndarray, y: np.ndarray, nodes: int) -> _Leaves:
        order = np.argsort(leaf, kind="stable")
        values, leaf = y[order], leaf[order]
        start, count = np.zeros(nodes, int), np.zeros(nodes, int)
        low, high, width = np.zeros(nodes), np.zeros(nodes), np.zeros(nodes)
        ids, first, counts = np.unique(leaf, return_index=True, return_counts=True)
        for node, s, n in zip(ids, first, counts, strict=True):
            donors = values[s : s + n]
            start[node], count[node] = s, n
            low[node], high[node] = donors.min(), donors.max()
            sd = donors.std(ddof=1) if n > 1 else 0.0
            iqr = np.subtract(*np.percentile(donors, [75, 25])) / 1.34
            spread = min(sd, iqr) if iqr > 0 else sd
            width[node] = 0.9 * spread * n**-0.2  # Silverman's rule, as R's bw.nrd0
        return cls(values, start, count, low, high, width)

    def draw(self, leaf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pick = self.start[leaf] + np.floor(rng.random(len(leaf)) * self.count[leaf]).astype(int)
        jitter = rng.normal(0.0, 1.0, len(leaf)) * self.width[leaf]
        return np.clip(self.values[pick] + jitter, self.low[leaf], self.high[leaf])


CHUNK = 20_000  # rows per predict: its arrays are rows x features and rows x classes


def _apply(tree, codes: _Ordered, x: np.ndarray) -> np.ndarray:
    """The leaf of each row, a chunk of rows at a time (row-wise, so the same leaves)."""
    parts = [tree.apply(codes.transform(x[i : i + CHUNK])) for i in range(0, len(x), CHUNK)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.intp)


def _draw_class(tree, codes: _Ordered, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One class per row from its leaf's class shares (= a random donor of the leaf); the
    uniform draws are taken at once, the shares a chunk of rows at a time."""
    classes = tree.classes_
    cut = rng.random(len(x))
    index = np.empty(len(x), dtype=np.intp)
    for i in range(0, len(x), CHUNK):
        proba = tree.predict_proba(codes.transform(x[i : i + CHUNK]))
        index[i : i + CHUNK] = (proba.cumsum(axis=1) < cut[i : i + CHUNK, None]).sum(axis=1)
    return classes[np.minimum(index, len(classes) - 1)]


class _ColumnModel:
    """The tree(s) for one column, fitted on one group of rows (all rows, or one parent)."""

    def __init__(self, kind: str, levels: list, min_leaf: int, max_depth: int | None, seed: int):
        self.kind, self.levels = kind, levels
        self.options = dict(min_samples_leaf=min_leaf, max_depth=max_depth, random_state=seed)
        self.min_leaf = min_leaf
        self.tree = self.null_tree = self.leaves = None
        self.codes = self.null_codes = _Ordered(())

    def fit(self, x: np.ndarray, values: pd.Series, cats: Sequence[tuple[int, int]]):
        if self.kind == "numerical":
            y = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            null = np.isnan(y)
            if null.any():
                self.null_codes = _Ordered(cats).fit(x, null[:, None].astype(float))
                x_null = self.null_codes.transform(x)
                self.null_tree = DecisionTreeClassifier(**self.options).fit(x_null, null)
            if (~null).sum() >= self.min_leaf:
                self.codes = _Ordered(cats).fit(x[~null], y[~null, None])
                x_value = self.codes.transform(x[~null])
                self.tree = DecisionTreeRegressor(**self.options).fit(x_value, y[~null])
                leaf = self.tree.apply(x_value)
                self.leaves = _Leaves.build(leaf, y[~null], self.tree.tree_.node_count)
            return self
        codes = values.map({v: i for i, v in enumerate(self.levels)}).fillna(-1).astype(int)
        classes, index = np.unique(codes.to_numpy(), return_inverse=True)
        self.codes = _Ordered(cats).fit_classes(x, index, len(classes))
        self.tree = DecisionTreeClassifier(**self.options).fit(self.codes.transform(x), codes)
        return self

    def sample(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(x)
        if self.kind == "numerical":
            out = np.full(n, np.nan)
            null = np.zeros(n, bool)
            if self.null_tree is not None:
                null = _draw_class(self.null_tree, self.null_codes, x, rng).astype(bool)
            if self.tree is not None and (~null).any():
                leaf = _apply(self.tree, self.codes, x[~null])
                out[~null] = self.leaves.draw(leaf, rng)
            return out
        codes = _draw_class(self.tree, self.codes, x, rng)
        out = np.empty(n, dtype=object)
        for code in np.unique(codes):
            out[codes == code] = None if code < 0 else self.levels[code]
        return out


def _group_key(value) -> object:
    return _NULL if value is None or (isinstance(value, float) and np.isnan(value)) else value


class CartSynthesizer:
    """Sequential CART over the coarsened table; `sample(num_rows)` continues one seeded
    stream, so the same seed, input and calls give the same rows."""

    @classmethod
    def from_settings(
        cls, schema: TableSchema, info: Coarsening, settings: TwinSettings
    ) -> CartSynthesizer:
        """The synthesizer `twin:` in event.yaml asks for (seed, leaf floor, depth, order)."""
        return cls(
            schema,
            info,
            seed=settings.seed,
            min_leaf=settings.min_leaf,
            max_depth=settings.max_depth,
            visit_first=settings.visit_first,
            visit_last=settings.visit_last,
            hierarchies=settings.hierarchies,
        )

    def __init__(
        self,
        schema: TableSchema,
        info: Coarsening,
        *,
        seed: int,
        min_leaf: int = 10,
        max_depth: int | None = None,
        visit_first: Sequence[str] = (),
        visit_last: Sequence[str] = (),
        hierarchies: Sequence[Sequence[str]] = (),
    ) -> None:
        self.schema, self.info = schema, info
        self.seed, self.min_leaf, self.max_depth = seed, min_leaf, max_depth
        self.visit_first, self.visit_last = tuple(visit_first), tuple(visit_last)
        self.hierarchies = tuple(map(tuple, hierarchies))
        self.rng = np.random.default_rng(seed)
        self.order: list[str] = []
        self.parent: dict[str, str] = {}
        self.columns: list[str] = []
        self.features: dict[str, _Features] = {}
        self.models: dict[str, dict[object, _ColumnModel]] = {}

    # --- features -------------------------------------------------------------------------

    def _levels(self, name: str) -> list:
        spec = self.schema[name]
        if spec.type == "boolean":
            return [False, True]
        kept = self.info.allowed.get(name) or []
        if spec.type == "ordinal":
            return [v for v in spec.order or () if v in kept]
        return list(kept)

    def _block(self, name: str, values: pd.Series) -> np.ndarray:
        """The column's predictors, plus area figures looked up from an area code."""
        parts = [self.features[name].encode(values)]
        table = self.info.area_lookup.get(name)
        if table is not None:
            looked_up = table.reindex(values.to_numpy())
            for attribute in table.columns:
                figure = looked_up[attribute]
                spec = self.schema[attribute] if attribute in self.schema.names else None
                if spec is not None and spec.type == "ordinal":  # e.g. SES tertile: its rank
                    rank = {v: float(i) for i, v in enumerate(spec.order or ())}
                    figure = figure.map(rank)
                parts.append(pd.to_numeric(figure, errors="coerce").to_numpy(dtype=float)[:, None])
        return np.hstack(parts)

    # --- fit and sample -------------------------------------------------------------------

    def fit(self, frame: pd.DataFrame) -> CartSynthesizer:
        """Fit one tree (or one per parent value) per column on the coarsened real rows."""
        frame = frame.reset_index(drop=True)
        self.columns = list(frame.columns)
        self.order = visit_sequence(
            list(frame.columns), self.visit_first, self.visit_last, self.hierarchies
        )
        self.parent = {
            child: parent
            for levels in self.hierarchies
            for parent, child in pairwise(levels)
            if parent in self.order and child in self.order
        }
        blocks = [np.zeros((len(frame), 1))]  # a constant: the first column's tree is its root
        cats: list[tuple[int, int]] = []  # categorical code columns in x, and their sizes
        for i, name in enumerate(self.order):
            x = np.hstack(blocks)
            spec = self.schema[name]
            kind = "numerical" if spec.type == "numerical" else "discrete"
            levels = self._levels(name)
            values = frame[name]
            self.models[name] = {}
            if name in self.parent:
                keys = frame[self.parent[name]].map(_group_key)
                for j, key in enumerate(sorted(keys.unique(), key=str)):
                    rows = (keys == key).to_numpy()
                    if rows.sum() >= self.min_leaf:  # smaller groups get no value (null)
                        model = _ColumnModel(
                            kind, levels, self.min_leaf, self.max_depth, self.seed + 1000 * i + j
                        )
                        self.models[name][key] = model.fit(x[rows], values[rows], cats)
            else:
                model = _ColumnModel(kind, levels, self.min_leaf, self.max_depth, self.seed + i)
                self.models[name][None] = model.fit(x, values, cats)
            self.features[name] = _Features(name, spec.type, levels)
            if spec.type == "categorical":
                cats.append((x.shape[1], len(levels) + 1))
            blocks.append(self._block(name, values))
        return self

    def sample(self, num_rows: int) -> pd.DataFrame:
        """`num_rows` synthetic rows, columns as the fitted frame (coarsened values)."""
        out: dict[str, np.ndarray] = {}
        blocks = [np.zeros((num_rows, 1))]
        for name in self.order:
            x = np.hstack(blocks)
            kind = "numerical" if self.schema[name].type == "numerical" else "discrete"
            values = np.full(num_rows, np.nan) if kind == "numerical" else np.full(num_rows, None)
            if name in self.parent:
                keys = pd.Series(out[self.parent[name]]).map(_group_key)
                for key, model in self.models[name].items():
                    rows = (keys == key).to_numpy()
                    if rows.any():
                        values[rows] = model.sample(x[rows], self.rng)
            elif num_rows:
                values = self.models[name][None].sample(x, self.rng)
            out[name] = values
            blocks.append(self._block(name, pd.Series(values, dtype=values.dtype)))
        return pd.DataFrame(out)[self.columns]
