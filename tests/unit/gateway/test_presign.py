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


def test_get_signs_at_the_window_start_and_stays_valid_half_the_ttl() -> None:
    p = Presigner(S3Settings(presign_ttl_s=900))
    now = datetime(2026, 11, 25, 19, 37, 41, tzinfo=UTC).timestamp()
    url = p.get("thumbs/7.jpg", now=now)
    start = datetime(2026, 11, 25, 19, 37, 30, tzinfo=UTC)  # windows of 450 s from the epoch
    assert url == p.url("thumbs/7.jpg", now=start)
    signed = start.timestamp()
    assert signed <= now and signed + 900 >= now + 450


def test_get_memoizes_within_a_window_and_re_signs_after() -> None:
    p = Presigner(S3Settings(presign_ttl_s=900))
    t = datetime(2026, 11, 25, 19, 30, 0, tzinfo=UTC).timestamp()
    first = p.get("a.jpg", now=t + 1)
    assert p.get("a.jpg", now=t + 449) is first
    later = p.get("a.jpg", now=t + 450)
    assert later != first and "X-Amz-Date=20261125T193730Z" in later


def test_get_cache_is_bounded() -> None:
    p = Presigner(S3Settings(), cache_size=10)
    for i in range(25):
        p.get(f"k{i}", now=1_000.0)
    assert len(p._cache) <= 10


def test_get_with_a_one_second_ttl_signs_now() -> None:
    p = Presigner(S3Settings(presign_ttl_s=1))
    t = datetime(2026, 11, 25, 19, 30, 7, tzinfo=UTC)
    assert p.get("a.jpg", now=t.timestamp()) == p.url("a.jpg", now=t)
