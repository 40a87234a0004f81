"""Meta custom audiences over the Marketing API: a channel audience's people go to its Meta
custom audience (`meta_audience_id`) as hashed identifiers, in batches of at most 10,000
tied together by one upload session.

The contract, as Meta documents it (Customer File Custom Audiences guide and the
`/{custom_audience_id}/users` and `/usersreplace` references, Graph API v25.0-v27.0):

- `POST /{version}/{audience_id}/users` adds people; `POST .../usersreplace` removes every
  existing member and puts the session's people in their place, without resetting the
  learning phase of the ad sets that use the audience.
- Each request carries `payload = {"schema": [...], "data": [[...], ...]}` and
  `session = {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"}`.
  Herald sends the multi-key form `["EMAIL", "PHONE", "EXTERN_ID"]`: in a multi-key
  schema the keys are named EMAIL and PHONE (EMAIL_SHA256 / PHONE_SHA256 are the names of
  the single-key schemas) and their values are SHA-256 hex of the normalized value;
  EXTERN_ID is sent as it is (Meta: "you don't need to hash EXTERN_ID"); a key a person
  lacks is an empty string. `is_raw: true` marks individual (not combined) keys, as
  Meta's own Python SDK sends them.
- `session_id` is a positive 64-bit integer of the advertiser's choosing, unique in the ad
  account; `batch_seq` starts at 1 and goes up by one (for a replace, batch_seq 1 is what
  starts the replace); `last_batch_flag` on the last request ends the session (without it
  Meta ends it 90 minutes after the first batch and discards later batches).
- A replace session is NOT all-or-nothing at Meta: when it times out, "your customer
  list custom audience will be replaced with what you've uploaded so far" (error 2650 /
  1870158) and an incomplete replace leaves the audience's operation_status at
  `replace_error`. Herald stops at the first failed batch and says so; the remedy is to
  run the export again once the audience is back to Normal.
- An audience flagged for integrity reasons has operation_status 471; uploads to it are
  refused with error 100 / subcode 1713230 ("Audience Upload Blocked").

The database side (which people, Do Not Contact, the job row) belongs to the caller:
`export()` takes any iterable of (email, phone, external_id) rows and streams it."""

import hashlib
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

import httpx

from channels.transports.guard import http_transport, is_blocked, private_allowed

GRAPH_API = "https://graph.facebook.com"
# The newest Marketing API version (released 2026-11-04); Marketing API versions expire
# about a year after release, so this is a setting to move forward, not a constant.
API_VERSION = "v27.0"
MAX_BATCH = 10_000  # Meta: "only a maximum of 10000 at a time"
SCHEMA = ("EMAIL", "PHONE", "EXTERN_ID")
FLAGGED = "audience flagged by Meta"

# https://developers.facebook.com/docs/graph-api/guides/error-handling and the
# custom-audience references: throttling (4 app, 17 user, 32 page, 613 rate limit,
# 80003 custom-audience calls on the ad account, 341 app limit) and outages (1, 2).
RATE_LIMIT_CODES = {4, 17, 32, 341, 613, 80003}
OUTAGE_CODES = {1, 2}
TOKEN_CODES = {102, 104, 190}
TOKEN_SUBCODES = {
    458: "the app is no longer installed for the user who issued it",
    459: "the user must log in to Facebook to clear a checkpoint",
    460: "the user changed their password",
    463: "it has expired",
    464: "the user is not confirmed",
    467: "it is invalid",
    492: "the user's session is no longer valid",
}
FLAGGED_SUBCODES = {1713230}  # "Audience Upload Blocked": integrity restrictions (471)
REPLACE_SUBCODES = {  # error 2650 from /usersreplace
    1870144: "Meta cannot replace an audience of 100 million people or more",
    1870145: "Meta is still updating this audience: try again once its status is Normal",
    1870147: "Meta did not see the replace session's first batch (batch_seq 1)",
    1870148: "Meta did not fully update the audience",
    1870158: "the replace session passed Meta's 90-minute limit",
    1870159: "the replace session was already finished",
}
PERMISSION_SUBCODES = {
    1870050: "the ad account is not linked to the business portfolio",
    1870090: "the Custom Audience Terms are not accepted for this ad account",
}

_PHONE_JUNK = re.compile(r"\(0\)|\D")  # "+44 (0)79..." drops its trunk zero


# --- identifiers -----------------------------------------------------------------------


def normalize_email(value: str | None) -> str | None:
    """Meta's rule for EMAIL: trim surrounding white space, lower-case. None when there is
    no address (empty, or not of the form local@domain)."""
    if not value:
        return None
    email = value.strip().lower()
    at = email.find("@")
    if at <= 0 or at == len(email) - 1 or " " in email:
        return None
    return email


def normalize_phone(value: str | None) -> str | None:
    """Meta's rule for PHONE: digits only, with the country code, no leading zeros.
    Herald keeps phones as E.164 (`+447911123456` -> `447911123456`); `00` before the
    country code counts as `+`. A number without either (a national format such as
    `07911 123456`) has no country code to give Meta, so it is unusable: None."""
    if not value:
        return None
    phone = value.strip()
    if phone[:1] == "+" and phone[1:].isascii() and phone[1:].isdigit() and phone[1] != "0":
        digits = phone[1:]  # the E.164 shape every stored phone has: the hot path
    elif phone[:1] == "+" or phone[:2] == "00":
        digits = _PHONE_JUNK.sub("", phone.removeprefix("+")).lstrip("0")
    else:
        return None
    if not digits.isascii() or not 7 <= len(digits) <= 15:  # E.164: at most 15 digits
        return None
    return digits


def sha256_hex(value: str) -> str:
    """SHA-256 of the UTF-8 value as lowercase hex, as Meta matches it."""
    return hashlib.sha256(value.encode()).hexdigest()


def identifier_row(email: str | None, phone: str | None, external_id: str | None) -> list[str]:
    """One person as a row of the multi-key schema SCHEMA (EMAIL, PHONE, EXTERN_ID): the
    hashed normalized email and phone, the external id unhashed, "" for a missing key."""
    email = normalize_email(email)
    phone = normalize_phone(phone)
    return [
        hashlib.sha256(email.encode()).hexdigest() if email else "",
        hashlib.sha256(phone.encode()).hexdigest() if phone else "",
        (external_id or "").strip(),
    ]


def new_session_id() -> int:
    """A random positive 64-bit session id (Meta: unique within the ad account)."""
    return secrets.randbelow(2**63 - 1) + 1


# --- the Graph API ---------------------------------------------------------------------


class MetaError(Exception):
    """A Graph API call that did not succeed, classified. `kind`: token, permission,
    flagged, rate_limit, unavailable, replace or invalid; `temporary` says whether the
    same call may succeed later; `batch_seq` is the batch it happened on, if any."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        subcode: int | None = None,
        batch_seq: int | None = None,
        *,
        kind: str = "invalid",
        temporary: bool = False,
        fbtrace_id: str = "",
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.subcode = subcode
        self.batch_seq = batch_seq
        self.kind = kind
        self.temporary = temporary
        self.fbtrace_id = fbtrace_id


def classify_graph_error(status: int, error: dict, batch_seq: int | None = None) -> MetaError:
    """Graph's `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id",
    ...}}` as a MetaError with a message a marketer can act on."""
    code = _int(error.get("code"))
    subcode = _int(error.get("error_subcode"))
    trace = str(error.get("fbtrace_id") or "")
    said = str(error.get("error_user_msg") or error.get("message") or "").strip()
    detail = (
        f"Meta error {code}" + (f"/{subcode}" if subcode else "") + (f": {said}" if said else "")
    ) + (f" (fbtrace_id {trace})" if trace else "")

    def fail(kind: str, message: str, temporary: bool = False) -> MetaError:
        return MetaError(message, code, subcode, batch_seq, kind=kind, temporary=temporary,
                         fbtrace_id=trace)  # fmt: skip

    if (
        code == 471
        or subcode in FLAGGED_SUBCODES
        or error.get("error_user_title") == "Audience Upload Blocked"
    ):
        return fail(
            "flagged",
            f"The {FLAGGED}: Meta restricted it for integrity reasons and refuses changes "
            "to its members until the restriction is resolved in Audience Manager (appeal, "
            f"or create a new audience). {detail}",
        )
    if code in TOKEN_CODES or (error.get("type") == "OAuthException" and subcode in TOKEN_SUBCODES):
        why = TOKEN_SUBCODES.get(subcode or 0, "it has expired, was revoked or is invalid")
        return fail(
            "token",
            f"Meta no longer accepts the channel's access token ({why}): reconnect the Meta "
            f"channel with a new token. {detail}",
        )
    if code in RATE_LIMIT_CODES:
        return fail("rate_limit", f"Meta is throttling calls to this ad account. {detail}", True)
    if code in OUTAGE_CODES or error.get("is_transient") is True or status >= 500:
        return fail("unavailable", f"Meta could not take the batch just now. {detail}", True)
    if code == 10 or (code is not None and 200 <= code <= 299):
        why = PERMISSION_SUBCODES.get(
            subcode or 0,
            "the token lacks the ads_management permission on this ad account or audience",
        )
        return fail("permission", f"Meta refused the upload: {why}. {detail}")
    if code == 2650 and subcode in REPLACE_SUBCODES:
        return fail("replace", f"{REPLACE_SUBCODES[subcode]}. {detail}")
    if code == 100 and (subcode == 33 or "does not exist" in said):
        return fail("invalid", f"Meta has no such custom audience for this token. {detail}")
    return fail("invalid", detail or f"Meta answered HTTP {status}")


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class BatchAnswer:
    """What Meta answered one batch: `num_received` counts the session so far."""

    audience_id: str
    session_id: str
    num_received: int
    num_invalid_entries: int
    invalid_entry_samples: dict | list = field(default_factory=dict)


@dataclass(frozen=True)
class AudienceStatus:
    """A custom audience's `operation_status` (code 471: flagged by Meta)."""

    code: int | None
    description: str

    @property
    def flagged(self) -> bool:
        return self.code == 471


class MetaClient:
    """The Graph API for one ad account's token. The token goes in an `Authorization:
    Bearer` header, never in a URL (httpx logs URLs); bodies are compact JSON, which the
    Graph API takes as it takes form fields. Throttling, 5xx, HTML error pages and
    timeouts are retried `retries` times with exponential backoff, then raised."""

    def __init__(
        self,
        access_token: str,
        *,
        base_url: str = GRAPH_API,
        api_version: str = API_VERSION,
        timeout: float = 60,
        allow_private: bool | None = None,
        retries: int = 4,
        backoff: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not re.fullmatch(r"v\d+\.\d+", api_version):
            raise ValueError(f"not a Graph API version: {api_version!r}")
        self.api_version = api_version
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            timeout=timeout,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Accept": "application/json",
                "User-Agent": "Herald",
            },
            # no HTTP(S)_PROXY from the environment: a proxy would connect in the guard's place
            trust_env=False,
            transport=http_transport(allow_private=private_allowed(allow_private)),
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def upload_batch(
        self,
        audience_id: str,
        rows: list[list[str]],
        session: dict,
        *,
        replace: bool,
        schema: tuple[str, ...] = SCHEMA,
    ) -> BatchAnswer:
        """One batch of rows of `schema` to /users (add) or /usersreplace (replace)."""
        if not 0 < len(rows) <= MAX_BATCH:
            raise ValueError(f"a batch holds 1 to {MAX_BATCH} rows, not {len(rows)}")
        edge = "usersreplace" if replace else "users"
        body = {
            "payload": {"schema": list(schema), "is_raw": True, "data": rows},
            "session": session,
        }
        answer = self._call(
            "POST", f"{_node(audience_id)}/{edge}", body, batch_seq=session.get("batch_seq")
        )
        return BatchAnswer(
            audience_id=str(answer.get("audience_id", audience_id)),
            session_id=str(answer.get("session_id", session.get("session_id"))),
            num_received=_int(answer.get("num_received")) or 0,
            num_invalid_entries=_int(answer.get("num_invalid_entries")) or 0,
            invalid_entry_samples=answer.get("invalid_entry_samples") or {},
        )

    def audience_status(self, audience_id: str) -> AudienceStatus:
        """The audience's operation_status (`GET /{audience_id}?fields=operation_status`)."""
        answer = self._call("GET", _node(audience_id), None, params={"fields": "operation_status"})
        status = answer.get("operation_status") or {}
        return AudienceStatus(_int(status.get("code")), str(status.get("description") or ""))

    def _call(
        self, method: str, path: str, body: dict | None, *, batch_seq=None, params=None
    ) -> dict:
        url = f"/{self.api_version}/{path}"
        content = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if content is not None else None
        attempt = 0
        while True:
            try:
                response = self._client.request(
                    method, url, content=content, headers=headers, params=params
                )
                error = self._error_of(response, batch_seq)
            except httpx.TimeoutException as e:
                error = MetaError(f"Meta did not answer in time: {e}", batch_seq=batch_seq,
                                  kind="unavailable", temporary=True)  # fmt: skip
            except httpx.HTTPError as e:
                if is_blocked(e):  # a private address: a setting to change, not a retry
                    raise MetaError(str(e), batch_seq=batch_seq, kind="invalid") from e
                error = MetaError(f"Could not reach Meta: {e}", batch_seq=batch_seq,
                                  kind="unavailable", temporary=True)  # fmt: skip
            if error is None:
                return response.json()
            if not error.temporary or attempt >= self.retries:
                raise error
            # a retried batch is safe: /users adds the same people again, and Meta takes a
            # repeated batch of a replace session (it only asks not to repeat batch_seq 1)
            self._sleep(self.backoff * 2**attempt)
            attempt += 1

    @staticmethod
    def _error_of(response: httpx.Response, batch_seq) -> MetaError | None:
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.is_success and isinstance(answer, dict) and "error" not in answer:
            return None
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            return classify_graph_error(response.status_code, answer["error"], batch_seq)
        text = " ".join(response.text.split())[:200]
        return MetaError(
            f"Meta answered HTTP {response.status_code} without a Graph error: {text}",
            batch_seq=batch_seq,
            kind="unavailable" if response.status_code >= 500 else "invalid",
            temporary=response.status_code >= 500 or response.status_code == 429,
        )


def _node(audience_id) -> str:
    audience_id = str(audience_id).strip()
    if not audience_id.isascii() or not audience_id.isdigit():
        raise ValueError(f"a Meta custom audience id is numeric, not {audience_id!r}")
    return audience_id


# --- the export ------------------------------------------------------------------------

REPLACE_NOT_ATOMIC = (
    "Meta does not roll a replace back: the session it started stays open until Meta "
    "closes it 90 minutes after its first batch, and then the custom audience holds only "
    "the batches sent before the failure (its status shows replace_error). Run the export "
    "again once the audience's status is back to Normal to put everyone in it."
)


@dataclass
class ExportResult:
    """What an export did. `batches`/`sent` count only what Meta accepted, in order: after
    a failed batch nothing is claimed. `invalid` sums Meta's num_invalid_entries;
    `skipped_unusable` counts rows with neither an email nor a phone Meta can match."""

    replace: bool
    session_id: int
    batches: int = 0
    sent: int = 0
    invalid: int = 0
    skipped_unusable: int = 0
    received: int = 0  # Meta's num_received for the session, as last answered
    failed_batch: int | None = None
    error: str = ""
    error_kind: str = ""
    retryable: bool = False  # the failure may pass by itself (throttling, an outage)
    note: str = ""
    hashing_seconds: float = 0.0
    sending_seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error


def export(
    client: MetaClient,
    audience_id: str,
    rows: Iterable[tuple[str | None, str | None, str | None]],
    *,
    total: int,
    replace: bool,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = MAX_BATCH,
    check_status: bool = True,
) -> ExportResult:
    """Streams (email, phone, external_id) rows to the custom audience: normalize and hash
    a batch, send it, then the next, holding one batch and one row of look-ahead (the row
    tells whether the batch in hand is the last, which carries last_batch_flag). One
    session for the whole export: a random session_id, batch_seq 1, 2, ...,
    estimated_num_total = total. `progress(done, total)` follows each accepted batch,
    `done` counting the rows read so far. The first failed batch stops the export; the
    result names it (and, for a replace, what Meta does with the half-done session).
    With `check_status`, a flagged audience (operation_status 471) is refused before any
    batch goes out, so a replace never starts on it.

    Hashing is ~3 us a person (two SHA-256 of short strings plus normalization): 1M
    people against the local fake (benchmarks/meta_export.py) took 5.1 s, 57% hashing and
    43% sending (JSON encoding, loopback HTTP, the fake's parsing), 12x inside the 60 s
    target, so hashing stays inline. A thread pool could not spread the hashing itself
    (hashlib holds the GIL for inputs under 2 KiB); it could only overlap one batch's
    hashing with the previous batch's round trip, saving at most the smaller share, and
    against the real Graph API the round trips dominate anyway."""
    if not 0 < batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be 1 to {MAX_BATCH}")
    result = ExportResult(replace=replace, session_id=new_session_id())
    read = 0

    def usable() -> Iterator[list[str]]:
        nonlocal read
        for email, phone, external_id in rows:
            read += 1
            row = identifier_row(email, phone, external_id)
            if row[0] or row[1]:
                yield row
            else:
                result.skipped_unusable += 1

    def fail(error: MetaError, batch_seq: int | None) -> ExportResult:
        result.failed_batch = batch_seq
        where = f"Batch {batch_seq} failed" if batch_seq else "The export did not start"
        result.error = f"{where}: {error.message}"
        result.error_kind = error.kind
        result.retryable = error.temporary
        if replace and batch_seq:
            result.note = REPLACE_NOT_ATOMIC
        return result

    if check_status:
        try:
            status = client.audience_status(audience_id)
        except MetaError as e:
            return fail(e, None)
        if status.flagged:
            return fail(
                MetaError(
                    f"The {FLAGGED}: operation_status 471 ({status.description or 'flagged'})."
                    " Meta refuses changes to its members until the restriction is resolved "
                    "in Audience Manager.",
                    471,
                    kind="flagged",
                ),
                None,
            )

    people = usable()
    began = time.perf_counter()
    batch = list(islice(people, batch_size))
    ahead = next(people, None)
    result.hashing_seconds += time.perf_counter() - began
    if not batch:
        if replace:
            result.error = (
                "No one in the audience has an email or phone Meta can match: a replace "
                "would empty the Meta audience, so nothing was sent."
            )
            result.error_kind = "empty"
        return result

    batch_seq = 0
    while batch:
        batch_seq += 1
        session = {
            "session_id": result.session_id,
            "batch_seq": batch_seq,
            "last_batch_flag": ahead is None,
            "estimated_num_total": total,
        }
        began = time.perf_counter()
        try:
            answer = client.upload_batch(audience_id, batch, session, replace=replace)
        except MetaError as e:
            result.sending_seconds += time.perf_counter() - began
            return fail(e, batch_seq)
        result.sending_seconds += time.perf_counter() - began
        result.batches = batch_seq
        result.sent += len(batch)
        result.invalid += answer.num_invalid_entries
        result.received = answer.num_received
        if progress is not None:
            progress(read - (ahead is not None), total)
        if ahead is None:
            break
        began = time.perf_counter()
        batch = [ahead, *islice(people, batch_size - 1)]
        ahead = next(people, None)
        result.hashing_seconds += time.perf_counter() - began
    return result
