"""Klaviyo's REST API as a channel's segment source: its lists and segments (the channel
entries) and their profiles (Herald people), read with httpx, paced to Klaviyo's limits.

What it speaks (Klaviyo's OpenAPI documents, github.com/klaviyo/openapi, stable/apis):
- `Authorization: Klaviyo-API-Key <private key>`, a `revision` header (a dated snapshot of
  the API; REVISION is pinned: revisions retire about two years after release, and the
  2024 ones are retired already), `Accept: application/vnd.api+json`.
- JSON:API documents: `data[]` of `{type, id, attributes}`, `links.next` the URL of the next
  page (its `page[cursor]` opaque) until it is null or absent.
- GET /api/lists and /api/segments: 10 a page (their most), `fields[list|segment]`.
- GET /api/{lists|segments}/{id}/profiles: `page[size]` up to 100, `fields[profile]`, and
  `filter=greater-or-equal(joined_group_at,<ISO 8601>)` for the incremental pulls.
- Errors as `{"errors": [{"id", "status", "code", "title", "detail", "source"}]}`.
- Rate limits per account, two fixed windows: these endpoints allow 75 requests in a second
  (burst) and 750 in a minute (steady); over either, 429 with `Retry-After` (seconds).

Why not the official `klaviyo-api` SDK: on a 429 it retries with tenacity's random
exponential wait (max_delay / max_retries, 3 attempts by default) and never reads
Retry-After, and it has no client-side pacing, so a long sync leans on 429s and can give up
mid-way; it also speaks urllib3, so the SSRF guard's transport (every connection checked)
and trust_env=False could not apply. Four GET endpoints are a small httpx client, and
staying under both windows here means a sync normally never sees a 429 at all.

One client serves one sync, from one thread (the limiter and the counters are not shared)."""

import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import quote, urlsplit

import httpx

from channels.transports.guard import http_transport, is_blocked, private_allowed

KLAVIYO_API = "https://a.klaviyo.com"
# Pinned, not "latest": a new revision may change a shape this client reads. Move it
# forward before it is deprecated (a year after release); the fake checks it is accepted.
REVISION = "2026-10-15"
GROUP_PAGE_SIZE = 10  # /api/lists and /api/segments: fixed by Klaviyo
PROFILE_PAGE_SIZE = 100  # /api/{kind}s/{id}/profiles: page[size] maximum
PROFILE_FIELDS = (
    "email",
    "phone_number",
    "external_id",
    "first_name",
    "last_name",
    "joined_group_at",
)
GROUP_FIELDS = ("name", "created", "updated")
AUTH_MESSAGE = (
    "Klaviyo refused the API key: check it has read access to lists, segments and profiles"
)

Kind = Literal["list", "segment"]
KINDS: tuple[Kind, ...] = ("list", "segment")


@dataclass(frozen=True, slots=True)
class Group:
    """A Klaviyo list or segment: one channel entry."""

    id: str
    name: str
    kind: Kind
    created: datetime | None
    updated: datetime | None


@dataclass(frozen=True, slots=True)
class Profile:
    """A member of a list or segment, as much of it as Herald matches people on."""

    id: str
    email: str | None
    phone_number: str | None
    external_id: str | None
    first_name: str | None
    last_name: str | None
    joined_group_at: datetime | None  # when it (last) joined the group it was read from


class KlaviyoError(Exception):
    """Klaviyo could not be read. `temporary`: worth a later retry (Klaviyo down, out of
    retries on 5xx or the network, throttled past the wait cap); `path` the URL path."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        status: int | None = None,
        temporary: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.path = path
        self.status = status
        self.temporary = temporary


class KlaviyoAuthError(KlaviyoError):
    """401 or 403: the key is wrong, revoked or lacks a read scope. Never retried."""


class KlaviyoRateLimited(KlaviyoError):
    """Klaviyo kept answering 429 for longer than the client may wait in one sync."""


class RateLimiter:
    """Keeps one client within Klaviyo's two windows for an endpoint group:
    - at most `burst` requests in any 1 s and `per_minute` in any 60 s. Klaviyo counts in
      fixed windows whose alignment the client cannot see; a rolling window of the same
      length is the loosest rule that never crosses a fixed one, however aligned;
    - a token bucket of `burst` tokens refilled at `per_second`, which spaces requests out
      once a burst is spent (with the defaults, 75 and 75, the 1 s window alone binds).
    A request counts from the moment its answer came back: Klaviyo counted it no later
    than that, so network delays can never squeeze two requests into one window.
    In process, not channels.ratelimit's Redis bucket: a bucket cannot express a fixed
    window (75 + 75/s lets 150 into one second), and one sync per account at a time holds
    the quota; what the account's other integrations spend shows up as 429s, waited out."""

    MARGIN = 0.001  # s past a window's edge, so float rounding never lands on it

    def __init__(
        self,
        *,
        burst: int = 75,
        per_second: float = 75,
        per_minute: int = 750,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if burst < 1 or per_second <= 0 or per_minute < 1:
            raise ValueError("burst, per_second and per_minute must be positive")
        self.burst, self.per_second, self.per_minute = burst, per_second, per_minute
        self._clock, self._sleep = clock, sleep
        self._tokens = float(burst)
        self._at = clock()
        self._answered: deque[float] = deque(maxlen=max(burst, per_minute))

    def _delay(self, now: float) -> float:
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.per_second)
        self._at = now
        delay = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.per_second
        log = self._answered
        if len(log) >= self.burst:
            delay = max(delay, log[-self.burst] + 1.0 + self.MARGIN - now)
        if len(log) >= self.per_minute:
            delay = max(delay, log[-self.per_minute] + 60.0 + self.MARGIN - now)
        return delay

    def acquire(self) -> float:
        """Wait until one more request may go, take its token; the seconds waited."""
        waited = 0.0
        while (delay := self._delay(self._clock())) > 0:
            self._sleep(delay)
            waited += delay
        self._tokens -= 1
        return waited

    def answered(self) -> None:
        """The request acquired last has its answer (or failed): it counts from now."""
        self._answered.append(self._clock())


def retry_after(headers: httpx.Headers, *, default: float = 1.0) -> float:
    """Seconds to wait by a Retry-After header: delta-seconds or an HTTP date (taken
    against the answer's own Date header when there is one, so clock skew does not
    matter); `default` when it is missing or unreadable."""
    value = headers.get("retry-after", "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
            sent = headers.get_list("date")  # an HTTP date has a comma: one per header
            now = parsedate_to_datetime(sent[0]) if sent else datetime.now(UTC)
        except (TypeError, ValueError, IndexError):
            return default
        if when.tzinfo is None:  # "-0000": UTC, origin unknown
            when = when.replace(tzinfo=UTC)
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return default
    return max(0.0, seconds)


def _errors_said(response: httpx.Response) -> str:
    """Klaviyo's own words from an error body, if it has any."""
    try:
        errors = response.json().get("errors") or []
        said = "; ".join(
            str(e.get("detail") or e.get("title") or e.get("code")) for e in errors[:3]
        )
    except (ValueError, AttributeError, TypeError):
        return ""
    return f": {said}" if said else ""


def _when(value, field: str, path: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise KlaviyoError(
        f"Klaviyo's answer for {path} has {field}={value!r}, not a date-time", path=path
    )


def _text(value, field: str, path: str) -> str | None:
    if value is None or isinstance(value, str):
        return value or None
    raise KlaviyoError(
        f"Klaviyo's answer for {path} has {field}={value!r}, not a string", path=path
    )


def _filter_time(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("joined_after must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class KlaviyoClient:
    """Reads one Klaviyo account. Counters for job progress and the benchmark:
    `requests_made` (every attempt, retries included), `waited_seconds` (pacing, 429 waits
    and backoff), `rate_limited` (429 answers received)."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = KLAVIYO_API,
        revision: str = REVISION,
        burst: int = 75,
        per_second: float = 75,
        per_minute: int = 750,
        timeout: float = 20,
        allow_private: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        max_retries: int = 5,
        max_throttle_wait: float = 300,
    ):
        """`max_retries`: further attempts of a request after a 5xx or a network error
        (with backoff); `max_throttle_wait`: the most seconds one request may spend waiting
        out 429s (they are not failures, but a sync must end)."""
        if not api_key:
            raise ValueError("a Klaviyo private API key is required")
        self.max_retries = max_retries
        self.max_throttle_wait = max_throttle_wait
        self._sleep = sleep
        self._limiter = RateLimiter(
            burst=burst, per_second=per_second, per_minute=per_minute, clock=clock, sleep=sleep
        )
        self._origin = urlsplit(base_url)[:2]
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={
                "Authorization": f"Klaviyo-API-Key {api_key}",
                "revision": revision,
                "Accept": "application/vnd.api+json",
                "User-Agent": "Herald",
            },
            timeout=timeout,
            # no HTTP(S)_PROXY from the environment: a proxy would connect in the guard's place
            trust_env=False,
            transport=http_transport(allow_private=private_allowed(allow_private)),
        )
        self.requests_made = 0
        self.waited_seconds = 0.0
        self.rate_limited = 0

    def __enter__(self) -> "KlaviyoClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- reads ---------------------------------------------------------------------

    def lists(self) -> Iterator[Group]:
        yield from self._groups("list")

    def segments(self) -> Iterator[Group]:
        yield from self._groups("segment")

    def profiles(
        self, kind: Kind, group_id: str, *, joined_after: datetime | None = None
    ) -> Iterator[Profile]:
        """Every profile in the list or segment, page after page. `joined_after` (aware):
        only those that joined at or after it, to the second (Klaviyo filters to the
        second; the few in that second may come again, and adding a member twice is a
        no-op, while `greater-than` on a truncated time could miss one)."""
        if kind not in KINDS:
            raise ValueError(f"kind must be 'list' or 'segment', not {kind!r}")
        params = {"page[size]": str(PROFILE_PAGE_SIZE), "fields[profile]": ",".join(PROFILE_FIELDS)}
        if joined_after is not None:
            params["filter"] = f"greater-or-equal(joined_group_at,{_filter_time(joined_after)})"
        path = f"/api/{kind}s/{quote(group_id, safe='')}/profiles"
        for item, at in self._items(path, params, "profile"):
            attributes = item["attributes"]
            yield Profile(
                id=item["id"],
                email=_text(attributes.get("email"), "email", at),
                phone_number=_text(attributes.get("phone_number"), "phone_number", at),
                external_id=_text(attributes.get("external_id"), "external_id", at),
                first_name=_text(attributes.get("first_name"), "first_name", at),
                last_name=_text(attributes.get("last_name"), "last_name", at),
                joined_group_at=_when(attributes.get("joined_group_at"), "joined_group_at", at),
            )

    def _groups(self, kind: Kind) -> Iterator[Group]:
        params = {f"fields[{kind}]": ",".join(GROUP_FIELDS)}
        for item, at in self._items(f"/api/{kind}s", params, kind):
            attributes = item["attributes"]
            yield Group(
                id=item["id"],
                name=_text(attributes.get("name"), "name", at) or "",
                kind=kind,
                created=_when(attributes.get("created"), "created", at),
                updated=_when(attributes.get("updated"), "updated", at),
            )

    # --- JSON:API paging -----------------------------------------------------------

    def _items(self, path: str, params: dict, type_: str) -> Iterator[tuple[dict, str]]:
        """Each resource object of every page, with the path of the page it came on."""
        url: str | None = path
        while url is not None:
            at = urlsplit(url).path
            document = self._get(url, params)
            data = document.get("data") if isinstance(document, dict) else None
            if not isinstance(data, list):
                raise KlaviyoError(
                    f"Klaviyo's answer for {at} is not a JSON:API collection (no data list)",
                    path=at,
                )
            for item in data:
                if (
                    not isinstance(item, dict)
                    or not isinstance(item.get("id"), str)
                    or not item["id"]
                    or item.get("type", type_) != type_
                    or not isinstance(item.setdefault("attributes", {}), dict)
                ):
                    raise KlaviyoError(
                        f"Klaviyo's answer for {at} has an entry that is not a {type_} "
                        f"resource object: {str(item)[:200]}",
                        path=at,
                    )
                yield item, at
            url, params = self._next(document, url, at), None

    def _next(self, document: dict, url: str, at: str) -> str | None:
        links = document.get("links") or {}
        if not isinstance(links, dict):
            raise KlaviyoError(
                f"Klaviyo's answer for {at} has links that are not an object", path=at
            )
        following = links.get("next")
        if following is None:
            return None
        if not isinstance(following, str) or not following:
            raise KlaviyoError(
                f"Klaviyo's answer for {at} has a links.next that is not a URL", path=at
            )
        if urlsplit(following)[:2] != self._origin:  # the key goes with every request
            raise KlaviyoError(
                f"Klaviyo's answer for {at} links the next page on another host: {following}",
                path=at,
            )
        if following == url:
            raise KlaviyoError(f"Klaviyo's answer for {at} links back to the same page", path=at)
        return following

    # --- one request, paced and retried ----------------------------------------------

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._sleep(seconds)
            self.waited_seconds += seconds

    def _get(self, url: str, params: dict | None) -> object:
        path = urlsplit(url).path
        failures = 0
        throttled_for = 0.0
        while True:
            self.waited_seconds += self._limiter.acquire()
            self.requests_made += 1
            try:
                response = self._http.get(url, params=params)
            except httpx.TransportError as e:
                self._limiter.answered()
                if is_blocked(e):
                    raise KlaviyoError(f"{e} ({path})", path=path) from e
                failures += 1
                if failures > self.max_retries:
                    raise KlaviyoError(
                        f"Klaviyo could not be reached for {path} "
                        f"({failures} attempts): {e.__class__.__name__}: {e}",
                        path=path,
                        temporary=True,
                    ) from e
                self._pause(self._backoff(failures))
                continue
            self._limiter.answered()
            status = response.status_code
            if status == 429:
                self.rate_limited += 1
                delay = max(retry_after(response.headers), 0.25)  # never spin on "0"
                if throttled_for + delay > self.max_throttle_wait:
                    raise KlaviyoRateLimited(
                        f"Klaviyo kept throttling {path} for more than "
                        f"{self.max_throttle_wait:.0f} s{_errors_said(response)}",
                        path=path,
                        status=429,
                        temporary=True,
                    )
                throttled_for += delay
                self._pause(delay)
                continue
            if status in (401, 403):
                raise KlaviyoAuthError(
                    f"{AUTH_MESSAGE} (Klaviyo answered {status} for {path}"
                    f"{_errors_said(response)})",
                    path=path,
                    status=status,
                )
            if status >= 500:
                failures += 1
                if failures > self.max_retries:
                    raise KlaviyoError(
                        f"Klaviyo answered {status} for {path} {failures} times in a row"
                        f"{_errors_said(response)}",
                        path=path,
                        status=status,
                        temporary=True,
                    )
                wait = self._backoff(failures)
                if "retry-after" in response.headers:
                    wait = retry_after(response.headers, default=wait)
                self._pause(min(wait, 60.0))
                continue
            if not 200 <= status < 300:
                raise KlaviyoError(
                    f"Klaviyo refused {path}: {status}{_errors_said(response)}",
                    path=path,
                    status=status,
                )
            try:
                return response.json()
            except ValueError as e:
                raise KlaviyoError(
                    f"Klaviyo's answer for {path} is not JSON: {e} (starts {response.text[:80]!r})",
                    path=path,
                    status=status,
                ) from e

    @staticmethod
    def _backoff(failures: int) -> float:
        return min(30.0, 0.5 * 2 ** (failures - 1))
