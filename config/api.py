"""The plumbing of the HTTP API at /api/v1/: bearer API keys and their rate limits, the
error format and cursor pagination of shared/API.md. Each app's api.py router imports
this module; config/api_urls.py assembles the routers into the API."""

import base64
import binascii
import ipaddress
import json
import logging
import math
import re
import time
import uuid
from functools import lru_cache
from typing import Any

from axes.helpers import get_client_ip_address
from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.http.multipartparser import MultiPartParserError
from limits import RateLimitItemPerSecond
from limits.errors import StorageError
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter, MovingWindowRateLimiter
from ninja import Field, NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, Throttled, ValidationError
from ninja.pagination import PaginationBase
from ninja.parser import Parser
from ninja.renderers import JSONRenderer
from ninja.security import HttpBearer
from pydantic import BaseModel, ConfigDict, model_validator
from pydantic_core import PydanticCustomError
from redis.exceptions import RedisError

from accounts import degraded
from accounts.models import ApiKeyKind
from accounts.selectors import api_key_authenticate
from accounts.text import has_forbidden_character
from config.env import parse_rate

log = logging.getLogger(__name__)


class ApiKeyAuth(HttpBearer):
    """`Authorization: Bearer <key>`; sets request.workspace from the key.

    Every operation of every router passes here, in this order: a client address over
    API_AUTH_FAILURE_LIMIT gets 429 before its key is even looked up (else a guess that
    happens to be right would be confirmed); an unknown or revoked key counts against its
    address and gets 401; a key over API_RATE_LIMIT gets 429; a read-only key gets 403 on
    anything but a read.
    """

    evaluates = False  # EvaluationKeyAuth: a POST that only reads (OFREP evaluations)

    def authenticate(self, request, token):
        address = _client_address(request)
        wait = _over_limit(settings.API_AUTH_FAILURE_LIMIT, "auth-failure", address, hit=False)
        if wait:
            raise Throttled(wait)
        key = api_key_authenticate(raw_key=token.strip())
        if key is None:
            _over_limit(settings.API_AUTH_FAILURE_LIMIT, "auth-failure", address)
            return None
        wait = _over_limit(settings.API_RATE_LIMIT, "key", str(key.pk))
        if wait:
            raise Throttled(wait)
        if key.kind == ApiKeyKind.WRITE:
            raise PermissionDenied(
                "This is a write key: it sends tracking data to /v1/ (identify, track, "
                "batch) and nothing else. Use a full or read-only API key here."
            )
        if not self.evaluates and not key.allows(request.method):
            raise PermissionDenied(
                "This API key is read-only: it may read (GET) but not change anything. "
                "Use a key with full access."
            )
        request.api_key = key
        request.workspace = key.workspace
        return key


def key_limits(request, raw_key: str):
    """(key, seconds to wait) for endpoints outside the ninja API that take API keys (the
    Segment-compatible /v1/): the same budgets as ApiKeyAuth, the failed guesses per
    client address first, then the key's own rate; (None, None) for an unknown key."""
    address = _client_address(request)
    wait = _over_limit(settings.API_AUTH_FAILURE_LIMIT, "auth-failure", address, hit=False)
    if wait:
        return None, wait
    key = api_key_authenticate(raw_key=raw_key.strip())
    if key is None:
        _over_limit(settings.API_AUTH_FAILURE_LIMIT, "auth-failure", address)
        return None, None
    return key, _over_limit(settings.API_RATE_LIMIT, "key", str(key.pk))


class EvaluationKeyAuth(ApiKeyAuth):
    """ApiKeyAuth for endpoints that read through a POST (an OpenFeature evaluation): a
    read-only key is enough."""

    evaluates = True


def _client_address(request) -> str:
    """The client's address as the sign-in lockout sees it (through TRUSTED_PROXY_COUNT
    proxies). An IPv6 client counts by its /64, the block one subscriber gets: otherwise
    it could take a fresh address for every few guesses."""
    address = get_client_ip_address(request)
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)


# --- Rate limits: counters in Redis (the `limits` library) ------------------------------

_REDIS_TIMEOUT = 0.5  # seconds; a Redis that does not answer must not hold up the API
_redis_warned_at = -math.inf


@lru_cache(maxsize=4)
def _limiters(redis_url: str):
    """Per-key limits count in a fixed window: one atomic INCR per call and one integer
    per key (a moving window would keep up to API_RATE_LIMIT timestamps per key). Failed
    authentications count in a moving window (a few entries per address), so a client
    cannot double its guesses across a window boundary."""
    storage = RedisStorage(
        redis_url,
        key_prefix="herald:ratelimit",
        wrap_exceptions=True,
        socket_connect_timeout=_REDIS_TIMEOUT,
        socket_timeout=_REDIS_TIMEOUT,
    )
    return {
        "key": FixedWindowRateLimiter(storage),
        "auth-failure": MovingWindowRateLimiter(storage),
    }


@lru_cache(maxsize=16)
def _rate_item(rate: str) -> RateLimitItemPerSecond:
    amount, seconds = parse_rate(rate)  # "3000/m": validated at start-up (config/env.py)
    return RateLimitItemPerSecond(amount, seconds)


def _over_limit(rate: str, scope: str, ident: str, *, hit: bool = True) -> float | None:
    """Seconds to wait when `ident` is over `rate` in `scope` ("key" or "auth-failure"),
    else None. `hit`: count this call; otherwise only look. With Redis down: None (the
    request is served: a limit is not worth an outage) and a warning in the log."""
    limiter = _limiters(settings.REDIS_URL)[scope]
    item = _rate_item(rate)
    try:
        if limiter.hit(item, scope, ident) if hit else limiter.test(item, scope, ident):
            return None
        reset_at, _remaining = limiter.get_window_stats(item, scope, ident)
    except (StorageError, RedisError, OSError) as e:
        _warn_limits_unavailable(e)
        return None
    return max(1.0, reset_at - time.time())


def _warn_limits_unavailable(error: Exception) -> None:
    global _redis_warned_at
    degraded.note(degraded.RATE_LIMITS, getattr(error, "storage_error", error))
    now = time.monotonic()
    if now - _redis_warned_at >= 60:  # once a minute per process, not once per request
        _redis_warned_at = now
        log.warning(
            "API rate limits are not enforced: Redis does not answer (%s). Requests are "
            "served without limits until it does.",
            getattr(error, "storage_error", error),
        )


# The NinjaAPI instance and its routers are assembled in config/api_urls.py, which
# installs the handlers below; routers import only this module, so nothing here may import
# a router. Error bodies are rendered as NinjaAPI.create_response does with its default
# renderer, which the API uses.
_renderer = JSONRenderer()


def error_response(request, status: int, detail: str, errors: list | None = None, headers=None):
    body: dict[str, Any] = {"detail": detail}
    if errors is not None:
        body["errors"] = errors
    response = HttpResponse(
        _renderer.render(request, body, response_status=status),
        status=status,
        content_type=f"{_renderer.media_type}; charset={_renderer.charset}",
    )
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _location(loc) -> list[str]:
    """ninja's error location as the API names it: ("body", "payload", "name") is
    body.name (the operation's parameter name is ours, not the client's), and form fields
    are in the body too."""
    parts = [str(part) for part in loc]
    if parts[:1] == ["form"]:
        parts[0] = "body"
    if parts[:1] == ["body"] and len(parts) > 1 and parts[1] == "payload":
        del parts[1]
    return parts


def _validation_error(request, exc: ValidationError):
    errors = [
        {"loc": _location(e.get("loc", [])), "msg": e.get("msg", "Invalid value.")}
        for e in exc.errors
    ]
    first = errors[0] if errors else None
    detail = "The request is invalid"
    if first:
        detail += f": {'.'.join(first['loc'])}: {first['msg']}"
    return error_response(request, 422, detail, errors)


def _django_validation_error(request, exc: DjangoValidationError):
    if hasattr(exc, "error_dict"):
        errors = [
            {"loc": ["body", field], "msg": " ".join(msgs)}
            for field, msgs in exc.message_dict.items()
        ]
    else:
        errors = [{"loc": ["body"], "msg": m} for m in exc.messages]
    return error_response(request, 422, " ".join(e["msg"] for e in errors), errors)


def _unauthorized(request, exc):
    return error_response(
        request,
        401,
        "Missing, unknown or revoked API key. Send `Authorization: Bearer <key>`.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _throttled(request, exc: Throttled):
    wait = max(1, math.ceil(exc.wait or 1))
    return error_response(
        request, 429, f"Too many requests; retry in {wait} s.", headers={"Retry-After": str(wait)}
    )


def _http_error(request, exc: HttpError):
    if exc.status_code == 400 and isinstance(exc.__cause__, ValidationError):
        # the body parsed, and StorableTextParser refused a text in it
        return _validation_error(request, exc.__cause__)
    if exc.status_code == 400:  # ninja's "Cannot parse request body"
        return error_response(
            request, 422, "The body is not valid JSON.", [{"loc": ["body"], "msg": str(exc)}]
        )
    return error_response(request, exc.status_code, str(exc))


def _not_found(request, exc):
    detail = str(exc) if str(exc) else "Not found."
    return error_response(request, 404, detail)


def _forbidden(request, exc):
    return error_response(request, 403, str(exc) or "Forbidden.")


def server_error_response(request, *, exception: bool = True):
    """The JSON error body of an unexpected failure under /api/, with a request id that
    the log line names, so a client's report leads to it (an HTML page would break every
    client). Also config.errors' handler500 for failures outside the API's views."""
    request_id = uuid.uuid4().hex[:16]
    (log.exception if exception else log.error)(
        "API %s %s failed (request id %s)", request.method, request.path, request_id
    )
    return error_response(
        request,
        500,
        f"Something went wrong on our side; it was logged. Request id: {request_id}.",
        headers={"X-Request-ID": request_id},
    )


def _server_error(request, exc: Exception):
    return server_error_response(request)


def _bad_multipart(request, exc: MultiPartParserError):
    return error_response(
        request,
        422,
        "The body is not valid multipart/form-data (send the file as a form field named "
        "`file`, with the boundary in the Content-Type).",
        [{"loc": ["body"], "msg": str(exc)}],
    )


def _too_big(request, exc: RequestDataTooBig):
    return error_response(request, 413, "The request body is larger than the limit.")


def install_exception_handlers(api: NinjaAPI) -> None:
    """The error format of shared/API.md for every exception an operation can raise."""
    api.add_exception_handler(Exception, _server_error)
    api.add_exception_handler(MultiPartParserError, _bad_multipart)
    api.add_exception_handler(RequestDataTooBig, _too_big)
    api.add_exception_handler(ValidationError, _validation_error)
    api.add_exception_handler(DjangoValidationError, _django_validation_error)
    api.add_exception_handler(AuthenticationError, _unauthorized)
    api.add_exception_handler(Throttled, _throttled)
    api.add_exception_handler(HttpError, _http_error)
    api.add_exception_handler(Http404, _not_found)
    api.add_exception_handler(PermissionDenied, _forbidden)


# --- Text PostgreSQL can store, checked once for every operation ---------------------------


_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\xed[\xa0-\xbf]|\x00")


class StorableTextParser(Parser):
    """Request bodies (JSON, and form fields) for every operation: a NUL or a lone
    surrogate anywhere, in a key or a value, is refused with a 422 naming where it is,
    before any operation sees it (the path and the query are BadCharacterMiddleware's)."""

    def parse_body(self, request):
        data = super().parse_body(request)
        # The walk costs a Python step per value (an event batch holds thousands): only a
        # body whose bytes could hold such text is walked. In JSON a NUL is the escape
        # \u0000 and a surrogate an escape \ud800-\udfff or its UTF-8 bytes (which json
        # passes through); a NUL byte means UTF-16 or UTF-32 text, walked as well.
        if _MAYBE_UNSTORABLE.search(request.body):
            _refuse_unstorable(data, ("body",))
        return data

    def parse_querydict(self, data, list_fields, request):
        result = super().parse_querydict(data, list_fields, request)
        # ninja parses the query string and form bodies alike: say which one holds it
        _refuse_unstorable(result, ("query",) if data is request.GET else ("body",))
        return result


def _refuse_unstorable(data, prefix: tuple[str, ...]) -> None:
    stack = [(data, prefix)]
    while stack:  # iterative: a deep body must meet a 422, never the recursion limit
        value, where = stack.pop()
        if isinstance(value, str):
            if has_forbidden_character(value):
                raise ValidationError([{"loc": list(where), "msg": UNSTORABLE}])
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and has_forbidden_character(key):
                    raise ValidationError([{"loc": list(where), "msg": UNSTORABLE_KEY}])
                stack.append((item, (*where, str(key))))
        elif isinstance(value, list | tuple):
            stack.extend((item, (*where, str(i))) for i, item in enumerate(value))


UNSTORABLE = "Text cannot contain a NUL character or a lone surrogate (half a UTF-16 pair)."
UNSTORABLE_KEY = "A key cannot contain a NUL character or a lone surrogate."


# --- Request bodies ---------------------------------------------------------------------


class InputSchema(Schema):
    """A JSON request body: an object with the fields its schema names and no others (a
    misspelt field is a 422 naming it, never silently dropped), not a list or a scalar."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="wrap")
    @classmethod
    def _an_object(cls, value, handler):
        # ninja's Schema reads a non-dict's attributes (a list would give every default)
        if not isinstance(value, dict) and not isinstance(value, BaseModel):
            raise PydanticCustomError("model_type", "expected a JSON object")
        return handler(value)


# --- The OpenAPI document: every status an operation answers -----------------------------


class ErrorItem(Schema):
    loc: list[str | int] = Field(
        description="Where: body, query or path, then the field (a list position as a number)."
    )
    msg: str


class ErrorOut(Schema):
    """Every error of the API (shared/API.md): what went wrong in words, and for invalid
    input the fields at fault."""

    detail: str
    errors: list[ErrorItem] | None = None


_ERROR_WORDS = {
    401: "Missing, unknown or revoked API key.",
    403: "The key may not do this (a read-only key writes nothing).",
    404: "No such object in the key's workspace.",
    409: "The object's state refuses the change; the detail says why and what to do.",
    413: "The upload or body is larger than the limit.",
    422: "Invalid input: `errors` names each field at fault.",
    429: "Too many requests: retry after `Retry-After` seconds.",
    500: "A server error, logged under the request id the detail names.",
}


def component_ref(name: str) -> dict:
    """A field's JSON schema that is a schema of HeraldAPI's `components`, by name
    (pydantic cannot emit a $ref to a schema it does not know; HeraldAPI writes it)."""
    return {"x-herald-ref": name}


def _write_refs(document) -> None:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "x-herald-ref" in node:
                name = node.pop("x-herald-ref")
                node.clear()
                node["$ref"] = f"#/components/schemas/{name}"
                continue
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def also_answers(*statuses: int) -> dict:
    """`openapi_extra=also_answers(409)`: statuses an operation answers beyond those every
    operation documents (HeraldAPI.get_openapi_schema adds them with the error schema)."""
    return {"x-herald-errors": list(statuses)}


class HeraldAPI(NinjaAPI):
    """NinjaAPI whose OpenAPI document lists every status each operation can answer, each
    error with the error schema: 401, 422, 429 and 500 everywhere, 403 for writes, 404
    where the path names an object, 413 where there is a body, and what an operation
    declares (also_answers)."""

    def __init__(self, *args, components: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_components = components or {}  # schemas fields name by $ref

    def get_openapi_schema(self, *args, **kwargs):
        schema = super().get_openapi_schema(*args, **kwargs)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(self.extra_components)
        _write_refs(schema)
        error_schema = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
        components.update(error_schema.pop("$defs", {}))
        components["ErrorOut"] = error_schema
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                statuses = {401, 422, 429, 500}
                if method != "get":
                    statuses.add(403)
                if "{" in path:
                    statuses.add(404)
                if "requestBody" in operation:
                    statuses.add(413)
                statuses.update(operation.pop("x-herald-errors", []))
                responses = operation.setdefault("responses", {})
                for status in sorted(statuses):
                    responses.setdefault(
                        str(status),
                        {
                            "description": _ERROR_WORDS[status],
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorOut"}
                                }
                            },
                        },
                    )
        return schema


# --- Cursor pagination ------------------------------------------------------------------


def encode_cursor(value) -> str:
    raw = json.dumps(value, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a cursor value")  # JSON's Infinity, -Infinity, NaN


def decode_cursor(cursor: str):
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(
            base64.urlsafe_b64decode(padded.encode()), parse_constant=_refuse_constant
        )
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise ValidationError(
            [{"loc": ["query", "cursor"], "msg": "Unknown cursor: pass next_cursor as given."}]
        ) from None


class CursorPagination(PaginationBase):
    """Keyset pagination (default: newest id first).

    `?limit=` (default 50, max 1000) and `?cursor=`; answers
    `{"items": [...], "next_cursor": "..." | null}`. `ordering` is one unique field or a
    field plus "id" as tie-breaker, all in one direction (e.g. ("-occurred_at", "-id")).
    Stable under inserts: a page never repeats or skips rows that existed when the first
    page was read.
    """

    class Input(Schema):
        limit: int = Field(50, ge=1, le=1000, description="Items per page (1-1000).")
        cursor: str | None = Field(None, description="next_cursor of the previous page.")

    class Output(Schema):
        items: list[Any]
        next_cursor: str | None = None

    def __init__(self, *, ordering: tuple[str, ...] | str = "-id", **kwargs):
        super().__init__(**kwargs)
        ordering = (ordering,) if isinstance(ordering, str) else tuple(ordering)
        self.ordering = ordering
        self.fields = [f.lstrip("-") for f in ordering]
        self.descending = ordering[0].startswith("-")

    def _after(self, values: list) -> Q:
        """Rows strictly after `values` in the ordering (a row-value comparison)."""
        op = "lt" if self.descending else "gt"
        condition = Q()
        for i, name in enumerate(self.fields):
            step = Q(**{f"{name}__{op}": values[i]})
            for prev, value in zip(self.fields[:i], values[:i], strict=True):
                step &= Q(**{prev: value})
            condition |= step
        return condition

    def paginate_queryset(self, queryset, pagination: Input, **params):
        queryset = queryset.order_by(*self.ordering)
        if pagination.cursor:
            after = decode_cursor(pagination.cursor)
            if (
                not isinstance(after, list)
                or len(after) != len(self.fields)
                or not all(_cursor_scalar(v) for v in after)
            ):  # fmt: skip
                decode_cursor("!")  # raises the 422 for an unknown cursor
            try:
                queryset = queryset.filter(self._after(after))
            except (ValueError, TypeError, OverflowError, DjangoValidationError):
                decode_cursor("!")
        rows = list(queryset[: pagination.limit + 1])
        next_cursor = None
        if len(rows) > pagination.limit:
            rows = rows[: pagination.limit]
            last = rows[-1]
            next_cursor = encode_cursor([_cursor_value(getattr(last, f)) for f in self.fields])
        return {"items": rows, "next_cursor": next_cursor}


def _cursor_scalar(value) -> bool:
    """A value a cursor may hold: text, or a finite number the database's bigint holds
    (1e999 reads as infinity, 1e300 overflows a bigint)."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, str) or -(2**63) <= value < 2**63


def _cursor_value(value):
    return value.isoformat() if hasattr(value, "isoformat") else value
