"""S3 object storage over the ``minio`` SDK (SeaweedFS locally, any S3 in production).

Configuration is injected (``S3Settings``); bytes in, bytes out. The client is built once by an app's
lifespan or a worker, never at import time. Blocking calls: run them off the event loop.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta

import urllib3
from minio import Minio
from minio.error import S3Error

from shared.errors import DependencyUnavailable
from shared.settings import S3Settings

_MISSING = {"NoSuchKey", "NoSuchObject", "NoSuchBucket", "ResourceNotFound"}


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str | None
    content_type: str | None
    last_modified: datetime | None


class ObjectStore:
    """One bucket of an S3 server."""

    def __init__(self, settings: S3Settings, *, max_connections: int = 32) -> None:
        self.settings = settings
        self.bucket = settings.bucket
        http = urllib3.PoolManager(
            maxsize=max_connections,
            timeout=urllib3.Timeout(connect=5.0, read=60.0),
            retries=urllib3.Retry(total=3, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
        )
        self._client = Minio(
            settings.endpoint,
            access_key=settings.access_key,
            secret_key=settings.secret_key.get_secret_value(),
            secure=settings.secure,
            region=settings.region,
            http_client=http,
        )
        # Presigned URLs are signed for the host browsers use (signature covers the host header).
        self._public = (
            Minio(
                settings.public_endpoint,
                access_key=settings.access_key,
                secret_key=settings.secret_key.get_secret_value(),
                secure=settings.secure,
                region=settings.region,
            )
            if settings.public_endpoint
            else self._client
        )

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (idempotent)."""
        try:
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket, location=self.settings.region)
        except S3Error as exc:
            if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def ping(self) -> None:
        """Readiness: the bucket answers to a signed request."""
        try:
            if not self._client.bucket_exists(self.bucket):
                raise DependencyUnavailable(f"S3 bucket {self.bucket!r} does not exist")
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise DependencyUnavailable(f"S3 at {self.settings.endpoint} does not answer: {exc}") from exc

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        self._client.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)

    def get(self, key: str) -> bytes:
        response = self._client.get_object(self.bucket, key)
        try:
            return bytes(response.read())
        finally:
            response.close()
            response.release_conn()

    def stat(self, key: str) -> ObjectInfo | None:
        """Metadata of ``key``, or None when it does not exist."""
        try:
            st = self._client.stat_object(self.bucket, key)
        except S3Error as exc:
            if exc.code in _MISSING:
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(st.size or 0),
            etag=st.etag,
            content_type=st.content_type,
            last_modified=st.last_modified,
        )

    def exists(self, key: str) -> bool:
        return self.stat(key) is not None

    def delete(self, key: str) -> None:
        self._client.remove_object(self.bucket, key)

    def presign_get(self, key: str, ttl_s: int | None = None) -> str:
        ttl = timedelta(seconds=ttl_s or self.settings.presign_ttl_s)
        return str(self._public.presigned_get_object(self.bucket, key, expires=ttl))

    def presign_put(self, key: str, ttl_s: int | None = None) -> str:
        ttl = timedelta(seconds=ttl_s or self.settings.presign_ttl_s)
        return str(self._public.presigned_put_object(self.bucket, key, expires=ttl))


__all__ = ["ObjectInfo", "ObjectStore"]
