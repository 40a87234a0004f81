"""Launch: a campaign's recipients frozen into the ledger in one INSERT ... SELECT, each
with its skip reason recorded rather than dropped (on Do Not Contact, no address or push
token on the channel, an address another recipient already has)."""

from datetime import datetime

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from campaigns.models import Campaign, DeliveryStatus, SkipReason
from channels.selectors import segments_condition
from people.models import DoNotContact, Person, PushToken
from segments.models import Segment

# the column of a person that is their address on a channel (push: a token, looked up)
ADDRESS_COLUMN = {"email": "email", "sms": "phone"}


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
    if channel == "push":  # a delivery goes to each of the person's tokens at send time
        return (
            "COALESCE((SELECT min(t.token) FROM people_pushtoken t WHERE t.person_id = p.id), '')"
        )
    return f"p.{ADDRESS_COLUMN[channel]}"


def freeze(campaign: Campaign, *, now: datetime) -> tuple[int, int]:
    """Insert the campaign's deliveries (one statement); (recipients queued, skipped).
    Idempotent: a person already in the ledger is left as they are."""
    people = recipients(campaign, now=now).annotate(blocked=blocked(campaign.channel))
    inner_sql, params = (
        people.order_by().values("id", "workspace_id", "blocked").query.sql_with_params()
    )
    address = _address_sql(campaign.channel)
    sql = f"""
        INSERT INTO campaigns_delivery
            (workspace_id, campaign_id, person_id, is_test, address, status, reason, error,
             variant, attempts, provider_message_id, created_at)
        SELECT r.workspace_id, %s, r.id, false, r.address,
               CASE WHEN r.reason = '' THEN %s ELSE %s END, r.reason, '', '', 0, '', %s
        FROM (
            SELECT x.id, x.workspace_id, x.address,
                   CASE WHEN x.address = '' THEN %s
                        WHEN x.blocked THEN %s
                        WHEN row_number() OVER (PARTITION BY lower(x.address) ORDER BY x.id) > 1
                            THEN %s
                        ELSE '' END AS reason
            FROM (
                SELECT q.id, q.workspace_id, q.blocked, {address} AS address
                FROM ({inner_sql}) q JOIN people_person p ON p.id = q.id
            ) x
        ) r
        ON CONFLICT (campaign_id, person_id) WHERE NOT is_test DO NOTHING
    """  # noqa: S608 - the compiled people query and a column name of ours
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            [campaign.pk, DeliveryStatus.QUEUED, DeliveryStatus.SKIPPED, now,
             SkipReason.NO_ADDRESS, SkipReason.DNC, SkipReason.DUPLICATE_ADDRESS, *params],
        )  # fmt: skip
        cursor.execute(
            "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = "
            "'skipped') FROM campaigns_delivery WHERE campaign_id = %s AND NOT is_test",
            [campaign.pk],
        )
        queued, skipped = cursor.fetchone()
    return queued, skipped


def test_segment_people(segment: Segment, *, now: datetime) -> QuerySet[Person]:
    return Person.objects.for_workspace(segment.workspace_id).filter(
        segments_condition([segment], workspace=segment.workspace, now=now)
    )
