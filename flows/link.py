"""The `link` stage: raw extracts in the secure bucket -> one linked analysis table.

A thin Prefect flow (`link_flow`) over plain functions, which `run_link` also calls
without Prefect. Steps: fetch the sources from the secure bucket, read them, drop the
register persons the analysis does not need (data minimisation), pseudonymise (keyed
HMAC), link school records (exact, then Splink), build and generalise the analysis
table, write it as Parquet with a manifest and a linkage report, check that enough of
the pupils linked (`secure_zone.min_link_rate`, else stop and withdraw the linked set),
publish the set under `secure/<event>/linked/` (`_COMPLETE` last) and audit every read
and write.

Rows and keys stay in this process, the secure bucket and the secure working directory
(`<workdir>/secure`, mode 0700); logs, artifacts and the report carry counts only.
The heavy step is cached on the source hashes, the key version and fingerprint, the
link settings and CODE_VERSION, so an unchanged re-run reuses the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from flows.event import EventDir, load_event
from flows.objectstore import ObjectStore, sha256_file
from flows.pipeline import linkage as lk
from flows.pipeline import report as rp
from flows.pipeline.audit import AuditLog
from flows.pipeline.memory import reused_memory
from flows.pipeline.pseudonymise import key_fingerprint, load_key
from flows.pipeline.steps import (
    analysis_table,
    minimise_and_pseudonymise,
    read_extracts,
    write_parquet,
)

CODE_VERSION = "link-4"  # bump whenever the same inputs would give different output
SECURE = "secure"
SOURCES = ("municipal", "cbs", "postcodes", "school")
OUTPUT_FILES = ("analysis.parquet", "manifest.json", "report.md", "report.html")

Progress = Callable[[str], None]

# Set by the CLI so the Prefect tasks (same process) can report their steps on screen.
progress_hook: Progress | None = None


class LinkRateError(Exception):
    """Too few pupils linked to a register person: the linked table would not be complete."""

    hackgap_user_error = True


def _say(progress: Progress | None) -> Progress:
    return progress or progress_hook or (lambda _msg: None)


@dataclass
class LinkOutcome:
    """What a link run produced: where, how many, and whether it came from the cache."""

    prefix: str
    rows: int
    parquet_sha256: str
    report: dict[str, Any]  # LinkReport.as_dict(): counts only
    cached: bool = False

    def summary(self) -> dict[str, Any]:
        e, p = self.report["exact"], self.report["probabilistic"]
        r = self.report
        return {
            "pupils": self.rows,
            "link_rate": r["school_pupils_linked"] / r["school_pupils"]
            if r.get("school_pupils")
            else None,
            "training": p.get("training", ""),
            "persons_not_needed": r.get("persons_not_needed", 0),
            "exact_rate": e["rows_linked"] / e["rows_with_bsn"] if e["rows_with_bsn"] else None,
            "probabilistic_rate": p["rows_linked"] / p["rows"] if p["rows"] else None,
            "prefix": self.prefix,
            "cached": self.cached,
        }


def secure_dir(event_dir: EventDir) -> Path:
    """The secure working directory (mode 0700): the only place real rows touch disk."""
    path = event_dir.workdir / "secure"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def source_key(event_dir: EventDir, which: str) -> str:
    return f"{event_dir.event.name}/sources/{event_dir.source_path(which).name}"


def linked_prefix(event_dir: EventDir) -> str:
    return f"{event_dir.event.name}/linked"


def link_settings(event_dir: EventDir) -> lk.LinkSettings:
    zone = event_dir.event.secure_zone
    return lk.LinkSettings(threshold=zone.match_threshold, seed=event_dir.event.seed)


# -- steps ------------------------------------------------------------------------------


def ensure_sources(event_dir: EventDir, store: ObjectStore) -> None:
    """Upload the extracts to the secure bucket if any is not there yet."""
    if all(store.exists(SECURE, source_key(event_dir, w)) for w in SOURCES):
        return
    from flows.ingest import ingest_sources

    ingest_sources(event_dir, store)


def fetch_sources(
    event_dir: EventDir, store: ObjectStore, audit: AuditLog
) -> dict[str, dict[str, str]]:
    """Download each source from the secure bucket into the secure dir; path and sha256."""
    inbox = secure_dir(event_dir) / "sources"
    out: dict[str, dict[str, str]] = {}
    for which in SOURCES:
        key = source_key(event_dir, which)
        path = store.get_file(SECURE, key, inbox / Path(key).name)
        digest = sha256_file(path)
        audit.record("read", SECURE, key, digest, path.stat().st_size)
        out[which] = {"path": str(path), "object": f"{SECURE}/{key}", "sha256": digest}
    return out


def cache_key(
    sources: Mapping[str, Mapping[str, str]], key_version: str, fingerprint: str, extra: Any
) -> str:
    """Hash of everything the output depends on (never the key itself)."""
    doc = {
        "sources": {w: s["sha256"] for w, s in sorted(sources.items())},
        "key_version": key_version,
        "key": fingerprint,
        "code": CODE_VERSION,
        "settings": extra,
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def _write_text(dest: Path, text: str) -> None:
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dest)


def _column_types(table: pd.DataFrame) -> list[dict[str, str]]:
    """Columns in table order with their Parquet (Arrow) type and pandas dtype."""
    schema = pa.Schema.from_pandas(table, preserve_index=False)
    return [
        {"name": f.name, "type": str(f.type), "dtype": str(table[f.name].dtype)} for f in schema
    ]


@reused_memory()  # the stage's large tables reuse freed memory (flows.pipeline.memory)
def compute_link(
    event_dir: EventDir,
    sources: Mapping[str, Mapping[str, str]],
    out_dir: Path,
    *,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Read, pseudonymise, link, build and write the outputs into out_dir; counts back."""
    say = _say(progress)
    ev = event_dir.event
    key = load_key(ev.secure_zone, event_dir.root, environ)
    settings = link_settings(event_dir)

    say("reading sources")
    paths = {w: s["path"] for w, s in sources.items()}
    read = read_extracts(paths, ev.sources, municipality=ev.municipality, year=ev.data_year)
    say("keeping only the register persons the analysis needs, and pseudonymising")
    persons, school, not_needed = minimise_and_pseudonymise(
        read, key, ev.secure_zone.minimise_margin_years
    )
    del key
    say("linking school records")
    result = lk.link_school(school, persons, settings)
    persons, _ = lk.unique_persons(persons)
    say("building the analysis table")
    table = analysis_table(persons, result.school, read)

    counts = [
        rp.SourceCounts(
            source=w,
            rows_read=int(r.rows_read),
            rejected={str(k): int(v) for k, v in (r.rejected or {}).items()},
            warnings=len(r.warnings or []),
        )
        for w, r in read.items()
    ]
    report = rp.build_report(
        event=ev.name,
        key_version=ev.secure_zone.key_version,
        settings=settings,
        min_cell=ev.secure_zone.min_cell_count,
        sources=counts,
        result=result,
        persons=persons,
        postcodes=read["postcodes"].frame,
        cbs=read["cbs"].frame,
        persons_not_needed=not_needed,
    )

    say("writing outputs")
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet_sha = write_parquet(table, out_dir / "analysis.parquet")
    manifest = {
        "table": "analysis",
        "rows": len(table),
        "columns": _column_types(table),
        "sources": {
            w: {"object": s["object"], "sha256": s["sha256"], "rows_read": read[w].rows_read}
            for w, s in sorted(sources.items())
        },
        "key_version": ev.secure_zone.key_version,
        "code_version": CODE_VERSION,
        "settings": dataclasses.asdict(settings),
        "analysis_sha256": parquet_sha,
        "link": report.as_dict(),
    }
    _write_text(
        out_dir / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True, default=str)
    )
    _write_text(out_dir / "report.md", rp.to_markdown(report))
    _write_text(out_dir / "report.html", rp.to_html(report))
    return {"rows": len(table), "parquet_sha256": parquet_sha, "report": report.as_dict()}


def check_link_rate(report: Mapping[str, Any], min_rate: float) -> None:
    """Stop (LinkRateError) when the linked share of pupils is below `min_rate`.

    The sentence gives the rate, the main reason records stayed unlinked (from the
    report, counts shown as the report shows them) and the setting to change.
    """
    r = _report(report)
    rate = r.link_rate
    if rate is None or rate >= min_rate:
        return
    main = r.main_unlinked_reason()
    why = (
        f"most unlinked school records ({rp.cell(main[1], r.min_cell)}) stayed unlinked "
        f"because {rp.REASON_TEXT[main[0]]}"
        if main
        else "no school record was unlinked, so pupils were lost elsewhere"
    )
    if r.probabilistic.training == lk.TRAINED_BY_EM:
        why += " (records without a person number were linked by a model trained without labels)"
    raise LinkRateError(
        f"Only {100 * rate:.1f}% of the {rp.cell(r.school_pupils, r.min_cell)} pupils in the "
        f"school data linked to a register person, below secure_zone.min_link_rate "
        f"{min_rate:g}: {why}; nothing was published: check that the register and school "
        "extracts cover the same municipality and years, or lower secure_zone.min_link_rate "
        "in event.yaml."
    )


def _report(doc: Mapping[str, Any]) -> rp.LinkReport:
    """The LinkReport of its as_dict() form (as stored in result.json / the manifest)."""
    fields = {f.name for f in dataclasses.fields(rp.LinkReport)}
    r = rp.LinkReport(**{k: v for k, v in doc.items() if k in fields})
    r.exact = lk.ExactStats(**r.exact) if isinstance(r.exact, dict) else r.exact
    if isinstance(r.probabilistic, dict):
        r.probabilistic = lk.ProbabilisticStats(**r.probabilistic)
    return r


def withdraw(event_dir: EventDir, store: ObjectStore, audit: AuditLog) -> None:
    """Remove the `_COMPLETE` of an earlier linked set: it no longer stands for the sources."""
    key = f"{linked_prefix(event_dir)}/_COMPLETE"
    if store.exists(SECURE, key):
        done = store.stat(SECURE, key)
        store.remove(SECURE, key)
        audit.record("withdraw", SECURE, key, done.sha256, done.size)


def gate(
    event_dir: EventDir, store: ObjectStore, report: Mapping[str, Any], audit: AuditLog
) -> None:
    """The link-rate check before publishing; a failing link withdraws the older set."""
    try:
        check_link_rate(report, event_dir.event.secure_zone.min_link_rate)
    except LinkRateError:
        withdraw(event_dir, store, audit)
        raise


def outputs_present(out_dir: Path, parquet_sha: str) -> bool:
    """True if a cached output directory is whole and its Parquet is the one recorded."""
    if not all((out_dir / f).is_file() for f in OUTPUT_FILES):
        return False
    return sha256_file(out_dir / "analysis.parquet") == parquet_sha


def publish_outputs(
    event_dir: EventDir, store: ObjectStore, out_dir: Path, audit: AuditLog
) -> dict[str, Any]:
    """Publish the four outputs under secure/<event>/linked/ (`_COMPLETE` last); audit each."""
    prefix = linked_prefix(event_dir)
    manifest = json.loads((out_dir / "manifest.json").read_text(encoding="utf-8"))
    extra = {"stage": "link", "rows": manifest["rows"], "key_version": manifest["key_version"]}
    files = {name: out_dir / name for name in OUTPUT_FILES}
    written = store.publish(SECURE, prefix, files, extra)
    for name, info in sorted(written["files"].items()):
        audit.record("write", SECURE, f"{prefix}/{name}", info["sha256"], info["size"])
    done = store.stat(SECURE, f"{prefix}/_COMPLETE")
    audit.record("write", SECURE, f"{prefix}/_COMPLETE", done.sha256, done.size)
    return written


def _cache_dir(event_dir: EventDir, key: str) -> Path:
    return secure_dir(event_dir) / "link" / key[:32]


def _prune(event_dir: EventDir, keep: Path) -> None:
    """Keep only the current cached output: old linked tables are real rows too."""
    parent = keep.parent
    for child in parent.iterdir() if parent.exists() else []:
        if child != keep and child.is_dir():
            shutil.rmtree(child, ignore_errors=True)


def run_link(
    event_dir: EventDir,
    store: ObjectStore,
    *,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    actor: str = "",
) -> LinkOutcome:
    """The whole link stage without Prefect (tests, the CLI fallback, benchmarks)."""
    say = _say(progress)
    ev = event_dir.event
    audit = AuditLog(store, ev.name, actor=actor)
    # Fail on a missing key before touching any data.
    fingerprint = key_fingerprint(load_key(ev.secure_zone, event_dir.root, environ))
    say("fetching sources")
    ensure_sources(event_dir, store)
    sources = fetch_sources(event_dir, store, audit)
    ck = cache_key(sources, ev.secure_zone.key_version, fingerprint, _settings_doc(event_dir))
    out_dir = _cache_dir(event_dir, ck)
    stamp = out_dir / "result.json"
    cached = stamp.is_file()
    if cached:
        result = json.loads(stamp.read_text(encoding="utf-8"))
        cached = outputs_present(out_dir, result["parquet_sha256"])
    if not cached:
        result = compute_link(event_dir, sources, out_dir, environ=environ, progress=say)
        _write_text(stamp, json.dumps(result, sort_keys=True, default=str))
    _prune(event_dir, out_dir)
    gate(event_dir, store, result["report"], audit)
    say("publishing")
    publish_outputs(event_dir, store, out_dir, audit)
    return LinkOutcome(
        linked_prefix(event_dir), result["rows"], result["parquet_sha256"], result["report"], cached
    )


def _settings_doc(event_dir: EventDir) -> dict[str, Any]:
    return {
        **dataclasses.asdict(link_settings(event_dir)),
        "min_cell": event_dir.event.secure_zone.min_cell_count,
        "minimise_margin_years": event_dir.event.secure_zone.minimise_margin_years,
        "municipality": event_dir.event.municipality,
        "year": event_dir.event.data_year,
        # the cached files live in this event's workdir: never share them across events
        "event": event_dir.event.name,
        "workdir": str(event_dir.workdir),
    }


# -- Prefect ----------------------------------------------------------------------------


def _prefect_link_flow():
    """Build the Prefect flow lazily, so importing this module does not import Prefect."""
    from prefect import flow, get_run_logger, task
    from prefect.artifacts import create_markdown_artifact
    from prefect.cache_policies import NO_CACHE

    @task(name="fetch-sources", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
    def fetch_task(event_dir: EventDir, store: ObjectStore, audit: AuditLog) -> dict:
        _say(None)("fetching sources")
        ensure_sources(event_dir, store)
        return fetch_sources(event_dir, store, audit)

    def _cache_key_fn(_ctx: Any, params: dict[str, Any]) -> str:
        return params["cache_key"]

    @task(name="link", cache_key_fn=_cache_key_fn, persist_result=True)
    def link_task(event_dir: EventDir, sources: dict, cache_key: str) -> dict:
        out_dir = _cache_dir(event_dir, cache_key)
        result = compute_link(event_dir, sources, out_dir)
        return {**result, "out_dir": str(out_dir)}

    @task(name="publish", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
    def publish_task(event_dir: EventDir, store: ObjectStore, out_dir: str, audit: AuditLog):
        _say(None)("publishing")
        return publish_outputs(event_dir, store, Path(out_dir), audit)

    @flow(name="link", log_prints=False)
    def link_flow(event_path: str) -> dict:
        """Link the event's extracts into the analysis table in the secure bucket."""
        logger = get_run_logger()
        event_dir = load_event(Path(event_path))
        ev = event_dir.event
        store = ObjectStore.for_workdir(event_dir.workdir)
        audit = AuditLog(store, ev.name)
        fingerprint = key_fingerprint(load_key(ev.secure_zone, event_dir.root))
        sources = fetch_task(event_dir, store, audit)
        ck = cache_key(sources, ev.secure_zone.key_version, fingerprint, _settings_doc(event_dir))
        state = link_task(event_dir, sources, ck, return_state=True)
        result = state.result()
        cached = state.name == "Cached"
        if not outputs_present(Path(result["out_dir"]), result["parquet_sha256"]):
            # The cached record outlived its files (workdir cleaned): compute again.
            result = link_task.with_options(refresh_cache=True)(event_dir, sources, ck)
            cached = False
        _prune(event_dir, Path(result["out_dir"]))
        gate(event_dir, store, result["report"], audit)
        publish_task(event_dir, store, result["out_dir"], audit)
        outcome = LinkOutcome(
            linked_prefix(event_dir), result["rows"], result["parquet_sha256"], result["report"]
        )
        md = (Path(result["out_dir"]) / "report.md").read_text(encoding="utf-8")
        create_markdown_artifact(
            key=f"{ev.name}-linkage-report", markdown=md, description="Linkage report (counts)"
        )
        s = outcome.summary()
        logger.info(
            "linked %d pupils; exact rate %.4f, probabilistic rate %s; outputs in secure/%s",
            outcome.rows,
            s["exact_rate"] or 0.0,
            "n/a" if s["probabilistic_rate"] is None else f"{s['probabilistic_rate']:.4f}",
            outcome.prefix,
        )
        return {**s, "cached": cached}

    return link_flow


def __getattr__(name: str) -> Any:
    if name == "link_flow":
        flow = _prefect_link_flow()
        globals()["link_flow"] = flow
        return flow
    raise AttributeError(name)
