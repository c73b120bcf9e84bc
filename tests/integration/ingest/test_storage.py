"""The S3 adapter against the real SeaweedFS of the session: signatures are checked, presigned URLs work."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from minio.error import S3Error
from pydantic import SecretStr

from blindspot.stack import seaweed
from shared.adapters.storage import ObjectStore
from shared.errors import DependencyUnavailable
from shared.settings import S3Settings

pytestmark = pytest.mark.integration


def test_put_get_stat_presign(object_store: ObjectStore) -> None:
    object_store.put("t/a.bin", b"\x00\x01payload", "application/octet-stream")
    assert object_store.get("t/a.bin") == b"\x00\x01payload"
    info = object_store.stat("t/a.bin")
    assert info is not None and info.size == 9 and info.content_type == "application/octet-stream"
    assert object_store.stat("t/missing.bin") is None
    assert httpx.get(object_store.presign_get("t/a.bin", 60)).content == b"\x00\x01payload"
    assert httpx.put(object_store.presign_put("t/b.bin", 60), content=b"up").status_code == 200
    assert object_store.get("t/b.bin") == b"up"
    object_store.delete("t/b.bin")
    assert not object_store.exists("t/b.bin")
    object_store.ensure_bucket()  # idempotent
    object_store.ping()


def test_signatures_are_checked(s3_settings: S3Settings, object_store: ObjectStore) -> None:
    object_store.put("t/secret.bin", b"x")
    wrong = ObjectStore(s3_settings.model_copy(update={"secret_key": SecretStr("not-the-secret")}))
    with pytest.raises(S3Error) as err:
        wrong.put("t/evil.bin", b"y")
    assert err.value.code == "SignatureDoesNotMatch"
    anonymous = httpx.get(f"http://{s3_settings.endpoint}/{s3_settings.bucket}/t/secret.bin")
    assert anonymous.status_code == 403


def test_ping_reports_a_missing_bucket_and_a_dead_server(s3_settings: S3Settings) -> None:
    with pytest.raises(DependencyUnavailable, match="does not exist"):
        ObjectStore(s3_settings.model_copy(update={"bucket": "no-such-bucket"})).ping()


def test_launcher_start_and_stop(tmp_path: Path) -> None:
    handle = seaweed.start(tmp_path, seaweed.free_port(), "launcher", "launcher-secret")
    try:
        store = ObjectStore(
            S3Settings(
                endpoint=handle.endpoint,
                access_key="launcher",
                secret_key=SecretStr("launcher-secret"),
                bucket="launcher-test",
            )
        )
        store.ensure_bucket()
        store.put("k", b"v")
        assert handle.alive() and (tmp_path / "s3-identities.json").stat().st_mode & 0o077 == 0
    finally:
        handle.stop()
    assert not handle.alive()
    dead = ObjectStore(S3Settings(endpoint=handle.endpoint, access_key="x", secret_key=SecretStr("y" * 8)))
    with pytest.raises(DependencyUnavailable):
        dead.ping()
    handle.stop()  # twice is fine
