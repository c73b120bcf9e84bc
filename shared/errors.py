"""One error base with an HTTP status code, and the one JSON shape every service answers with.

Shape: ``{"error": "<code>", "detail": "<human readable message>", "context": {...}}``.
"""

from __future__ import annotations

from typing import Any


class BlindspotError(Exception):
    status_code: int = 500
    code: str = "internal_error"

    def __init__(self, detail: str, *, context: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context or {}

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.context:
            body["context"] = self.context
        return body


class BadRequest(BlindspotError):
    status_code = 400
    code = "bad_request"


class InvalidInput(BlindspotError):
    """Input that parsed but breaks a rule (bad box, unknown class...)."""

    status_code = 422
    code = "invalid_input"


class Unauthorized(BlindspotError):
    status_code = 401
    code = "unauthorized"


class Forbidden(BlindspotError):
    status_code = 403
    code = "forbidden"


class NotFound(BlindspotError):
    status_code = 404
    code = "not_found"


class Conflict(BlindspotError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(BlindspotError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMedia(BlindspotError):
    status_code = 415
    code = "unsupported_media_type"


class DependencyUnavailable(BlindspotError):
    """A dependency (Postgres, Redis, S3, Qdrant, Triton) does not answer. Retryable."""

    status_code = 503
    code = "dependency_unavailable"


class ConfigurationError(BlindspotError):
    """Bad configuration found at start-up; the message names the setting."""

    status_code = 500
    code = "configuration_error"
