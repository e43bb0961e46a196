"""Typed API errors: what went wrong, with the HTTP status, type and code it carries to the client.

Raised anywhere (the worker lifecycle included, which never imports aiohttp); rendered to the wire in one
place, frontend/api/errors.py.
"""

from __future__ import annotations


class APIError(Exception):
    status = 500
    type = "server_error"
    code: str | None = "internal_error"

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(APIError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class Unauthorized(APIError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class NotFound(APIError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(APIError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class PayloadTooLarge(APIError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UnsupportedMediaType(APIError):
    status = 415
    type = "invalid_request_error"
    code = "unsupported_media_type"


class ServiceUnavailable(APIError):
    status = 503
    type = "server_error"
    code = "service_unavailable"


class WorkerFailed(APIError):
    """A model's worker could not start, load, or finish a request; the message carries the cause."""

    code = "worker_failed"
    # True when the request had no part in the failure (an operator stopped the worker, it was evicted, or
    # it was killed from outside): a request that sent nothing yet may then be served again, elsewhere.
    retryable = False
