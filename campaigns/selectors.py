"""Reading campaigns: stats from the ledger (one GROUP BY), the live estimate of who a
draft would reach, the per-recipient log, a person's messages, sends over time, and the
definition relative to the chosen audience. Shared by the API and the pages."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from campaigns.dispatch.freeze import NoRecipients, blocked, recipients
from campaigns.models import (
    Campaign,
    CampaignLaunch,
    CampaignLink,
    Delivery,
    DeliveryStatus,
    SkipReason,
)
from segments.models import Segment

SKIP_KEYS = ("dnc", "no_address", "frequency_cap", "quiet_hours", "duplicate_address", "expired",
             "cancelled")  # fmt: skip


def campaigns_for(workspace, *, status: str = "", channel: str = "") -> QuerySet[Campaign]:
    """The workspace's campaigns (a flow's send steps' own are on the flow's page)."""
    campaigns = Campaign.objects.for_workspace(workspace).filter(flow__isnull=True)
    if status:
        campaigns = campaigns.filter(status=status)
    if channel:
        campaigns = campaigns.filter(channel=channel)
    return campaigns


def campaign_stats(campaign: Campaign) -> dict:
    """The contract's `stats` from the ledger, tests apart: `recipients` is every delivery
    not skipped; `sent` counts what the provider took (delivered is a part of it);
    `opened` and `clicked` count people's opens and clicks, machine ones apart
    (campaign_engagement)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT status, reason, count(*), count(opened_at), count(clicked_at),
                   count(unsubscribed_at)
            FROM campaigns_delivery WHERE campaign_id = %s AND NOT is_test
            GROUP BY status, reason
            """,
            [campaign.pk],
        )
        rows = cursor.fetchall()
    by_status: dict[str, int] = {}
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    opened = clicked = unsubscribed = 0
    for status, reason, n, n_opened, n_clicked, n_unsubscribed in rows:
        unsubscribed += n_unsubscribed
        by_status[status] = by_status.get(status, 0) + n
        opened += n_opened
        clicked += n_clicked
        if status == DeliveryStatus.SKIPPED:
            skipped[reason] = skipped.get(reason, 0) + n
    sent = by_status.get("sent", 0) + by_status.get("delivered", 0)
    recipients = sum(n for s, n in by_status.items() if s != DeliveryStatus.SKIPPED)
    return {
        "recipients": recipients,
        "queued": by_status.get("queued", 0) + by_status.get("sending", 0),
        "sent": sent,
        "delivered": by_status.get("delivered", 0),
        "failed": by_status.get("failed", 0),
        "bounced": by_status.get("bounced", 0),
        "unknown": by_status.get("unknown", 0),
        "opened": opened,
        "clicked": clicked,
        "unsubscribed": unsubscribed,
        "skipped": skipped,
    }


def _rate(part: int, whole: int) -> float | None:
    return round(part * 100 / whole, 1) if whole else None


def campaign_engagement(campaign: Campaign, stats: dict | None = None) -> dict:
    """What the page shows beside the contract's stats (campaigns.tracking): rates on
    human opens and clicks (per message sent; clicks also per opener), the machine ones
    apart (messages only a machine opened or clicked, and every machine hit), and the
    totals of hits. One aggregate over the ledger, tests apart."""
    stats = stats or campaign_stats(campaign)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE machine_opened_at IS NOT NULL AND opened_at IS NULL),
                   count(*) FILTER (WHERE machine_clicked_at IS NOT NULL AND clicked_at IS NULL),
                   COALESCE(sum(open_count), 0), COALESCE(sum(click_count), 0),
                   COALESCE(sum(machine_open_count), 0), COALESCE(sum(machine_click_count), 0)
            FROM campaigns_delivery
            WHERE workspace_id = %s AND campaign_id = %s AND NOT is_test
            """,
            [campaign.workspace_id, campaign.pk],
        )
        machine_only_opened, machine_only_clicked, opens, clicks, m_opens, m_clicks = (
            cursor.fetchone()
        )
    sent = stats["sent"]
    return {
        "tracking": campaign.tracking,
        "opened": stats["opened"],
        "clicked": stats["clicked"],
        "open_rate": _rate(stats["opened"], sent),
        "click_rate": _rate(stats["clicked"], sent),
        "click_to_open_rate": _rate(stats["clicked"], stats["opened"]),
        "delivered_rate": _rate(stats["delivered"], sent),
        "unsubscribe_rate": _rate(stats["unsubscribed"], sent),
        "bounce_rate": _rate(stats["bounced"], sent + stats["bounced"]),
        "machine_opened": machine_only_opened,
        "machine_clicked": machine_only_clicked,
        "opens": opens,
        "clicks": clicks,
        "machine_opens": m_opens,
        "machine_clicks": m_clicks,
    }


def top_links(campaign: Campaign, *, limit: int = 10) -> list[CampaignLink]:
    """The campaign's tracked links by human clicks, most first."""
    return list(
        CampaignLink.objects.for_workspace(campaign.workspace_id)
        .filter(campaign_id=campaign.pk)
        .order_by("-clicks", "-machine_clicks", "index")[:limit]
    )


def campaign_progress(campaign: Campaign) -> dict:
    """What the campaign page's bar shows: the stats plus the launch job's state."""
    stats = campaign_stats(campaign)
    launch = CampaignLaunch.objects.filter(campaign=campaign).order_by("-created_at").first()
    done = stats["sent"] + stats["failed"] + stats["bounced"] + stats["unknown"]
    total = stats["recipients"]
    return {
        "stats": stats,
        "launch": launch,
        "freezing": bool(launch and launch.status in ("queued", "running")),
        "done": done,
        "total": total,
        "percent": int(done * 100 / total) if total else (100 if launch else 0),
        "skipped_total": sum(stats["skipped"].values()),
    }


def campaign_estimate(campaign: Campaign, *, now: datetime | None = None) -> dict:
    """Who a launch now would reach: {"recipients", "skipped": {reason: n}} from the same
    targeting and skip rules as the freeze, in one query. NoRecipients when nothing is
    chosen. Quiet hours: a campaign that skips them counts the people whose send time
    (its scheduled time, in each recipient's zone when chosen, else now) falls inside
    them; one that waits sends them all, later."""
    now = now or timezone.now()
    if campaign.channel == "banner":  # shown, not sent: whoever it targets
        skipped = dict.fromkeys(SKIP_KEYS, 0)
        skipped.pop("cancelled")
        return {"recipients": recipients(campaign, now=now).count(), "skipped": skipped}
    from campaigns.dispatch.freeze import (
        _address_sql,
        capped_sql,
        local_send_time,
        quiet_hours,
        quiet_inside_sql,
        zone_sql,
    )
    from campaigns.models import QuietHours

    people = recipients(campaign, now=now).annotate(blocked=blocked(campaign.channel))
    inner_sql, params = (
        people.order_by().values("id", "workspace_id", "blocked").query.sql_with_params()
    )
    # the freeze's reasons in the freeze's order; the frequency caps as counted now
    capped, capped_params = capped_sql(campaign, now=now, person="q.id")
    window = quiet_hours(campaign)
    zone, zone_params, quiet = "NULL::text", [], "false"
    if window is not None and campaign.quiet_hours == QuietHours.SKIP:
        zone, zone_params = zone_sql("p"), [campaign.workspace.time_zone]
        local = local_send_time(campaign)
        if local is not None:
            send_time = f"timezone(x.zone, '{local.isoformat()}'::timestamp)"
        else:
            send_time = f"'{max(campaign.send_at or now, now).isoformat()}'::timestamptz"
        quiet = quiet_inside_sql(f"timezone(x.zone, {send_time})", window)
    sql = f"""
        SELECT count(*) FILTER (WHERE reason = ''),
               count(*) FILTER (WHERE reason = 'no_address'),
               count(*) FILTER (WHERE reason = 'dnc'),
               count(*) FILTER (WHERE reason = 'frequency_cap'),
               count(*) FILTER (WHERE reason = 'quiet_hours'),
               count(*) FILTER (WHERE reason = 'duplicate_address')
        FROM (
            SELECT CASE WHEN x.address = '' THEN 'no_address'
                        WHEN x.blocked THEN 'dnc'
                        WHEN x.capped THEN 'frequency_cap'
                        WHEN {quiet} THEN 'quiet_hours'
                        WHEN row_number() OVER (PARTITION BY lower(x.address) ORDER BY x.id) > 1
                            THEN 'duplicate_address'
                        ELSE '' END AS reason
            FROM (
                SELECT q.id, q.blocked, {_address_sql(campaign.channel)} AS address,
                       {capped} AS capped, {zone} AS zone
                FROM ({inner_sql}) q JOIN people_person p ON p.id = q.id
            ) x
        ) r
    """  # noqa: S608 - the compiled people query, column names and times of ours
    with connection.cursor() as cursor:
        cursor.execute(sql, [*capped_params, *zone_params, *params])
        ok, no_address, dnc, capped_count, quiet_count, duplicate = cursor.fetchone()
    skipped = dict.fromkeys(SKIP_KEYS, 0)
    skipped.pop("cancelled")
    skipped.update(dnc=dnc, no_address=no_address, frequency_cap=capped_count,
                   quiet_hours=quiet_count, duplicate_address=duplicate)  # fmt: skip
    return {"recipients": ok, "skipped": skipped}


def safe_estimate(campaign: Campaign) -> dict | None:
    try:
        return campaign_estimate(campaign)
    except NoRecipients:
        return None


def deliveries_for(campaign: Campaign, *, status: str = "", reason: str = "", search: str = "",
                   tests: bool = False) -> QuerySet[Delivery]:  # fmt: skip
    """The per-recipient log, newest id last; `search` matches the external id or the
    address (case-insensitive prefix)."""
    rows = Delivery.objects.filter(campaign=campaign, is_test=tests).select_related("person")
    if status:
        rows = rows.filter(status=status)
    if reason:
        rows = rows.filter(reason=reason)
    if search := search.strip():
        rows = rows.filter(
            Q(address__istartswith=search) | Q(person__external_id__istartswith=search)
            | Q(person__email__istartswith=search)
        )  # fmt: skip
    return rows.order_by("id")


def person_messages(person) -> QuerySet[Delivery]:
    """What the person was sent (tests included, marked), newest first."""
    return (
        Delivery.objects.filter(person=person, workspace_id=person.workspace_id)
        .select_related("campaign")
        .order_by("-created_at", "-id")
    )


def sends_over_time(campaign: Campaign, *, buckets: int = 60) -> dict:
    """Sent, failed and delivered per time bucket since the launch (the chart): bucket
    width chosen so the whole send fits in about `buckets` points."""
    start = campaign.launched_at
    if not start:
        return {"labels": [], "sent": [], "failed": [], "delivered": [], "unit": "minute"}
    end = campaign.finished_at or timezone.now()
    span = max((end - start).total_seconds(), 60)
    width = max(int(span / buckets), 1)
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT floor(extract(epoch FROM (coalesce(sent_at, created_at) - %s)) / %s)::int
                       AS b,
                   count(*) FILTER (WHERE status IN ('sent', 'delivered')),
                   count(*) FILTER (WHERE status IN ('failed', 'bounced')),
                   count(*) FILTER (WHERE status = 'delivered')
            FROM campaigns_delivery
            WHERE campaign_id = %s AND NOT is_test AND status NOT IN ('queued', 'sending',
                  'skipped')
            GROUP BY b ORDER BY b
            """,
            [start, width, campaign.pk],
        )
        rows = {b: (s, f, d) for b, s, f, d in cursor.fetchall()}
    last = max(rows) if rows else 0
    labels, sent, failed, delivered = [], [], [], []
    for b in range(0, max(last, 0) + 1):
        at = start + timedelta(seconds=b * width)
        labels.append(at.isoformat())
        s, f, d = rows.get(b, (0, 0, 0))
        sent.append(s)
        failed.append(f)
        delivered.append(d)
    return {"labels": labels, "sent": sent, "failed": failed, "delivered": delivered,
            "bucket_seconds": width}  # fmt: skip


def variant_results(campaign: Campaign, *, test_only: bool = False) -> dict[str, dict]:
    """Per variant key, from the ledger in one GROUP BY (tests apart): recipients (not
    skipped), sent (taken by the provider), delivered, bounced, opened and clicked (human),
    unsubscribed. `test_only`: the test phase's rows alone (the rest sent the winner
    apart), as the winner is chosen on them."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT variant,
                   count(*) FILTER (WHERE status <> 'skipped'),
                   count(*) FILTER (WHERE status IN ('sent', 'delivered')),
                   count(*) FILTER (WHERE status = 'delivered'),
                   count(*) FILTER (WHERE status = 'bounced'),
                   count(opened_at), count(clicked_at), count(unsubscribed_at)
            FROM campaigns_delivery
            WHERE campaign_id = %s AND NOT is_test AND variant <> '' AND (NOT %s OR NOT ab_rest)
            GROUP BY variant
            """,
            [campaign.pk, test_only],
        )
        rows = cursor.fetchall()
    names = ("recipients", "sent", "delivered", "bounced", "opened", "clicked", "unsubscribed")
    return {key: dict(zip(names, counts, strict=True)) for key, *counts in rows}


def _rest_counts(campaign: Campaign) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE status <> 'skipped'),
                   count(*) FILTER (WHERE status IN ('sent', 'delivered')),
                   count(*) FILTER (WHERE status IN ('queued', 'sending')),
                   count(opened_at), count(clicked_at)
            FROM campaigns_delivery WHERE campaign_id = %s AND NOT is_test AND ab_rest
            """,
            [campaign.pk],
        )
        recipients, sent, waiting, opened, clicked = cursor.fetchone()
    return {"recipients": recipients, "sent": sent, "waiting": waiting, "opened": opened,
            "clicked": clicked, "open_rate": _rate(opened, sent),
            "click_rate": _rate(clicked, sent)}  # fmt: skip


def variant_stats(campaign: Campaign) -> dict | None:
    """The A/B test as the campaign page and the API show it: per variant its share, its
    counts and rates on the test phase's rows (all of its rows without a test phase),
    and its open and click rates against A's (variants.compare: the difference in points,
    the p-value, a note); the held or winner-sent rest apart. None without variants."""
    from campaigns import variants as ab

    if not campaign.variants:
        return None
    results = variant_results(campaign, test_only=True)
    empty = dict.fromkeys(("recipients", "sent", "delivered", "bounced", "opened", "clicked",
                           "unsubscribed"), 0)  # fmt: skip
    rows, control = [], None
    for variant in campaign.variants:
        key = variant["key"]
        counts = results.get(key, empty)
        sent = counts["sent"]
        row = {
            "key": key, "name": variant.get("name", ""), "percent": variant["percent"],
            "label": ab.label(campaign, key), **counts,
            "open_rate": _rate(counts["opened"], sent),
            "click_rate": _rate(counts["clicked"], sent),
            "unsubscribe_rate": _rate(counts["unsubscribed"], sent),
            "bounce_rate": _rate(counts["bounced"], sent + counts["bounced"]),
            "winner": key == campaign.ab_winner, "versus": None,
        }  # fmt: skip
        if control is None:
            control = counts
        else:
            row["versus"] = {
                what: ab.compare((control[field], control["sent"]), (counts[field], sent),
                                 what=what)
                for what, field in (("open", "opened"), ("click", "clicked"))
            }  # fmt: skip
        rows.append(row)
    test = bool(campaign.ab_test_percent)
    return {
        "rows": rows, "test_phase": test, "test_percent": campaign.ab_test_percent,
        "rest_percent": 100 - campaign.ab_test_percent,
        "metric": campaign.ab_metric, "decide_at": campaign.ab_decide_at,
        "winner": campaign.ab_winner, "decided_at": campaign.ab_decided_at,
        "decision": campaign.ab_decision or {}, "rest": _rest_counts(campaign) if test else None,
    }  # fmt: skip


def engagement_over_time(campaign: Campaign, *, buckets: int = 48,
                         now: datetime | None = None) -> dict | None:  # fmt: skip
    """Human open and click rates since the launch, cumulative per time bucket (the
    chart): one line each per variant (the test phase's rows; the rest sent the winner as
    its own line), or for the whole campaign. Each rate is of the line's messages sent in
    all, so a line ends at the rate the page shows. None before anything was sent."""
    start = campaign.launched_at
    if not start:
        return None
    end = now or timezone.now()
    span = max((end - start).total_seconds(), 60)
    width = max(int(span / buckets), 1)
    line = ("CASE WHEN ab_rest THEN '~rest' ELSE variant END" if campaign.variants
            else "''")  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT g, kind, b, count(*) FROM (
                SELECT {line} AS g, 'open' AS kind,
                       floor(extract(epoch FROM (opened_at - %s)) / %s)::int AS b
                FROM campaigns_delivery
                WHERE campaign_id = %s AND NOT is_test AND opened_at IS NOT NULL
                UNION ALL
                SELECT {line}, 'click', floor(extract(epoch FROM (clicked_at - %s)) / %s)::int
                FROM campaigns_delivery
                WHERE campaign_id = %s AND NOT is_test AND clicked_at IS NOT NULL
            ) e GROUP BY g, kind, b
            """,  # noqa: S608 - fixed SQL of ours
            [start, width, campaign.pk, start, width, campaign.pk],
        )
        hits = cursor.fetchall()
        cursor.execute(
            f"SELECT {line}, count(*) FROM campaigns_delivery WHERE campaign_id = %s "  # noqa: S608
            "AND NOT is_test AND status IN ('sent', 'delivered') GROUP BY 1",
            [campaign.pk],
        )
        sent = dict(cursor.fetchall())
    if not any(sent.values()):
        return None
    last = max([b for *_, b, _ in hits if b is not None] or [0])
    last = max(0, min(last, buckets))
    per: dict[tuple[str, str], list[int]] = {}
    for group, kind, b, n in hits:
        series = per.setdefault((group, kind), [0] * (last + 1))
        series[max(0, min(b, last))] += n
    if campaign.variants:
        groups = [(v["key"], f"Variant {v['key']}") for v in campaign.variants]
        if campaign.ab_test_percent and sent.get("~rest"):  # the rest, once sent the winner
            groups.append(("~rest", f"Rest ({campaign.ab_winner})"))
    else:
        groups = [("", "")]
    series = []
    for group, name in groups:
        whole = sent.get(group, 0)
        for kind, word in (("open", "opened"), ("click", "clicked")):
            counts = per.get((group, kind), [0] * (last + 1))
            total, rates = 0, []
            for n in counts:
                total += n
                rates.append(round(total * 100 / whole, 2) if whole else 0)
            series.append({"label": f"{name}: {word}" if name else word.capitalize(),
                           "group": group, "kind": kind, "data": rates})  # fmt: skip
    labels = [(start + timedelta(seconds=b * width)).isoformat() for b in range(last + 1)]
    return {"labels": labels, "bucket_seconds": width, "series": series}


@dataclass
class Definition:
    """A campaign's targeting relative to its audience: the segments it added to or
    removed from the audience's include and exclude lists."""

    audience: object
    include: list[Segment]
    exclude: list[Segment]
    include_added: list[Segment]
    include_removed: list[Segment]
    exclude_added: list[Segment]
    exclude_removed: list[Segment]
    everyone: bool
    people_segment: Segment | None

    @property
    def differs(self) -> bool:
        return bool(self.include_added or self.include_removed or self.exclude_added
                    or self.exclude_removed)  # fmt: skip


def campaign_definition(campaign: Campaign) -> Definition:
    include = list(campaign.include.all())
    exclude = list(campaign.exclude.all())
    audience = campaign.audience
    a_include, a_exclude = [], []
    if audience is not None:
        a_include = [e.segment for e in audience.include.select_related("segment")]
        a_exclude = [e.segment for e in audience.exclude.select_related("segment")]

    def minus(a, b):
        ids = {s.pk for s in b}
        return [s for s in a if s.pk not in ids]

    return Definition(
        audience=audience, include=include, exclude=exclude,
        include_added=minus(include, a_include) if audience else [],
        include_removed=minus(a_include, include), exclude_added=minus(exclude, a_exclude)
        if audience else [], exclude_removed=minus(a_exclude, exclude),
        everyone=campaign.everyone, people_segment=campaign.people_segment,
    )  # fmt: skip


def test_segments(workspace) -> QuerySet[Segment]:
    """Segments for a test send: internal ones first."""
    return Segment.objects.for_workspace(workspace).order_by("-internal", "name")


SKIP_LABELS = dict(SkipReason.choices)


def banner_stats(campaign: Campaign, *, now: datetime | None = None) -> dict:
    """A banner's impressions, unique viewers, clicks, CTR and dismissals (the events
    flush's counts), per hour since it went live, and the share of its placement's
    impressions it got over the same hours against its weight's share among the banners
    live there."""
    from campaigns.models import BannerDismissal, BannerStat, BannerViewer, CampaignStatus

    stats = BannerStat.objects.filter(campaign=campaign).order_by("hour")
    hours = list(stats.values_list("hour", "impressions", "clicks", "dismissals"))
    impressions = sum(h[1] for h in hours)
    clicks = sum(h[2] for h in hours)
    viewers = BannerViewer.objects.filter(campaign=campaign).count()
    dismissed = BannerDismissal.objects.filter(campaign=campaign).count()
    placement = (campaign.content or {}).get("placement", "")
    peers = list(
        Campaign.objects.for_workspace(campaign.workspace_id)
        .filter(channel="banner", content__placement=placement)
        .filter(Q(status=CampaignStatus.LIVE) | Q(pk=campaign.pk))
        .order_by("-id")
    )
    share = []
    if hours:
        window = (hours[0][0], hours[-1][0])
        counts = dict(
            BannerStat.objects.filter(campaign__in=peers, hour__range=window)
            .values("campaign").annotate(n=Sum("impressions")).values_list("campaign", "n")
        )  # fmt: skip
        total_shown = sum(counts.values()) or 1
        total_weight = sum(int((p.content or {}).get("priority") or 50) for p in peers) or 1
        for peer in peers:
            weight = int((peer.content or {}).get("priority") or 50)
            share.append({"campaign": peer, "weight": weight,
                          "expected": round(weight * 100 / total_weight, 1),
                          "shown": round(counts.get(peer.pk, 0) * 100 / total_shown, 1),
                          "is_this": peer.pk == campaign.pk})  # fmt: skip
    chart = {
        "labels": [h[0].isoformat() for h in hours], "bucket_seconds": 3600, "unit": "count",
        "series": [{"label": "Impressions", "group": "i", "kind": "open",
                    "data": [h[1] for h in hours]},
                   {"label": "Clicks", "group": "c", "kind": "open",
                    "data": [h[2] for h in hours]}],
    } if hours else None  # fmt: skip
    return {"impressions": impressions, "clicks": clicks, "viewers": viewers,
            "dismissals": dismissed, "ctr": _rate(clicks, impressions), "share": share,
            "chart": chart, "placement": placement}  # fmt: skip


def person_flows(person, *, limit: int = 10):
    """The flows the person is in or went through, newest run first, with each step's time
    and outcome (the profile's card)."""
    from campaigns.models import FlowRun

    return list(
        FlowRun.objects.filter(person=person, workspace_id=person.workspace_id)
        .select_related("flow", "version").prefetch_related("log")
        .order_by("-entered_at", "-id")[:limit]
    )  # fmt: skip
