"""ObjectStore against the real embedded S3 server (moto server mode, minio SDK)."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest

from flows.objectstore import BUCKETS, ObjectStore, StoreError

pytestmark = pytest.mark.services


def test_bytes_round_trip_returns_sha256_and_keeps_it_as_metadata(store: ObjectStore) -> None:
    data = b"bsn;naam\n" * 100
    digest = store.put_bytes("secure", "ev/sources/a.csv", data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.get_bytes("secure", "ev/sources/a.csv") == data
    info = store.stat("secure", "ev/sources/a.csv")
    assert (info.size, info.sha256) == (len(data), digest)


def test_file_round_trip_downloads_whole_file_without_leftovers(store, tmp_path) -> None:
    src = tmp_path / "in.bin"
    src.write_bytes(bytes(range(256)) * 5000)  # 1.28 MB, streamed in chunks
    digest = store.put_file("open", "twins/ev/v1/twin.parquet", src)
    assert digest == hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "twin.parquet"
    assert store.get_file("open", "twins/ev/v1/twin.parquet", dest) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["twin.parquet"]


def test_failed_download_leaves_no_partial_file(store, tmp_path) -> None:
    dest = tmp_path / "missing.bin"
    with pytest.raises(StoreError, match=r"open/nope\.bin does not exist"):
        store.get_file("open", "nope.bin", dest)
    assert list(tmp_path.iterdir()) == []


def test_list_exists_remove_and_clear(store: ObjectStore) -> None:
    for key in ("ev/a", "ev/b/c", "other/d"):
        store.put_bytes("audit", key, b"x")
    assert store.list("audit", "ev/") == ["ev/a", "ev/b/c"]
    assert store.list("audit") == ["ev/a", "ev/b/c", "other/d"]
    assert store.exists("audit", "ev/a") and not store.exists("audit", "ev/zz")
    store.remove("audit", "ev/a")
    assert not store.exists("audit", "ev/a")
    assert store.clear("audit", "ev/") == 1
    assert store.list("audit") == ["other/d"]


def test_ensure_buckets_is_idempotent(store: ObjectStore) -> None:
    store.ensure_buckets()
    store.ensure_buckets()
    assert set(BUCKETS) <= set(store.buckets())


def test_missing_bucket_is_a_sentence_and_exists_is_false(store: ObjectStore) -> None:
    assert not store.exists("no-such-bucket", "k")
    with pytest.raises(StoreError, match=r"The bucket 'no-such-bucket' does not exist .*; create"):
        store.put_bytes("no-such-bucket", "k", b"1")


def test_publish_writes_complete_last_with_manifest(store, tmp_path, monkeypatch) -> None:
    (tmp_path / "report.md").write_text("# counts only\n", encoding="utf-8")
    prefix = "ev/linked"
    written: list[str] = []
    for name in ("put_bytes", "put_file"):
        real = getattr(store, name)
        monkeypatch.setattr(
            store, name, lambda b, k, d, _real=real: (written.append(k), _real(b, k, d))[1]
        )
    assert not store.is_complete("secure", prefix)
    assert store.read_manifest("secure", prefix) is None
    doc = store.publish(
        "secure",
        prefix,
        {"analysis.parquet": b"PAR1", "report.md": tmp_path / "report.md"},
        {"rows": 4, "key_version": "v1"},
    )
    assert store.is_complete("secure", prefix)
    stored = json.loads(store.get_bytes("secure", f"{prefix}/_COMPLETE"))
    assert stored == doc == store.read_manifest("secure", prefix)
    assert doc["rows"] == 4 and doc["key_version"] == "v1" and doc["created"]
    assert doc["files"]["analysis.parquet"] == {
        "size": 4,
        "sha256": hashlib.sha256(b"PAR1").hexdigest(),
    }
    assert doc["files"]["report.md"]["size"] == len("# counts only\n")
    assert written[-1] == f"{prefix}/_COMPLETE"
    assert sorted(written[:-1]) == [f"{prefix}/analysis.parquet", f"{prefix}/report.md"]


def test_republish_retracts_complete_and_drops_stale_objects(store, monkeypatch) -> None:
    store.publish("open", "twins/ev/v1", {"a.csv": b"1", "old.csv": b"2"}, {})
    seen_complete_during_upload = []
    real_put = store.put_bytes

    def spy(bucket: str, key: str, data: bytes) -> str:
        if not key.endswith("_COMPLETE"):
            seen_complete_during_upload.append(store.is_complete("open", "twins/ev/v1"))
        return real_put(bucket, key, data)

    monkeypatch.setattr(store, "put_bytes", spy)
    store.publish("open", "twins/ev/v1", {"a.csv": b"3"}, {})
    assert seen_complete_during_upload == [False]
    assert store.list("open", "twins/ev/v1/") == ["twins/ev/v1/_COMPLETE", "twins/ev/v1/a.csv"]
    assert store.get_bytes("open", "twins/ev/v1/a.csv") == b"3"


def test_publish_rejects_reserved_manifest_keys(store: ObjectStore) -> None:
    with pytest.raises(ValueError, match="files"):
        store.publish("open", "p", {"a": b"1"}, {"files": []})
    assert store.list("open") == []


def test_unreachable_endpoint_fails_fast_with_a_sentence() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    st = ObjectStore(f"http://127.0.0.1:{port}", "k", "s")
    with pytest.raises(StoreError) as err:
        st.put_bytes("secure", "k", b"secret row")
    assert str(err.value) == (
        f"The object store at http://127.0.0.1:{port} is not reachable; start it with "
        "`hackgap services up EVENT_DIR` or set HACKGAP_S3_ENDPOINT."
    )
    assert err.value.transient and err.value.hackgap_user_error
    assert "secret row" not in str(err.value)


def test_from_env_without_endpoint_is_a_sentence() -> None:
    with pytest.raises(StoreError, match="HACKGAP_S3_ENDPOINT is not set; start one with"):
        ObjectStore.from_env({})
    with pytest.raises(StoreError, match="HACKGAP_S3_SECRET_KEY is missing; set both"):
        ObjectStore.from_env({"HACKGAP_S3_ENDPOINT": "http://x:1", "HACKGAP_S3_ACCESS_KEY": "a"})
