"""Provider events (delivered, bounced, complained, failed, opened, clicked) matched to
the ledger's deliveries by provider message id (ARCHITECTURE.md, Data flow 3).

channels stores what a provider's webhook reported (channels.models.ProviderEvent, keyed by
the workspace and the provider's message id) and sends `provider_events_recorded`;
campaigns.apps connects `on_provider_events_recorded` to it, so the mapping happens in the
webhook's own transaction, set-based: one UPDATE ... FROM over the ledger joined to the
events of those message ids, whatever their number.

What an event does to its delivery:
- delivered: `sent` -> `delivered`, `delivered_at` (the first delivery report);
- bounced, rejected (and a Twilio "undelivered" for a dead number, which channels reports
  as bounced): -> `bounced`, the provider's answer as `error`;
- failed (and an SMS refused because the number had opted out): -> `failed`;
- complained, unsubscribed (an ESP's own unsubscribe link): `unsubscribed_at` (channels
  put the address on Do Not Contact already);
- opened, clicked: `opened_at` / `clicked_at`, the first time only.
A delivery never moves backwards: only `sent` becomes `delivered`, only `sent` or
`delivered` becomes `bounced` or `failed` (a bounce after the delivery report is real
mail behaviour), and a late "delivered" after a bounce changes nothing. Every value is
computed from all events of the message and the row as it is when the UPDATE reaches it,
so applying twice, or two webhooks at once, gives the same result.

The send path records a delivery's provider id after the provider answered, and a webhook
may come first (Twilio's status callback often does): `apply_known_events` applies the
events stored before, right after the outcomes are recorded, and once more when that
transaction commits, as the webhook side does, so an event committed in between is not
missed whichever transaction commits last."""

from django.db import connection, transaction

# The UPDATE both entry points run; `{events}` selects the events considered, `{rows}`
# the deliveries. SET and WHERE read `d` (the row as the UPDATE finds it, re-read when a
# concurrent webhook changed it first), never a value computed before from it.
_APPLY = """
    UPDATE campaigns_delivery d SET
        status = CASE
            WHEN d.status NOT IN ('sent', 'delivered') THEN d.status
            WHEN ev.bounced IS NOT NULL THEN 'bounced'
            WHEN ev.failed IS NOT NULL THEN 'failed'
            WHEN ev.delivered_at IS NOT NULL THEN 'delivered'
            ELSE d.status END,
        error = CASE
            WHEN d.status NOT IN ('sent', 'delivered') THEN d.error
            WHEN ev.bounced IS NOT NULL
                THEN left(COALESCE(NULLIF(ev.bounced, ''), 'The provider reported a bounce.'),
                          2000)
            WHEN ev.failed IS NOT NULL
                THEN left(COALESCE(NULLIF(ev.failed, ''),
                                   'The provider reported the message failed.'), 2000)
            ELSE d.error END,
        delivered_at = CASE
            WHEN d.status IN ('sent', 'delivered') THEN COALESCE(d.delivered_at, ev.delivered_at)
            ELSE d.delivered_at END,
        opened_at = COALESCE(d.opened_at, ev.opened_at),
        clicked_at = COALESCE(d.clicked_at, ev.clicked_at),
        unsubscribed_at = COALESCE(d.unsubscribed_at, ev.unsubscribed_at)
    FROM (
        SELECT e.channel, e.provider_message_id AS pid,
               min(e.occurred_at) FILTER (WHERE e.kind = 'delivered') AS delivered_at,
               min(e.occurred_at) FILTER (WHERE e.kind = 'opened') AS opened_at,
               min(e.occurred_at) FILTER (WHERE e.kind = 'clicked') AS clicked_at,
               min(e.occurred_at) FILTER (
                   WHERE e.kind = 'complained' OR (e.kind = 'unsubscribed' AND e.channel <> 'sms')
               ) AS unsubscribed_at,
               (array_agg(e.reason ORDER BY e.occurred_at, e.id)
                   FILTER (WHERE e.kind IN ('bounced', 'rejected')))[1] AS bounced,
               -- Twilio's 21610: the message was refused, the number had opted out
               (array_agg(e.reason ORDER BY e.occurred_at, e.id) FILTER (
                   WHERE e.kind = 'failed' OR (e.kind = 'unsubscribed' AND e.channel = 'sms')
               ))[1] AS failed
        FROM channels_providerevent e
        WHERE e.workspace_id = %(workspace)s AND {events}
        GROUP BY e.channel, e.provider_message_id
    ) ev, campaigns_campaign c
    WHERE d.workspace_id = %(workspace)s AND d.provider_message_id = ev.pid
      AND d.provider_message_id <> '' AND {rows}
      AND c.id = d.campaign_id AND c.channel = ev.channel
      AND (
        (d.status IN ('sent', 'delivered') AND (ev.bounced IS NOT NULL OR ev.failed IS NOT NULL))
        OR (d.status = 'sent' AND ev.delivered_at IS NOT NULL)
        OR (d.status IN ('sent', 'delivered') AND d.delivered_at IS NULL
            AND ev.delivered_at IS NOT NULL)
        OR (d.opened_at IS NULL AND ev.opened_at IS NOT NULL)
        OR (d.clicked_at IS NULL AND ev.clicked_at IS NOT NULL)
        OR (d.unsubscribed_at IS NULL AND ev.unsubscribed_at IS NOT NULL)
      )
"""
_BY_MESSAGE_IDS = _APPLY.format(
    events="e.provider_message_id = ANY(%(pids)s)", rows="d.provider_message_id = ANY(%(pids)s)"
)
_BY_DELIVERIES = _APPLY.format(
    events="e.provider_message_id IN (SELECT provider_message_id FROM campaigns_delivery "
    "WHERE id = ANY(%(ids)s) AND provider_message_id <> '')",
    rows="d.id = ANY(%(ids)s)",
)


def _run(sql: str, params: dict) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def apply_events(workspace_id: int, provider_message_ids: list[str]) -> int:
    """Map the workspace's stored events of these provider message ids onto the
    deliveries sent with them (one UPDATE); again after commit (see the module's doc).
    The number of deliveries changed now."""
    pids = sorted({p for p in provider_message_ids if p})
    if not pids:
        return 0
    params = {"workspace": workspace_id, "pids": pids}
    changed = _run(_BY_MESSAGE_IDS, params)
    transaction.on_commit(lambda: _run(_BY_MESSAGE_IDS, params), robust=True)
    return changed


def apply_known_events(workspace_id: int, delivery_ids: list[int]) -> int:
    """Apply events that arrived before these deliveries' outcomes were recorded (the
    webhook raced the send): one UPDATE, and again after commit. The number changed now."""
    if not delivery_ids:
        return 0
    params = {"workspace": workspace_id, "ids": list(delivery_ids)}
    changed = _run(_BY_DELIVERIES, params)
    transaction.on_commit(lambda: _run(_BY_DELIVERIES, params), robust=True)
    return changed


def on_provider_events_recorded(sender, *, workspace_id, provider_message_ids, **kwargs):
    """Receiver of channels.signals.provider_events_recorded (connected in campaigns.apps)."""
    apply_events(workspace_id, provider_message_ids)
