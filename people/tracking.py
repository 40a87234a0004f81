"""The Segment HTTP tracking API at /v1/ (shared/API.md, "Real-time ingestion"): existing
tracking code (segment-analytics-python, analytics.js, the mobile SDKs) sends to Herald
by changing its host.

Auth: a write key (Settings -> API keys), as the Basic user name or, from analytics.js,
a `writeKey` field of a text/plain body. Messages are checked one by one (the errors name
the message's index, the rest is applied); identify messages become person upserts and
track / page / screen messages events, through the same services as /api/v1/ (so the
real-time outbox is written in the same transaction), after the messageIds were claimed:
a message sent twice counts once. The answer comes once the data is durable.
"""

import base64
import binascii
import gzip
import io
import json
import logging
import math
from datetime import UTC

from django.db import connection, transaction
from django.http import JsonResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.csrf import csrf_exempt

from accounts.audit import Actor
from accounts.models import ApiKeyKind
from accounts.text import has_forbidden_character
from config.api import key_limits
from people.normalize import InvalidTimeZone, normalize_time_zone
from people.services._common import MAX_BATCH
from people.services.events import event_ingest_batch
from people.services.people import person_upsert_batch

log = logging.getLogger(__name__)

MAX_BODY = 500 * 1024  # Segment's limit of a batch
TYPES = ("identify", "track", "page", "screen")
EVENT_OF = {"page": "Page Viewed", "screen": "Screen Viewed"}
# traits -> the person's built-in fields; every other trait is a custom attribute
TRAIT_FIELDS = {
    "email": "email",
    "phone": "phone",
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "gender": "gender",
    "timezone": "time_zone",
    "time_zone": "time_zone",
}
NESTED_FIELDS = {
    ("address", "city"): "city",
    ("address", "country"): "country",
    ("address", "street"): "address",
    ("company", "name"): "company",
}
IGNORED_TRAITS = {"id", "userId"}  # the identity itself, not an attribute


class NotANumber(float):
    """NaN or Infinity in a body: json takes them, PostgreSQL's JSON does not. Kept as a
    marker so that only the message holding one is refused."""


def _constant(name):
    return NotANumber(math.nan)


def _error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _key_from(request, body) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return ""
        return decoded.split(":", 1)[0]
    if isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        return body["writeKey"]
    return ""


def _read_body(request):
    """The JSON object of the request, or an error response."""
    length = request.headers.get("Content-Length")
    if length and length.isdigit() and int(length) > MAX_BODY:
        return None, _error(413, f"A request body holds at most {MAX_BODY // 1024} KB.")
    raw = request.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        return None, _error(413, f"A request body holds at most {MAX_BODY // 1024} KB.")
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(raw)) as unzipped:
                raw = unzipped.read(MAX_BODY + 1)
        except (OSError, EOFError):
            return None, _error(400, "The body is not valid gzip.")
        if len(raw) > MAX_BODY:
            return None, _error(413, f"A request body holds at most {MAX_BODY // 1024} KB.")
    try:
        body = json.loads(raw.decode("utf-8"), parse_constant=_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return None, _error(400, f"The body is not JSON: {e}")
    if not isinstance(body, dict):
        return None, _error(400, "The body must be a JSON object.")
    return body, None


def _unstorable(value, where: str) -> str | None:
    """Where `value` holds NaN / Infinity or text PostgreSQL cannot store, or None."""
    stack = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, NotANumber) or (isinstance(item, float) and not math.isfinite(item)):
            return f"{path}: NaN and Infinity are not numbers JSON can store"
        if isinstance(item, str) and has_forbidden_character(item):
            return f"{path}: text with a NUL character or a lone surrogate cannot be stored"
        if isinstance(item, dict):
            for k, v in item.items():
                if has_forbidden_character(str(k)):
                    return f"{path}: a key with a NUL character cannot be stored"
                stack.append((v, f"{path}.{k}"))
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    return None


def _timestamp(message):
    value = message.get("timestamp")
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ValueError(f"timestamp {value!r} is not an ISO 8601 date-time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _person_item(user_id: str, traits: dict) -> dict:
    item: dict = {"external_id": user_id}
    attributes = {}
    for name, value in traits.items():
        if name in TRAIT_FIELDS:
            item[TRAIT_FIELDS[name]] = value
        elif name in IGNORED_TRAITS:
            continue
        elif name in ("address", "company") and isinstance(value, dict):
            for (outer, inner), field in NESTED_FIELDS.items():
                if outer == name and inner in value:
                    item[field] = value[inner]
        elif name == "company" and isinstance(value, str):
            item["company"] = value
        elif name == "name" and isinstance(value, str):
            continue  # below, when no first or last name was sent
        else:
            attributes[name] = value
    name = traits.get("name")
    if isinstance(name, str) and name.strip() and "first_name" not in item:
        first, _, last = name.strip().partition(" ")
        item["first_name"] = first
        if last and "last_name" not in item:
            item["last_name"] = last
    if attributes:
        item["attributes"] = attributes
    return item


def _time_zone_problem(item: dict) -> str | None:
    """Why the identify item's time zone trait cannot be kept, taking it out of the item:
    SDKs fill it in from the device, and a zone this server does not know must not lose
    the rest of the profile (the person keeps their zone, or the workspace's). None when
    it is fine (normalized in place)."""
    value = item["time_zone"]
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise InvalidTimeZone("the time zone must be text, an IANA name such as Europe/Paris.")
        item["time_zone"] = normalize_time_zone(value)
    except InvalidTimeZone as e:
        del item["time_zone"]
        return f"traits.timezone: {e} The rest of the message was applied."
    return None


def _check(message, default_type: str | None) -> tuple[str | None, str, dict]:
    """(messageId, kind, item) of a readable message: the item is a person upsert item
    for identify, an event item for track / page / screen. Raises ValueError saying what
    is wrong."""
    if not isinstance(message, dict):
        raise ValueError("a message is a JSON object")
    kind = message.get("type", default_type)
    if kind not in TYPES:
        raise ValueError(f"type must be one of {', '.join(TYPES)}")
    user_id = message.get("userId")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not user_id.strip():
        raise ValueError("userId is required (anonymous profiles are not kept)")
    if len(user_id) > 255:
        raise ValueError("userId is at most 255 characters")
    message_id = message.get("messageId")
    if message_id is not None and (not isinstance(message_id, str) or len(message_id) > 255):
        raise ValueError("messageId must be text of at most 255 characters")
    if kind == "track" and (
        not isinstance(message.get("event"), str) or not message["event"].strip()
    ):
        raise ValueError("event (the event's name, text) is required")
    payload = message.get("traits" if kind == "identify" else "properties")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise ValueError(f"{'traits' if kind == 'identify' else 'properties'} must be an object")
    problem = _unstorable(message, "message")
    if problem:
        raise ValueError(problem)
    at = _timestamp(message)
    user_id = user_id.strip()
    if kind == "identify":
        return message_id, kind, _person_item(user_id, payload)
    properties = dict(payload)
    page_name = message.get("name") if kind in EVENT_OF else None
    if isinstance(page_name, str) and page_name:
        properties.setdefault("name", page_name)
    name = EVENT_OF.get(kind) or message["event"].strip()
    item = {"person": user_id, "name": name, "properties": properties}
    if at is not None:
        item["occurred_at"] = at.isoformat()
    return message_id, kind, item


def _claim_message_ids(workspace, ids: list[str], now) -> set[str]:
    """The messageIds never seen before in the workspace, now taken (one statement)."""
    if not ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO people_trackedmessage (workspace_id, message_id, received_at) "
            "SELECT %s, m, %s FROM unnest(%s::text[]) AS m "
            "ON CONFLICT (workspace_id, message_id) DO NOTHING RETURNING message_id",
            [workspace.pk, now, ids],
        )
        return {row[0] for row in cursor.fetchall()}


def _ingest(workspace, actor: Actor, messages: list, default_type: str | None) -> list[dict]:
    errors: list[dict] = []
    checked = []
    for index, message in enumerate(messages):
        try:
            checked.append((index, *_check(message, default_type)))
        except ValueError as e:
            errors.append({"index": index, "msg": str(e)})
            continue
        if checked[-1][2] == "identify" and "time_zone" in checked[-1][3]:
            problem = _time_zone_problem(checked[-1][3])
            if problem:
                errors.append({"index": index, "msg": problem})
    now = timezone.now()
    with transaction.atomic():
        fresh = _claim_message_ids(workspace, sorted({c[1] for c in checked if c[1]}), now)
        taken, people, events = set(), [], []
        for index, message_id, kind, item in checked:
            if message_id is not None:
                if message_id not in fresh or message_id in taken:
                    continue  # sent before: counted once
                taken.add(message_id)
            (people if kind == "identify" else events).append((index, item))
        for chunk in _chunks(people):
            result = person_upsert_batch(
                workspace=workspace, items=[item for _, item in chunk], actor=actor
            )
            errors.extend({"index": chunk[e["index"]][0], "msg": e["msg"]} for e in result.errors)
        for chunk in _chunks(events):
            result = event_ingest_batch(
                workspace=workspace, items=[item for _, item in chunk], actor=actor
            )
            errors.extend({"index": chunk[e["index"]][0], "msg": e["msg"]} for e in result.errors)
    return sorted(errors, key=lambda e: e["index"])


def _chunks(items: list) -> list[list]:
    return [items[i : i + MAX_BATCH] for i in range(0, len(items), MAX_BATCH)]


@csrf_exempt
def tracking_endpoint(request, kind: str):
    if request.method != "POST":
        response = _error(405, "Send messages with POST.")
        response["Allow"] = "POST"
        return response
    body, problem = _read_body(request)
    if problem:
        return problem
    key, wait = key_limits(request, _key_from(request, body))
    if wait:
        response = _error(429, f"Too many requests: wait {math.ceil(wait)} s.")
        response["Retry-After"] = str(math.ceil(wait))
        return response
    if key is None or key.kind != ApiKeyKind.WRITE:
        return _error(
            401,
            "A write key is required (HTTP Basic user name, or writeKey in the body): create "
            "one in Settings → API keys, access “Write key”.",
        )
    request.api_key = key
    actor = Actor.from_request(request)
    if kind == "batch":
        messages = body.get("batch")
        if not isinstance(messages, list):
            return _error(400, "batch must be a list of messages.")
        errors = _ingest(key.workspace, actor, messages, None)
    else:
        errors = _ingest(key.workspace, actor, [body], kind)
    return JsonResponse({"success": True, "errors": errors})
