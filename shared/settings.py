"""Blindspot settings, read from the environment (prefix ``BLINDSPOT_``) or a ``.env`` file.

Every setting is documented in README.md ("Settings"). Nested groups use ``__`` as delimiter,
e.g. ``BLINDSPOT_S3__ENDPOINT=127.0.0.1:8333``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER_SECRETS = {"changeme", "change-me", "secret", "please-change", ""}


class DatabaseSettings(BaseModel):
    url: str = Field(
        default="postgresql+psycopg://postgres@127.0.0.1:5432/blindspot",
        description="SQLAlchemy URL of the Postgres database (psycopg 3 driver).",
    )
    pool_size: int = Field(default=10, ge=1, description="Connections kept per process.")
    statement_timeout_ms: int = Field(default=30_000, ge=0, description="Per-statement timeout.")

    @property
    def libpq_url(self) -> str:
        """The URL without the SQLAlchemy driver suffix, for psycopg/asyncpg directly."""
        return self.url.replace("postgresql+psycopg://", "postgresql://").replace(
            "postgresql+asyncpg://", "postgresql://"
        )


class RedisSettings(BaseModel):
    url: str = Field(default="redis://127.0.0.1:6379/0", description="Redis URL (Celery broker/results).")


class CelerySettings(BaseModel):
    broker_url: str | None = Field(default=None, description="Broker URL; defaults to the Redis URL.")
    result_backend: str | None = Field(default=None, description="Result backend; defaults to Redis URL.")
    visibility_timeout_s: int = Field(
        default=120,
        ge=10,
        description="Redis transport visibility timeout: a dead worker's unacked task comes back after it."
        " Must exceed task_time_limit_s.",
    )
    unacked_restore_interval_s: int = Field(
        default=5, ge=1, description="How often kombu looks for timed-out unacked tasks to restore."
    )
    task_time_limit_s: int = Field(default=110, ge=5, description="Hard time limit per task.")
    task_always_eager: bool = Field(default=False, description="Run tasks inline (tests/demo only).")

    @model_validator(mode="after")
    def _timeout_above_limit(self) -> CelerySettings:
        if self.visibility_timeout_s <= self.task_time_limit_s:
            raise ValueError(
                "BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S must be greater than "
                "BLINDSPOT_CELERY__TASK_TIME_LIMIT_S, or long tasks are delivered twice while running"
            )
        return self


class S3Settings(BaseModel):
    endpoint: str = Field(default="127.0.0.1:8333", description="host:port of the S3 API (MinIO, SeaweedFS).")
    access_key: str = Field(default="blindspot", description="S3 access key.")
    secret_key: SecretStr = Field(default=SecretStr("blindspot-dev-secret"), description="S3 secret key.")
    secure: bool = Field(default=False, description="Use TLS to reach the S3 endpoint.")
    region: str = Field(default="us-east-1", description="S3 region.")
    bucket: str = Field(default="blindspot", description="Bucket for images and thumbnails.")
    presign_ttl_s: int = Field(default=900, ge=1, le=7 * 86400, description="Lifetime of presigned URLs.")
    public_endpoint: str | None = Field(
        default=None, description="host:port browsers use for presigned URLs, if different."
    )


class QdrantSettings(BaseModel):
    url: str | None = Field(default=None, description="Qdrant server URL; unset = embedded backend.")
    api_key: SecretStr | None = Field(default=None, description="Qdrant API key for a server.")
    path: Path = Field(default=REPO_ROOT / ".stack" / "qdrant", description="Embedded storage folder.")
    embedded_backend: Literal["local", "edge"] = Field(
        default="local", description="Embedded engine: qdrant-client local mode or qdrant-edge-py."
    )
    image_collection: str = Field(default="images", description="Collection of image embeddings.")
    object_collection: str = Field(default="objects", description="Collection of object embeddings.")


class TritonSettings(BaseModel):
    enabled: bool = Field(default=False, description="Call Triton; off = ONNX Runtime in-process.")
    url: str = Field(default="127.0.0.1:8001", description="Triton endpoint (gRPC port for grpc).")
    protocol: Literal["grpc", "http"] = Field(default="grpc", description="Triton protocol.")
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    detector_model: str = Field(default="yolov8_demo", description="Detector model name in Triton.")
    embedder_model: str = Field(default="efficientnet_lite0", description="Embedding model name.")


class ModelSettings(BaseModel):
    detector_onnx: Path = Field(
        default=REPO_ROOT / "deploy" / "triton" / "models" / "yolov8_demo" / "1" / "model.onnx",
        description="YOLOv8 ONNX export used in-process (bring your own: any class count).",
    )
    detector_classes: Path | None = Field(
        default=None, description="Text/YAML file of class names for the detector (one per line)."
    )
    embedder_onnx: Path = Field(
        default=REPO_ROOT / "deploy" / "triton" / "models" / "efficientnet_lite0" / "1" / "model.onnx",
        description="EfficientNet-Lite0 ONNX used for embeddings in-process.",
    )


class LimitSettings(BaseModel):
    max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1, description="Largest image accepted.")
    max_image_pixels: int = Field(default=50_000_000, ge=1, description="Largest width*height accepted.")
    max_request_bytes: int = Field(default=512 * 1024 * 1024, ge=1, description="Largest request body.")
    max_json_bytes: int = Field(default=256 * 1024 * 1024, ge=1, description="Largest annotation file.")


class ServiceUrls(BaseModel):
    gateway: str = Field(default="http://127.0.0.1:8000", description="Gateway base URL.")
    ingest: str = Field(default="http://127.0.0.1:8001", description="Ingest service base URL.")
    search: str = Field(default="http://127.0.0.1:8002", description="Search service base URL.")
    inference: str = Field(default="http://127.0.0.1:8003", description="Inference service base URL.")
    metrics: str = Field(default="http://127.0.0.1:8004", description="Metrics service base URL.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="BLINDSPOT_", env_nested_delimiter="__", env_file=".env", extra="ignore"
    )

    env: Literal["dev", "test", "prod"] = Field(default="dev", description="Deployment environment.")
    log_level: str = Field(default="INFO", description="Log level.")
    secret_key: SecretStr = Field(
        default=SecretStr("dev-only-secret-key-not-for-production"),
        description="Server secret (API key hashing pepper). Required, non-placeholder, in prod.",
    )
    internal_token: SecretStr = Field(
        default=SecretStr("dev-only-internal-token"),
        description="Shared token for service-to-service HTTP calls.",
    )
    stack_dir: Path = Field(default=REPO_ROOT / ".stack", description="Where the local stack keeps state.")
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    celery: CelerySettings = CelerySettings()
    s3: S3Settings = S3Settings()
    qdrant: QdrantSettings = QdrantSettings()
    triton: TritonSettings = TritonSettings()
    models: ModelSettings = ModelSettings()
    limits: LimitSettings = LimitSettings()
    services: ServiceUrls = ServiceUrls()

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"BLINDSPOT_LOG_LEVEL must be a log level name, got {v!r}")
        return v

    @model_validator(mode="after")
    def _secrets_in_prod(self) -> Settings:
        if self.env == "prod":
            for name, value in (
                ("BLINDSPOT_SECRET_KEY", self.secret_key),
                ("BLINDSPOT_INTERNAL_TOKEN", self.internal_token),
                ("BLINDSPOT_S3__SECRET_KEY", self.s3.secret_key),
            ):
                raw = value.get_secret_value()
                if raw.lower() in PLACEHOLDER_SECRETS or raw.startswith("dev-only") or len(raw) < 16:
                    raise ValueError(
                        f"{name} must be set to a real secret (16+ chars) when BLINDSPOT_ENV=prod"
                    )
        return self

    @property
    def broker_url(self) -> str:
        return self.celery.broker_url or self.redis.url

    @property
    def result_backend(self) -> str:
        return self.celery.result_backend or self.redis.url


@lru_cache
def get_settings() -> Settings:
    return Settings()
