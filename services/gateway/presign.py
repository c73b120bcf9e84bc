"""Presigned S3 GET URLs (AWS Signature V4, query authentication), computed locally and fast.

A gallery page carries ~100 URLs (thumbnail + image per row). The minio SDK derives the signing key for
every URL (five HMACs plus URL parsing, ~0.1-0.4 ms each); here the signing key is derived once per day
and region, and a URL costs one SHA-256 and one HMAC. The output is byte-for-byte the URL minio would
produce for the same instant (tests/unit/gateway/test_presign.py checks this), so any S3 server
(SeaweedFS, MinIO, AWS) accepts it until ``X-Amz-Expires`` seconds after ``X-Amz-Date``.

``get()`` (what responses use) signs at the start of the current window of TTL/2 seconds and memoizes the
URL per key for that window: every URL it hands out stays valid at least TTL/2 seconds, a page's URLs cost
a dict lookup once seen, and a browser gets the same URL for an image across pages (its HTTP cache hits).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from datetime import UTC, datetime
from urllib.parse import quote

from shared.settings import S3Settings

# Characters S3 keys usually consist of, which ``quote(key, safe="/~")`` leaves as they are.
_PLAIN = re.compile(r"[A-Za-z0-9/_.~-]*")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class Presigner:
    def __init__(self, settings: S3Settings, cache_size: int = 100_000) -> None:
        self.host = settings.public_endpoint or settings.endpoint
        self.scheme = "https" if settings.secure else "http"
        self.bucket = settings.bucket
        self.region = settings.region
        self.access_key = settings.access_key
        self._secret = settings.secret_key.get_secret_value()
        self.ttl_s = settings.presign_ttl_s
        self._keys: dict[str, bytes] = {}
        self._credential = quote(self.access_key, safe="~")
        self._prefix = f"{self.scheme}://{self.host}"
        self._bucket_path = "/" + quote(self.bucket, safe="")
        self.window_s = self.ttl_s // 2  # 0 (TTL of 1 s): no window, every URL signed now
        self.cache_size = cache_size
        self._cache: dict[str, str] = {}
        self._cache_window = -1

    def _signing_key(self, day: str) -> bytes:
        key = self._keys.get(day)
        if key is None:
            k = _hmac(("AWS4" + self._secret).encode(), day)
            k = _hmac(k, self.region)
            k = _hmac(k, "s3")
            key = _hmac(k, "aws4_request")
            self._keys = {day: key}  # keep only the current day's key
        return key

    def url(self, key: str, ttl_s: int | None = None, now: datetime | None = None) -> str:
        """A GET URL for ``key`` valid ``ttl_s`` seconds from ``now`` (default: the S3 settings' TTL, the
        current time)."""
        now = now or datetime.now(UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        day = amz_date[:8]
        scope = f"{day}/{self.region}/s3/aws4_request"
        path = key if _PLAIN.fullmatch(key) else quote(key, safe="/~")
        uri = f"{self._bucket_path}/{path}"
        query = (
            "X-Amz-Algorithm=AWS4-HMAC-SHA256"
            f"&X-Amz-Credential={self._credential}%2F{quote(scope, safe='~')}"
            f"&X-Amz-Date={amz_date}"
            f"&X-Amz-Expires={ttl_s or self.ttl_s}"
            "&X-Amz-SignedHeaders=host"
        )
        canonical = f"GET\n{uri}\n{query}\nhost:{self.host}\n\nhost\nUNSIGNED-PAYLOAD"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        sig = hmac.new(self._signing_key(day), to_sign.encode(), hashlib.sha256).hexdigest()
        return f"{self._prefix}{uri}?{query}&X-Amz-Signature={sig}"

    def get(self, key: str, now: float | None = None) -> str:
        """A GET URL for ``key`` valid at least TTL/2 seconds from ``now`` (epoch seconds, default the
        current time): signed at the start of ``now``'s window of TTL/2 seconds, memoized for the window."""
        t = time.time() if now is None else now
        if not self.window_s:
            return self.url(key, now=datetime.fromtimestamp(t, UTC))
        window = int(t // self.window_s)
        if window != self._cache_window:
            self._cache = {}
            self._cache_window = window
        url = self._cache.get(key)
        if url is None:
            if len(self._cache) >= self.cache_size:
                self._cache = {}
            url = self.url(key, now=datetime.fromtimestamp(window * self.window_s, UTC))
            self._cache[key] = url
        return url
