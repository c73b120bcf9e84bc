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
    key_prefix: str = Field(
        default="",
        description="Prefix of every broker key in Redis (kombu global_keyprefix): isolates concurrent test"
        " runs or stacks sharing one Redis database.",
    )

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
        default="edge",
        description="Embedded engine: qdrant-edge-py (HNSW + payload indexes, the default: ~2 ms filtered"
        " top-50 at 20k points) or qdrant-client's local mode (exact scan, slow past ~20k points).",
    )
    image_collection: str = Field(default="images", description="Collection of image embeddings.")
    object_collection: str = Field(default="objects", description="Collection of object embeddings.")
    shard_number: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Shards of each collection a Qdrant server creates (fixed at creation; on a cluster use"
        " >= the node count, e.g. 2 x nodes to rebalance later). Embedded engines ignore it.",
    )
    replication_factor: int = Field(
        default=1, ge=1, le=16, description="Copies of each shard on a Qdrant cluster (2+ survives a node)."
    )
    write_consistency_factor: int = Field(
        default=1,
        ge=1,
        le=16,
        description="Replicas that must acknowledge a write before it succeeds (<= replication_factor).",
    )

    @model_validator(mode="after")
    def _consistency_within_replicas(self) -> QdrantSettings:
        if self.write_consistency_factor > self.replication_factor:
            raise ValueError(
                "BLINDSPOT_QDRANT__WRITE_CONSISTENCY_FACTOR must not exceed"
                " BLINDSPOT_QDRANT__REPLICATION_FACTOR (a write could never be acknowledged)"
            )
        return self


class TritonSettings(BaseModel):
    enabled: bool = Field(default=False, description="Call Triton; off = ONNX Runtime in-process.")
    url: str = Field(
        default="127.0.0.1:8011",
        description="Triton endpoint host:port for the chosen protocol (the local stack serves gRPC on"
        " local_grpc_port and HTTP on local_http_port).",
    )
    protocol: Literal["grpc", "http"] = Field(default="grpc", description="Triton protocol.")
    timeout_s: float = Field(default=30.0, gt=0, description="Per-request timeout.")
    retries: int = Field(
        default=4, ge=0, le=20, description="Retries of a Triton call that failed as unavailable (backoff)."
    )
    retry_backoff_s: float = Field(
        default=0.5, gt=0, description="First retry delay; doubles each retry (capped at 10 s)."
    )
    local_http_port: int = Field(default=8010, description="HTTP port of the local tritonserver.")
    local_grpc_port: int = Field(default=8011, description="gRPC port of the local tritonserver.")
    local_metrics_port: int = Field(default=8012, description="Metrics port of the local tritonserver.")
    python_env: Path = Field(
        default=REPO_ROOT / ".venv-triton",
        description="Venv (made from Debian's /usr/bin/python3.11) with numpy + onnxruntime for the local"
        " tritonserver's Python backend; created on first start.",
    )
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


class InferenceSettings(BaseModel):
    batch_size: int = Field(default=16, ge=1, le=256, description="Images per detector call.")
    confidence: float = Field(
        default=0.05, ge=0, le=1, description="Detections below this confidence are not stored."
    )
    nms_iou: float = Field(default=0.7, gt=0, le=1, description="IoU above which NMS drops a box.")
    agnostic_nms: bool = Field(default=False, description="NMS across classes (true) or per class (false).")
    max_detections: int = Field(default=300, ge=1, description="Most boxes kept per image after NMS.")
    imgsz: int | None = Field(
        default=None, ge=32, description="Detector input size; unset = read from the ONNX (shape/metadata)."
    )
    onnx_threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads (0 = all cores).")
    fetch_workers: int = Field(default=8, ge=1, le=64, description="Threads fetching/decoding images.")
    task_rows: int = Field(
        default=128, ge=1, le=10_000, description="Rows per inference.run task (one job spans many tasks)."
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


class GatewaySettings(BaseModel):
    bootstrap_token: SecretStr = Field(
        default=SecretStr("dev-only-bootstrap-token"),
        description="Token that authorizes POST /v1/workspaces (creates a workspace and its first admin"
        " key; `blindspot admin create-workspace` sends it). Required, non-placeholder, in prod.",
    )
    max_page_size: int = Field(default=200, ge=1, le=1000, description="Largest gallery/catalog page.")
    key_touch_interval_s: int = Field(
        default=60, ge=0, description="An API key's last_used_at is written at most this often."
    )
    upstream_timeout_s: float = Field(
        default=60.0, gt=0, description="Timeout of calls the gateway forwards to ingest/search/inference."
    )
    web_dir: Path = Field(
        default=REPO_ROOT / "services" / "gateway" / "web" / "static",
        description="Built web UI served at / (if the folder exists).",
    )


class IngestSettings(BaseModel):
    thumbnail_px: int = Field(default=256, ge=16, le=2048, description="Longest side of gallery thumbnails.")
    thumbnail_quality: int = Field(default=80, ge=1, le=100, description="WebP quality of thumbnails.")
    workers: int = Field(
        default=8, ge=1, le=64, description="Threads that decode images and write S3 objects per request."
    )
    max_files_per_request: int = Field(
        default=1000, ge=1, description="Most images in one multipart or streaming upload request."
    )
    async_import_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        description="Annotation/prediction files larger than this import as a background job (queue"
        " 'ingest'); smaller ones import inline. Both report through /v1/jobs/{id}.",
    )
    metrics_chunk_rows: int = Field(
        default=1000, ge=1, description="Rows per metrics.compute_rows task sent after an import."
    )


class SearchSettings(BaseModel):
    embed_batch: int = Field(default=16, ge=1, le=256, description="Images per embedding model call.")
    task_rows: int = Field(
        default=64,
        ge=1,
        description="Rows one search.embed_rows/embed_objects task embeds; it re-queues the rest as a new"
        " task, so each stays far under the task time limit.",
    )
    onnx_threads: int = Field(default=0, ge=0, description="ONNX Runtime intra-op threads (0 = all cores).")
    index_after: int = Field(
        default=20_000,
        ge=0,
        description="qdrant-edge-py: build the HNSW index once this many points are unindexed (a scan"
        " serves them until then; the build blocks the embeddings worker for a while). 0 = never.",
    )
    max_window: int = Field(
        default=5000, ge=100, description="Deepest result a similarity query pages to (offset + limit)."
    )
    slice_max_rows: int = Field(
        default=5000, ge=100, description="Most rows a similarity slice evaluates when it is read."
    )
    crop_context: float = Field(
        default=0.1, ge=0, le=1, description="Context added around a box before embedding its crop."
    )
    min_crop_px: int = Field(
        default=4, ge=1, description="Boxes smaller than this (w or h) get no embedding."
    )
    inprocess_worker: bool = Field(
        default=True,
        description="With an embedded vector store (no BLINDSPOT_QDRANT__URL), the search API also consumes"
        " the 'embeddings' queue in-process, since only one process may open the store.",
    )


class MetricsSettings(BaseModel):
    aggregate_debounce_s: float = Field(
        default=2.0,
        ge=0,
        description="Per-class aggregation of a run starts this long after its last metrics.compute_rows"
        " task (N row tasks in a burst cause one aggregation); the last row task of a bulk load (a large"
        " run's first computation) starts it at once.",
    )
    refresh_chunk_rows: int = Field(
        default=1000,
        ge=1,
        description="Rows per metrics.compute_rows task when the metrics service re-queues a run.",
    )
    sweep_interval_s: float = Field(
        default=5.0,
        ge=0,
        description="Each metrics worker checks this often for run aggregations that are overdue (their"
        " delayed message died with a worker) and re-sends them; 0 turns the sweeper off.",
    )
    sweep_grace_s: float = Field(
        default=30.0,
        gt=0,
        description="An aggregation still pending this long after it was due is re-sent by the sweeper.",
    )
    bulk_load_min_rows: int = Field(
        default=20_000,
        ge=1,
        description="A run's first computation loads its result tables without the gallery's sort indexes,"
        " built once when the run is aggregated, when the run has at least this many rows"
        " (shared/db/partitions.py).",
    )
    bulk_index_parallel: int = Field(
        default=2,
        ge=1,
        description="Index builds run at once (one connection each) when a bulk-loaded run is attached.",
    )
    embed_objects: bool = Field(
        default=True,
        description="After a row set's matches commit, send search.embed_objects so object similarity and"
        " the image payload (runs, splits, error types) see them.",
    )


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
    stack_autostart: bool = Field(
        default=True,
        description="`blindspot stack` may start a local server (Postgres, Redis, S3) where a local address"
        " in these settings does not answer; false = fail naming the setting instead.",
    )
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    celery: CelerySettings = CelerySettings()
    s3: S3Settings = S3Settings()
    qdrant: QdrantSettings = QdrantSettings()
    triton: TritonSettings = TritonSettings()
    models: ModelSettings = ModelSettings()
    inference: InferenceSettings = InferenceSettings()
    limits: LimitSettings = LimitSettings()
    ingest: IngestSettings = IngestSettings()
    services: ServiceUrls = ServiceUrls()
    search: SearchSettings = SearchSettings()
    gateway: GatewaySettings = GatewaySettings()
    metrics: MetricsSettings = MetricsSettings()

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
                ("BLINDSPOT_GATEWAY__BOOTSTRAP_TOKEN", self.gateway.bootstrap_token),
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
