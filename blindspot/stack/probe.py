"""Quick checks that a server answers: TCP, Postgres, Redis, S3, HTTP. Each returns an error or None."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from sqlalchemy.engine import make_url

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def postgres_endpoint(url: str) -> Endpoint:
    u = make_url(url)
    return Endpoint(u.host or "127.0.0.1", u.port or 5432)


def redis_endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    return Endpoint(parts.hostname or "127.0.0.1", parts.port or 6379)


def host_port_endpoint(value: str, default_port: int) -> Endpoint:
    """``host:port`` or a URL (``http://host:port/...``)."""
    if "://" in value:
        parts = urlsplit(value)
        return Endpoint(parts.hostname or "127.0.0.1", parts.port or default_port)
    host, _, port = value.rpartition(":")
    if not host:
        return Endpoint(value, default_port)
    return Endpoint(host, int(port))


def tcp_error(endpoint: Endpoint, timeout_s: float = 1.0) -> str | None:
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout_s):
            return None
    except OSError as exc:
        return f"nothing answers at {endpoint} ({exc.strerror or exc})"


def postgres_error(url: str, timeout_s: int = 3) -> str | None:
    """None when a ``SELECT 1`` succeeds on the server of ``url`` (its ``postgres`` database)."""
    import psycopg

    u = make_url(url).set(drivername="postgresql", database="postgres")
    dsn = u.render_as_string(hide_password=False)
    try:
        with psycopg.connect(dsn, connect_timeout=timeout_s) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"Postgres at {postgres_endpoint(url)} does not answer: {str(exc).strip().splitlines()[0]}"
    return None


def redis_error(url: str, timeout_s: float = 2.0) -> str | None:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"Redis at {redis_endpoint(url)} does not answer: {exc}"
    finally:
        client.close()
    return None


def http_error(url: str, timeout_s: float = 2.0) -> str | None:
    """None when ``url`` answers 2xx; else what went wrong (status and a short body)."""
    try:
        response = httpx.get(url, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    if response.is_success:
        return None
    return f"HTTP {response.status_code}: {response.text[:300]}"
