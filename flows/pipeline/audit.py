"""Append-only audit log of every read and write in the secure zone.

Each access becomes its own small JSON object in the audit bucket
(`audit/<event>/<YYYY-MM-DD>/<UTC timestamp>-<uuid>.json`), so entries are never
rewritten and concurrent writers never collide. An entry names who, when, what
object and its SHA-256 — never any content.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

AUDIT_BUCKET = "audit"


class _Store(Protocol):
    def put_bytes(self, bucket: str, key: str, data: bytes, *args: Any, **kwargs: Any) -> Any: ...
    def get_bytes(self, bucket: str, key: str) -> bytes: ...
    def list(self, bucket: str, prefix: str = "") -> list[str]: ...


def default_actor() -> str:
    """user@host of the process doing the access."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass
class AuditLog:
    """Writes one audit entry per secure-zone access for one event."""

    store: _Store
    event: str
    actor: str = ""
    stage: str = "link"

    def record(
        self, action: str, bucket: str, key: str, sha256: str | None, size: int | None = None
    ) -> dict:
        """Append one entry: `action` is read or write; returns the entry written."""
        now = dt.datetime.now(dt.UTC)
        entry = {
            "who": self.actor or default_actor(),
            "when": now.isoformat(timespec="microseconds"),
            "stage": self.stage,
            "action": action,
            "object": f"{bucket}/{key}",
            "sha256": sha256,
            "size": size,
        }
        name = f"{self.event}/{now:%Y-%m-%d}/{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex}.json"
        line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
        self.store.put_bytes(AUDIT_BUCKET, name, line)
        return entry


def read_audit(store: _Store, event: str) -> list[dict]:
    """All audit entries of an event, oldest first."""
    keys = sorted(store.list(AUDIT_BUCKET, f"{event}/"))
    return [json.loads(store.get_bytes(AUDIT_BUCKET, k)) for k in keys]
