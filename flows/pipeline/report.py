"""The linkage report: what was read, rejected, linked and why not — counts and rates only.

The report leaves the pipeline (secure bucket, Prefect artifact, terminal), so it is
built from counts alone and every count below the minimum cell size is shown as
`<10` (the event's `min_cell_count`). Zero stays 0: "nothing rejected" discloses no one.
Rates are shown only where the denominator reaches the minimum cell size.
One table model renders to Markdown and HTML, so both always say the same.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from flows.pipeline import linkage as lk


@dataclass
class SourceCounts:
    source: str
    rows_read: int
    rejected: dict[str, int] = field(default_factory=dict)
    warnings: int = 0


@dataclass
class LinkReport:
    """Everything the report says, as counts (safe to serialise into the manifest)."""

    event: str
    key_version: str
    threshold: float
    margin: float
    min_cell: int
    sources: list[SourceCounts]
    exact: lk.ExactStats
    probabilistic: lk.ProbabilisticStats
    rows_by_status: dict[str, int]
    by_school_type: dict[str, dict[str, int]]
    by_wijk: dict[str, dict[str, int]]
    duplicate_school_rows: int
    pupils: int
    pupils_exact: int
    pupils_probabilistic: int
    missing_parent: int  # linked pupils naming a parent number not in the register
    postcode_not_found: int  # linked pupils whose postcode is not in the postcode table
    cbs_suppressed: dict[str, int]
    # pupils in the school data: distinct person numbers, plus distinct school identities
    # (birth date, sex, postcode) among records without one; and how many of them linked
    school_pupils: int = 0
    school_pupils_linked: int = 0
    persons_not_needed: int = 0  # register persons dropped by data minimisation

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def link_rate(self) -> float | None:
        """Linked share of the school data's pupils (None when there are none)."""
        return self.school_pupils_linked / self.school_pupils if self.school_pupils else None

    def main_unlinked_reason(self) -> tuple[str, int] | None:
        """The most frequent reason school records stayed unlinked, with its record count."""
        counts = [(self.rows_by_status.get(k, 0), k) for k in lk.UNLINKED_REASONS]
        n, reason = max(counts)
        return (reason, n) if n else None


# What each unlinked reason means, for the report and the link-rate stop.
REASON_TEXT = {
    lk.NOT_IN_REGISTER: "their person number is not in the register",
    lk.NO_CANDIDATE: "no register person of school age shares their birth date or postcode",
    lk.BELOW_THRESHOLD: "their best register candidate scored below secure_zone.match_threshold",
    lk.TIE: "two register persons fit them equally well",
}


def _status_counts(frame: pd.DataFrame, by: pd.Series) -> dict[str, dict[str, int]]:
    table = pd.crosstab(by.fillna("onbekend"), frame["link_status"].fillna(""))
    out: dict[str, dict[str, int]] = {}
    for group, row in table.iterrows():
        counts = {k: int(v) for k, v in row.items() if v}
        counts["rows"] = int(row.sum())
        out[str(group)] = counts
    return dict(sorted(out.items()))


def school_wijk(school: pd.DataFrame, postcodes: pd.DataFrame) -> pd.Series:
    """Wijk of each school row's postcode (first wijk of the PC6), for per-wijk rates."""
    pc = lk.normalise_postcode(postcodes["postcode"])
    first = pd.Series(postcodes["wijk_code"].to_numpy(), index=pc.to_numpy())
    first = first[~first.index.duplicated()]
    return lk.normalise_postcode(school["postcode"]).map(first)


def build_report(
    *,
    event: str,
    key_version: str,
    settings: lk.LinkSettings,
    min_cell: int,
    sources: list[SourceCounts],
    result: lk.LinkResult,
    persons: pd.DataFrame,
    postcodes: pd.DataFrame,
    cbs: pd.DataFrame,
    persons_not_needed: int = 0,
) -> LinkReport:
    """Count everything the report shows from the pseudonymised, linked frames."""
    # Rows are selected with only the columns counted: a row mask copies every column it
    # keeps (at 2,000,000 persons, seconds for the school file's twenty columns).
    school = result.school
    status = school["link_status"].value_counts()
    dup_cols = [c for c in ("bsn", "schooljaar", "brin", "vestiging") if c in school.columns]
    with_bsn = school.loc[school["bsn"].notna(), dup_cols]
    linked = school.loc[school["link_method"].notna(), ["person_key", "link_method"]]
    pupils = linked["person_key"].drop_duplicates()
    exact_keys = school.loc[school["link_method"] == lk.EXACT, "bsn"]
    p = result.probabilistic
    methods = linked.groupby("person_key")["link_method"].first().value_counts()

    used = [c for c in ("bsn", "bsn_ouder1", "bsn_ouder2", "postcode") if c in persons.columns]
    register = persons[used].drop_duplicates("bsn").set_index("bsn")
    pupil_rows = register.reindex(pupils.unique())
    missing_parent = pd.Series(False, index=pupil_rows.index)
    for col in ("bsn_ouder1", "bsn_ouder2"):
        if col in pupil_rows.columns:
            named = pupil_rows[col].notna()
            missing_parent |= named & ~lk.key_isin(pupil_rows[col], persons["bsn"])
    pc_known = lk.normalise_postcode(postcodes["postcode"])
    pc_missing = ~lk.key_isin(lk.normalise_postcode(pupil_rows["postcode"]), pc_known)

    suppressed: dict[str, int] = {}
    for col in ("gem_inkomen_per_inwoner", "pct_laag_inkomen", "bijstand", "inwoners"):
        if col in cbs.columns:
            suppressed[col] = int(cbs[col].isna().sum())

    return LinkReport(
        event=event,
        key_version=key_version,
        threshold=settings.threshold,
        margin=settings.margin,
        min_cell=min_cell,
        sources=sources,
        exact=result.exact,
        probabilistic=result.probabilistic,
        rows_by_status={str(k): int(v) for k, v in sorted(status.items())},
        by_school_type=_status_counts(school, school.get("onderwijssoort", pd.Series())),
        by_wijk=_status_counts(school, school_wijk(school, postcodes)),
        duplicate_school_rows=int(with_bsn.duplicated(dup_cols).sum()) if dup_cols else 0,
        pupils=len(pupils),
        pupils_exact=int(methods.get(lk.EXACT, 0)),
        pupils_probabilistic=int(methods.get(lk.PROBABILISTIC, 0)),
        missing_parent=int(missing_parent.sum()),
        postcode_not_found=int(pc_missing.sum()),
        cbs_suppressed=suppressed,
        school_pupils=int(with_bsn["bsn"].nunique()) + p.identities,
        school_pupils_linked=int(exact_keys.nunique()) + p.identities_linked,
        persons_not_needed=persons_not_needed,
    )


# -- rendering ---------------------------------------------------------------------------


def cell(n: int, min_cell: int) -> str:
    """A count as shown: 0, `<min_cell` for small cells, else with thousands separators."""
    if n == 0:
        return "0"
    if n < min_cell:
        return f"<{min_cell}"
    return f"{n:,}"


def rate(num: int, den: int, min_cell: int) -> str:
    """A percentage, or `n/a` when the denominator is below the minimum cell size."""
    if den < min_cell:
        return "n/a"
    return f"{100.0 * num / den:.1f}%"


@dataclass
class _Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


def _tables(r: LinkReport) -> list[_Table]:
    m = r.min_cell
    c = lambda n: cell(n, m)  # noqa: E731
    e, p = r.exact, r.probabilistic
    tables = [
        _Table(
            "Rows read per source",
            ["source", "rows read", "rows rejected", "rejected because"],
            [
                [
                    s.source,
                    c(s.rows_read),
                    c(sum(s.rejected.values())),
                    "; ".join(f"{k}: {c(v)}" for k, v in sorted(s.rejected.items())) or "-",
                ]
                for s in r.sources
            ],
        ),
        _Table(
            "Match rates (school records)",
            ["link", "records", "linked", "rate"],
            [
                [
                    "exact (person number)",
                    c(e.rows_with_bsn),
                    c(e.rows_linked),
                    rate(e.rows_linked, e.rows_with_bsn, m),
                ],
                [
                    "probabilistic (no person number)",
                    c(p.rows),
                    c(p.rows_linked),
                    rate(p.rows_linked, p.rows, m),
                ],
                [
                    "probabilistic, per school identity",
                    c(p.identities),
                    c(p.identities_linked),
                    rate(p.identities_linked, p.identities, m),
                ],
            ],
            f"Threshold: match probability >= {r.threshold}; the best candidate must lead the "
            f"runner-up by >= {r.margin} match-weight bits, else the identity stays unlinked "
            "(tie).",
        ),
        _Table(
            "Unlinked school records by reason",
            ["reason", "records"],
            [[k, c(r.rows_by_status.get(k, 0))] for k in lk.UNLINKED_REASONS]
            + [["(identities) " + k, c(v)] for k, v in sorted(p.reasons.items())],
        ),
    ]
    for title, groups in (("per school type", r.by_school_type), ("per wijk", r.by_wijk)):
        rows = []
        for group, g in groups.items():
            n = g.get("rows", 0)
            ex, pr = g.get(lk.EXACT, 0), g.get(lk.PROBABILISTIC, 0)
            rows.append([group, c(n), c(ex), c(pr), rate(ex + pr, n, m)])
        tables.append(
            _Table(
                f"Linked records {title}",
                ["group", "records", "exact", "probabilistic", "linked rate"],
                rows,
            )
        )
    tables += [
        _Table(
            "Linked table and data quality",
            ["what", "count"],
            [
                ["pupils in the school data", c(r.school_pupils)],
                [
                    "  of whom linked to a register person",
                    f"{c(r.school_pupils_linked)} "
                    f"({rate(r.school_pupils_linked, r.school_pupils, m)})",
                ],
                ["pupils in the linked table", c(r.pupils)],
                ["  linked exactly", c(r.pupils_exact)],
                ["  linked probabilistically", c(r.pupils_probabilistic)],
                [
                    "register rows with a duplicate person number (dropped)",
                    c(e.duplicate_person_keys),
                ],
                [
                    "duplicate school records (same person, year, school)",
                    c(r.duplicate_school_rows),
                ],
                ["pupils naming a parent not in the register", c(r.missing_parent)],
                ["pupils whose postcode is not in the postcode table", c(r.postcode_not_found)],
                [
                    "register persons not needed (dropped before pseudonymisation)",
                    c(r.persons_not_needed),
                ],
            ]
            + [[f"CBS cells suppressed: {k}", c(v)] for k, v in r.cbs_suppressed.items()],
        ),
        _Table(
            "Splink blocking and scoring",
            ["what", "value"],
            [
                ["persons scored against (school age, not linked exactly)", c(p.candidates)],
                ["pairs compared", c(p.pairs_compared)],
                ["model trained on", _training(p)],
            ]
            + [[f"  from rule: {k}", c(v)] for k, v in p.pairs_by_rule.items()]
            + [["seconds (train + predict)", f"{p.seconds_total:.1f}"]]
            + ([["skipped", p.skipped]] if p.skipped else []),
        ),
        _Table(
            "Match-weight distribution (best candidate per school identity)",
            ["match weight", "identities"],
            [[f"[{k}, {k + 1})", c(v)] for k, v in sorted(p.weight_histogram.items())],
        ),
    ]
    return tables


def _training(p: lk.ProbabilisticStats) -> str:
    if p.training == lk.TRAINED_ON_LABELS:
        return "known pairs: school records linked exactly on the person number"
    if p.training == lk.TRAINED_BY_EM:
        return (
            "no labels: expectation-maximisation (too few school records with a person "
            f"number to train on, fewer than {lk.MIN_LABELLED} known pairs)"
        )
    return "-"


def _header(r: LinkReport) -> str:
    return (
        f"Event `{r.event}`, pseudonym key version `{r.key_version}`. Counts below "
        f"{r.min_cell} are shown as <{r.min_cell}; no row values appear in this report."
    )


def to_markdown(r: LinkReport) -> str:
    """The report as Markdown (also used as the Prefect artifact)."""
    out = ["# Linkage report", "", _header(r), ""]
    for t in _tables(r):
        out += [f"## {t.title}", ""]
        out.append("| " + " | ".join(t.headers) + " |")
        out.append("|" + "---|" * len(t.headers))
        out += ["| " + " | ".join(x.replace("|", "/") for x in row) + " |" for row in t.rows]
        out += ["", t.note, ""] if t.note else [""]
    return "\n".join(out).rstrip() + "\n"


def to_html(r: LinkReport) -> str:
    """The report as a standalone HTML page."""
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Linkage report</title><style>body{font-family:sans-serif;max-width:60em;"
        "margin:2em auto}table{border-collapse:collapse;margin-bottom:1em}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}</style></head><body>",
        "<h1>Linkage report</h1>",
        f"<p>{esc(_header(r))}</p>",
    ]
    for t in _tables(r):
        parts.append(f"<h2>{esc(t.title)}</h2><table><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in t.headers]
        parts.append("</tr>")
        for row in t.rows:
            parts.append("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in row) + "</tr>")
        parts.append("</table>")
        if t.note:
            parts.append(f"<p>{esc(t.note)}</p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
