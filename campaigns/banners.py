"""In-app banners served to the customer's apps (shared/API.md "Banners (public)").

A banner is a campaign of channel `banner`: nothing is sent; `GET /public/v1/banners` picks,
per placement, up to its `max_banners` among the live banners targeting the person and not
dismissed by them, at random weighted by priority, without replacement.

The hot path makes no database query once warm; what it reads, and how stale it can be:

- **The key** (`key_workspace`): a publishable key resolved to its workspace, kept per
  process for KEY_TTL (5 s): a revoked key stops working within 5 s. A secret key is
  refused here. The demo page's preview token is signed, for one workspace, for an hour.
- **The live banners of a workspace** (`live`): loaded per process (one query for the
  banners with their segment ids, one for the placements) and kept while the workspace's
  version in Redis is unchanged (every banner or placement change bumps it on commit:
  `changed`), at most SNAPSHOT_TTL (5 s) as a backstop (a segment deleted under a banner,
  Redis briefly away), and never past the next scheduled start or expiry among them (the
  snapshot knows the moment and reloads at it). So a cancelled or expired banner stops
  being served at once on every process, within 5 s at worst.
- **A person's state** (`person_state`): their id, the segments they are in among those the
  live banners name (stored memberships: static, real-time, scheduled query; a snapshot's
  rules evaluated; Everyone), and the banners they dismissed, in Redis for PERSON_TTL
  (60 s) under their external id. Dropped at once when they dismiss a banner and when a
  real-time segment moves them (segments.signals.membership_moved); computed for the
  segments of the snapshot it was made with (a new banner naming other segments makes it
  stale). So real-time segments take effect as people enter; a static or snapshot
  segment's later edits within 60 s. That is safe: a banner is a message shown in the
  customer's own app, not a send, and a dismissal, the one thing a person asks for,
  is honoured at once.

Each warm request is one Redis round trip (MGET of the version and the person's state).
Impressions and clicks are queued in Redis (one RPUSH) and written by the flush
(`flush_events`, beat every 5 s) as hourly counts and unique viewers, set-based;
dismissals are written at once.
"""

import base64
import bisect
import contextlib
import functools
import hashlib
import hmac
import itertools
import json
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.db.models import BooleanField, ExpressionWrapper, Q
from django.utils import timezone

from accounts.models import ApiKey, ApiKeyKind
from campaigns.models import Campaign, CampaignChannel, CampaignStatus, Placement
from campaigns.tokens import b62, from_b62
from people.models import Person
from segments.models import SegmentKind
from segments.rules import compile_rules, parse_rules

log = logging.getLogger(__name__)

KEY_TTL = 5.0
SNAPSHOT_TTL = 5.0
PERSON_TTL = 60
MAX_PLACEMENTS = 10  # asked in one request
EVENTS = "herald:banners:events"
EVENTS_PROCESSING = "herald:banners:events:processing"
EVENT_TYPES = {"impression": "i", "click": "c", "dismiss": "d"}
PREVIEW_PREFIX = "hbp_"  # a preview token of the demo page, not a key
PREVIEW_SALT = "herald.banners.preview"
TOKEN_SALT = "herald.banners.token"
REDIS_TIMEOUT = 0.5

_rng = random.Random()


# --- Redis -----------------------------------------------------------------------------------

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT, health_check_interval=30,
        )  # fmt: skip
    return _client


def _version_key(workspace_id: int) -> str:
    return f"herald:banners:v:{workspace_id}"


def _person_key(workspace_id: int, external_id: str) -> str:
    return f"herald:banners:p:{workspace_id}:{external_id}"


def changed(workspace_id: int) -> None:
    """The workspace's banners or placements changed: every process reloads them (on
    commit)."""

    def bump():
        try:
            _redis().incr(_version_key(workspace_id))
        except redis.RedisError:
            log.warning("Banner cache: Redis is unavailable; processes reload within %s s.",
                        SNAPSHOT_TTL)  # fmt: skip

    transaction.on_commit(bump)


def forget_people(workspace_id: int, external_ids) -> None:
    """Drop the cached state of these people (they dismissed a banner, moved segments)."""
    keys = [_person_key(workspace_id, e) for e in external_ids]
    if not keys:
        return
    try:
        _redis().delete(*keys)
    except redis.RedisError:
        log.warning("Banner cache: could not drop %s people's state; it expires in %s s.",
                    len(keys), PERSON_TTL)  # fmt: skip


def forget_workspace_people(workspace_id: int) -> None:
    """Drop every cached person state of the workspace (SCAN and DEL in batches)."""
    try:
        client = _redis()
        batch = []
        for key in client.scan_iter(match=_person_key(workspace_id, "*"), count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    except redis.RedisError:
        log.warning("Banner cache: could not drop the workspace's people; they expire in %s s.",
                    PERSON_TTL)  # fmt: skip


# --- The key ------------------------------------------------------------------------------------


class KeyRefused(Exception):
    """Not a key for this API: `status` 401 (unknown, revoked) or 403 (a secret key)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


_keys: dict[str, tuple[float, int | None, str]] = {}  # insertion-ordered: oldest first
MAX_CACHED_KEYS = 10_000


def preview_token(workspace_id: int) -> str:
    """A token the demo page uses as its key: this workspace's banners, for an hour."""
    return PREVIEW_PREFIX + signing.dumps(b62(workspace_id), salt=PREVIEW_SALT, compress=False)


def key_workspace(raw: str) -> int:
    """The workspace of a publishable key (or a preview token); KeyRefused otherwise."""
    raw = (raw or "").strip()
    if not raw or len(raw) > 200:
        raise KeyRefused(401, "A publishable key is needed: X-Herald-Key or ?key=.")
    cached = _keys.get(raw)
    now = time.monotonic()
    if cached is None or cached[0] < now:
        cached = (now + KEY_TTL, *_resolve(raw))
        _keys.pop(raw, None)
        while len(_keys) >= MAX_CACHED_KEYS:  # the oldest first: a flood of made-up keys
            _keys.pop(next(iter(_keys)))  # evicts itself, not the workspace's real one
        _keys[raw] = cached
    _, workspace_id, problem = cached
    if workspace_id is None:
        raise KeyRefused(403 if problem.startswith("This is a secret") else 401, problem)
    return workspace_id


def _resolve(raw: str) -> tuple[int | None, str]:
    unknown = "Unknown or revoked key."
    if raw.startswith(PREVIEW_PREFIX):
        try:
            return from_b62(signing.loads(raw.removeprefix(PREVIEW_PREFIX), salt=PREVIEW_SALT,
                                          max_age=3600)), ""  # fmt: skip
        except (signing.BadSignature, ValueError):
            return None, unknown
    prefix = raw.removeprefix(settings.API_KEY_PREFIX).split("_", 1)[0]
    key = ApiKey.objects.unscoped().filter(prefix=prefix).first()
    if key is None or not key.matches(raw) or not key.is_active:
        return None, unknown
    if key.kind != ApiKeyKind.PUBLISHABLE:
        return None, ("This is a secret API key: the banner API takes the workspace's "
                      "publishable key (Settings, API keys), the one safe to ship in an app. "
                      "Revoke this key if it was put in an app.")  # fmt: skip
    return key.workspace_id, ""


# --- The live banners of a workspace ---------------------------------------------------------


@dataclass(frozen=True)
class LiveBanner:
    id: int
    placement: str
    weight: int
    everyone: bool
    include: frozenset
    exclude: frozenset
    starts_at: datetime | None
    ends_at: datetime | None
    payload: dict  # what the API answers, but the token

    def targets(self, segments: frozenset) -> bool:
        if self.exclude & segments:
            return False
        return self.everyone or bool(self.include & segments)


@dataclass
class Snapshot:
    version: int
    loaded_at: float
    reload_at: datetime | None  # the next start or expiry among them
    banners: dict[str, list[LiveBanner]]  # by placement
    max_banners: dict[str, int]
    segments: dict  # id -> Segment, every segment the banners name
    origins: frozenset = frozenset()  # the workspace's allowed web origins (CORS)
    signature: str = ""  # of the segment ids: a person's state is made for one

    def __post_init__(self):
        self.signature = ",".join(map(str, sorted(self.segments)))


_snapshots: dict[int, Snapshot] = {}


def _payload(campaign: Campaign) -> dict:
    c = campaign.content or {}
    return {
        "id": campaign.pk, "placement": c.get("placement", ""), "title": c.get("title", ""),
        "body": c.get("body", ""), "image_url": c.get("image_url", ""),
        "cta_label": c.get("cta_label", ""), "cta_url": c.get("cta_url", ""),
        "dismissible": bool(c.get("dismissible", True)),
    }  # fmt: skip


def _load(workspace_id: int, version: int, now: datetime) -> Snapshot:
    campaigns = (
        Campaign.objects.unscoped()
        .filter(workspace_id=workspace_id, channel=CampaignChannel.BANNER,
                status__in=(CampaignStatus.LIVE, CampaignStatus.SCHEDULED))
        .prefetch_related("include", "exclude")
    )  # fmt: skip
    banners: dict[str, list[LiveBanner]] = {}
    segments, moments = {}, []
    for campaign in campaigns:
        starts = campaign.send_at if campaign.status == CampaignStatus.SCHEDULED else None
        if campaign.status == CampaignStatus.SCHEDULED and starts is None:
            continue
        include, exclude = list(campaign.include.all()), list(campaign.exclude.all())
        for segment in (*include, *exclude):
            segments[segment.pk] = segment
        banner = LiveBanner(
            id=campaign.pk, placement=(campaign.content or {}).get("placement", ""),
            weight=int((campaign.content or {}).get("priority") or 50),
            everyone=campaign.everyone or any(s.kind == SegmentKind.EVERYONE for s in include),
            include=frozenset(s.pk for s in include), exclude=frozenset(s.pk for s in exclude),
            starts_at=starts, ends_at=campaign.expires_at, payload=_payload(campaign),
        )  # fmt: skip
        banners.setdefault(banner.placement, []).append(banner)
        moments += [m for m in (starts, campaign.expires_at) if m and m > now]
    max_banners = dict(
        Placement.objects.unscoped().filter(workspace_id=workspace_id)
        .values_list("key", "max_banners")
    )  # fmt: skip
    from accounts.models import Workspace

    origins = Workspace.objects.filter(pk=workspace_id).values_list(
        "banner_allowed_origins", flat=True).first() or []  # fmt: skip
    return Snapshot(version=version, loaded_at=time.monotonic(),
                    reload_at=min(moments) if moments else None, banners=banners,
                    max_banners=max_banners, segments=segments,
                    origins=frozenset(origins))  # fmt: skip


def live(workspace_id: int, version: int, *, now: datetime) -> Snapshot:
    """The workspace's live and scheduled banners (see the module's doc for how fresh)."""
    snap = _snapshots.get(workspace_id)
    if (
        snap is None
        or snap.version != version  # -1 when Redis is away: the TTL decides
        or time.monotonic() - snap.loaded_at > SNAPSHOT_TTL
        or (snap.reload_at is not None and now >= snap.reload_at)
    ):
        snap = _load(workspace_id, version, now)
        _snapshots[workspace_id] = snap
    return snap


# --- A person -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonState:
    person_id: int | None
    segments: frozenset = field(default_factory=frozenset)
    dismissed: frozenset = field(default_factory=frozenset)
    signature: str = ""

    def dumps(self) -> str:
        return json.dumps({"p": self.person_id, "s": sorted(self.segments),
                           "d": sorted(self.dismissed), "g": self.signature})  # fmt: skip

    @classmethod
    def loads(cls, raw) -> "PersonState":
        data = json.loads(raw)
        return cls(data["p"], frozenset(data["s"]), frozenset(data["d"]), data["g"])


def _compute(workspace_id: int, external_id: str, snap: Snapshot, now: datetime) -> PersonState:
    """One query for the person with their memberships of the snapshot's segments and
    their dismissals (a snapshot segment's rules evaluated for them)."""
    people = Person.objects.unscoped().filter(workspace_id=workspace_id, external_id=external_id)
    stored = [pk for pk, s in snap.segments.items() if s.stores_members]
    live_rules = {pk: s for pk, s in snap.segments.items() if s.kind == SegmentKind.SNAPSHOT}
    annotations = {}
    for pk, segment in live_rules.items():
        try:
            condition = compile_rules(parse_rules(segment.rules or {}), workspace=workspace_id,
                                      now=now)  # fmt: skip
        except Exception:  # noqa: BLE001 - a segment that no longer compiles targets nobody
            condition = Q(pk__in=[])
        annotations[f"s{pk}"] = ExpressionWrapper(condition, output_field=BooleanField())
    row = people.annotate(**annotations).values("pk", *annotations).first()
    if row is None:
        return PersonState(None, signature=snap.signature)
    member = {pk for pk, s in snap.segments.items() if s.kind == SegmentKind.EVERYONE}
    member |= {int(name[1:]) for name, value in row.items() if name != "pk" and value}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 's', segment_id FROM segments_segmentmember WHERE person_id = %s "
            "AND segment_id = ANY(%s) AND exited_at IS NULL "
            "UNION ALL SELECT 'd', campaign_id FROM campaigns_bannerdismissal "
            "WHERE workspace_id = %s AND person_id = %s",
            [row["pk"], stored, workspace_id, row["pk"]],
        )
        found = cursor.fetchall()
    member |= {pk for kind, pk in found if kind == "s"}
    dismissed = frozenset(pk for kind, pk in found if kind == "d")
    return PersonState(row["pk"], frozenset(member), dismissed, snap.signature)


# --- Serving ---------------------------------------------------------------------------------


# An event token is "<ws>-<campaign>-<person>.<mac>": HMAC-SHA256 under a key derived once
# from SECRET_KEY, truncated to 128 bits. Written here rather than with django.core.signing:
# Signer derives its key again on every signature, and a request signs one token per
# banner served (0.05 ms each, a third of a warm request's Python time).
@functools.cache
def _token_key() -> bytes:
    return hashlib.sha256(f"{TOKEN_SALT}:{settings.SECRET_KEY}".encode()).digest()


def _mac(value: str) -> str:
    digest = hmac.new(_token_key(), value.encode(), hashlib.sha256).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _token(workspace_id: int, campaign_id: int, person_id: int | None) -> str:
    value = f"{b62(workspace_id)}-{b62(campaign_id)}-{b62(person_id or 0)}"
    return f"{value}.{_mac(value)}"


def read_token(token: str) -> tuple[int, int, int | None] | None:
    """(workspace, campaign, person or None) of an event token signed here; None otherwise."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return None
    value, _, mac = token.partition(".")
    if not mac or not hmac.compare_digest(mac, _mac(value)):
        return None
    try:
        parts = [from_b62(p) for p in value.split("-")]
    except ValueError:
        return None
    if len(parts) != 3:
        return None
    return parts[0], parts[1], parts[2] or None


def pick(candidates: list[LiveBanner], k: int, rng=_rng) -> list[LiveBanner]:
    """Up to `k` distinct banners, each draw at random weighted by priority among those
    left (without replacement)."""
    pool, chosen = list(candidates), []
    while pool and len(chosen) < k:
        cumulative = list(itertools.accumulate(b.weight for b in pool))
        index = bisect.bisect_right(cumulative, rng.random() * cumulative[-1])
        chosen.append(pool.pop(min(index, len(pool) - 1)))
    return chosen


def serve(workspace_id: int, placements: list[str], external_id: str, *,
          now: datetime | None = None) -> list[dict]:  # fmt: skip
    """The banners to show (the API's list), drawn afresh."""
    now = now or timezone.now()
    person_key = _person_key(workspace_id, external_id) if external_id else None
    try:
        keys = [_version_key(workspace_id)] + ([person_key] if person_key else [])
        values = _redis().mget(keys)
        version = int(values[0] or 0)
        cached = values[1] if person_key else None
    except redis.RedisError:
        version, cached = -1, None
    snap = live(workspace_id, version, now=now)
    state = PersonState(None)
    if person_key:
        if cached is not None:
            try:
                state = PersonState.loads(cached)
            except (ValueError, KeyError, TypeError):  # not ours, or an older shape
                cached = None
        if cached is None or state.signature != snap.signature:
            state = _compute(workspace_id, external_id, snap, now)
            with contextlib.suppress(redis.RedisError):
                _redis().set(person_key, state.dumps(), ex=PERSON_TTL)
    if person_key and state.person_id is None:
        return []  # nobody of that id: nothing, as for a person nothing targets
    answer = []
    for placement in placements:
        eligible = [
            b for b in snap.banners.get(placement, ())
            if (b.starts_at is None or b.starts_at <= now)
            and (b.ends_at is None or b.ends_at > now)
            and b.id not in state.dismissed and b.targets(state.segments)
        ]  # fmt: skip
        for banner in pick(eligible, snap.max_banners.get(placement, 1)):
            answer.append({**banner.payload,
                           "token": _token(workspace_id, banner.id, state.person_id)})  # fmt: skip
    return answer


# --- Events ---------------------------------------------------------------------------------


def record(token: str, kind: str, *, at: float | None = None) -> bool:
    """An impression, click or dismissal; False for a token not signed here. A dismissal
    is written at once (the person is never served the banner again)."""
    named = read_token(token)
    if named is None or kind not in EVENT_TYPES:
        return False
    workspace_id, campaign_id, person_id = named
    at = time.time() if at is None else at
    if kind == "dismiss" and person_id:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO campaigns_bannerdismissal (workspace_id, campaign_id, person_id, "
                "created_at) SELECT %s, c.id, p.id, now() FROM campaigns_campaign c, "
                "people_person p WHERE c.id = %s AND c.workspace_id = %s AND p.id = %s AND "
                "p.workspace_id = %s ON CONFLICT (campaign_id, person_id) DO NOTHING "
                "RETURNING (SELECT external_id FROM people_person WHERE id = %s)",
                [workspace_id, campaign_id, workspace_id, person_id, workspace_id, person_id],
            )
            row = cursor.fetchone()
        if row:
            forget_people(workspace_id, [row[0]])
    try:
        _redis().rpush(EVENTS, f"{EVENT_TYPES[kind]},{workspace_id},{campaign_id},"
                       f"{person_id or 0},{int(at)}")  # fmt: skip
    except redis.RedisError:
        log.warning("Banner event dropped: Redis is unavailable.")
    return True


def flush_events(*, batch: int = 50_000) -> int:
    """Apply the queued events: hourly counts per banner and unique viewers, set-based.
    The batch is moved aside first (RENAME) so a flush that dies leaves it for the next
    one (at least once: a crash between the commit and the DEL counts a batch twice)."""
    client = _redis()
    applied = 0
    for _ in range(100):
        if not client.exists(EVENTS_PROCESSING):
            try:
                client.rename(EVENTS, EVENTS_PROCESSING)
            except redis.ResponseError:  # nothing queued
                break
        raw = client.lrange(EVENTS_PROCESSING, 0, batch - 1)
        if raw:
            _apply([r.decode() for r in raw])
            applied += len(raw)
        if len(raw) < batch:
            client.delete(EVENTS_PROCESSING)
        else:
            client.ltrim(EVENTS_PROCESSING, batch, -1)
    return applied


def _apply(lines: list[str]) -> None:
    counts: dict[tuple[int, int, datetime], list[int]] = {}
    viewers: dict[tuple[int, int, int], list] = {}
    for line in lines:
        try:
            kind, ws, campaign, person, at = line.split(",")
            ws, campaign, person = int(ws), int(campaign), int(person)
            moment = datetime.fromtimestamp(int(at), tz=UTC)
        except ValueError:
            continue
        hour = moment.replace(minute=0, second=0, microsecond=0)
        slot = counts.setdefault((ws, campaign, hour), [0, 0, 0])
        slot["icd".index(kind)] += 1
        if person and kind in "ic":
            seen = viewers.setdefault((ws, campaign, person), [moment, None])
            seen[0] = min(seen[0], moment)
            if kind == "c":
                seen[1] = moment if seen[1] is None else min(seen[1], moment)
    if not counts:
        return
    with transaction.atomic(), connection.cursor() as cursor:
        keys = list(counts)
        cursor.execute(
            """
            INSERT INTO campaigns_bannerstat (workspace_id, campaign_id, hour, impressions,
                                              clicks, dismissals)
            SELECT u.ws, u.c, u.h, u.i, u.k, u.d
            FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::bigint[],
                        %s::bigint[], %s::bigint[]) AS u(ws, c, h, i, k, d)
            JOIN campaigns_campaign c ON c.id = u.c AND c.workspace_id = u.ws
            ON CONFLICT (campaign_id, hour) DO UPDATE SET
                impressions = campaigns_bannerstat.impressions + EXCLUDED.impressions,
                clicks = campaigns_bannerstat.clicks + EXCLUDED.clicks,
                dismissals = campaigns_bannerstat.dismissals + EXCLUDED.dismissals
            """,
            [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
             *([counts[k][i] for k in keys] for i in range(3))],
        )  # fmt: skip
        if viewers:
            keys = list(viewers)
            cursor.execute(
                """
                INSERT INTO campaigns_bannerviewer (workspace_id, campaign_id, person_id,
                                                    first_seen_at, clicked_at)
                SELECT u.ws, u.c, u.p, u.seen, u.clicked
                FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::timestamptz[],
                            %s::timestamptz[]) AS u(ws, c, p, seen, clicked)
                JOIN campaigns_campaign c ON c.id = u.c AND c.workspace_id = u.ws
                JOIN people_person p ON p.id = u.p AND p.workspace_id = u.ws
                ON CONFLICT (campaign_id, person_id) DO UPDATE SET
                    first_seen_at = LEAST(campaigns_bannerviewer.first_seen_at,
                                          EXCLUDED.first_seen_at),
                    clicked_at = COALESCE(LEAST(campaigns_bannerviewer.clicked_at,
                                                EXCLUDED.clicked_at),
                                          campaigns_bannerviewer.clicked_at,
                                          EXCLUDED.clicked_at)
                """,
                [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
                 [viewers[k][0] for k in keys], [viewers[k][1] for k in keys]],
            )  # fmt: skip


# --- CORS (django-cors-headers' check_request_enabled) ----------------------------------------

_origins: dict[int, tuple[float, frozenset]] = {}


def allowed_origins(workspace_id: int) -> frozenset:
    """The workspace's allowed origins: the live snapshot's (loaded with it: no query on a
    warm request), else read and kept KEY_TTL. A change takes effect within 5 s."""
    now = time.monotonic()
    snap = _snapshots.get(workspace_id)
    if snap is not None and now - snap.loaded_at <= SNAPSHOT_TTL:
        return snap.origins
    cached = _origins.get(workspace_id)
    if cached is None or cached[0] < now:
        from accounts.models import Workspace

        origins = Workspace.objects.filter(pk=workspace_id).values_list(
            "banner_allowed_origins", flat=True).first() or []  # fmt: skip
        cached = (now + KEY_TTL, frozenset(origins))
        _origins[workspace_id] = cached
    return cached[1]


def cors_allowed(request) -> bool:
    """CORS headers for /public/v1/ only, and only for an origin the key's workspace
    allows (a preflight carries no key value: it is answered for the key in ?key= only)."""
    if not request.path_info.startswith("/public/v1/"):
        return False
    origin = request.headers.get("origin", "")
    raw = request.GET.get("key") or request.headers.get("x-herald-key", "")
    try:
        workspace_id = key_workspace(raw)
    except KeyRefused:
        return False
    return origin in allowed_origins(workspace_id)


def placements_for(workspace) -> list[Placement]:
    """The workspace's placements, the built-in ones made the first time."""
    workspace_id = getattr(workspace, "pk", workspace)
    existing = {p.key for p in Placement.objects.for_workspace(workspace_id)}
    missing = [Placement(workspace_id=workspace_id, key=key, name=name, description=text,
                         builtin=True)
               for key, name, text in Placement.BUILTIN if key not in existing]  # fmt: skip
    if missing:
        Placement.objects.bulk_create(missing, ignore_conflicts=True)
    order = {key: i for i, (key, _, _) in enumerate(Placement.BUILTIN)}
    return sorted(Placement.objects.for_workspace(workspace_id),
                  key=lambda p: (order.get(p.key, len(order)), p.key))  # fmt: skip

