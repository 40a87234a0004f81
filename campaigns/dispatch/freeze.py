"""Launch: a campaign's recipients frozen into the ledger in one INSERT ... SELECT, each
with its skip reason recorded rather than dropped (on Do Not Contact, no address or push
token on the channel, at a frequency cap, an address another recipient already has)."""

from datetime import UTC, datetime, time, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from campaigns.models import Campaign, Delivery, DeliveryStatus, QuietHours, SkipReason
from campaigns.variants import assignment_sql
from channels.selectors import segments_condition
from people.models import DoNotContact, Person, PushToken
from segments.models import Segment

# the column of a person that is their address on a channel (push: a token, looked up)
ADDRESS_COLUMN = {"email": "email", "sms": "phone"}
# the freeze's two sorts (by address for duplicates, then by person) stay in memory up to
# ~1.5M recipients (~140 MB each per million); beyond, they spill to disk, slower
FREEZE_WORK_MEM = "256MB"


class NoRecipients(ValueError):
    """A campaign with no audience, no segment, no people and not Everyone."""


def recipients(campaign: Campaign, *, now: datetime) -> QuerySet[Person]:
    """Who the campaign targets (before skips): in any include segment or its ad-hoc
    people, in no exclude segment; Everyone only when chosen."""
    workspace = campaign.workspace
    people = Person.objects.for_workspace(workspace)
    if campaign.everyone:
        chosen = Q()
    else:
        include = list(campaign.include.all())
        if campaign.people_segment_id:
            include.append(campaign.people_segment)
        if not include:
            raise NoRecipients("No recipients chosen: pick an audience, segments or people.")
        chosen = segments_condition(include, workspace=workspace, now=now)
    exclude = list(campaign.exclude.all())
    people = people.filter(chosen)
    if exclude:
        people = people.exclude(segments_condition(exclude, workspace=workspace, now=now))
    return people


def blocked(channel: str) -> Exists:
    """On Do Not Contact for the channel, matched on the person's own workspace. Push: any
    of the person's tokens is blocked (a token is an address like any other)."""
    dnc = DoNotContact.objects.filter(workspace=OuterRef("workspace_id"), channel=channel)
    if channel == "push":
        return Exists(
            PushToken.objects.filter(
                person=OuterRef("pk"), token__in=dnc.filter().values("address")
            )
        )
    return Exists(dnc.filter(address=OuterRef(ADDRESS_COLUMN[channel])))


def _address_sql(channel: str) -> str:
    """The person's address on `channel`, as SQL over `p` (a people_person row)."""
    if channel == "push":  # a delivery goes to each of the person's tokens at send time
        return (
            "COALESCE((SELECT min(t.token) FROM people_pushtoken t WHERE t.person_id = p.id), '')"
        )
    return f"p.{ADDRESS_COLUMN[channel]}"


# what counts toward a frequency cap: messages that went out (a queued or in-flight one of
# another campaign is not counted yet; the re-check at send sees it once it is sent)
CAP_COUNTED = ("sent", "delivered")


def capped_sql(campaign: Campaign, *, now: datetime, person: str,
               people: list[int] | None = None) -> tuple[str, list]:  # fmt: skip
    """SQL true for a person (the column `person`) who is at a frequency cap of the
    campaign's workspace for the campaign's channel: for each rule, `max` messages or more
    of the channel (any channel for "any") sent in the `period` hours before `now`, from
    the ledger (tests, transactional campaigns and this campaign not counted). One
    grouped scan of the window per rule, hashed: set-based. `people`: only these (the
    re-check at send). A transactional campaign is never capped: "false"."""
    rules = [
        r for r in (campaign.workspace.frequency_caps or [])
        if r["channel"] in ("any", campaign.channel)
    ]  # fmt: skip
    if campaign.transactional or not rules or campaign.channel not in ("email", "sms", "push"):
        return "false", []
    parts, params = [], []
    for rule in rules:
        channel = "" if rule["channel"] == "any" else "AND c.channel = %s"
        only = "AND d.person_id = ANY(%s)" if people is not None else ""
        parts.append(f"""
            SELECT d.person_id FROM campaigns_delivery d
            JOIN campaigns_campaign c ON c.id = d.campaign_id
            WHERE d.workspace_id = %s AND NOT d.is_test AND d.status = ANY(%s)
              AND d.sent_at > %s AND d.campaign_id <> %s
              AND NOT c.transactional {channel} {only}
            GROUP BY d.person_id HAVING count(*) >= %s""")  # noqa: S608 - fixed text
        params += [campaign.workspace_id, list(CAP_COUNTED),
                   now - timedelta(hours=rule["period"]), campaign.pk]  # fmt: skip
        if channel:
            params.append(campaign.channel)
        if people is not None:
            params.append(people)
        params.append(rule["max"])
    return f"({person} IN ({' UNION '.join(parts)}))", params


def zone_sql(person: str) -> str:
    """SQL of the person's time zone (alias `person`): theirs when Postgres knows it, else
    the workspace's (one %s parameter); a stored zone Postgres does not know never fails
    the statement (the known names are one hashed lookup)."""
    column = f"{person}.time_zone"
    known = "(SELECT name FROM pg_timezone_names)"
    return f"(CASE WHEN {column} <> '' AND {column} IN {known} THEN {column} ELSE %s END)"


def unknown_zones(campaign: Campaign) -> int:
    """Recipients frozen whose stored time zone Postgres does not know (the workspace's
    was used): counted for the launch's report when its timing reads zones."""
    if quiet_hours(campaign) is None and local_send_time(campaign) is None:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM campaigns_delivery d JOIN people_person p ON p.id = d.person_id "
            "WHERE d.campaign_id = %s AND NOT d.is_test AND p.time_zone <> '' "
            "AND p.time_zone NOT IN (SELECT name FROM pg_timezone_names)",
            [campaign.pk],
        )
        return cursor.fetchone()[0]


def quiet_hours(campaign: Campaign) -> tuple[time, time] | None:
    """The workspace's quiet hours when they hold for the campaign (not transactional)."""
    workspace = campaign.workspace
    if campaign.transactional or workspace.quiet_hours_start is None:
        return None
    if (
        workspace.quiet_hours_end is None
        or workspace.quiet_hours_start == workspace.quiet_hours_end
    ):
        return None
    return workspace.quiet_hours_start, workspace.quiet_hours_end


def _time_literal(value: time) -> str:
    return f"'{value:%H:%M:%S}'::time"


def quiet_inside_sql(local: str, window: tuple[time, time]) -> str:
    """SQL true when the local timestamp `local` is in the quiet window (start included,
    end excluded; a window with start > end wraps midnight)."""
    start, end = (_time_literal(t) for t in window)
    if window[0] < window[1]:
        return f"({local}::time >= {start} AND {local}::time < {end})"
    return f"({local}::time >= {start} OR {local}::time < {end})"


def quiet_end_sql(local: str, zone: str, window: tuple[time, time]) -> str:
    """SQL of the instant the quiet window holding `local` ends, in the zone `zone`."""
    end = _time_literal(window[1])
    if window[0] < window[1]:
        return f"timezone({zone}, {local}::date + {end})"
    return (f"timezone({zone}, CASE WHEN {local}::time < {end} THEN {local}::date + {end} "
            f"ELSE {local}::date + 1 + {end} END)")  # fmt: skip


# the zones furthest ahead of UTC (Kiribati, +14): a local send time reaches them first
EARLIEST_OFFSET = timedelta(hours=14)


def local_send_time(campaign: Campaign) -> datetime | None:
    """The wall-clock time each recipient is sent at (in_recipient_time_zone): send_at read
    in the workspace's time zone, naive."""
    if not (campaign.in_recipient_time_zone and campaign.send_at):
        return None
    return campaign.send_at.astimezone(campaign.workspace.tzinfo).replace(tzinfo=None)


def first_zone_moment(campaign: Campaign) -> datetime | None:
    """When the first zone reaches the local send time: the campaign's launch moment."""
    local = local_send_time(campaign)
    if local is None:
        return None
    return local.replace(tzinfo=UTC) - EARLIEST_OFFSET


def freeze(campaign: Campaign, *, now: datetime) -> tuple[int, int]:
    """Insert the campaign's deliveries (one statement); (recipients queued, skipped).
    Idempotent: a person already in the ledger is left as they are (the unique index on
    campaign and person holds whichever statement runs).

    Shaped by 1M recipients (benchmarks/campaign_freeze.py), where the ledger's index
    upkeep is the cost:
    - the rows go in in person order, so each index keyed by person is appended to at its
      right edge (in the duplicate check's address order, each row hit a random leaf);
    - a launch (the campaign row locked, nothing of it in the ledger yet) is a plain
      INSERT: ON CONFLICT's speculative insertion costs ~20% more per row. A re-run, or a
      clash after all, goes through ON CONFLICT DO NOTHING;
    - duplicates are one sort by the lower-cased address in the "C" collation (byte
      order: the same groups, without the locale's compare), kept in memory (work_mem
      raised for the statement); the address is read by the targeting query itself.

    Timing, in the same statement: each queued row's send time is now, or (in the
    recipient's time zone) the campaign's local send time; one inside the workspace's
    quiet hours there waits until they end (next_attempt_at) or is skipped `quiet_hours`,
    as the campaign says.

    A/B variants: each row's variant (a stable hash of the person), and whether it is
    held outside the test phase until the winner is chosen (campaigns.variants)."""
    people = recipients(campaign, now=now).annotate(blocked=blocked(campaign.channel))
    window = quiet_hours(campaign)
    local_send = local_send_time(campaign)
    timed = window is not None or local_send is not None
    columns = ["id", "workspace_id", "blocked"]
    if timed:
        columns.append("time_zone")
    if campaign.channel in ADDRESS_COLUMN:
        columns.append(ADDRESS_COLUMN[campaign.channel])
    inner_sql, params = people.order_by().values(*columns).query.sql_with_params()
    # `p` is the targeting query's row: its address column, or the push token looked up
    address = _address_sql(campaign.channel)
    defaults = _column_defaults()
    capped, capped_params = capped_sql(campaign, now=now, person="p.id")
    zone, zone_params = "NULL::text", []
    send_time = "NULL::timestamptz"  # due at once
    if timed:
        zone, zone_params = zone_sql("p"), [campaign.workspace.time_zone]
    if local_send is not None:
        send_time = f"timezone(y.zone, '{local_send.isoformat()}'::timestamp)"
    elif window is not None:
        send_time = f"'{now.isoformat()}'::timestamptz"
    # a row's next_attempt_at: its local send time, or none (due at once)
    base = "x.send_time" if local_send is not None else "NULL::timestamptz"
    quiet_skip, next_at = "false", base
    if window is not None:
        inside = quiet_inside_sql("timezone(x.zone, x.send_time)", window)
        if campaign.quiet_hours == QuietHours.SKIP:
            quiet_skip = inside
        else:
            end = quiet_end_sql("timezone(x.zone, x.send_time)", "x.zone", window)
            next_at = f"CASE WHEN {inside} THEN {end} ELSE {base} END"
    variant, held = assignment_sql(campaign, "x.id")

    def insert(conflict: str) -> str:
        return f"""
        WITH frozen AS (
            INSERT INTO campaigns_delivery
                (workspace_id, campaign_id, person_id, is_test, address, status, reason,
                 next_attempt_at, variant, ab_rest,
                 created_at{"".join(f", {column}" for column, _ in defaults)})
            SELECT r.workspace_id, %s, r.id, false, r.address,
                   CASE WHEN r.reason = '' THEN %s ELSE %s END, r.reason,
                   CASE WHEN r.reason = '' THEN r.next_at END, r.variant, r.ab_rest,
                   %s{", %s" * len(defaults)}
            FROM (
                SELECT x.id, x.workspace_id, x.address,
                       CASE WHEN x.address = '' THEN %s
                            WHEN x.blocked THEN %s
                            WHEN x.capped THEN %s
                            WHEN {quiet_skip} THEN %s
                            WHEN row_number() OVER (
                                PARTITION BY lower(x.address) COLLATE "C" ORDER BY x.id) > 1
                                THEN %s
                            ELSE '' END AS reason,
                       {next_at} AS next_at, {variant} AS variant, {held} AS ab_rest
                FROM (SELECT y.*, {send_time} AS send_time
                      FROM (SELECT p.id, p.workspace_id, p.blocked, {address} AS address,
                                   {capped} AS capped, {zone} AS zone
                            FROM ({inner_sql}) p) y) x
            ) r
            ORDER BY r.id
            {conflict}
            RETURNING status
        )
        SELECT count(*) FILTER (WHERE status = 'queued'),
               count(*) FILTER (WHERE status = 'skipped') FROM frozen
        """  # noqa: S608 - the compiled people query and a column name of ours

    args = [campaign.pk, DeliveryStatus.QUEUED, DeliveryStatus.SKIPPED, now,
            *(value for _, value in defaults),
            SkipReason.NO_ADDRESS, SkipReason.DNC, SkipReason.FREQUENCY_CAP,
            SkipReason.QUIET_HOURS, SkipReason.DUPLICATE_ADDRESS, *capped_params, *zone_params,
            *params]  # fmt: skip
    idempotent = insert("ON CONFLICT (campaign_id, person_id) WHERE NOT is_test AND "
                        "flow_run_id IS NULL DO NOTHING")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM campaigns_campaign WHERE id = %s FOR UPDATE", [campaign.pk])
        cursor.execute(_LEDGER_COUNTS, [campaign.pk])
        queued, skipped, rows, work_mem = cursor.fetchone()
        cursor.execute("SELECT set_config('work_mem', %s, true)", [FREEZE_WORK_MEM])
        if rows:  # a re-run: the rows there are passed by
            cursor.execute(idempotent, args)
            added = cursor.fetchone()
        else:
            try:
                with transaction.atomic():
                    cursor.execute(insert(""), args)
                    added = cursor.fetchone()
            except IntegrityError:  # a row of the campaign came in after all
                cursor.execute(idempotent, args)
                cursor.execute(_LEDGER_COUNTS, [campaign.pk])
                queued, skipped, _, _ = cursor.fetchone()
                added = (0, 0)
        cursor.execute("SELECT set_config('work_mem', %s, true)", [work_mem])
    return queued + added[0], skipped + added[1]


_SET_BY_FREEZE = {"id", "workspace_id", "campaign_id", "person_id", "is_test", "address", "status",
                  "reason", "next_attempt_at", "variant", "ab_rest", "created_at"}  # fmt: skip


def _column_defaults(set_here=_SET_BY_FREEZE) -> list[tuple[str, object]]:
    """The ledger's NOT NULL columns but `set_here` with the value the ORM would give them
    (the model's default): a column added to Delivery is filled by the freeze as by a
    save."""
    defaults = []
    for field in Delivery._meta.concrete_fields:
        if field.column in set_here or field.null or field.has_db_default():
            continue
        if not field.has_default():
            raise TypeError(f"Delivery.{field.name} needs a default for the freeze to fill")
        value = field.get_db_prep_save(field.get_default(), connection)
        defaults.append((connection.ops.quote_name(field.column), value))
    return defaults


# (queued, skipped, every row) of a campaign in the ledger, and the session's work_mem
_LEDGER_COUNTS = (
    "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = "
    "'skipped'), count(*), current_setting('work_mem') FROM campaigns_delivery "
    "WHERE campaign_id = %s AND NOT is_test"
)


def test_segment_people(segment: Segment, *, now: datetime) -> QuerySet[Person]:
    return Person.objects.for_workspace(segment.workspace_id).filter(
        segments_condition([segment], workspace=segment.workspace, now=now)
    )
