"""The object store: the only module that talks S3, always through the `minio` SDK.

The same code path serves the embedded server (moto or MinIO on loopback, started by
`flows.services`) and a production MinIO. Everything that belongs together is published
under one prefix with a `_COMPLETE` manifest written last, so readers never see half a set.
Error messages name buckets and keys, never object contents.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error

from flows.digest import sha256_file

BUCKETS = ("secure", "open", "submissions", "audit")
COMPLETE = "_COMPLETE"
SHA_META = "sha256"
_RESERVED_MANIFEST_KEYS = ("bucket", "prefix", "created", "files")
_CHUNK = 1024 * 1024


class StoreError(Exception):
    """The object store cannot do what was asked, for a reason the organiser can fix."""

    hackgap_user_error = True

    def __init__(self, message: str, *, transient: bool = False, missing: bool = False):
        super().__init__(message)
        self.transient = transient  # retrying later may help (server down or restarting)
        self.missing = missing  # the bucket or object does not exist


@dataclass(frozen=True)
class ObjectInfo:
    """What the store knows about one object, without its contents."""

    bucket: str
    key: str
    size: int
    sha256: str | None
    modified: dt.datetime | None


def _http_client() -> urllib3.PoolManager:
    # minio's default client retries for minutes; a dead endpoint must fail in seconds.
    return urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=3.0, read=120.0),
        maxsize=10,
        retries=urllib3.Retry(
            total=2,
            connect=1,
            read=1,
            backoff_factor=0.2,
            status_forcelist=[500, 502, 503, 504],
        ),
    )


class ObjectStore:
    """An S3-compatible store (embedded moto/MinIO or production MinIO) for hackgap's buckets."""

    def __init__(
        self, endpoint: str, access_key: str, secret_key: str, *, region: str = "us-east-1"
    ):
        if "://" not in endpoint:
            endpoint = f"http://{endpoint}"
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise StoreError(
                f"The object store endpoint '{endpoint}' is not a valid URL; "
                "set HACKGAP_S3_ENDPOINT to e.g. http://127.0.0.1:9000."
            )
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self._client = Minio(
            parts.netloc,
            access_key=access_key,
            secret_key=secret_key,
            secure=parts.scheme == "https",
            region=region,  # a fixed region skips minio's GetBucketLocation round trip
            http_client=_http_client(),
        )

    def __repr__(self) -> str:
        return f"ObjectStore({self.endpoint!r})"

    # -- construction -------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ObjectStore:
        """Connect with HACKGAP_S3_ENDPOINT / HACKGAP_S3_ACCESS_KEY / HACKGAP_S3_SECRET_KEY."""
        env = os.environ if environ is None else environ
        endpoint = env.get("HACKGAP_S3_ENDPOINT")
        if not endpoint:
            raise StoreError(
                "No object store is configured: HACKGAP_S3_ENDPOINT is not set; start one with "
                "`hackgap services up EVENT_DIR` or set HACKGAP_S3_ENDPOINT, "
                "HACKGAP_S3_ACCESS_KEY and HACKGAP_S3_SECRET_KEY."
            )
        access, secret = env.get("HACKGAP_S3_ACCESS_KEY"), env.get("HACKGAP_S3_SECRET_KEY")
        if not access or not secret:
            raise StoreError(
                f"HACKGAP_S3_ENDPOINT is set to {endpoint} but HACKGAP_S3_ACCESS_KEY or "
                "HACKGAP_S3_SECRET_KEY is missing; set both."
            )
        return cls(endpoint, access, secret)

    @classmethod
    def for_workdir(cls, workdir: Path) -> ObjectStore:
        """Connect to the object store `hackgap services up` runs for this workdir, else env."""
        from flows import services  # services imports this module; import late

        state = services.status(Path(workdir))
        if state is not None and state.s3 is not None:
            return cls(state.s3.endpoint, state.s3.access_key, state.s3.secret_key)
        return cls.from_env()

    # -- error translation --------------------------------------------------------------

    @contextmanager
    def _guard(self, bucket: str, key: str | None = None) -> Iterator[None]:
        where = f"{bucket}/{key}" if key else f"bucket '{bucket}'"
        try:
            yield
        except S3Error as exc:
            raise self._s3_error(exc, bucket, where) from None
        except (urllib3.exceptions.HTTPError, ConnectionError):
            raise StoreError(
                f"The object store at {self.endpoint} is not reachable; start it with "
                "`hackgap services up EVENT_DIR` or set HACKGAP_S3_ENDPOINT.",
                transient=True,
            ) from None
        except MinioException as exc:
            raise StoreError(
                f"The object store at {self.endpoint} failed on {where} "
                f"({type(exc).__name__}); see the object store log and try again.",
                transient=True,
            ) from None

    def _s3_error(self, exc: S3Error, bucket: str, where: str) -> StoreError:
        code = exc.code or ""
        if code == "NoSuchBucket":
            return StoreError(
                f"The bucket '{bucket}' does not exist at {self.endpoint}; create the buckets "
                "with `hackgap services up EVENT_DIR` (or ObjectStore.ensure_buckets()).",
                missing=True,
            )
        if code in ("NoSuchKey", "NoSuchObject", "ResourceNotFound"):
            return StoreError(
                f"{where} does not exist at {self.endpoint}; run the stage that writes it first.",
                missing=True,
            )
        if code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StoreError(
                f"The object store at {self.endpoint} refused access to {where} ({code}); "
                "check HACKGAP_S3_ACCESS_KEY and HACKGAP_S3_SECRET_KEY."
            )
        return StoreError(
            f"The object store at {self.endpoint} failed on {where} ({code or 'error'}); "
            "see the object store log and try again.",
            transient=code in ("InternalError", "SlowDown", "ServiceUnavailable"),
        )

    # -- buckets ------------------------------------------------------------------------

    def ping(self) -> None:
        """Raise StoreError unless the endpoint answers an authenticated request."""
        with self._guard("*"):
            self._client.list_buckets()

    def buckets(self) -> list[str]:
        """Names of every bucket on the server (hackgap's and any others)."""
        with self._guard("*"):
            return sorted(b.name for b in self._client.list_buckets())

    def ensure_bucket(self, bucket: str) -> None:
        """Create one bucket unless it exists; safe to call concurrently."""
        with self._guard(bucket):
            if self._client.bucket_exists(bucket):
                return
            try:
                self._client.make_bucket(bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def ensure_buckets(self) -> None:
        """Create hackgap's four buckets; idempotent."""
        for bucket in BUCKETS:
            self.ensure_bucket(bucket)

    # -- objects ------------------------------------------------------------------------

    def put_bytes(self, bucket: str, key: str, data: bytes) -> str:
        """Store bytes under key; return their sha256 (also kept as object metadata)."""
        digest = hashlib.sha256(data).hexdigest()
        with self._guard(bucket, key):
            self._client.put_object(
                bucket, key, io.BytesIO(data), len(data), metadata={SHA_META: digest}
            )
        return digest

    def put_file(self, bucket: str, key: str, path: Path) -> str:
        """Upload a file under key; return its sha256 (also kept as object metadata)."""
        path = Path(path)
        digest = sha256_file(path)
        with self._guard(bucket, key):
            self._client.fput_object(bucket, key, str(path), metadata={SHA_META: digest})
        return digest

    def get_bytes(self, bucket: str, key: str) -> bytes:
        """The whole object in memory; for small objects (manifests, reports)."""
        with self._guard(bucket, key):
            response = self._client.get_object(bucket, key)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def get_file(self, bucket: str, key: str, dest: Path) -> Path:
        """Download to dest via a temporary name, so dest is either whole or absent."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with self._guard(bucket, key), os.fdopen(fd, "wb") as fh:
                response = self._client.get_object(bucket, key)
                try:
                    for chunk in response.stream(_CHUNK):
                        fh.write(chunk)
                finally:
                    response.close()
                    response.release_conn()
            tmp.replace(dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return dest

    def exists(self, bucket: str, key: str) -> bool:
        """True if the object exists; False also when the bucket is missing."""
        try:
            self.stat(bucket, key)
        except StoreError as exc:
            if not exc.missing:
                raise
            return False
        return True

    def stat(self, bucket: str, key: str) -> ObjectInfo:
        """Size, sha256 (when hackgap wrote it) and modification time of one object."""
        with self._guard(bucket, key):
            obj = self._client.stat_object(bucket, key)
        meta = {k.lower(): v for k, v in (obj.metadata or {}).items()}
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(obj.size or 0),
            sha256=meta.get(f"x-amz-meta-{SHA_META}"),
            modified=obj.last_modified,
        )

    def list(self, bucket: str, prefix: str = "") -> list[str]:
        """Every key under prefix (recursive), sorted."""
        with self._guard(bucket):
            objects = self._client.list_objects(bucket, prefix=prefix or None, recursive=True)
            return sorted(obj.object_name for obj in objects if not obj.is_dir)

    def remove(self, bucket: str, key: str) -> None:
        """Delete one object; deleting a missing object is not an error (S3 semantics)."""
        with self._guard(bucket, key):
            self._client.remove_object(bucket, key)

    def clear(self, bucket: str, prefix: str = "") -> int:
        """Delete every object under prefix; return how many were deleted."""
        keys = self.list(bucket, prefix)
        if not keys:
            return 0
        with self._guard(bucket):
            errors = list(self._client.remove_objects(bucket, (DeleteObject(k) for k in keys)))
        if errors:
            raise StoreError(
                f"Could not delete {len(errors)} objects under {bucket}/{prefix}; "
                "see the object store log and try again."
            )
        return len(keys)

    # -- publishing sets of objects -----------------------------------------------------

    def publish(
        self,
        bucket: str,
        prefix: str,
        files: dict[str, Path | bytes],
        manifest: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Upload a set of objects under prefix, then write `<prefix>/_COMPLETE` last.

        Readers check `is_complete` first, so they see the old set, nothing, or the whole
        new set, never a mix. Objects left under prefix from an earlier publish are removed.
        Returns the manifest written (files with size and sha256, created, plus `manifest`).
        """
        prefix = prefix.strip("/")
        if not files:
            raise ValueError("publish needs at least one file")
        clash = [k for k in _RESERVED_MANIFEST_KEYS if k in (manifest or {})]
        if clash:
            raise ValueError(f"manifest keys {clash} are set by publish itself; rename them")
        self.remove(bucket, f"{prefix}/{COMPLETE}")
        entries: dict[str, dict[str, Any]] = {}
        for name, content in sorted(files.items()):
            key = f"{prefix}/{name}"
            if isinstance(content, bytes | bytearray):
                digest, size = self.put_bytes(bucket, key, bytes(content)), len(content)
            else:
                digest, size = (
                    self.put_file(bucket, key, Path(content)),
                    Path(content).stat().st_size,
                )
            entries[name] = {"size": size, "sha256": digest}
        wanted = {f"{prefix}/{name}" for name in entries}
        for key in self.list(bucket, f"{prefix}/"):
            if key not in wanted:
                self.remove(bucket, key)
        return self._write_complete(bucket, prefix, entries, manifest or {})

    def mark_complete(
        self, bucket: str, prefix: str, manifest: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write `_COMPLETE` for objects already uploaded under prefix (e.g. incrementally)."""
        prefix = prefix.strip("/")
        entries: dict[str, dict[str, Any]] = {}
        for key in self.list(bucket, f"{prefix}/"):
            if key == f"{prefix}/{COMPLETE}":
                continue
            info = self.stat(bucket, key)
            entries[key[len(prefix) + 1 :]] = {"size": info.size, "sha256": info.sha256}
        return self._write_complete(bucket, prefix, entries, manifest or {})

    def _write_complete(
        self, bucket: str, prefix: str, entries: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Any]:
        doc = {
            **extra,
            "bucket": bucket,
            "prefix": prefix,
            "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "files": entries,
        }
        body = json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8")
        self.put_bytes(bucket, f"{prefix}/{COMPLETE}", body)
        return doc

    def is_complete(self, bucket: str, prefix: str) -> bool:
        """True once a publish under prefix has finished (its `_COMPLETE` exists)."""
        return self.exists(bucket, f"{prefix.strip('/')}/{COMPLETE}")

    def read_manifest(self, bucket: str, prefix: str) -> dict[str, Any] | None:
        """The `_COMPLETE` manifest under prefix, or None while the set is incomplete."""
        key = f"{prefix.strip('/')}/{COMPLETE}"
        if not self.exists(bucket, key):
            return None
        return json.loads(self.get_bytes(bucket, key))
