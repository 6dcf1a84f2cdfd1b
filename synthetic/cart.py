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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from synthetic.prepare import Coarsening
from synthetic.schema import TableSchema
from synthetic.settings import TwinSettings

_NULL = "\0null"
_POOL = -2  # the pooled classes of a many-class tree (-1 is null)
GROUP_BATCHES = 4  # a grouped column (buurt within wijk) is fitted as up to this many jobs


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

    def transform(self, x: np.ndarray, order: str = "C") -> np.ndarray:
        """The tree's input, float32 as sklearn's trees read it (ranks and the float32 cast
        of every value are exact), written into one array: with one rank column per class
        and categorical predictor, a many-class target makes this rows x thousands.

        `order="F"` (column-major) for a fit: sklearn's splitter reads one feature of a
        node's rows at a time, which is then one stretch of memory, not one cache line per
        row (the same trees, a fit about 12% faster at 1,000,000 persons). "C" for
        sampling, which walks a row down the tree."""
        keep = np.ones(x.shape[1], bool)
        for column, _size in self.cats:
            keep[column] = False
        width = int(keep.sum()) + sum(len(ranks) for ranks in self.ranks)
        out = np.empty((len(x), width), dtype=np.float32, order=order)
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
    """The tree(s) for one column, fitted on one group of rows (all rows, or one parent).

    A discrete column keeps at most `max_classes` classes of its own in the tree (the most
    frequent; ties by code); the rest are pooled into one class, and a row drawn into the pool
    takes the value of a random pooled donor of its leaf. That is the donor draw of CART with
    coarser splits, and it bounds the cost: a tree's work and its rank columns grow with rows
    x classes, and a school has hundreds."""

    def __init__(
        self, kind: str, levels: list, min_leaf: int, max_depth: int | None, seed: int,
        max_classes: int = 0,
    ):  # fmt: skip
        self.kind, self.levels = kind, levels
        self.options = dict(min_samples_leaf=min_leaf, max_depth=max_depth, random_state=seed)
        self.min_leaf, self.max_classes = min_leaf, max_classes
        self.tree = self.null_tree = self.leaves = self.pool = None
        self.codes = self.null_codes = _Ordered(())

    def fit(self, x: np.ndarray, y: np.ndarray, cats: Sequence[tuple[int, int]]):
        """`y`: floats (NaN null) for a numerical column, else level codes (-1 null)."""
        if self.kind == "numerical":
            null = np.isnan(y)
            if null.any():
                self.null_codes = _Ordered(cats).fit(x, null[:, None].astype(float))
                x_null = self.null_codes.transform(x, "F")
                self.null_tree = DecisionTreeClassifier(**self.options).fit(x_null, null)
            if (~null).sum() >= self.min_leaf:
                self.codes = _Ordered(cats).fit(x[~null], y[~null, None])
                x_value = self.codes.transform(x[~null], "F")
                self.tree = DecisionTreeRegressor(**self.options).fit(x_value, y[~null])
                leaf = self.tree.apply(x_value)
                self.leaves = _Leaves.build(leaf, y[~null], self.tree.tree_.node_count)
            return self
        codes = y
        classes, counts = np.unique(codes, return_counts=True)
        pooled = None
        if self.max_classes and len(classes) > self.max_classes:
            keep = classes[np.argsort(-counts, kind="stable")[: self.max_classes - 1]]
            pooled = ~np.isin(codes, keep)
            codes = np.where(pooled, _POOL, codes)
            classes = np.unique(codes)
        index = np.searchsorted(classes, codes)
        self.codes = _Ordered(cats).fit_classes(x, index, len(classes))
        x_tree = self.codes.transform(x, "F")
        self.tree = DecisionTreeClassifier(**self.options).fit(x_tree, codes)
        if pooled is not None:
            leaf = self.tree.apply(x_tree[pooled])
            self.pool = _Donors.build(leaf, y[pooled], self.tree.tree_.node_count)
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
        pooled = codes == _POOL
        if pooled.any():
            codes[pooled] = self.pool.draw(_apply(self.tree, self.codes, x[pooled]), rng)
        out = np.empty(n, dtype=object)
        for code in np.unique(codes):
            out[codes == code] = None if code < 0 else self.levels[code]
        return out


@dataclass
class _Donors:
    """Real values per leaf, drawn without smoothing (the pooled classes of a leaf)."""

    values: np.ndarray
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def build(cls, leaf: np.ndarray, y: np.ndarray, nodes: int) -> _Donors:
        order = np.argsort(leaf, kind="stable")
        start, count = np.zeros(nodes, int), np.zeros(nodes, int)
        ids, first, counts = np.unique(leaf[order], return_index=True, return_counts=True)
        start[ids], count[ids] = first, counts
        return cls(y[order], start, count)

    def draw(self, leaf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        pick = self.start[leaf] + np.floor(rng.random(len(leaf)) * self.count[leaf]).astype(int)
        return self.values[pick]


@dataclass(frozen=True)
class FitJob:
    """One independent piece of the fit: a column's tree, or its trees for some parent values.

    Every tree is fitted on real columns only, so jobs need nothing from each other: they
    can run in any order, in any process, and give the same models."""

    column: str
    kind: str  # numerical | discrete
    levels: tuple
    width: int  # its predictors: the first `width` columns of FitData.x
    cats: tuple[tuple[int, int], ...]
    keys: tuple = (None,)  # parent values this job fits (None: one tree on all rows)
    seeds: tuple[int, ...] = ()
    options: tuple[int | None, int | None, int] = (10, None, 0)  # min_leaf, max_depth, classes
    cost: float = 0.0  # rows x predictors, to start the largest jobs first


@dataclass
class FitData:
    """What every job reads: shipped to a worker once, whatever the number of jobs."""

    x: np.ndarray  # every column's predictors, in visit order (float32, as the trees read them)
    targets: dict[str, np.ndarray]  # per column: floats, or level codes (-1 null)
    groups: dict[str, np.ndarray]  # per grouped column: the parent key of each row


def fit_job(data: FitData, job: FitJob) -> dict[object, _ColumnModel]:
    """The models of one job (a plain function: any `map` may run it anywhere)."""
    x, y = data.x[:, : job.width], data.targets[job.column]
    min_leaf, max_depth, max_classes = job.options
    models = {}
    for key, seed in zip(job.keys, job.seeds, strict=True):
        model = _ColumnModel(job.kind, list(job.levels), min_leaf, max_depth, seed, max_classes)
        if key is None:
            models[key] = model.fit(x, y, job.cats)
        else:
            rows = data.groups[job.column] == key
            models[key] = model.fit(x[rows], y[rows], job.cats)
    return models


Mapper = Callable[[Callable[[FitData, FitJob], dict], FitData, Sequence[FitJob]], list]


def run_here(fn, data: FitData, jobs: Sequence[FitJob]) -> list:
    """The default `map`: every job in this process, one after the other."""
    return [fn(data, job) for job in jobs]


def _batches(keys: list, rows: list[float], parts: int) -> list[list[int]]:
    """Split group indices into at most `parts` batches of similar row counts (largest first)."""
    bins: list[list[int]] = [[] for _ in range(min(parts, len(keys)))]
    load = [0] * len(bins)
    for i in sorted(range(len(keys)), key=lambda i: -rows[i]):
        k = load.index(min(load))
        bins[k].append(i)
        load[k] += rows[i]
    return [sorted(b) for b in bins if b]


def _group_key(value) -> object:
    return _NULL if value is None or (isinstance(value, float) and np.isnan(value)) else value


class CartSynthesizer:
    """Sequential CART over the coarsened table; `sample(num_rows)` continues one seeded
    stream, so the same seed, input and calls give the same rows."""

    @classmethod
    def from_settings(
        cls, schema: TableSchema, info: Coarsening, settings: TwinSettings
    ) -> CartSynthesizer:
        """The synthesizer `twin:` in event.yaml asks for (seed, leaf floor, depth, order);
        an automatic leaf floor must have been fixed for the table (`TwinSettings.sized`)."""
        if settings.min_leaf is None:
            raise ValueError("TwinSettings.min_leaf is unset: call settings.sized(rows) first")
        return cls(
            schema,
            info,
            seed=settings.seed,
            min_leaf=settings.min_leaf,
            max_depth=settings.max_depth,
            visit_first=settings.visit_first,
            visit_last=settings.visit_last,
            hierarchies=settings.hierarchies,
            fit_within=settings.fit_within,
            max_classes=settings.max_classes,
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
        fit_within: Sequence[tuple[str, str]] = (),
        max_classes: int = 0,
    ) -> None:
        self.schema, self.info = schema, info
        self.fit_within, self.max_classes = tuple(map(tuple, fit_within)), max_classes
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

    def plan(self, frame: pd.DataFrame) -> tuple[FitData, list[FitJob]]:
        """The fit as independent jobs over one shared FitData (largest jobs first)."""
        frame = frame.reset_index(drop=True)
        self.columns = list(frame.columns)
        pairs = [tuple(p) for levels in self.hierarchies for p in pairwise(levels)]
        pairs += [(parent, child) for child, parent in self.fit_within]
        self.order = visit_sequence(list(frame.columns), self.visit_first, self.visit_last, pairs)
        self.parent = {c: p for p, c in pairs if p in self.order and c in self.order}
        blocks = [np.zeros((len(frame), 1))]  # a constant: the first column's tree is its root
        width = 1
        cats: list[tuple[int, int]] = []  # categorical code columns in x, and their sizes
        data = FitData(np.empty((0, 0)), {}, {})
        jobs: list[FitJob] = []
        options = (self.min_leaf, self.max_depth, self.max_classes)
        for i, name in enumerate(self.order):
            spec = self.schema[name]
            kind = "numerical" if spec.type == "numerical" else "discrete"
            levels = self._levels(name)
            values = frame[name]
            if kind == "numerical":
                y = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
            else:
                index = {v: j for j, v in enumerate(levels)}
                y = values.map(index).fillna(-1).to_numpy(dtype=np.int64)
            data.targets[name] = y
            job = dict(column=name, kind=kind, levels=tuple(levels), width=width)
            job |= dict(cats=tuple(cats), options=options)
            if name in self.parent:
                keys = frame[self.parent[name]].map(_group_key)
                data.groups[name] = keys.to_numpy(dtype=object)
                counts = keys.value_counts()
                every = sorted(counts.index, key=str)  # seeds by position among all values
                big = [k for k in every if counts[k] >= self.min_leaf]  # others get null
                rows = [int(counts[k]) for k in big]
                for batch in _batches(big, rows, GROUP_BATCHES):
                    jobs.append(
                        FitJob(
                            **job,
                            keys=tuple(big[k] for k in batch),
                            seeds=tuple(self.seed + 1000 * i + every.index(big[k]) for k in batch),
                            cost=float(sum(rows[k] for k in batch)) * width,
                        )
                    )
            else:
                jobs.append(FitJob(**job, seeds=(self.seed + i,), cost=float(len(frame)) * width))
            self.features[name] = _Features(name, spec.type, levels)
            if spec.type == "categorical":
                cats.append((width, len(levels) + 1))
            blocks.append(self._block(name, values))
            width += blocks[-1].shape[1]
        data.x = np.hstack(blocks, dtype=np.float32)  # as the trees read it: half to ship
        return data, sorted(jobs, key=lambda j: -j.cost)

    def fit(self, frame: pd.DataFrame, map: Mapper | None = None) -> CartSynthesizer:
        """Fit one tree (or one per parent value) per column on the coarsened real rows.

        `map(fit_job, data, jobs)` runs the jobs and returns their results in job order
        (default: here, one by one); flows/synthesize.py passes one running them as Prefect
        tasks on Dask workers. The models do not depend on where or in what order they ran."""
        data, jobs = self.plan(frame)
        results = (map or run_here)(fit_job, data, jobs)
        self.models = {name: {} for name in self.order}
        for job, models in zip(jobs, results, strict=True):
            self.models[job.column].update(models)
        for name, models in self.models.items():  # parent values in sorted order, as sampled
            self.models[name] = {k: models[k] for k in sorted(models, key=str)}
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
