"""shared/settings.py: defaults, nested env names, and fail-fast validation that names the variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from shared.settings import Settings

REAL = "a-real-secret-value-0123456789"
PROD_SECRETS = {
    "BLINDSPOT_SECRET_KEY": REAL,
    "BLINDSPOT_INTERNAL_TOKEN": REAL,
    "BLINDSPOT_S3__SECRET_KEY": REAL,
    "BLINDSPOT_GATEWAY__BOOTSTRAP_TOKEN": REAL,
}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("BLINDSPOT_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir("/")  # no .env file is read


def test_defaults_point_at_the_local_stack() -> None:
    s = Settings()
    assert s.env == "dev"
    assert s.database.url.startswith("postgresql+psycopg://")
    assert s.database.libpq_url.startswith("postgresql://")
    assert s.broker_url == s.redis.url == s.result_backend
    assert s.services.gateway.endswith(":8000") and s.services.metrics.endswith(":8004")
    assert s.celery.visibility_timeout_s > s.celery.task_time_limit_s


def test_nested_values_come_from_double_underscore_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLINDSPOT_S3__ENDPOINT", "10.0.0.5:9000")
    monkeypatch.setenv("BLINDSPOT_CELERY__BROKER_URL", "redis://broker:6379/3")
    monkeypatch.setenv("BLINDSPOT_TRITON__ENABLED", "true")
    s = Settings()
    assert s.s3.endpoint == "10.0.0.5:9000"
    assert s.broker_url == "redis://broker:6379/3"
    assert s.result_backend == s.redis.url
    assert s.triton.enabled is True


def test_libpq_url_strips_the_driver() -> None:
    s = Settings(database={"url": "postgresql+asyncpg://u:p@db:5433/x"})
    assert s.database.libpq_url == "postgresql://u:p@db:5433/x"


@pytest.mark.parametrize("name", sorted(PROD_SECRETS))
def test_prod_refuses_a_placeholder_secret_and_names_it(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv("BLINDSPOT_ENV", "prod")
    for key, value in PROD_SECRETS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(name, "changeme")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert name in str(info.value)


def test_prod_refuses_the_dev_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLINDSPOT_ENV", "prod")
    with pytest.raises(ValidationError, match="BLINDSPOT_SECRET_KEY"):
        Settings()


def test_prod_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLINDSPOT_ENV", "prod")
    for key, value in PROD_SECRETS.items():
        monkeypatch.setenv(key, value)
    s = Settings()
    assert s.secret_key.get_secret_value() == REAL
    assert REAL not in repr(s)  # SecretStr never prints


def test_visibility_timeout_must_exceed_the_task_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S", "60")
    monkeypatch.setenv("BLINDSPOT_CELERY__TASK_TIME_LIMIT_S", "60")
    with pytest.raises(ValidationError, match="BLINDSPOT_CELERY__VISIBILITY_TIMEOUT_S"):
        Settings()


def test_log_level_is_normalised_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLINDSPOT_LOG_LEVEL", "debug")
    assert Settings().log_level == "DEBUG"
    monkeypatch.setenv("BLINDSPOT_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError, match="BLINDSPOT_LOG_LEVEL"):
        Settings()


def test_every_setting_is_described() -> None:
    """docs/settings.md is generated from the descriptions: none may be missing."""
    from tools.gen_settings_doc import walk

    missing = [s.env for s in walk() if not s.description.strip()]
    assert missing == []
