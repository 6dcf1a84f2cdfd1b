"""Ingest: copy the event's four source extracts into the secure bucket.

Keys are `secure/<event>/sources/<file name>`, completed by a `_COMPLETE` manifest like
every published set. Re-running uploads only files whose sha256 changed, so a second run
with the same files uploads nothing. Logs carry names, sizes and hashes, never contents.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.event import EventDir, Sources, load_event
from flows.objectstore import ObjectStore, sha256_file
from flows.pipeline.audit import AuditLog

BUCKET = "secure"
log = logging.getLogger("hackgap.ingest")


def sources_prefix(event_name: str) -> str:
    return f"{event_name}/sources"


def ingest_sources(event_dir: EventDir | Path, store: ObjectStore) -> list[dict[str, Any]]:
    """Upload the four source files of an event; skip files already stored unchanged.

    Returns one record per source: source, key, size, sha256, uploaded (bool).
    """
    if not isinstance(event_dir, EventDir):
        event_dir = load_event(Path(event_dir))
    prefix = sources_prefix(event_dir.event.name)
    store.ensure_buckets()
    records: list[dict[str, Any]] = []
    for which in Sources.model_fields:
        path = event_dir.source_path(which)
        key = f"{prefix}/{path.name}"
        digest = sha256_file(path)
        stored = store.stat(BUCKET, key).sha256 if store.exists(BUCKET, key) else None
        records.append(
            {
                "source": which,
                "key": key,
                "size": path.stat().st_size,
                "sha256": digest,
                "uploaded": stored != digest,
            }
        )
    changed = [r for r in records if r["uploaded"]]
    if not changed and store.is_complete(BUCKET, prefix):
        log.info("ingest %s: all %d sources already stored", prefix, len(records))
        return records
    # Readers ignore the prefix while it has no _COMPLETE, so retract it before changing files.
    store.remove(BUCKET, f"{prefix}/_COMPLETE")
    audit = AuditLog(store, event_dir.event.name, stage="ingest")
    for record in changed:
        store.put_file(BUCKET, record["key"], event_dir.source_path(record["source"]))
        audit.record("write", BUCKET, record["key"], record["sha256"], record["size"])
        log.info(
            "ingest %s: uploaded %s (%d bytes, sha256 %s)",
            prefix,
            record["key"],
            record["size"],
            record["sha256"],
        )
    wanted = {r["key"] for r in records}
    for key in store.list(BUCKET, f"{prefix}/"):
        if key not in wanted and not key.endswith("/_COMPLETE"):
            store.remove(BUCKET, key)  # a source renamed in event.yaml leaves its old copy
    store.mark_complete(BUCKET, prefix, {"event": event_dir.event.name, "stage": "ingest"})
    return records


def _retry_unless_user_error(task: Any, task_run: Any, state: Any) -> bool:
    """Retry network trouble; a user error (bad event, missing file) will not fix itself."""
    exc = getattr(state, "data", None)
    if not isinstance(exc, BaseException):
        return True
    user_error = getattr(type(exc), "hackgap_user_error", False)
    return not user_error or getattr(exc, "transient", False)


@task(
    name="upload-sources",
    retries=2,
    retry_delay_seconds=3,
    retry_condition_fn=_retry_unless_user_error,
    cache_policy=NO_CACHE,
)
def upload_sources(event_path: str) -> list[dict[str, Any]]:
    event_dir = load_event(Path(event_path))
    return ingest_sources(event_dir, ObjectStore.for_workdir(event_dir.workdir))


@flow(name="ingest", log_prints=False)
def ingest_flow(event_path: str = ".") -> list[dict[str, Any]]:
    """Prefect flow: put the event's source extracts into the secure bucket."""
    logger = get_run_logger()
    records = upload_sources(event_path)
    for r in records:
        state = "uploaded" if r["uploaded"] else "unchanged"
        logger.info("%s: %s, %d bytes, sha256 %s", r["key"], state, r["size"], r["sha256"])
    return records
