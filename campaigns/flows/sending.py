"""A flow's send steps go through the campaign ledger: at publish each send step gets a
campaign of its own (its channel and content, copied from a template campaign when the
step names one), marked as the flow's, always `sending`; the engine queues the step's
runs into that campaign's ledger keyed by flow run (Delivery.flow_run, unique per
campaign and run), with the same skip reasons as a launch (no address, Do Not Contact,
a frequency cap, another run's duplicate address being irrelevant here), and the
dispatcher sends them as any campaign's: claim, re-check Do Not Contact at send, one
message per run and step even when workers die."""

from django.db import connection

from campaigns.dispatch.freeze import ADDRESS_COLUMN, _address_sql, blocked, capped_sql
from campaigns.models import Campaign, CampaignStatus, DeliveryStatus, FlowVersion, SkipReason


def step_campaigns(flow, version: FlowVersion, steps: list[dict], *, actor) -> list[dict]:
    """The steps with each send step's campaign made (`campaign` set in the step)."""
    out = []
    for step in steps:
        if step["type"] == "send":
            campaign = Campaign.objects.create(
                workspace_id=flow.workspace_id,
                name=f"{flow.name} · {step['id']} (v{version.number})",
                channel=step["channel"], content=step["content"], status=CampaignStatus.SENDING,
                flow=flow, flow_step=step["id"], created_by=actor.user,
            )  # fmt: skip
            step = {**step, "campaign": campaign.pk}
        out.append(step)
    return out


def queue(version: FlowVersion, step: dict, run_ids: list[int], *, now) -> dict[str, int]:
    """The runs' messages into the step's campaign's ledger, set-based: {"queued",
    "skipped"}; the dispatcher is started after commit."""
    campaign = Campaign.objects.unscoped().select_related("workspace").get(pk=step["campaign"])
    from campaigns.dispatch.freeze import _column_defaults
    from people.models import Person

    people = Person.objects.unscoped().filter(workspace_id=campaign.workspace_id).annotate(
        blocked=blocked(campaign.channel))  # fmt: skip
    columns = ["id", "blocked", *([ADDRESS_COLUMN[campaign.channel]]
                                  if campaign.channel in ADDRESS_COLUMN else [])]  # fmt: skip
    inner_sql, params = people.values(*columns).query.sql_with_params()
    capped, capped_params = capped_sql(campaign, now=now, person="p.id")
    defaults = _column_defaults(
        {"id", "workspace_id", "campaign_id", "person_id", "is_test", "address", "status",
         "reason", "created_at"})  # fmt: skip
    sql = f"""
        WITH queued AS (
            INSERT INTO campaigns_delivery (workspace_id, campaign_id, person_id, is_test,
                address, status, reason, created_at, flow_run_id
                {"".join(f", {c}" for c, _ in defaults)})
            SELECT %s, %s, x.id, false, x.address,
                   CASE WHEN x.reason = '' THEN %s ELSE %s END, x.reason, %s, x.run_id
                   {", %s" * len(defaults)}
            FROM (
                SELECT r.id AS run_id, p.id, {_address_sql(campaign.channel)} AS address,
                       CASE WHEN {_address_sql(campaign.channel)} = '' THEN %s
                            WHEN p.blocked THEN %s
                            WHEN {capped} THEN %s ELSE '' END AS reason
                FROM campaigns_flowrun r JOIN ({inner_sql}) p ON p.id = r.person_id
                WHERE r.id = ANY(%s)
            ) x
            ON CONFLICT (campaign_id, flow_run_id) WHERE flow_run_id IS NOT NULL DO NOTHING
            RETURNING status
        )
        SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status =
               'skipped') FROM queued
    """  # noqa: S608 - compiled querysets and column names of ours
    args = [campaign.workspace_id, campaign.pk, DeliveryStatus.QUEUED, DeliveryStatus.SKIPPED,
            now, *(v for _, v in defaults), SkipReason.NO_ADDRESS, SkipReason.DNC,
            *capped_params, SkipReason.FREQUENCY_CAP, *params, run_ids]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, args)
        queued, skipped = cursor.fetchone()
    if queued:
        from campaigns.services import _enqueue_dispatch

        _enqueue_dispatch(campaign)
    return {"queued": queued, "skipped": skipped}
