"""Campaigns and the send ledger: a campaign says what goes to whom on which channel; its
Delivery rows are the ledger, one per campaign and person (tests apart), frozen at launch
with their skip reasons and moved through their life by the dispatcher. Every send path
goes through this ledger and its one suppression check (campaigns.dispatch)."""

from django.conf import settings
from django.db import models

from accounts.jobs import Job
from accounts.models import Workspace, WorkspaceOwned
from channels.models import ChannelAudience
from people.models import Person
from segments.models import Segment


class CampaignChannel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"
    BANNER = "banner", "In-app banner"


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    SCHEDULED = "scheduled", "Scheduled"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    LIVE = "live", "Live"  # a banner being served
    ENDED = "ended", "Ended"  # a banner taken down
    PAUSED = "paused", "Paused"
    CANCELLED = "cancelled", "Cancelled"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "Failed"


class WinnerMetric(models.TextChoices):
    OPEN = "open", "Open rate"
    CLICK = "click", "Click rate"


class QuietHours(models.TextChoices):
    WAIT = "wait", "Wait until the quiet hours end"
    SKIP = "skip", "Skip them"


EDITABLE = (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED)
FINISHED = (CampaignStatus.SENT, CampaignStatus.CANCELLED, CampaignStatus.EXPIRED,
            CampaignStatus.FAILED, CampaignStatus.ENDED)  # fmt: skip


class Campaign(WorkspaceOwned):
    name = models.CharField(max_length=200)
    channel = models.CharField(max_length=8, choices=CampaignChannel.choices)
    status = models.CharField(
        max_length=12, choices=CampaignStatus.choices, default=CampaignStatus.DRAFT
    )
    status_reason = models.TextField(blank=True, default="")  # why failed / expired
    # the channel audience chosen (its lists copied into include / exclude); protected: an
    # audience a campaign uses cannot be deleted (channels.list_services names them)
    audience = models.ForeignKey(
        ChannelAudience, null=True, blank=True, on_delete=models.PROTECT, related_name="campaigns"
    )
    include = models.ManyToManyField(Segment, related_name="included_by_campaigns", blank=True)
    exclude = models.ManyToManyField(Segment, related_name="excluded_by_campaigns", blank=True)
    # ad-hoc recipients (a People-page selection sent as a broadcast), as a static segment
    people_segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    everyone = models.BooleanField(default=False)  # an explicit choice, never a default
    content = models.JSONField(default=dict, blank=True)
    send_at = models.DateTimeField(null=True, blank=True)
    in_recipient_time_zone = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    test_segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tracking = models.BooleanField(default=True)
    # a receipt, a password reset: never held by the workspace's frequency caps, and not
    # counted toward them either (campaigns.dispatch.caps)
    transactional = models.BooleanField(default=False)
    # a message due in the recipient's quiet hours (Workspace.quiet_hours_*) waits until
    # they end, or is skipped `quiet_hours`
    quiet_hours = models.CharField(
        max_length=4, choices=QuietHours.choices, default=QuietHours.WAIT
    )
    # A/B variants (campaigns.variants): [{"key": "A".., "name", "percent", "content": the
    # fields it changes}], 2-5 of them or none; each person's variant is a stable hash
    variants = models.JSONField(default=list, blank=True)
    # the test phase: this share of the recipients is split among the variants; the rest
    # wait (Delivery.ab_rest) until the winner by `ab_metric` is chosen, `ab_decide_hours`
    # after the launch, and are sent it. 0: everyone is split, no winner
    ab_test_percent = models.PositiveSmallIntegerField(default=0)
    ab_metric = models.CharField(
        max_length=5, choices=WinnerMetric.choices, default=WinnerMetric.OPEN
    )
    ab_decide_hours = models.PositiveSmallIntegerField(default=4)
    ab_decide_at = models.DateTimeField(null=True, blank=True)  # set at launch
    ab_winner = models.CharField(max_length=8, blank=True, default="")
    ab_decided_at = models.DateTimeField(null=True, blank=True)
    # what the winner was chosen on: {"by", "results": {key: {sent, opened, clicked}}, "note"}
    ab_decision = models.JSONField(default=dict, blank=True)
    # a flow's send step: its messages go out through this campaign (never listed with
    # the campaigns; its deliveries are keyed by flow run, campaigns.flows.sending)
    flow = models.ForeignKey("Flow", null=True, blank=True, on_delete=models.CASCADE,
                             related_name="step_campaigns")  # fmt: skip
    flow_step = models.CharField(max_length=40, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    launched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["workspace", "-created_at"], name="campaign_ws_recent"),
            models.Index(fields=["status", "send_at"], name="campaign_due"),
            models.Index(
                fields=["ab_decide_at"], name="campaign_ab_due",
                condition=models.Q(ab_winner="", ab_decide_at__isnull=False),
            ),
        ]  # fmt: skip
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"campaign “{self.name}”"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    BOUNCED = "bounced", "Bounced"
    SKIPPED = "skipped", "Skipped"
    UNKNOWN = "unknown", "Unknown (handed to the provider, no answer recorded)"


class SkipReason(models.TextChoices):
    DNC = "dnc", "On Do Not Contact"
    NO_ADDRESS = "no_address", "No address on the channel"
    DUPLICATE_ADDRESS = "duplicate_address", "Another recipient has the same address"
    EXPIRED = "expired", "The campaign expired first"
    FREQUENCY_CAP = "frequency_cap", "Frequency cap"
    QUIET_HOURS = "quiet_hours", "Quiet hours"
    CANCELLED = "cancelled", "The campaign was cancelled"


class Delivery(WorkspaceOwned):
    """One person's message of a campaign: the ledger row. Unique per campaign and person
    (a test send is its own row, marked, outside the stats), so nobody gets a campaign
    twice; `handed_at` is set just before the message goes to the provider, so a worker
    that dies leaves either "never handed" (sent again) or "handed, no answer" (`unknown`,
    never blindly re-sent)."""

    # No single-column indexes nor database FK checks on the ledger's keys: the composite
    # indexes below start with them, and a 1M-recipient freeze spent 2.9 s checking the
    # campaign key row by row (benchmarks/campaign_freeze.py); Django still cascades.
    workspace = models.ForeignKey(
        Workspace, on_delete=models.CASCADE, related_name="+", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False,
        db_index=False,
    )  # fmt: skip
    person = models.ForeignKey(
        Person, on_delete=models.CASCADE, related_name="deliveries", db_constraint=False
    )
    is_test = models.BooleanField(default=False)
    address = models.CharField(max_length=512, blank=True, default="")
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    reason = models.CharField(max_length=40, blank=True, default="")  # skip key
    error = models.TextField(blank=True, default="")  # the provider's answer
    variant = models.CharField(max_length=8, blank=True, default="")
    # outside an A/B test phase: held (variant "") until the winner is chosen, then sent it
    ab_rest = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    handed_at = models.DateTimeField(null=True, blank=True)
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Engagement (campaigns.tracking): `opened_at` / `clicked_at` are a person's first open
    # and click (a click counts as an open: images may be blocked); machine fetches (Apple
    # Mail Privacy Protection, image proxies' prefetches, link scanners) are kept apart.
    opened_at = models.DateTimeField(null=True, blank=True)
    clicked_at = models.DateTimeField(null=True, blank=True)
    last_opened_at = models.DateTimeField(null=True, blank=True)
    last_clicked_at = models.DateTimeField(null=True, blank=True)
    open_count = models.PositiveIntegerField(default=0)
    click_count = models.PositiveIntegerField(default=0)
    machine_opened_at = models.DateTimeField(null=True, blank=True)
    machine_clicked_at = models.DateTimeField(null=True, blank=True)
    machine_open_count = models.PositiveIntegerField(default=0)
    machine_click_count = models.PositiveIntegerField(default=0)
    # the last tracking batch applied to this row: a batch applied twice counts once
    tracking_batch = models.BigIntegerField(default=0)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)  # through this message
    # a flow's message: once per run and step (the step's campaign), so a person who enters
    # the flow again is sent again, a step never twice in one run
    flow_run = models.ForeignKey(
        "FlowRun", null=True, blank=True, on_delete=models.DO_NOTHING, related_name="+",
        db_constraint=False, db_index=False,
    )  # fmt: skip

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "person"], name="delivery_once_per_person",
                condition=models.Q(is_test=False, flow_run__isnull=True),
            ),
            models.UniqueConstraint(
                fields=["campaign", "flow_run"], name="delivery_once_per_run",
                condition=models.Q(flow_run__isnull=False),
            ),
        ]  # fmt: skip
        indexes = [
            models.Index(
                fields=["campaign", "id"], condition=models.Q(status="queued"),
                name="delivery_queued",
            ),
            models.Index(
                fields=["lease_until"], condition=models.Q(status="sending"),
                name="delivery_leased",
            ),
            models.Index(fields=["campaign", "status"], name="delivery_campaign_status"),
            models.Index(
                fields=["workspace", "provider_message_id"], name="delivery_provider_id",
                condition=~models.Q(provider_message_id=""),
            ),
            models.Index(fields=["workspace", "person", "-created_at"], name="delivery_person"),
        ]  # fmt: skip

    def __str__(self):
        return f"{self.campaign_id}/{self.person_id}: {self.status}"


class CampaignLink(WorkspaceOwned):
    """A link of a campaign's email that is tracked: `/t/c/<token>` names the campaign and
    the index, and redirects only to the `url` stored here (never to one in the request).
    Made from the stored HTML (its links without Liquid), the first time the campaign's
    email is sent; an index never changes its url. Clicks counted by the tracking flush."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    index = models.PositiveIntegerField()
    url = models.TextField()
    clicks = models.PositiveIntegerField(default=0)  # human clicks
    machine_clicks = models.PositiveIntegerField(default=0)
    tracking_batch = models.BigIntegerField(default=0)  # as Delivery.tracking_batch

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "campaign", "index"], name="campaignlink_index"
            ),
            models.UniqueConstraint(
                fields=["workspace", "campaign", "url"], name="campaignlink_url"
            ),
        ]
        ordering = ["campaign", "index"]

    def __str__(self):
        return f"{self.campaign_id}#{self.index}: {self.url[:80]}"


class CampaignLaunch(Job):
    """A launch as a job row: the recipients frozen into the ledger (one INSERT ...
    SELECT), then the workers started. `total_rows` is who was targeted, `queued` and
    `skipped` the ledger's split; the campaign stays `sending` and is never finished while
    its launch is unfinished."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="launches")
    queued = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)

    class Meta(Job.Meta):
        pass


# --- In-app banners (campaigns.banners) -----------------------------------------------------


class Placement(WorkspaceOwned):
    """Where banners show in the customer's app: `top`, `hero` and `sidebar` built in, more
    made in the UI. A request for a placement gets up to `max_banners` banners, drawn by
    priority weight without replacement. A placement a banner uses is not deleted."""

    BUILTIN = (
        ("top", "Top of the page", "A bar across the top of every page."),
        ("hero", "Hero", "The large area at the top of a landing page."),
        ("sidebar", "Sidebar", "A box beside the content."),
    )

    key = models.SlugField(max_length=40)
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True, default="")
    max_banners = models.PositiveSmallIntegerField(default=1)
    builtin = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "key"], name="placement_key"),
        ]
        ordering = ["-builtin", "key"]

    def __str__(self):
        return f"placement {self.key}"


class BannerDismissal(WorkspaceOwned):
    """A person closed a banner: it is never served to them again."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="dismissals")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "person"], name="banner_dismissed_once"),
        ]
        indexes = [models.Index(fields=["workspace", "person"], name="banner_dismissed_person")]

    def __str__(self):
        return f"{self.campaign_id}/{self.person_id} dismissed"


class BannerStat(WorkspaceOwned):
    """A banner's impressions, clicks and dismissals per hour, written by the events flush
    (campaigns.banners.flush_events) in batches."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="banner_stats")
    hour = models.DateTimeField()
    impressions = models.BigIntegerField(default=0)
    clicks = models.BigIntegerField(default=0)
    dismissals = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "hour"], name="banner_stat_hour"),
        ]
        ordering = ["campaign", "hour"]

    def __str__(self):
        return f"{self.campaign_id} @ {self.hour:%Y-%m-%d %H}: {self.impressions}"


class BannerViewer(WorkspaceOwned):
    """A person who saw a banner (unique viewers), with whether they clicked it."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="viewers")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="+")
    first_seen_at = models.DateTimeField()
    clicked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "person"], name="banner_viewer_once"),
        ]

    def __str__(self):
        return f"{self.campaign_id}/{self.person_id}"


# --- Flows (campaigns.flows) ------------------------------------------------------------------


class FlowStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    LIVE = "live", "Live"
    PAUSED = "paused", "Paused"
    ARCHIVED = "archived", "Archived"


class Reentry(models.TextChoices):
    NEVER = "never", "Never: once per person"
    AFTER_EXIT = "after_exit", "After they leave the flow"
    ALWAYS = "always", "Always (several runs at once)"


class Flow(WorkspaceOwned):
    """A flow: an entry, a tree of steps and a re-entry rule, edited as a draft (`entry`,
    `steps`, `reentry` here) and published as numbered versions (FlowVersion); people in
    a run keep the version they entered with. shared/API.md "Flows"."""

    name = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=FlowStatus.choices,
                              default=FlowStatus.DRAFT)  # fmt: skip
    entry = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=list, blank=True)
    reentry = models.CharField(max_length=12, choices=Reentry.choices, default=Reentry.NEVER)
    version = models.PositiveIntegerField(default=0)  # the newest published, 0: none yet
    # segment entry: where the flow has read the segment's transitions to (txid.id)
    entry_cursor = models.CharField(max_length=60, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["workspace", "-created_at"], name="flow_ws_recent")]
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"flow “{self.name}”"


class FlowVersion(WorkspaceOwned):
    """What was published: the entry, the validated steps (send templates copied in) and
    the re-entry rule, never changed after."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    entry = models.JSONField(default=dict)
    steps = models.JSONField(default=list)
    reentry = models.CharField(max_length=12, choices=Reentry.choices, default=Reentry.NEVER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["flow", "number"], name="flowversion_number"),
        ]
        ordering = ["flow", "-number"]

    def __str__(self):
        return f"{self.flow_id} v{self.number}"


class RunStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    WAITING = "waiting", "Waiting"
    DONE = "done", "Done"
    EXITED = "exited", "Exited"
    FAILED = "failed", "Failed"


OPEN_RUN = (RunStatus.ACTIVE, RunStatus.WAITING)


class FlowRun(WorkspaceOwned):
    """A person's way through one version of a flow: the step they are at, and when it is
    due (`wake_at`); claimed by the engine with a lease, like a delivery. At most one open
    run per flow and person unless the flow lets them in again while in (`always`)."""

    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="runs")
    version = models.ForeignKey(FlowVersion, on_delete=models.CASCADE, related_name="runs")
    person = models.ForeignKey(Person, on_delete=models.CASCADE, related_name="flow_runs")
    step = models.CharField(max_length=40)
    status = models.CharField(max_length=8, choices=RunStatus.choices, default=RunStatus.ACTIVE)
    wake_at = models.DateTimeField()
    lease_until = models.DateTimeField(null=True, blank=True)
    entered_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    error = models.TextField(blank=True, default="")
    # who or what put them in: "segment", "audience", "api", "people page", ...
    source = models.CharField(max_length=40, blank=True, default="")
    # a person let in while in (reentry "always") has several; the rest, one open run
    concurrent = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flow", "person"], name="flowrun_one_open",
                condition=models.Q(status__in=OPEN_RUN, concurrent=False),
            ),
        ]  # fmt: skip
        indexes = [
            models.Index(fields=["wake_at"], name="flowrun_due",
                         condition=models.Q(status__in=OPEN_RUN)),
            models.Index(fields=["flow", "status"], name="flowrun_flow_status"),
            models.Index(fields=["workspace", "person"], name="flowrun_person"),
        ]  # fmt: skip

    def __str__(self):
        return f"{self.flow_id}/{self.person_id} at {self.step}: {self.status}"


class FlowRunStep(WorkspaceOwned):
    """A step a run went through, once: its row is what makes the step's effect happen at
    most once (the engine applies a step only to the runs whose row it inserted, in the
    same transaction)."""

    run = models.ForeignKey(FlowRun, on_delete=models.CASCADE, related_name="log")
    step = models.CharField(max_length=40)
    type = models.CharField(max_length=24)
    outcome = models.CharField(max_length=200, blank=True, default="")
    at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "step"], name="flowrunstep_once"),
        ]
        ordering = ["run", "at", "id"]

    def __str__(self):
        return f"{self.run_id}: {self.step} {self.outcome}"
