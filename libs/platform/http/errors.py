"""`ApiError` and the exception handlers that give every error the spec's shape (contracts.http_errors)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from contracts.enums import ReasonCode
from contracts.http_errors import ErrorResponse
from contracts.message_sizes import MessageTooLarge


class ApiError(Exception):
    """An HTTP error a handler raises; rendered as ErrorResponse with `status_code`."""

    def __init__(
        self,
        status_code: int,
        reason_code: ReasonCode,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.response = ErrorResponse(reason_code=reason_code, message=message, **fields)
        self.headers = dict(headers or {})

    @property
    def reason_code(self) -> ReasonCode:
        return self.response.reason_code

    @property
    def message(self) -> str:
        return self.response.message

    @classmethod
    def conflict(
        cls,
        message: str,
        *,
        reason_code: ReasonCode = ReasonCode.CONFLICT,
        expected_version: int | None = None,
        actual_version: int | None = None,
    ) -> ApiError:
        return cls(
            409, reason_code, message, expected_version=expected_version, actual_version=actual_version
        )

    @classmethod
    def invalid(
        cls,
        message: str,
        *,
        violated_rule: str,
        details: Any = None,
        reason_code: ReasonCode = ReasonCode.VALIDATION_FAILED,
    ) -> ApiError:
        return cls(422, reason_code, message, violated_rule=violated_rule, details=details)

    @classmethod
    def not_found(cls, message: str, *, reason_code: ReasonCode = ReasonCode.NOT_FOUND) -> ApiError:
        return cls(404, reason_code, message)

    @classmethod
    def unavailable(
        cls,
        message: str,
        *,
        missing_inputs: list[str],
        safe_action_taken: str,
        reason_code: ReasonCode = ReasonCode.TELEMETRY_INSUFFICIENT,
    ) -> ApiError:
        return cls(
            503, reason_code, message, missing_inputs=missing_inputs, safe_action_taken=safe_action_taken
        )

    @classmethod
    def unauthenticated(cls, message: str, *, invalid_token: bool = False) -> ApiError:
        # RFC 6750: a 401 names the scheme; error="invalid_token" when a token was sent but refused.
        challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
        return cls(401, ReasonCode.UNAUTHENTICATED, message, headers={"WWW-Authenticate": challenge})

    @classmethod
    def forbidden(cls, message: str) -> ApiError:
        return cls(403, ReasonCode.FORBIDDEN, message)

    @classmethod
    def payload_too_large(cls, max_body_bytes: int) -> ApiError:
        return cls(413, ReasonCode.PAYLOAD_TOO_LARGE, f"Request body exceeds {max_body_bytes} bytes")


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error.response.body_for(error.status_code), status_code=error.status_code, headers=error.headers
    )


# Errors raised by FastAPI/Starlette themselves (unknown route, wrong method, unreadable body).
_REASON_BY_STATUS = {
    400: ReasonCode.VALIDATION_FAILED,
    401: ReasonCode.UNAUTHENTICATED,
    403: ReasonCode.FORBIDDEN,
    404: ReasonCode.NOT_FOUND,
    405: ReasonCode.METHOD_NOT_ALLOWED,
    409: ReasonCode.CONFLICT,
    413: ReasonCode.PAYLOAD_TOO_LARGE,
    422: ReasonCode.VALIDATION_FAILED,
}


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _on_request_validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        # `input` is left out: it may echo a large body or a secret back to the caller.
        {k: v for k, v in err.items() if k in ("type", "loc", "msg", "ctx")}
        for err in exc.errors()
    ]
    # ctx may hold the raising exception object; its text is what a client can use.
    safe = jsonable_encoder(details, custom_encoder={BaseException: str})
    return error_response(
        ApiError.invalid("Request does not match the schema", violated_rule="request_schema", details=safe)
    )


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path: Starlette names only the first matching route's.

    Asked per method through `matches`, which also works for included routers that group routes."""
    routes = request.app.router.routes
    allowed = [
        method
        for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]
    return ", ".join(allowed)


async def _on_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    fallback = ReasonCode.VALIDATION_FAILED if exc.status_code < 500 else ReasonCode.INTERNAL_ERROR
    reason = _REASON_BY_STATUS.get(exc.status_code, fallback)
    message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    return error_response(ApiError(exc.status_code, reason, message, headers=headers))


async def _on_message_too_large(_: Request, exc: Exception) -> JSONResponse:
    # A write port refused a write whose event could never be published (contracts/message_sizes.py).
    assert isinstance(exc, MessageTooLarge)
    return error_response(
        ApiError(
            413,
            ReasonCode.PAYLOAD_TOO_LARGE,
            str(exc),
            details={"topic": exc.topic, "size_bytes": exc.size_bytes, "budget_bytes": exc.budget_bytes},
        )
    )


async def _on_unhandled(_: Request, __: Exception) -> JSONResponse:
    # Starlette re-raises after this response, so the server still logs the traceback.
    return error_response(ApiError(500, ReasonCode.INTERNAL_ERROR, "Internal server error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(MessageTooLarge, _on_message_too_large)
    app.add_exception_handler(Exception, _on_unhandled)
