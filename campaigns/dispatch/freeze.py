"""Launch: a campaign's recipients frozen into the ledger in one INSERT ... SELECT, each
with its skip reason recorded rather than dropped (on Do Not Contact, no address or push
token on the channel, an address another recipient already has)."""

from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet

from campaigns.models import Campaign, Delivery, DeliveryStatus, SkipReason
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
      raised for the statement); the address is read by the targeting query itself."""
    people = recipients(campaign, now=now).annotate(blocked=blocked(campaign.channel))
    columns = ["id", "workspace_id", "blocked"]
    if campaign.channel in ADDRESS_COLUMN:
        columns.append(ADDRESS_COLUMN[campaign.channel])
    inner_sql, params = people.order_by().values(*columns).query.sql_with_params()
    # `p` is the targeting query's row: its address column, or the push token looked up
    address = _address_sql(campaign.channel)
    defaults = _column_defaults()

    def insert(conflict: str) -> str:
        return f"""
        WITH frozen AS (
            INSERT INTO campaigns_delivery
                (workspace_id, campaign_id, person_id, is_test, address, status, reason,
                 created_at{"".join(f", {column}" for column, _ in defaults)})
            SELECT r.workspace_id, %s, r.id, false, r.address,
                   CASE WHEN r.reason = '' THEN %s ELSE %s END, r.reason,
                   %s{", %s" * len(defaults)}
            FROM (
                SELECT x.id, x.workspace_id, x.address,
                       CASE WHEN x.address = '' THEN %s
                            WHEN x.blocked THEN %s
                            WHEN row_number() OVER (
                                PARTITION BY lower(x.address) COLLATE "C" ORDER BY x.id) > 1
                                THEN %s
                            ELSE '' END AS reason
                FROM (SELECT p.id, p.workspace_id, p.blocked, {address} AS address
                      FROM ({inner_sql}) p) x
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
            SkipReason.NO_ADDRESS, SkipReason.DNC, SkipReason.DUPLICATE_ADDRESS,
            *params]  # fmt: skip
    idempotent = insert("ON CONFLICT (campaign_id, person_id) WHERE NOT is_test DO NOTHING")
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
                  "reason", "created_at"}  # fmt: skip


def _column_defaults() -> list[tuple[str, object]]:
    """The ledger's other NOT NULL columns with the value the ORM would give them (the
    model's default): a column added to Delivery is filled by the freeze as by a save."""
    defaults = []
    for field in Delivery._meta.concrete_fields:
        if field.column in _SET_BY_FREEZE or field.null or field.has_db_default():
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
