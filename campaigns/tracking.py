"""Open and click tracking (shared/API.md "Tracking, unsubscribe"; issue 15, item 1).

At send, a tracked campaign's email HTML gets its links rewritten to `{base}/t/c/{token}`
and an open pixel `{base}/t/o/{token}.gif` appended (`email_html`); a push carries its open
URL in its data (`push_open_url`, data["herald_open"]): the app reports an open by fetching
it (GET, no API key: the signed token is the credential, as for the pixel).

Tokens: `<workspace>-<campaign>-<delivery>[-<link index>]` (base 62) signed with
django.core.signing under its own salt; a forged, truncated or tampered token is a 404 and
records nothing. The destination of a click is looked up server-side, in CampaignLink.

Which links are tracked: the campaign's distinct http(s) links as written in its stored
HTML, without Liquid in them, outside `data-herald-notrack` anchors, not mailto:, tel:,
#anchors, nor Herald's own /u/ (unsubscribe) and /t/ links. A link whose address Liquid
makes per person (`?uid={{ person.external_id }}`) is left as it is, untracked: only an
address stored for the campaign can ever be a redirect's target, so /t/c is no open
redirect, and no per-person rows are written at send. The links are stored (CampaignLink,
one INSERT ... SELECT) the first time a worker renders the campaign's email, then cached
per process; an index never changes its url, so a link sent stays valid.

The hot path writes nothing to PostgreSQL: the view checks the token, pushes one compact
record onto a Redis list (one RPUSH; a click reads its link, cached per process) and
answers the gif or the 302; with Redis down it still answers, and logs (those hits are
lost). `flush` (beat every few seconds, and enqueued when the list is long) moves a batch
to a processing list and gives it a number (a PostgreSQL sequence) in one MULTI, applies
it set-based (one UPDATE ... FROM unnest for deliveries, one for links) and deletes it
after commit. A flush that dies leaves the processing list, which the next flush applies
first; each row remembers the last batch applied to it, so a batch applied twice (died
after the commit, before the delete) counts once.

Machine opens and clicks are counted apart (Delivery.machine_*, CampaignLink.machine_clicks)
and rates, stats and the opened / clicked message conditions use the human ones:
- Apple Mail Privacy Protection: its proxy fetches every image when the message arrives,
  through the iCloud Private Relay egress, with the bare user agent "Mozilla/5.0" (no
  platform, unlike any mail client or browser); Apple's own 17.0.0.0/8 is counted too;
- image proxies (Gmail's GoogleImageProxy, Yahoo's) fetch when the person opens, except a
  prefetch within PREFETCH_SECONDS of the send: that one is machine;
- known scanners and fetchers by user agent (mail security gateways, link previewers,
  HTTP libraries, headless browsers), and a hit without a user agent;
- link scanners by behaviour: a click before any open within EARLY_CLICK_SECONDS of the
  send; a click within SCAN_SECONDS after a machine click of the same message; clicks on
  every link of the message (at most SCAN_LINKS of them, at least 2) within SCAN_SECONDS
  of its first click. To see such a burst whole, a flush applies only hits older than
  SCAN_SECONDS and reads the newer ones after them as context.
A push open is the app's report of a tap: always human. A person's click also counts as
their open (images blocked), without adding to the open count."""

import html as html_lib
import ipaddress
import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import redis
from django.conf import settings
from django.core import signing
from django.db import connection, transaction
from django.utils import timezone

from campaigns import variants
from campaigns.models import CampaignLink
from campaigns.tokens import b62, from_b62
from campaigns.unsubscribe import public_base_url

log = logging.getLogger(__name__)

SALT = "herald.campaigns.tracking"
TOKEN_MAX = 140  # a real token is about 60 characters; anything longer is refused unread
MAX_TRACKED_URL = 2_048
PUSH_DATA_KEY = "herald_open"

HITS = "herald:track:hits"
PROCESSING = "herald:track:processing"
PROCESSING_SEQ = "herald:track:processing:seq"
LOCK = "herald:track:lock"
BATCH = 5_000  # records per flush transaction
LOOKAHEAD = 5_000  # newer records read as context for scanner bursts
FLUSH_AT = 20_000  # the view enqueues a flush each time the list grows by this many
LOCK_SECONDS = 120
REDIS_TIMEOUT = 0.25  # seconds: a slow or dead Redis must not hold a pixel up
REDIS_RETRY_AFTER = 2.0  # seconds without trying Redis after it failed

PREFETCH_SECONDS = 10
EARLY_CLICK_SECONDS = 15
SCAN_SECONDS = 5
SCAN_LINKS = 3

# 43 bytes: the smallest transparent GIF
PIXEL = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


# --- Tokens --------------------------------------------------------------------------------


@cache
def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, sep=".")


@dataclass(frozen=True)
class Hit:
    workspace_id: int
    campaign_id: int
    delivery_id: int
    link: int | None = None  # the link index of a click


def make_token(workspace_id: int, campaign_id: int, delivery_id: int, link: int | None = None):
    parts = [workspace_id, campaign_id, delivery_id] + ([] if link is None else [link])
    return _signer().sign("-".join(b62(p) for p in parts))


def read_token(token: str, *, click: bool) -> Hit | None:
    """What a token signed here names (a click token has a link index, an open token none);
    None for anything else."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        return None
    try:
        parts = [from_b62(p) for p in _signer().unsign(token).split("-")]
    except (signing.BadSignature, ValueError):
        return None
    if len(parts) != (4 if click else 3):
        return None
    return Hit(*parts)


def open_url(campaign, delivery_id: int) -> str:
    return (
        f"{public_base_url()}/t/o/{make_token(campaign.workspace_id, campaign.pk, delivery_id)}.gif"
    )


def click_url(campaign, delivery_id: int, link: int) -> str:
    token = make_token(campaign.workspace_id, campaign.pk, delivery_id, link)
    return f"{public_base_url()}/t/c/{token}"


def push_open_url(campaign, delivery_id: int) -> str | None:
    """The URL a push's app fetches when the person opens it (data["herald_open"]); None
    when the campaign is not tracked."""
    return open_url(campaign, delivery_id) if campaign.tracking else None


# --- Links in the email ----------------------------------------------------------------------

_A_TAG = re.compile(r"<a\s[^>]*>", re.IGNORECASE)
_HREF = re.compile(r'(\shref=")([^"]*)(")', re.IGNORECASE)
_NOTRACK = "data-herald-notrack"


def _trackable(escaped_href: str) -> str | None:
    """The address a stored href points at when it is tracked (see the module's doc)."""
    if "{{" in escaped_href or "{%" in escaped_href:
        return None  # made per person by Liquid: never a redirect target
    url = html_lib.unescape(escaped_href).strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) > MAX_TRACKED_URL:
        return None  # mailto:, tel:, #anchors, relative links
    base = public_base_url()
    if url.startswith((f"{base}/u/", f"{base}/t/")):
        return None  # the unsubscribe link, or tracked already
    return url


def stored_links(html: str) -> list[tuple[str, str]]:
    """(href as written, url) of the distinct tracked links of stored (or rendered) HTML,
    in document order."""
    seen, links = set(), []
    for tag in _A_TAG.findall(html or ""):
        if _NOTRACK in tag.lower():
            continue
        match = _HREF.search(tag)
        if not match or match.group(2) in seen:
            continue
        url = _trackable(match.group(2))
        if url is not None:
            seen.add(match.group(2))
            links.append((match.group(2), url))
    return links


_link_maps: dict[int, tuple[str, dict[str, int]]] = {}


def campaign_links(campaign) -> dict[str, int]:
    """{href as written: link index} of the campaign's tracked links, stored (one INSERT ...
    SELECT under the campaign's advisory lock) the first time, then cached per process."""
    # every variant's HTML: one index per distinct link across them
    source = "\n".join(c.get("html", "") or "" for c in variants.contents(campaign).values())
    cached = _link_maps.get(campaign.pk)
    if cached and cached[0] == source:
        return cached[1]
    links = stored_links(source)
    mapping: dict[str, int] = {}
    if links:
        urls = [url for _, url in links]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [0x7E4C, campaign.pk])
            cursor.execute(
                """
                INSERT INTO campaigns_campaignlink
                    (workspace_id, campaign_id, index, url, clicks, machine_clicks,
                     tracking_batch)
                SELECT %(ws)s, %(c)s,
                       COALESCE((SELECT max(index) FROM campaigns_campaignlink
                                 WHERE workspace_id = %(ws)s AND campaign_id = %(c)s), -1)
                         + row_number() OVER (ORDER BY u.ord),
                       u.url, 0, 0, 0
                FROM unnest(%(urls)s::text[]) WITH ORDINALITY AS u(url, ord)
                WHERE NOT EXISTS (SELECT 1 FROM campaigns_campaignlink l
                                  WHERE l.workspace_id = %(ws)s AND l.campaign_id = %(c)s
                                    AND l.url = u.url)
                """,
                {"ws": campaign.workspace_id, "c": campaign.pk, "urls": urls},
            )
        by_url = dict(
            CampaignLink.objects.for_workspace(campaign.workspace_id)
            .filter(campaign_id=campaign.pk, url__in=urls)
            .values_list("url", "index")
        )
        mapping = {href: by_url[url] for href, url in links if url in by_url}
    if len(_link_maps) > 1_000:
        _link_maps.clear()
    _link_maps[campaign.pk] = (source, mapping)
    return mapping


def email_html(campaign, html: str, delivery_id: int) -> str:
    """The rendered HTML of one delivery as sent: its tracked links through /t/c and the
    open pixel at the end; unchanged when the campaign is not tracked or `html` is empty."""
    if not html or not campaign.tracking:
        return html
    mapping = campaign_links(campaign)

    def rewrite(match: re.Match) -> str:
        tag = match.group(0)
        if _NOTRACK in tag.lower():
            return tag
        href = _HREF.search(tag)
        if href is None or (index := mapping.get(href.group(2))) is None:
            return tag
        tracked = click_url(campaign, delivery_id, index)
        return tag[: href.start(2)] + tracked + tag[href.end(2) :]

    if mapping:
        html = _A_TAG.sub(rewrite, html)
    pixel = f'<img src="{open_url(campaign, delivery_id)}" width="1" height="1" alt="">'
    closing = html.lower().rfind("</body>")
    if closing >= 0:
        return html[:closing] + pixel + html[closing:]
    return html + pixel


_link_urls: dict[tuple[int, int, int], str] = {}


def link_url(hit: Hit) -> str | None:
    """The stored destination of a click token's link (cached per process: an index never
    changes its url), None when the campaign has no such link."""
    key = (hit.workspace_id, hit.campaign_id, hit.link)
    url = _link_urls.get(key)
    if url is None:
        url = (
            CampaignLink.objects.for_workspace(hit.workspace_id)
            .filter(campaign_id=hit.campaign_id, index=hit.link)
            .values_list("url", flat=True)
            .first()
        )
        if url is None:
            return None
        if len(_link_urls) > 50_000:
            _link_urls.clear()
        _link_urls[key] = url
    return url


# --- Who fetched: machine fetchers by user agent and address ---------------------------------

HUMAN, APPLE, PROXY, BOT = "h", "a", "p", "b"
_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
_PROXIES = ("googleimageproxy", "ggpht.com", "yahoomailproxy")
_BOTS = (
    "bot", "spider", "crawl", "preview", "scan", "barracuda", "mimecast", "proofpoint",
    "symantec", "messagelabs", "forcepoint", "fortiguard", "trendmicro", "sophos", "cisco",
    "ironport", "safelinks", "python", "curl", "wget", "go-http-client", "java/", "okhttp/2",
    "libwww", "httpclient", "axios", "node-fetch", "headlesschrome", "phantomjs", "zgrab",
)  # fmt: skip


def fetcher(user_agent: str, ip: str = "") -> str:
    """HUMAN, APPLE (Mail Privacy Protection), PROXY (an image proxy) or BOT."""
    ua = (user_agent or "").strip()
    if not ua:
        return BOT
    if ua == "Mozilla/5.0":
        return APPLE
    lowered = ua.lower()
    if any(p in lowered for p in _PROXIES):
        return PROXY
    if any(b in lowered for b in _BOTS):
        return BOT
    if ip:
        try:
            if ipaddress.ip_address(ip) in _APPLE_NETWORK:
                return APPLE
        except ValueError:
            pass
    return HUMAN


# --- The hot path: one RPUSH -------------------------------------------------------------------

_client: redis.Redis | None = None
_down_until = 0.0


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT, health_check_interval=30,
        )  # fmt: skip
    return _client


def encode(kind: str, hit: Hit, who: str, at: float) -> str:
    return (f"{kind},{hit.workspace_id},{hit.campaign_id},{hit.delivery_id},"
            f"{'' if hit.link is None else hit.link},{int(at * 1000)},{who}")  # fmt: skip


def record(kind: str, hit: Hit, who: str, *, at: float | None = None) -> bool:
    """Queue one hit ("o" open, "c" click) for the flush: one RPUSH. False (and a log line)
    when Redis cannot take it; the caller answers anyway."""
    global _down_until
    if time.monotonic() < _down_until:
        log.warning("Tracking hit dropped: Redis was unavailable moments ago.")
        return False
    try:
        length = _redis().rpush(HITS, encode(kind, hit, who, time.time() if at is None else at))
    except redis.RedisError as e:
        _down_until = time.monotonic() + REDIS_RETRY_AFTER
        log.warning("Tracking hit dropped: Redis is unavailable (%s).", e)
        return False
    if length % FLUSH_AT == 0:
        from celery import current_app  # by name: the task module imports this one

        try:
            current_app.send_task("campaigns.tracking_tasks.tracking_flush_task")
        except Exception:  # noqa: BLE001 - beat flushes anyway
            log.warning("Could not enqueue the tracking flush; beat will run it.")
    return True


# --- The flush -----------------------------------------------------------------------------------


@dataclass
class _Record:
    kind: str
    workspace_id: int
    campaign_id: int
    delivery_id: int
    link: int | None
    at: datetime
    who: str


def decode(raw: bytes | str) -> _Record | None:
    try:
        text = raw.decode() if isinstance(raw, bytes) else raw
        kind, ws, campaign, delivery, link, ms, who = text.split(",")
        if kind not in ("o", "c"):
            return None
        return _Record(kind, int(ws), int(campaign), int(delivery), int(link) if link else None,
                       datetime.fromtimestamp(int(ms) / 1000, tz=UTC), who)  # fmt: skip
    except (ValueError, UnicodeDecodeError):
        return None


@dataclass
class _Totals:
    opens: int = 0
    opened_at: datetime | None = None
    last_opened_at: datetime | None = None
    machine_opens: int = 0
    machine_opened_at: datetime | None = None
    clicks: int = 0
    clicked_at: datetime | None = None
    last_clicked_at: datetime | None = None
    machine_clicks: int = 0
    machine_clicked_at: datetime | None = None
    links: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0]))


def _first(a, b):
    return b if a is None or (b is not None and b < a) else a


def _last(a, b):
    return b if a is None or (b is not None and b > a) else a


def _classify(state: dict, records: list[_Record], context: list[_Record]) -> _Totals:
    """Totals of one delivery's records (in time order) given its row (`state`) and the
    newer records of it (`context`, for a burst that goes on past the batch)."""
    totals = _Totals()
    push = state["channel"] == "push"
    sent_at = state["sent_at"]
    human_open = state["opened_at"]
    machine_click = state["machine_clicked_at"]
    first_click = _first(state["clicked_at"], machine_click)
    burst, burst_end = False, None
    if first_click is None and state["links"] >= 2:
        clicks = sorted((r for r in (*records, *context) if r.kind == "c"), key=lambda r: r.at)
        if clicks:
            start = clicks[0].at
            window = {r.link for r in clicks if r.at - start <= timedelta(seconds=SCAN_SECONDS)}
            burst = len(window) >= min(state["links"], SCAN_LINKS)
            burst_end = start + timedelta(seconds=SCAN_SECONDS)
    for r in records:
        since_send = (r.at - sent_at).total_seconds() if sent_at else None
        if r.kind == "o":
            machine = not push and (
                r.who in (APPLE, BOT)
                or (r.who == PROXY and since_send is not None and since_send <= PREFETCH_SECONDS)
            )
            if machine:
                totals.machine_opens += 1
                totals.machine_opened_at = _first(totals.machine_opened_at, r.at)
            else:
                totals.opens += 1
                totals.opened_at = _first(totals.opened_at, r.at)
                totals.last_opened_at = _last(totals.last_opened_at, r.at)
                human_open = _first(human_open, r.at)
            continue
        machine = not push and (
            r.who != HUMAN
            or (since_send is not None and since_send <= EARLY_CLICK_SECONDS
                and (human_open is None or human_open > r.at))
            or (machine_click is not None
                and timedelta(0) <= r.at - machine_click <= timedelta(seconds=SCAN_SECONDS))
            or (burst and burst_end is not None and r.at <= burst_end)
        )  # fmt: skip
        link = totals.links[r.link]
        if machine:
            totals.machine_clicks += 1
            totals.machine_clicked_at = _first(totals.machine_clicked_at, r.at)
            machine_click = _first(machine_click, r.at)
            link[1] += 1
        else:
            totals.clicks += 1
            totals.clicked_at = _first(totals.clicked_at, r.at)
            totals.last_clicked_at = _last(totals.last_clicked_at, r.at)
            human_open = _first(human_open, r.at)
            totals.opened_at = _first(totals.opened_at, r.at)  # a click is an open
            link[0] += 1
    return totals


_STATE = """
    SELECT d.id, d.sent_at, d.opened_at, d.clicked_at, d.machine_clicked_at, c.channel,
           (SELECT count(*) FROM campaigns_campaignlink l
            WHERE l.workspace_id = d.workspace_id AND l.campaign_id = d.campaign_id) AS links
    FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[]) AS k(ws, campaign, id)
    JOIN campaigns_delivery d ON d.id = k.id AND d.workspace_id = k.ws
         AND d.campaign_id = k.campaign
    JOIN campaigns_campaign c ON c.id = d.campaign_id
"""
_APPLY_DELIVERIES = """
    UPDATE campaigns_delivery d SET
        open_count = d.open_count + u.opens,
        opened_at = LEAST(d.opened_at, u.opened_at),
        last_opened_at = GREATEST(d.last_opened_at, u.last_opened_at),
        machine_open_count = d.machine_open_count + u.machine_opens,
        machine_opened_at = LEAST(d.machine_opened_at, u.machine_opened_at),
        click_count = d.click_count + u.clicks,
        clicked_at = LEAST(d.clicked_at, u.clicked_at),
        last_clicked_at = GREATEST(d.last_clicked_at, u.last_clicked_at),
        machine_click_count = d.machine_click_count + u.machine_clicks,
        machine_clicked_at = LEAST(d.machine_clicked_at, u.machine_clicked_at),
        tracking_batch = %(seq)s
    FROM unnest(%(ids)s::bigint[], %(opens)s::int[], %(opened)s::timestamptz[],
                %(last_opened)s::timestamptz[], %(m_opens)s::int[], %(m_opened)s::timestamptz[],
                %(clicks)s::int[], %(clicked)s::timestamptz[], %(last_clicked)s::timestamptz[],
                %(m_clicks)s::int[], %(m_clicked)s::timestamptz[])
         AS u(id, opens, opened_at, last_opened_at, machine_opens, machine_opened_at, clicks,
              clicked_at, last_clicked_at, machine_clicks, machine_clicked_at)
    WHERE d.id = u.id AND d.tracking_batch < %(seq)s
"""
_APPLY_LINKS = """
    UPDATE campaigns_campaignlink l SET clicks = l.clicks + u.clicks,
           machine_clicks = l.machine_clicks + u.machine_clicks, tracking_batch = %(seq)s
    FROM unnest(%(ws)s::bigint[], %(campaigns)s::bigint[], %(links)s::int[], %(clicks)s::int[],
                %(m_clicks)s::int[]) AS u(ws, campaign, index, clicks, machine_clicks)
    WHERE l.workspace_id = u.ws AND l.campaign_id = u.campaign AND l.index = u.index
      AND l.tracking_batch < %(seq)s
"""


def apply_batch(seq: int, raw: list, context_raw: list = ()) -> int:
    """Apply one numbered batch of records in one transaction (two UPDATEs); a second
    application of the same `seq` changes nothing. The records applied."""
    records = [r for r in map(decode, raw) if r is not None]
    context = [r for r in map(decode, context_raw) if r is not None]
    if not records:
        return 0
    keys = sorted({(r.workspace_id, r.campaign_id, r.delivery_id) for r in records})
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_STATE, [[k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]])
        names = [c.name for c in cursor.description]
        states = {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}
        by_delivery, later = defaultdict(list), defaultdict(list)
        for r in records:
            state = states.get(r.delivery_id)
            if state is not None and (r.kind == "o" or r.link is not None):
                by_delivery[r.delivery_id].append(r)
        for r in context:
            if r.delivery_id in by_delivery:
                later[r.delivery_id].append(r)
        rows, link_rows = [], []
        for delivery_id, hits in by_delivery.items():
            hits.sort(key=lambda r: r.at)
            totals = _classify(states[delivery_id], hits, later[delivery_id])
            rows.append((delivery_id, totals))
            for index, (human, machine) in totals.links.items():
                link_rows.append((hits[0].workspace_id, hits[0].campaign_id, index, human,
                                  machine))  # fmt: skip
        if rows:
            t = [totals for _, totals in rows]
            cursor.execute(_APPLY_DELIVERIES, {
                "seq": seq, "ids": [i for i, _ in rows], "opens": [x.opens for x in t],
                "opened": [x.opened_at for x in t], "last_opened": [x.last_opened_at for x in t],
                "m_opens": [x.machine_opens for x in t],
                "m_opened": [x.machine_opened_at for x in t], "clicks": [x.clicks for x in t],
                "clicked": [x.clicked_at for x in t],
                "last_clicked": [x.last_clicked_at for x in t],
                "m_clicks": [x.machine_clicks for x in t],
                "m_clicked": [x.machine_clicked_at for x in t],
            })  # fmt: skip
        if link_rows:
            link_rows = _sum_links(link_rows)
            cursor.execute(_APPLY_LINKS, {
                "seq": seq, "ws": [r[0] for r in link_rows], "campaigns": [r[1] for r in link_rows],
                "links": [r[2] for r in link_rows], "clicks": [r[3] for r in link_rows],
                "m_clicks": [r[4] for r in link_rows],
            })  # fmt: skip
    return len(records)


def _sum_links(rows: list[tuple]) -> list[tuple]:
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for ws, campaign, index, human, machine in rows:
        sums[(ws, campaign, index)][0] += human
        sums[(ws, campaign, index)][1] += machine
    return [(*key, h, m) for key, (h, m) in sorted(sums.items())]


def _next_seq() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval('campaigns_tracking_batch_seq')")
        return cursor.fetchone()[0]


def take_batch(client: redis.Redis, *, now: datetime, batch: int = BATCH,
               hold: float = SCAN_SECONDS) -> tuple[int, list, list] | None:  # fmt: skip
    """Move the oldest records (at most `batch`, none newer than `hold` seconds) from the
    hits list to the processing list with a new batch number, in one MULTI: (number,
    records, the newer records read as context), or None when nothing is due. Only the
    flush holding the lock takes from the list's head; views only append."""
    head = client.lrange(HITS, 0, batch + LOOKAHEAD - 1)
    cutoff = now - timedelta(seconds=hold)
    due = 0
    for raw in head[:batch]:
        parsed = decode(raw)
        if parsed is not None and parsed.at > cutoff:
            break
        due += 1
    if not due:
        return None
    seq = _next_seq()
    taken = head[:due]
    with client.pipeline(transaction=True) as pipe:
        pipe.delete(PROCESSING)
        pipe.rpush(PROCESSING, *taken)
        pipe.set(PROCESSING_SEQ, seq)
        pipe.ltrim(HITS, due, -1)
        pipe.execute()
    return seq, taken, head[due:]


def taken_batch(client: redis.Redis) -> tuple[int, list, list] | None:
    """The batch a flush took and did not finish (it died), to apply first."""
    seq = client.get(PROCESSING_SEQ)
    if seq is None:
        return None
    return int(seq), client.lrange(PROCESSING, 0, -1), client.lrange(HITS, 0, LOOKAHEAD - 1)


def finish_batch(client: redis.Redis) -> None:
    client.delete(PROCESSING, PROCESSING_SEQ)


_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def flush(*, now: datetime | None = None, batch: int = BATCH, hold: float = SCAN_SECONDS,
          max_batches: int = 100) -> int:  # fmt: skip
    """Apply what the views queued (see the module's doc): an unfinished batch first, then
    batch after batch of due records. One flush at a time (a lock in Redis). The number of
    records applied."""
    client = _redis()
    owner = f"{time.time()}-{id(client)}"
    if not client.set(LOCK, owner, nx=True, ex=LOCK_SECONDS):
        return 0
    applied = 0
    try:
        for _ in range(max_batches):
            taken = taken_batch(client) or take_batch(
                client, now=now or timezone.now(), batch=batch, hold=hold
            )
            if taken is None:
                break
            seq, records, context = taken
            applied += apply_batch(seq, records, context)
            finish_batch(client)
    finally:
        client.eval(_RELEASE, 1, LOCK, owner)
    return applied
