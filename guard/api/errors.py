"""Every error is ``{"error": {"code", "message", "request_id"}}``: never a stack trace, never raw input."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.background_tasks import BackgroundTask
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.middleware import ASGIMiddleware
from litestar.openapi.datastructures import ResponseSpec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from guard.logs import request_id_var
from guard.pipeline import (
    Caller,
    ContextLengthExceeded,
    EngineOverloaded,
    InputTooLarge,
    InvalidConversation,
    InvalidParameter,
    PolicyNotFound,
    ServiceUnavailable,
)

__all__ = [
    "ERROR_RESPONSES",
    "EXCEPTION_HANDLERS",
    "RETRY_AFTER_SECONDS",
    "ErrorBody",
    "ErrorDetail",
    "RequestIdMiddleware",
    "error_response",
    "request_id",
]

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}
# msgspec quotes offending values in some messages ("Invalid enum value 'x'"): never echo input back.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")
_UNKNOWN_FIELD = re.compile(r"unknown field `[^`]*`")  # msgspec names the caller's field: say which rule, not what


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    request_id: str


class ErrorBody(msgspec.Struct):
    error: ErrorDetail


# The error statuses a /v1 route can answer, documented with the error body they really carry (Litestar's default
# schema would advertise its own ``{status_code, detail}`` shape, which guard never sends).
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    status: ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)
    for status, description in {
        400: "Invalid request (malformed JSON, wrong types, unknown fields, context length exceeded)",
        401: "Missing, unknown or revoked API key",
        403: "The key lacks the route's scope, or may not use the named policy",
        404: "Unknown model, policy or decision",
        405: "Method not allowed",
        413: "Body or input larger than the limits",
        415: "Unsupported media type",
        422: "Out of bounds (e.g. max_tokens over the server's limit) or an invalid policy reload",
        429: "The key's rate limit or the engine queue is full (Retry-After)",
        503: "A check, the engine or the audit database failed: fail closed (Retry-After)",
    }.items()
}


class RequestIdMiddleware(ASGIMiddleware):
    """Give every request an id (in ``scope["state"]``) and return it as ``X-Request-Id``."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        request_id_var.set(rid)  # log lines of this request carry it (the request runs in its own task/context)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message)["x-request-id"] = rid
            await send(message)

        await next_app(scope, receive, send_with_id)


def request_id(request: Request[Any, Any, Any]) -> str:
    """The request's id; requests that no route matched (404/405) never passed the middleware, so make one here."""
    state = request.scope.setdefault("state", {})
    return str(state.setdefault("request_id", uuid.uuid4().hex))


def error_response(
    request: Request[Any, Any, Any],
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    *,
    code: str | None = None,
) -> Response[ErrorBody]:
    rid = request_id(request)
    body = ErrorBody(ErrorDetail(code=code or _CODES.get(status, "error"), message=message, request_id=rid))
    return Response(body, status_code=status, headers={**(headers or {}), "X-Request-Id": rid})


def _validation_message(exc: ValidationException) -> str:
    details = exc.extra if isinstance(exc.extra, list) else []
    parts = [
        f"{_UNKNOWN_FIELD.sub('an unknown field', _QUOTED.sub('(value)', str(item.get('message', ''))))} "
        f"at {item.get('key', '')}".strip()
        for item in details
        if isinstance(item, dict)
    ]
    return "invalid request: " + "; ".join(parts) if parts else "invalid request body"


# Refusals of /v1 requests get a compact audit row (route template, status, key) written after the answer. (The
# pipeline audits its own refusals and failures: the engine's 429 and every 503 go through other handlers.)
_AUDITED_REFUSALS = frozenset({400, 401, 403, 404, 405, 413, 415, 422, 429})


def _audited(request: Request[Any, Any, Any], response: Response[ErrorBody]) -> Response[ErrorBody]:
    """Attach the compact audit row of a refused /v1 request (auth, validation, limits) as a background task: the
    refusal carries no answer to hold back, and a client flooding bad requests must not wait on the database."""
    state = request.scope.get("state", {})
    pipeline = getattr(request.app.state, "pipeline", None)
    status = response.status_code
    if pipeline is None or status not in _AUDITED_REFUSALS or not request.url.path.startswith("/v1/"):
        return response
    if status == 404 and request.method == "GET":  # a reader's miss (no such decision) refuses nothing
        return response
    route = str(request.scope.get("path_template") or "(no route)")  # the template: raw paths may carry input
    caller = Caller(key_id=state.get("key_id"), tenant=state.get("tenant"))
    response.background = BackgroundTask(pipeline.record_rejection, route, caller, response.status_code)
    return response


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    return _audited(request, _http_error(request, exc))


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[ErrorBody]:
    if isinstance(exc, ValidationException):
        return error_response(request, 400, _validation_message(exc))
    default = {"Retry-After": str(RETRY_AFTER_SECONDS)} if exc.status_code in (429, 503) else {}
    headers = {**default, **(exc.headers or {})} or None  # a raiser's own Retry-After (rate limits) wins
    message = exc.detail if exc.status_code < 500 else "the service cannot answer now"
    if exc.status_code == 400 and message.lower().startswith("malformed"):
        message = "malformed JSON body"
    return error_response(request, exc.status_code, message, headers)


def _service_unavailable(request: Request[Any, Any, Any], exc: ServiceUnavailable) -> Response[ErrorBody]:
    return error_response(request, 503, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})


def _overloaded(request: Request[Any, Any, Any], exc: EngineOverloaded) -> Response[ErrorBody]:
    return error_response(request, 429, str(exc), {"Retry-After": str(RETRY_AFTER_SECONDS)})


def _context_length(request: Request[Any, Any, Any], exc: ContextLengthExceeded) -> Response[ErrorBody]:
    return _audited(request, error_response(request, 400, str(exc), code="context_length_exceeded"))


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    # Only the type: exception messages can carry request text.
    logger.error("unhandled %s on %s (request %s)", type(exc).__name__, request.url.path, request_id(request))
    return error_response(request, 500, "internal error")


def _undecodable(request: Request[Any, Any, Any], exc: UnicodeDecodeError | RecursionError) -> Response[ErrorBody]:
    # Litestar decodes a JSON body generically before validating it: bytes that are not UTF-8 or nesting deeper than
    # the decoder's recursion limit surface as these two errors (nothing else in a request's path raises them).
    reason = "is not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "is nested too deeply"
    return _audited(request, error_response(request, 400, f"the request body {reason}"))


def _status(status: int) -> Any:
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
        return _audited(request, error_response(request, status, str(exc)))

    return handler


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPException: _http_exception,
    ServiceUnavailable: _service_unavailable,
    EngineOverloaded: _overloaded,
    ContextLengthExceeded: _context_length,
    PolicyNotFound: _status(404),
    InvalidConversation: _status(400),
    InputTooLarge: _status(413),
    InvalidParameter: _status(422),
    UnicodeDecodeError: _undecodable,
    RecursionError: _undecodable,
    Exception: _unhandled,
}
