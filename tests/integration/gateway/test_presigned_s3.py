"""Presigned URLs against a real SeaweedFS: they work, they expire, they cannot be altered."""

from __future__ import annotations

import time

import httpx
import pytest

from services.gateway.presign import Presigner
from shared.adapters.storage import ObjectStore
from shared.settings import S3Settings

pytestmark = pytest.mark.integration


def test_presigned_urls_work_then_expire(s3_settings: S3Settings, object_store: ObjectStore) -> None:
    object_store.put("thumbs/t1.jpg", b"\xff\xd8thumb", "image/jpeg")
    p = Presigner(s3_settings)
    url = p.url("thumbs/t1.jpg", ttl_s=2)
    r = httpx.get(url)
    assert r.status_code == 200 and r.content == b"\xff\xd8thumb"
    tampered = url.replace("thumbs/t1.jpg", "thumbs/t2.jpg")
    assert httpx.get(tampered).status_code == 403
    longer = url.replace("X-Amz-Expires=2", "X-Amz-Expires=3600")
    assert httpx.get(longer).status_code == 403
    time.sleep(3.2)
    assert httpx.get(url).status_code == 403
