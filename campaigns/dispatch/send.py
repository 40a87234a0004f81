"""Dispatch: workers claim batches of a campaign's queued deliveries (FOR UPDATE SKIP
LOCKED, with a lease), re-check Do Not Contact and read each person's current address at
send time (someone who unsubscribed after launch gets nothing), render the content
(compiled once per campaign), mark the batch handed, send it through the channel's
transport in one `send_many`, and record every outcome set-based.

A delivery whose lease ran out (its worker died) is reclaimed: never handed to the
provider -> queued again; handed but no answer recorded -> `unknown`, counted, never
blindly re-sent, unless the provider dedupes on our idempotency key (Twilio, the
Sandbox) and it can safely go again."""

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.jobs import UNFINISHED
from campaigns import banners, events, tracking, unsubscribe
from campaigns.dispatch.freeze import (
    ADDRESS_COLUMN,
    capped_sql,
    quiet_end_sql,
    quiet_hours,
    quiet_inside_sql,
    zone_sql,
)
from campaigns.models import (
    Campaign,
    CampaignLaunch,
    CampaignStatus,
    Delivery,
    DeliveryStatus,
    QuietHours,
    SkipReason,
)
from campaigns.templating import PERSON_COLUMNS, RenderError, person_context_from_row
from campaigns.variants import compile_all
from channels.providers import NoProvider, get_transport
from channels.services import suppressions_apply
from channels.transports.base import OutboundMessage, SendResult, TransportError

log = logging.getLogger(__name__)

BATCH = 500
LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5  # a temporary error is retried with backoff this many times in all
BACKOFF = (30, 120, 600, 1800)  # seconds before the 2nd, 3rd, ... attempt
# providers that answer a repeated idempotency key with the first message: a delivery
# handed to them with no recorded answer can go again without a duplicate
DEDUPING_KINDS = ("twilio", "sandbox")
SYSTEM = Actor.of_system("campaign dispatch")


@dataclass
class BatchResult:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0


def claim(campaign_id: int, *, now: datetime, limit: int = BATCH) -> list[int]:
    """Take up to `limit` due queued deliveries for this worker (a lease until now +
    LEASE); other workers skip the locked rows; rows held for an A/B test's winner are
    not due. The ids claimed."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_delivery SET status = 'sending', lease_until = %s,
                   attempts = attempts + 1, handed_at = NULL
            WHERE id IN (
                SELECT id FROM campaigns_delivery
                WHERE campaign_id = %s AND status = 'queued' AND NOT is_test
                  AND (next_attempt_at IS NULL OR next_attempt_at <= %s)
                  AND NOT (ab_rest AND variant = '')
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            [now + LEASE, campaign_id, now, limit],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _current(ids: list[int], channel: str) -> list[dict]:
    """The claimed deliveries with each person's current fields and address, and whether
    that address is on Do Not Contact now (one query)."""
    columns = ", ".join(f"p.{c}" for c in PERSON_COLUMNS)
    if channel == "push":
        address = ("COALESCE((SELECT t.token FROM people_pushtoken t WHERE t.person_id = p.id "
                   "ORDER BY t.created_at DESC LIMIT 1), '')")  # fmt: skip
    else:
        address = f"p.{ADDRESS_COLUMN[channel]}"
    sql = f"""
        SELECT d.id, d.attempts, d.person_id, d.variant, {columns}, c.name AS company__name,
               {address} AS current_address
        FROM campaigns_delivery d JOIN people_person p ON p.id = d.person_id
        LEFT JOIN people_company c ON c.id = p.company_id
        WHERE d.id = ANY(%s)
        ORDER BY d.id
    """  # noqa: S608 - column names of ours
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids])
        names = [c.name for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        addresses = [r["current_address"] for r in rows if r["current_address"]]
        blocked = set()
        if addresses and rows:
            cursor.execute(
                "SELECT address FROM people_donotcontact WHERE workspace_id = ("
                "SELECT workspace_id FROM campaigns_delivery WHERE id = %s) "
                "AND channel = %s AND address = ANY(%s)",
                [ids[0], channel, addresses],
            )
            blocked = {row[0] for row in cursor.fetchall()}
    for row in rows:
        row["blocked"] = row["current_address"] in blocked
        if isinstance(row["attributes"], str):  # Django's cursor hands jsonb over as text
            row["attributes"] = json.loads(row["attributes"])
    return rows


def _capped(campaign: Campaign, person_ids: list[int], *, now: datetime) -> set[int]:
    """Of `person_ids`, those at a frequency cap now (one query for the batch): someone
    sent another campaign since the launch is skipped here."""
    condition, params = capped_sql(campaign, now=now, person="p.id", people=person_ids)
    if condition == "false" or not person_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT p.id FROM unnest(%s::bigint[]) AS p(id) WHERE {condition}",  # noqa: S608
            [person_ids, *params],
        )
        return {row[0] for row in cursor.fetchall()}


def _quiet(campaign: Campaign, person_ids: list[int], *, now: datetime) -> dict[int, datetime]:
    """Of `person_ids`, those inside the quiet hours now in their time zone, with when
    the hours end there (one query for the batch): a row claimed late, after the launch
    found it outside them."""
    window = quiet_hours(campaign)
    if window is None or not person_ids:
        return {}
    sql = f"""
        SELECT z.id, {quiet_end_sql("z.local", "z.zone", window)}
        FROM (SELECT y.id, y.zone, timezone(y.zone, %s::timestamptz) AS local
              FROM (SELECT p.id, {zone_sql("p")} AS zone FROM people_person p
                    WHERE p.id = ANY(%s)) y) z
        WHERE {quiet_inside_sql("z.local", window)}
    """  # noqa: S608 - SQL of ours, times formatted from time values
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, campaign.workspace.time_zone, person_ids])
        return dict(cursor.fetchall())


def _wait(waits: list[tuple[int, datetime]]) -> None:
    """Claimed rows put back in the queue until `next_attempt_at` (the attempt not
    counted: nothing was tried)."""
    if not waits:
        return
    ids, nexts = (list(c) for c in zip(*waits, strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_delivery d SET status = 'queued', next_attempt_at = u.next_at,
                   lease_until = NULL, attempts = greatest(d.attempts - 1, 0)
            FROM unnest(%s::bigint[], %s::timestamptz[]) AS u(id, next_at)
            WHERE d.id = u.id AND d.status = 'sending'
            """,
            [ids, nexts],
        )


def _message(campaign: Campaign, rendered: dict, row: dict, delivery_id: int) -> OutboundMessage:
    content = rendered
    common = {
        "channel": campaign.channel, "address": row["current_address"],
        "idempotency_key": f"delivery-{delivery_id}", "reference": str(delivery_id),
    }  # fmt: skip
    if campaign.channel == "email":
        return OutboundMessage(
            **common, subject=content.get("subject", ""), text=content.get("text", ""),
            html=tracking.email_html(campaign, content.get("html", ""), delivery_id),
            from_name=content.get("from_name", ""),
            reply_to=content.get("reply_to", ""),
            headers=unsubscribe.email_headers(campaign, delivery_id, row["current_address"]),
        )  # fmt: skip
    if campaign.channel == "sms":
        return OutboundMessage(
            **common, body=unsubscribe.sms_body(campaign, content.get("body", ""))
        )
    data = {k: content[k] for k in ("ios", "android", "data") if content.get(k)}
    if content.get("image_url"):
        data["image"] = content["image_url"]
    if content.get("url"):
        data["deep_link"] = content["url"]
    if content.get("buttons"):
        data["buttons"] = [{"id": b.get("id", ""), "label": b.get("title", ""),
                            "url": b.get("url", "")} for b in content["buttons"]]  # fmt: skip
    if url := tracking.push_open_url(campaign, delivery_id):  # the app GETs it when opened
        data["data"] = {**data.get("data", {}), tracking.PUSH_DATA_KEY: url}
    return OutboundMessage(**common, title=content.get("title", ""),
                           body=content.get("body", ""), data=data)  # fmt: skip


def _record(updates: list[tuple]) -> None:
    """(id, status, reason, error, provider id, sent_at, next_attempt_at) in one UPDATE."""
    if not updates:
        return
    ids, statuses, reasons, errors, pids, sent, nexts = (
        list(c) for c in zip(*updates, strict=True)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_delivery d SET status = u.status, reason = u.reason,
                   error = u.error, provider_message_id = u.pid, sent_at = u.sent_at,
                   next_attempt_at = u.next_at, lease_until = NULL
            FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[],
                        %s::timestamptz[], %s::timestamptz[])
                 AS u(id, status, reason, error, pid, sent_at, next_at)
            WHERE d.id = u.id AND d.status = 'sending'
            """,
            [ids, statuses, reasons, errors, pids, sent, nexts],
        )


def send_batch(campaign: Campaign, transport, compiled: dict, ids: list[int], *, now: datetime
               ) -> BatchResult:  # fmt: skip
    """Send the claimed deliveries `ids` and record each outcome. `compiled`: the
    campaign's messages by variant key (campaigns.variants.compile_all)."""
    result = BatchResult(claimed=len(ids))
    rows = _current(ids, campaign.channel)
    capped = _capped(campaign, [r["person_id"] for r in rows], now=now)
    quiet = _quiet(campaign, [r["person_id"] for r in rows], now=now)
    updates, to_send, messages, waits = [], [], [], []
    for row in rows:
        if not row["current_address"]:
            updates.append((row["id"], DeliveryStatus.SKIPPED, SkipReason.NO_ADDRESS, "", "",
                            None, None))  # fmt: skip
            result.skipped += 1
        elif row["blocked"]:  # unsubscribed (or bounced) after the launch: nothing goes
            updates.append((row["id"], DeliveryStatus.SKIPPED, SkipReason.DNC, "", "", None,
                            None))  # fmt: skip
            result.skipped += 1
        elif row["person_id"] in capped:  # sent another campaign since the launch
            updates.append((row["id"], DeliveryStatus.SKIPPED, SkipReason.FREQUENCY_CAP, "", "",
                            None, None))  # fmt: skip
            result.skipped += 1
        elif row["person_id"] in quiet and campaign.quiet_hours == QuietHours.SKIP:
            updates.append((row["id"], DeliveryStatus.SKIPPED, SkipReason.QUIET_HOURS, "", "",
                            None, None))  # fmt: skip
            result.skipped += 1
        elif row["person_id"] in quiet:  # waits until their quiet hours end
            waits.append((row["id"], quiet[row["person_id"]]))
            result.retried += 1
        else:
            try:
                rendered = (compiled.get(row["variant"]) or compiled[""]).render(
                    person_context_from_row(row, workspace_time_zone=campaign.workspace.time_zone)
                )
            except RenderError as e:  # this person's data breaks the template: only theirs
                updates.append((row["id"], DeliveryStatus.FAILED, "", str(e)[:2000], "", None,
                                None))  # fmt: skip
                result.failed += 1
                continue
            to_send.append(row)
            messages.append(_message(campaign, rendered, row, row["id"]))
    _record(updates)
    _wait(waits)
    if not messages:
        return result
    # handed: from here a dead worker leaves "unknown", not "never sent"; with the address
    # each is handed to (one UPDATE)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_delivery d SET handed_at = %s, lease_until = %s, "
            "address = u.address FROM unnest(%s::bigint[], %s::text[]) AS u(id, address) "
            "WHERE d.id = u.id",
            [now, now + LEASE, [r["id"] for r in to_send], [m.address for m in messages]],
        )
    outcomes = transport.send_many(messages)
    sent_at = timezone.now()
    updates, dead = [], []
    for row, message, outcome in zip(to_send, messages, outcomes, strict=True):
        if isinstance(outcome, SendResult):
            updates.append((row["id"], DeliveryStatus.SENT, "", "", outcome.provider_message_id,
                            sent_at, None))  # fmt: skip
            result.sent += 1
        elif (
            isinstance(outcome, TransportError)
            and outcome.temporary
            and (row["attempts"] < MAX_ATTEMPTS)
        ):
            wait = BACKOFF[min(row["attempts"] - 1, len(BACKOFF) - 1)]
            updates.append((row["id"], DeliveryStatus.QUEUED, "", outcome.message[:2000], "",
                            None, sent_at + timedelta(seconds=wait)))  # fmt: skip
            result.retried += 1
        else:
            error = outcome.message if isinstance(outcome, TransportError) else str(outcome)
            status = (
                DeliveryStatus.BOUNCED
                if getattr(outcome, "suppress", False)
                else (DeliveryStatus.FAILED)
            )
            updates.append((row["id"], status, "", error[:2000], "", None, None))
            result.failed += 1
            if getattr(outcome, "suppress", False):
                dead.append(message.address)
    with transaction.atomic():
        _record(updates)
        if dead:
            suppressions_apply(workspace=campaign.workspace_id, channel=campaign.channel,
                               addresses=dead, reason="The provider reported it dead")  # fmt: skip
        # a provider's webhook may name a message before its id was recorded here
        events.apply_known_events(campaign.workspace_id, [r["id"] for r in to_send])
    return result


def reclaim(*, now: datetime | None = None) -> dict:
    """Deliveries whose lease ran out: never handed -> queued again; handed with no
    answer -> `unknown`, or queued again for providers that dedupe on our key."""
    now = now or timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE campaigns_delivery SET status = 'queued', lease_until = NULL "
            "WHERE status = 'sending' AND lease_until < %s AND handed_at IS NULL",
            [now],
        )
        requeued = cursor.rowcount
        cursor.execute(
            """
            UPDATE campaigns_delivery d SET status = CASE WHEN pr.kind = ANY(%s)
                   THEN 'queued' ELSE 'unknown' END,
                   lease_until = NULL, handed_at = NULL,
                   error = CASE WHEN pr.kind = ANY(%s) THEN d.error ELSE
                     'Handed to the provider; the worker stopped before its answer was '
                     'recorded. Not sent again, to avoid a duplicate.' END
            FROM campaigns_campaign c
            LEFT JOIN channels_provider pr ON pr.workspace_id = c.workspace_id
                 AND pr.channel = c.channel AND pr.platform = ''
            WHERE d.campaign_id = c.id AND d.status = 'sending' AND d.lease_until < %s
              AND d.handed_at IS NOT NULL
            """,
            [list(DEDUPING_KINDS), list(DEDUPING_KINDS), now],
        )
        unknown_or_requeued = cursor.rowcount
    return {"requeued": requeued, "handed": unknown_or_requeued}


def dispatch(campaign_id: int, *, batch: int = BATCH, now=None) -> BatchResult:
    """Send the campaign's due deliveries, batch after batch, until none is due (the
    task of one worker; several run side by side). Finishes the campaign when nothing
    is left queued or in flight."""
    campaign = Campaign.objects.unscoped().select_related("workspace").get(pk=campaign_id)
    total = BatchResult()
    if campaign.status != CampaignStatus.SENDING:
        return total
    try:
        transport = get_transport(campaign.channel, campaign.workspace)
    except NoProvider as e:
        _fail(campaign, str(e))
        return total
    compiled = compile_all(campaign)
    with transport:
        while True:
            current = now or timezone.now()
            campaign.refresh_from_db(fields=["status", "expires_at"])
            if campaign.status != CampaignStatus.SENDING:
                break  # paused or cancelled: the claimed-but-unsent stay queued
            if campaign.expires_at and campaign.expires_at <= current:
                expire(campaign, now=current)
                break
            ids = claim(campaign.pk, now=current, limit=batch)
            if not ids:
                break
            result = send_batch(campaign, transport, compiled, ids, now=current)
            for field in ("claimed", "sent", "failed", "skipped", "retried"):
                setattr(total, field, getattr(total, field) + getattr(result, field))
    finish_if_done(campaign)
    return total


def expire(campaign: Campaign, *, now: datetime) -> None:
    """Past its expiry: nothing more is sent, the rest recorded as skipped `expired`."""
    with transaction.atomic():
        Delivery.objects.filter(campaign=campaign, is_test=False,
                                status=DeliveryStatus.QUEUED).update(
            status=DeliveryStatus.SKIPPED, reason=SkipReason.EXPIRED)  # fmt: skip
        _transition(campaign, CampaignStatus.EXPIRED, reason="Expired before every message "
                    "was sent: the rest were skipped.", now=now)  # fmt: skip


def finish_if_done(campaign: Campaign) -> None:
    """Sent when nothing is queued or in flight; failed when every message failed. A
    flow's step campaign stays sending: the flow queues more as people reach the step."""
    if campaign.flow_id:
        return
    if (
        CampaignLaunch.objects.unscoped()
        .filter(campaign_id=campaign.pk, status__in=UNFINISHED)
        .exists()
    ):
        return  # still freezing its recipients
    counts = _counts(campaign)
    if counts.get("queued") or counts.get("sending"):
        return
    campaign.refresh_from_db(fields=["status"])
    if campaign.status != CampaignStatus.SENDING:
        return
    delivered = counts.get("sent", 0) + counts.get("delivered", 0) + counts.get("unknown", 0)
    failed = counts.get("failed", 0) + counts.get("bounced", 0)
    if failed and not delivered:
        error = (
            Delivery.objects.filter(campaign=campaign, status=DeliveryStatus.FAILED)
            .values_list("error", flat=True).first() or "every message was refused"
        )  # fmt: skip
        _transition(campaign, CampaignStatus.FAILED, reason=f"The provider refused every "
                    f"message: {error}")  # fmt: skip
    else:
        _transition(campaign, CampaignStatus.SENT)


def _counts(campaign: Campaign) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM campaigns_delivery WHERE campaign_id = %s "
            "AND NOT is_test GROUP BY status",
            [campaign.pk],
        )
        return dict(cursor.fetchall())


def _fail(campaign: Campaign, reason: str) -> None:
    _transition(campaign, CampaignStatus.FAILED, reason=reason)


def _transition(
    campaign: Campaign, status: str, *, reason: str = "", now=None, actor: Actor | None = None
) -> None:
    """Move the campaign to `status` (audited "campaign.<status>", by `actor` when a
    person or key asked for it, else by the dispatcher)."""
    now = now or timezone.now()
    fields = {"status": status, "status_reason": reason}
    if status in (CampaignStatus.SENT, CampaignStatus.FAILED, CampaignStatus.EXPIRED):
        fields["finished_at"] = now
    with transaction.atomic():
        Campaign.objects.unscoped().filter(pk=campaign.pk).update(**fields)
        if campaign.channel == "banner":  # served from a cache: every process reloads
            banners.changed(campaign.workspace_id)
        audit_record(workspace=campaign.workspace_id, actor=actor or SYSTEM,
                     action=f"campaign.{status}", obj=campaign,
                     summary={"status": status})  # fmt: skip
    campaign.status = status
