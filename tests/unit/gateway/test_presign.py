"""The gateway's presigner produces exactly the URL the minio SDK signs for the same instant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from minio import Minio

from services.gateway.presign import Presigner
from shared.settings import S3Settings


@pytest.mark.parametrize("key", ["thumbs/1/2.jpg", "images/a b/ü+x=1&y.png", "k"])
@pytest.mark.parametrize("ttl", [60, 900])
def test_same_url_as_minio(key: str, ttl: int) -> None:
    s = S3Settings(endpoint="127.0.0.1:8333", public_endpoint="files.example:9000", region="eu-west-1")
    now = datetime(2026, 11, 25, 19, 30, 5, tzinfo=UTC)
    ours = Presigner(s).url(key, ttl, now=now)
    client = Minio("files.example:9000", access_key=s.access_key, secret_key=s.secret_key.get_secret_value(),
                   secure=False, region="eu-west-1")  # fmt: skip
    theirs = client.presigned_get_object(s.bucket, key, expires=timedelta(seconds=ttl), request_date=now)
    assert ours == theirs
    assert f"X-Amz-Expires={ttl}" in ours


def test_signing_key_follows_the_day() -> None:
    p = Presigner(S3Settings())
    a = p.url("x", 60, now=datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC))
    b = p.url("x", 60, now=datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC))
    assert "20261125" in a and "20261126" in b
    assert a.split("Signature=")[1] != b.split("Signature=")[1]
