"""Every error is OpenAI's ``{"error": {"message", "type", "param", "code"}}`` with ``request_id`` beside it (and in
``X-Request-Id``): never a stack trace, never raw input. ``param`` names the field at fault (only names that pass
:data:`SAFE_PARAM`; a value is never echoed), so clients read ``e.param`` / ``e.type`` as they do from OpenAI."""

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

from guard.errors import GuardError
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
    "SAFE_PARAM",
    "ErrorBody",
    "ErrorDetail",
    "ParameterError",
    "RequestIdMiddleware",
    "context_length_message",
    "error_detail",
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
# OpenAI's error types by status (clients map statuses to exception classes, and expose ``type`` as ``e.type``).
_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}
SAFE_PARAM = re.compile(r"[A-Za-z0-9_.]{1,64}")
"""A field name that may be echoed in ``param`` and messages (values never are)."""
_INDEX = re.compile(r"\[(\d+)\]")
_UNKNOWN_NAME = re.compile(r"unknown field `([^`]*)`")
# msgspec quotes offending values in some messages ("Invalid enum value 'x'"): never echo input back.
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")
_UNKNOWN_FIELD = re.compile(r"unknown field `[^`]*`")  # msgspec names the caller's field: say which rule, not what


class ErrorDetail(msgspec.Struct):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(msgspec.Struct):
    error: ErrorDetail
    request_id: str


class ParameterError(GuardError, HTTPException):
    """A request the gateway cannot honour, naming the parameter at fault (``param``): a 400 in OpenAI's shape."""

    status_code = 400

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(detail=message)
        self.param = safe_param(param) if param else None
        self.code = code


def safe_param(path: str) -> str | None:
    """``messages[0].role`` → ``messages.0.role``; ``None`` for anything that is not a plain field path."""
    name = _INDEX.sub(r".\1", path).strip(".")
    return name if SAFE_PARAM.fullmatch(name) else None


def context_length_message(context: int, prompt_tokens: int, max_tokens: int, param: str | None) -> str:
    """OpenAI's wording, which client libraries (LiteLLM's ``ContextWindowExceededError``, LangChain) match."""
    where = "the prompt" if param == "prompt" else "the messages"
    return (
        f"This model's maximum context length is {context} tokens. However, you requested "
        f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in {where}, {max_tokens} in the completion). "
        f"Please reduce the length of {where} or completion."
    )


# The error statuses a /v1 route can answer, documented with the error body they really carry (Litestar's default
# schema would advertise its own ``{status_code, detail}`` shape, which guard never sends).
ERROR_RESPONSES: dict[int, ResponseSpec] = {
    status: ResponseSpec(data_container=ErrorBody, description=description, generate_examples=False)
    for status, description in {
        400: "Invalid request (malformed JSON, wrong types, unknown fields, a parameter the gateway cannot honour or "
        "out of its range, input over the policy's limit, context length exceeded); `param` names the field",
        401: "Missing, unknown or revoked API key",
        403: "The key lacks the route's scope, or may not use the named policy",
        404: "Unknown model, policy or decision",
        405: "Method not allowed",
        413: "Body larger than GUARD_MAX_BODY_BYTES",
        415: "Unsupported media type",
        422: "An invalid policy reload",
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
    param: str | None = None,
) -> Response[ErrorBody]:
    rid = request_id(request)
    body = ErrorBody(error_detail(status, message, code=code, param=param), request_id=rid)
    return Response(body, status_code=status, headers={**(headers or {}), "X-Request-Id": rid})


def error_detail(status: int, message: str, *, code: str | None = None, param: str | None = None) -> ErrorDetail:
    kind = _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return ErrorDetail(message=message, type=kind, param=param, code=code or _CODES.get(status, "error"))


def _validation_error(exc: ValidationException) -> ParameterError:
    """msgspec's complaint about the body, with the field it is about: an unknown field is named (once it passes
    :data:`SAFE_PARAM`), a value never is."""
    details = [item for item in (exc.extra if isinstance(exc.extra, list) else []) if isinstance(item, dict)]
    if not details:
        return ParameterError("invalid request body")
    message, key = str(details[0].get("message", "")), str(details[0].get("key", ""))
    path = "" if key == "data" else key  # the body itself
    if unknown := _UNKNOWN_NAME.search(message):
        param = safe_param(f"{path}.{unknown.group(1)}")
        said = f"'{param}'" if param else "a field this API does not define"
        return ParameterError(f"Unknown parameter: {said}.", param=param, code="unknown_parameter")
    param = safe_param(path) if path else None
    reason = _UNKNOWN_FIELD.sub("an unknown field", _QUOTED.sub("(value)", message.split(" - at `", maxsplit=1)[0]))
    return ParameterError(
        f"Invalid value for '{param}': {reason}" if param else f"invalid request: {reason}", param=param
    )


# Refusals of /v1 requests get a compact audit row (route template, status, key) written after the answer. (The
# pipeline audits its own refusals and failures: the engine's 429 and every 503 go through other handlers.)
_AUDITED_REFUSALS = frozenset({400, 401, 403, 404, 405, 413, 415, 422, 429})
_AUDITED_PATHS = ("/v1/", "/beta/litellm_basic_guardrail_api", "/analyze/", "/scan/")
"""The keyed routes: /v1 and the other gateways' protocols (LiteLLM's guardrail API, LLM Guard's API)."""


def _audited(request: Request[Any, Any, Any], response: Response[ErrorBody]) -> Response[ErrorBody]:
    """Attach the compact audit row of a refused keyed request (auth, validation, limits) as a background task: the
    refusal carries no answer to hold back, and a client flooding bad requests must not wait on the database."""
    state = request.scope.get("state", {})
    pipeline = getattr(request.app.state, "pipeline", None)
    status = response.status_code
    if pipeline is None or status not in _AUDITED_REFUSALS or not request.url.path.startswith(_AUDITED_PATHS):
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
        exc = _validation_error(exc)
    if isinstance(exc, ParameterError):
        return error_response(request, exc.status_code, exc.detail, param=exc.param, code=exc.code)
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
    message = context_length_message(exc.context_length, exc.prompt_tokens, exc.max_tokens, exc.param)
    return _audited(request, error_response(request, 400, message, code="context_length_exceeded", param=exc.param))


def _unhandled(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
    # Only the type: exception messages can carry request text.
    logger.error("unhandled %s on %s (request %s)", type(exc).__name__, request.url.path, request_id(request))
    return error_response(request, 500, "internal error")


def _undecodable(request: Request[Any, Any, Any], exc: UnicodeDecodeError | RecursionError) -> Response[ErrorBody]:
    # Litestar decodes a JSON body generically before validating it: bytes that are not UTF-8 or nesting deeper than
    # the decoder's recursion limit surface as these two errors (nothing else in a request's path raises them).
    reason = "is not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "is nested too deeply"
    return _audited(request, error_response(request, 400, f"the request body {reason}"))


def _status(status: int, code: str | None = None, param: str | None = None) -> Any:
    def handler(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorBody]:
        field = getattr(exc, "param", None) or param
        return _audited(request, error_response(request, status, str(exc), code=code, param=field))

    return handler


EXCEPTION_HANDLERS: dict[Any, Any] = {
    HTTPException: _http_exception,
    ServiceUnavailable: _service_unavailable,
    EngineOverloaded: _overloaded,
    ContextLengthExceeded: _context_length,
    PolicyNotFound: _status(404),
    InvalidConversation: _status(400, param="messages"),  # the conversation as a whole does not fit the template
    InputTooLarge: _status(400, "input_too_large"),  # OpenAI answers over-long input with a 400; 413 is the bytes
    InvalidParameter: _status(400, "invalid_value"),
    UnicodeDecodeError: _undecodable,
    RecursionError: _undecodable,
    Exception: _unhandled,
}
