"""A local fake of the part of Klaviyo's REST API a segment sync reads, checking what
Klaviyo checks, so a client that gets through it would get through Klaviyo:

- GET /api/lists, /api/segments (10 a page, `page[size]` 1..10, `fields[list|segment]`) and
  /api/{lists|segments}/{id}/profiles (`page[size]` 1..100, default 20; `fields[profile]`;
  `filter` on joined_group_at with greater-than, greater-or-equal, less-than, less-or-equal;
  `sort=[-]joined_group_at`), answered as JSON:API documents (`application/vnd.api+json`)
  whose `links.next` carries an opaque `page[cursor]` and every other parameter, null on
  the last page. An unknown parameter, field or operator is a 400, as a typo would be.
- Authorization `Klaviyo-API-Key <key>`: missing -> 401 not_authenticated, another key ->
  401 authentication_failed, a key without the endpoint's read scope -> 403
  permission_denied; the `revision` header missing, malformed, retired (2024 and older)
  or not a released revision -> 400; an Accept it cannot answer -> 406.
- Klaviyo's error body: {"errors": [{"id", "status", "code", "title", "detail", "source"}]}.
- Rate limits: at most `burst` requests in any `burst_window` (1 s) and `per_minute` in any
  `steady_window` (60 s), else 429 with Retry-After (seconds, or an HTTP date, or none).
  Klaviyo counts in fixed windows; rolling ones are the strict reading of them (a client
  that never crosses a rolling window never crosses a fixed one, however aligned).
  Limits, windows and the clock are parameters, so tests run them scaled or in
  VirtualClock time shared with the client.
- Switches: fail(at=N, kind, times) answers the Nth request on (and the next times-1) with
  a 5xx (JSON, or 502 as a proxy's HTML page), a 429, malformed JSON or JSON that is not a
  JSON:API document.

Run on its own (the benchmark does, in another process):
    python -m tests.channels.klaviyo_fake --port 8123 --segments 5 --per-segment 20000
prints "ready", then a JSON line of stats for each line read on stdin."""

import argparse
import base64
import binascii
import contextlib
import json
import logging
import math
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import urlencode

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

API_KEY = "pk_" + "f4k3" * 8 + "00"  # pk_ and 34 characters, as Klaviyo's private keys
# Released revisions still answered in December 2026; the 2024 ones are retired.
REVISIONS = frozenset(
    f"{year}-{month}-15" for year in (2025, 2026) for month in ("01", "04", "07", "10")
)
READ_SCOPES = frozenset({"lists:read", "segments:read", "profiles:read"})
JSON_API = "application/vnd.api+json"
PROFILE_ATTRIBUTES = (
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "organization",
    "locale",
    "title",
    "image",
    "created",
    "updated",
    "last_event_date",
    "location",
    "properties",
    "joined_group_at",
)
GROUP_ATTRIBUTES = {
    "list": ("name", "created", "updated", "opt_in_process"),
    "segment": ("name", "created", "updated", "is_active", "is_processing", "is_starred"),
}
GROUP_PARAMS = {"page[cursor]", "page[size]", "sort", "include", "fields[tag]", "fields[flow]"}
PROFILE_PARAMS = {"page[cursor]", "page[size]", "sort", "filter", "fields[profile]"}
PROFILE_PARAMS |= {"additional-fields[profile]"}
COMPARE = {
    "greater-than": lambda a, b: a > b,
    "greater-or-equal": lambda a, b: a >= b,
    "less-than": lambda a, b: a < b,
    "less-or-equal": lambda a, b: a <= b,
}
FAILURES = ("500", "502", "503", "504", "429", "malformed", "not-jsonapi")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


class VirtualClock:
    """Time a client and the fake share: it moves only when the client sleeps."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Refused(Exception):
    """An error answer, raised from deep in a handler."""

    def __init__(self, status: int, code: str, title: str, detail: str, **source):
        super().__init__(detail)
        self.status, self.code, self.title, self.detail, self.source = (
            status,
            code,
            title,
            detail,
            source,
        )

    def response(self, headers=None) -> Response:
        return error_response(
            self.status, self.code, self.title, self.detail, headers=headers, **self.source
        )


def error_response(status, code, title, detail, *, headers=None, **source) -> Response:
    error = {"id": str(uuid.uuid4()), "status": status, "code": code, "title": title}
    error |= {"detail": detail, "source": source or {"pointer": "/data/"}}
    return Response(
        json.dumps({"errors": [error]}), status=status, content_type=JSON_API, headers=headers
    )


def invalid(detail: str, parameter: str) -> Refused:
    return Refused(400, "invalid", "Invalid input.", detail, parameter=parameter)


@dataclass
class Group:
    id: str
    kind: str
    name: str
    created: str
    updated: str
    members: list[tuple[str, str]] = field(default_factory=list)  # (profile id, joined at)
    positions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """One request the fake answered."""

    at: float
    method: str
    path: str
    args: dict[str, str]
    headers: dict[str, str]
    status: int


class FakeKlaviyo:
    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        scopes=READ_SCOPES,
        burst: int = 75,
        per_minute: int = 750,
        burst_window: float = 1.0,
        steady_window: float = 60.0,
        clock=time.monotonic,
        retry_after: str = "seconds",  # "seconds" | "date" | "none"
        forced_retry_after: int = 2,  # what a fail(kind="429") asks for
    ):
        self.api_key, self.scopes = api_key, set(scopes)
        self.burst, self.per_minute = burst, per_minute
        self.burst_window, self.steady_window = burst_window, steady_window
        self.clock = clock
        self.retry_after, self.forced_retry_after = retry_after, forced_retry_after
        self.groups: dict[str, dict[str, Group]] = {"list": {}, "segment": {}}
        self.profiles: dict[str, dict] = {}
        self.next_base: str | None = None  # links on another host, to test the client
        self.requests = 0
        self.throttled = 0
        self.log: list[Seen] = []
        self._stamps: deque[float] = deque(maxlen=max(burst, per_minute))
        self._failures: dict[int, str] = {}
        self._lock = threading.Lock()

    # --- data ------------------------------------------------------------------------

    def add_group(self, kind: str, name: str, *, created: datetime | None = None) -> str:
        groups = self.groups[kind]
        group_id = f"{'L' if kind == 'list' else 'S'}{len(groups) + 1:05d}"
        when = iso(created or datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=len(groups)))
        groups[group_id] = Group(group_id, kind, name, when, when)
        return group_id

    def add_profile(self, **attributes) -> str:
        profile_id = f"01KFAKE{len(self.profiles) + 1:019d}"
        unknown = set(attributes) - set(PROFILE_ATTRIBUTES)
        if unknown:
            raise ValueError(f"not profile attributes: {sorted(unknown)}")
        created = iso(datetime(2025, 6, 1, tzinfo=UTC))
        self.profiles[profile_id] = {
            **dict.fromkeys(PROFILE_ATTRIBUTES),
            "created": created,
            "updated": created,
            "properties": {},
            **attributes,
        }
        return profile_id

    def join(self, kind: str, group_id: str, profile_id: str, joined_at: datetime) -> None:
        """Adds the profile to the group; joining again moves its joined_group_at."""
        group = self.groups[kind][group_id]
        if profile_id in group.positions:
            group.members[group.positions[profile_id]] = (profile_id, iso(joined_at))
        else:
            group.positions[profile_id] = len(group.members)
            group.members.append((profile_id, iso(joined_at)))

    def leave(self, kind: str, group_id: str, profile_id: str) -> None:
        group = self.groups[kind][group_id]
        group.members.pop(group.positions.pop(profile_id))
        group.positions = {p: i for i, (p, _) in enumerate(group.members)}

    def fill(self, *, kind: str = "segment", groups: int = 5, per_group: int = 20_000) -> None:
        """`groups` groups of `per_group` profiles each, no profile in two of them."""
        start = datetime(2026, 3, 1, tzinfo=UTC)
        for g in range(groups):
            group_id = self.add_group(kind, f"Segment {g + 1}")
            for i in range(per_group):
                n = g * per_group + i
                profile_id = self.add_profile(
                    email=f"person{n}@example.com",
                    phone_number=f"+1555{n:07d}",
                    external_id=f"ext-{n}",
                    first_name=f"First{n}",
                    last_name=f"Last{n}",
                )
                self.join(kind, group_id, profile_id, start + timedelta(seconds=n))

    def fail(self, at: int, kind: str, *, times: int = 1) -> None:
        """Answer request number `at` (1 = the first this fake gets) and the `times - 1`
        after it with `kind` instead of the real answer."""
        if kind not in FAILURES:
            raise ValueError(f"kind must be one of {FAILURES}")
        for n in range(at, at + times):
            self._failures[n] = kind

    def stats(self) -> dict:
        return {"requests": self.requests, "throttled": self.throttled}

    # --- HTTP ------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests += 1
            response = self._answer(request, self.requests)
            if response.status_code == 429:
                self.throttled += 1
            self.log.append(
                Seen(
                    at=self.clock(),
                    method=request.method,
                    path=request.path,
                    args=dict(request.args),
                    headers={k: request.headers.get(k, "") for k in ("Accept", "revision")},
                    status=response.status_code,
                )
            )
            return response

    def _answer(self, request: Request, number: int) -> Response:
        failure = self._failures.pop(number, None)
        if failure:
            return self._failure(failure)
        try:
            self._check_headers(request)
            route = self._route(request)
            self._check_scopes(route)
            wait = self._throttle()
            if wait:
                return self._too_many(wait)
            body = self._serve(request, *route)
        except Refused as e:
            return e.response(self._rate_headers())
        return Response(
            json.dumps(body), status=200, content_type=JSON_API, headers=self._rate_headers()
        )

    def _failure(self, kind: str) -> Response:
        if kind == "502":
            return Response(
                "<html><body><h1>502 Bad Gateway</h1></body></html>",
                status=502,
                content_type="text/html",
            )
        if kind == "429":
            return self._too_many(self.forced_retry_after)
        if kind == "malformed":
            return Response('{"data": [{"type": "profile", "id": "01K', content_type=JSON_API)
        if kind == "not-jsonapi":
            return Response(json.dumps({"profiles": [], "next": None}), content_type=JSON_API)
        status = int(kind)
        return error_response(
            status, "error", "A server error occurred.", "A server error occurred."
        )

    def _check_headers(self, request: Request) -> None:
        authorization = request.headers.get("Authorization", "")
        scheme, _, key = authorization.partition(" ")
        if scheme != "Klaviyo-API-Key" or not key:
            raise Refused(
                401,
                "not_authenticated",
                "Authentication credentials were not provided.",
                "Missing or invalid private key.",
            )
        if key != self.api_key:
            raise Refused(
                401,
                "authentication_failed",
                "Incorrect authentication credentials.",
                "Incorrect authentication credentials.",
            )
        revision = request.headers.get("revision", "")
        if not revision:
            raise Refused(
                400,
                "invalid",
                "Invalid input.",
                "The `revision` header is required.",
                parameter="revision",
            )
        released = revision.split(".", 1)[0]  # YYYY-MM-DD[.suffix]
        if released not in REVISIONS:
            retired = re.fullmatch(r"\d{4}-\d{2}-\d{2}", released) and released < min(REVISIONS)
            raise Refused(
                400,
                "invalid",
                "Invalid input.",
                f"The revision {revision!r} is "
                + ("retired" if retired else "not a valid revision")
                + f"; valid revisions are {min(REVISIONS)} to {max(REVISIONS)}.",
                parameter="revision",
            )
        accept = request.headers.get("Accept", "*/*")
        if not any(t in accept for t in (JSON_API, "application/json", "*/*", "application/*")):
            raise Refused(
                406, "not_acceptable", "Not acceptable.", f"Cannot answer Accept: {accept}."
            )

    def _route(self, request: Request) -> tuple[str, str | None]:
        if request.method != "GET":
            raise Refused(
                405,
                "method_not_allowed",
                "Method not allowed.",
                f'Method "{request.method}" not allowed.',
            )
        match = re.fullmatch(r"/api/(lists|segments)(?:/([^/]+)/profiles)?/?", request.path)
        if not match:
            raise Refused(404, "not_found", "Not found.", f"No endpoint at {request.path}.")
        return match[1][:-1], match[2]

    def _check_scopes(self, route: tuple[str, str | None]) -> None:
        kind, group_id = route
        needed = {f"{kind}s:read"} | ({"profiles:read"} if group_id else set())
        if needed - self.scopes:
            raise Refused(
                403,
                "permission_denied",
                "You do not have permission to perform this action.",
                "This API key is missing required scopes: " + ", ".join(sorted(needed)),
            )

    # --- rate limits -----------------------------------------------------------------

    def _throttle(self) -> float:
        """0 and the request counts, or the seconds until it could."""
        now = self.clock()
        stamps, wait = self._stamps, 0.0
        for limit, window in (
            (self.burst, self.burst_window),
            (self.per_minute, self.steady_window),
        ):
            if len(stamps) >= limit and stamps[-limit] > now - window:
                wait = max(wait, stamps[-limit] + window - now)
        if not wait:
            stamps.append(now)
        return wait

    def _too_many(self, wait: float) -> Response:
        seconds = max(1, math.ceil(wait))
        headers = {}
        if self.retry_after == "seconds":
            headers["Retry-After"] = str(seconds)
        elif self.retry_after == "date":  # wall time: the server's Date header is, too
            ceiling = datetime.fromtimestamp(math.ceil(time.time()), UTC)
            headers["Retry-After"] = format_datetime(
                ceiling + timedelta(seconds=seconds), usegmt=True
            )
        return error_response(
            429,
            "throttled",
            "Request was throttled.",
            f"Request was throttled. Expected available in {seconds} second"
            + ("s." if seconds != 1 else "."),
            headers=headers,
        )

    def _rate_headers(self) -> dict[str, str]:
        now = self.clock()
        in_window = [s for s in self._stamps if s > now - self.steady_window]
        reset = math.ceil(in_window[0] + self.steady_window - now) if in_window else 0
        return {
            "RateLimit-Limit": str(self.per_minute),
            "RateLimit-Remaining": str(max(0, self.per_minute - len(in_window))),
            "RateLimit-Reset": str(reset),
        }

    # --- documents -------------------------------------------------------------------

    def _serve(self, request: Request, kind: str, group_id: str | None) -> dict:
        args = request.args
        allowed = PROFILE_PARAMS if group_id else GROUP_PARAMS | {f"fields[{kind}]"}
        for name in args:
            if name not in allowed:
                raise invalid(f"'{name}' is not a valid query parameter here.", name)
        base = (self.next_base or request.host_url).rstrip("/")
        if group_id is None:
            rows = list(self.groups[kind].values())
            size = self._page_size(args, default=10, most=10)
            fields = self._fields(args, f"fields[{kind}]", GROUP_ATTRIBUTES[kind])
            for name in ("sort", "include"):
                if name in args:
                    raise invalid(f"The fake does not implement '{name}' on /api/{kind}s.", name)
            make = self._group_object
        else:
            group = self.groups[kind].get(group_id)
            if group is None:
                raise Refused(
                    404, "not_found", "Not found.", f"A {kind} with id {group_id} does not exist."
                )
            rows = self._members(group, args)
            size = self._page_size(args, default=20, most=100)
            fields = self._fields(args, "fields[profile]", PROFILE_ATTRIBUTES)
            make = self._profile_object
        offset = self._cursor(args)
        page = rows[offset : offset + size]
        url = base + request.path
        kept = {k: v for k, v in args.items() if k != "page[cursor]"}

        def link(at: int) -> str:
            return url + "?" + urlencode({**kept, "page[cursor]": self._encode(at)})

        return {
            "data": [make(row, fields, base) for row in page],
            "links": {
                "self": url + ("?" + urlencode(args) if args else ""),
                "next": link(offset + size) if offset + size < len(rows) else None,
                "prev": link(max(0, offset - size)) if offset else None,
            },
        }

    @staticmethod
    def _page_size(args, *, default: int, most: int) -> int:
        raw = args.get("page[size]")
        if raw is None:
            return default
        if not raw.isdigit() or not 1 <= int(raw) <= most:
            raise invalid(f"Page size must be an integer between 1 and {most}.", "page[size]")
        return int(raw)

    @staticmethod
    def _fields(args, name: str, known) -> tuple[str, ...]:
        raw = args.get(name)
        if raw is None:
            return tuple(known)
        fields = tuple(f for f in raw.split(",") if f)
        for f in fields:
            if f not in known:
                raise invalid(f"'{f}' is not a valid field for {name}.", name)
        return fields

    @staticmethod
    def _encode(offset: int) -> str:
        return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode().rstrip("=")

    @staticmethod
    def _cursor(args) -> int:
        raw = args.get("page[cursor]")
        if raw is None:
            return 0
        try:
            offset = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))["o"]
        except (binascii.Error, ValueError, KeyError, TypeError):
            offset = None
        if not isinstance(offset, int) or offset < 0:
            raise invalid("The page cursor is not valid.", "page[cursor]")
        return offset

    def _members(self, group: Group, args) -> list[tuple[str, str]]:
        members = group.members
        raw = args.get("filter")
        if raw is not None:
            tests = []
            for op, value in self._filter_terms(raw):
                tests.append((COMPARE[op], value))
            members = [
                m
                for m in members
                if all(test(datetime.fromisoformat(m[1]), value) for test, value in tests)
            ]
        sort = args.get("sort")
        if sort is not None:
            if sort not in ("joined_group_at", "-joined_group_at"):
                raise invalid(f"'{sort}' is not a valid sort field.", "sort")
            members = sorted(
                members, key=lambda m: m[1], reverse=sort.startswith("-")
            )  # ISO in UTC sorts as time
        return members

    @staticmethod
    def _filter_terms(raw: str) -> list[tuple[str, datetime]]:
        """Comma-separated op(field,value) terms; joined_group_at is the only field."""
        terms = re.findall(r"([a-z-]+)\(([^()]*)\)", raw)
        if not terms or ",".join(f"{op}({a})" for op, a in terms) != raw:
            raise invalid(f"Invalid filter: {raw!r}.", "filter")
        parsed = []
        for op, arguments in terms:
            name, _, value = arguments.partition(",")
            if name != "joined_group_at":
                raise invalid(f"'{name}' is not a filterable field here.", "filter")
            if op not in COMPARE:
                raise invalid(f"'{op}' is not a valid operator for joined_group_at.", "filter")
            try:
                when = datetime.fromisoformat(value.strip("'\""))
            except ValueError:
                raise invalid(f"{value!r} is not a valid date-time.", "filter") from None
            parsed.append((op, when if when.tzinfo else when.replace(tzinfo=UTC)))
        return parsed

    def _profile_object(self, member: tuple[str, str], fields, base: str) -> dict:
        profile_id, joined = member
        attributes = {**self.profiles[profile_id], "joined_group_at": joined}
        return {
            "type": "profile",
            "id": profile_id,
            "attributes": {f: attributes[f] for f in fields},
            "links": {"self": f"{base}/api/profiles/{profile_id}"},
        }

    def _group_object(self, group: Group, fields, base: str) -> dict:
        attributes = {"name": group.name, "created": group.created, "updated": group.updated}
        if group.kind == "list":
            attributes["opt_in_process"] = "single_opt_in"
        else:
            attributes |= {"is_active": True, "is_processing": False, "is_starred": False}
        return {
            "type": group.kind,
            "id": group.id,
            "attributes": {f: attributes[f] for f in fields},
            "relationships": {
                "profiles": {"links": {"related": f"{base}/api/{group.kind}s/{group.id}/profiles"}}
            },
            "links": {"self": f"{base}/api/{group.kind}s/{group.id}"},
        }


@contextlib.contextmanager
def serving(handler: Callable[[Request], Response], *, port: int = 0):
    """A handler (a FakeKlaviyo's handle) on 127.0.0.1, a thread per connection; yields
    the base URL. Stopping takes half a second (werkzeug polls): share one per module."""
    server = HTTPServer(host="127.0.0.1", port=port, threaded=True)
    server.expect_request(re.compile(r".*")).respond_with_handler(handler)
    server.start()
    try:
        yield server.url_for("").rstrip("/")
    finally:
        server.clear()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--segments", type=int, default=5)
    parser.add_argument("--per-segment", type=int, default=20_000)
    parser.add_argument("--api-key", default=API_KEY)
    parser.add_argument("--burst", type=int, default=75)
    parser.add_argument("--per-minute", type=int, default=750)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    fake = FakeKlaviyo(api_key=args.api_key, burst=args.burst, per_minute=args.per_minute)
    fake.fill(groups=args.segments, per_group=args.per_segment)
    with serving(fake.handle, port=args.port):
        print("ready", flush=True)
        for _ in sys.stdin:
            print(json.dumps(fake.stats()), flush=True)


if __name__ == "__main__":
    main()
