"""What channels keep: the Sandbox inbox (messages a sandbox provider recorded instead
of sending), provider accounts, and provider events (what providers' webhooks reported
about sent messages, matched to deliveries by the campaigns app by provider message id)."""

import secrets

from django.db import models
from django.db.models.functions import Lower

from accounts.jobs import Job
from accounts.models import WorkspaceOwned


class SandboxMessage(WorkspaceOwned):
    """A rendered message the workspace's sandbox provider recorded and did not send."""

    channel = models.CharField(max_length=16)  # email | sms | push
    address = models.CharField(max_length=320)
    subject = models.CharField(max_length=998, blank=True, default="")
    text = models.TextField(blank=True, default="")
    html = models.TextField(blank=True, default="")
    title = models.CharField(max_length=500, blank=True, default="")
    body = models.TextField(blank=True, default="")
    from_name = models.CharField(max_length=200, blank=True, default="")
    reply_to = models.CharField(max_length=320, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    reference = models.CharField(max_length=100, blank=True, default="")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["workspace", "channel", "-created_at"], name="sandbox_ws_channel_new"
            ),
        ]
        constraints = [
            # a message re-sent with the same key (a retried delivery) is recorded once
            models.UniqueConstraint(
                fields=["workspace", "idempotency_key"],
                condition=~models.Q(idempotency_key=""),
                name="sandbox_unique_idempotency",
            ),
        ]

    def __str__(self):
        return f"{self.channel} to {self.address}"


class ProviderKind(models.TextChoices):
    SMTP = "smtp", "SMTP"
    ANYMAIL = "anymail", "Email service (Anymail)"
    TWILIO = "twilio", "Twilio"
    FCM = "fcm", "Firebase Cloud Messaging"
    APNS = "apns", "Apple Push Notification service"
    WEBPUSH = "webpush", "Web Push (VAPID)"
    META = "meta", "Meta ad account (custom audiences)"
    SANDBOX = "sandbox", "Sandbox (records, sends nothing)"


def new_hook_id() -> str:
    """The unguessable part of a provider's webhook URLs (/hooks/.../<hook_id>/)."""
    return secrets.token_urlsafe(18)


class Provider(WorkspaceOwned):
    """The workspace's provider account of a channel (push: of a platform). Settings are
    plain; secrets are a sealed JSON object (channels.secrets), never shown again."""

    channel = models.CharField(max_length=16)  # email | sms | push
    platform = models.CharField(max_length=8, blank=True, default="")  # push: ios|android|web
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    settings = models.JSONField(default=dict, blank=True)
    secrets = models.TextField(blank=True, default="")
    verified_at = models.DateTimeField(null=True, blank=True)
    # names the account in its webhook URLs: a callback finds its workspace by it
    hook_id = models.CharField(max_length=32, unique=True, default=new_hook_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "channel", "platform"], name="provider_unique_channel"
            ),
        ]

    def __str__(self):
        return f"{self.channel}: {self.kind}"


class ProviderEventKind(models.TextChoices):
    """Anymail's normalized event types (Twilio's statuses are mapped onto them)."""

    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    DEFERRED = "deferred", "Deferred (soft bounce)"
    BOUNCED = "bounced", "Bounced (hard)"
    COMPLAINED = "complained", "Complained (spam report)"
    REJECTED = "rejected", "Rejected by the provider"
    FAILED = "failed", "Failed"
    OPENED = "opened", "Opened"
    CLICKED = "clicked", "Clicked"
    UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
    SUBSCRIBED = "subscribed", "Subscribed"
    AUTORESPONDED = "autoresponded", "Auto-responded"
    INBOUND = "inbound", "Inbound message"
    UNKNOWN = "unknown", "Other"


class ProviderEvent(WorkspaceOwned):
    """One thing a provider's webhook reported about a message: delivered, bounced,
    complained, opened... Kept as reported (the raw reason included); the campaigns app
    maps them to its deliveries by provider_message_id, channels import nothing of it."""

    provider = models.ForeignKey(
        Provider, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    channel = models.CharField(max_length=16)
    kind = models.CharField(max_length=16, choices=ProviderEventKind.choices)
    provider_message_id = models.CharField(max_length=255, blank=True, default="")
    # the provider's id of the event itself: a retried webhook is recorded once
    event_id = models.CharField(max_length=255, blank=True, default="")
    address = models.CharField(max_length=512, blank=True, default="")
    occurred_at = models.DateTimeField()
    reason = models.TextField(blank=True, default="")  # what the provider said, raw
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["workspace", "provider_message_id"], name="provider_event_message"
            ),
            models.Index(fields=["workspace", "-received_at"], name="provider_event_recent"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "channel", "event_id"],
                condition=~models.Q(event_id=""),
                name="provider_event_unique",
            ),
        ]

    def __str__(self):
        return f"{self.channel} {self.kind} {self.provider_message_id}"


# --- the targeting half: channel segment lists, channel audiences, segment sources -------

AUDIENCE_CHANNELS = ("email", "sms", "push", "meta")


class EntrySource(models.TextChoices):
    HERALD = "herald", "Herald segment"
    KLAVIYO = "klaviyo", "Klaviyo"
    CSV = "csv", "CSV upload"


class ChannelSegment(WorkspaceOwned):
    """A segment in a channel's list (the Segments tab of Email, SMS, Push or Meta), with
    the name, ID and link the marketer knows it by there. Channels are independent: the
    same Herald segment in Email and in SMS is two entries. An inactive entry is hidden
    from pickers and never re-added or overwritten by a sync."""

    channel = models.CharField(max_length=8)
    segment = models.ForeignKey(
        "segments.Segment", on_delete=models.CASCADE, related_name="channel_entries"
    )
    name = models.CharField(max_length=200)
    external_id = models.CharField(max_length=255, blank=True, default="")
    link = models.URLField(max_length=500, blank=True, default="")
    source = models.CharField(max_length=16, choices=EntrySource.choices)
    # what a sync knows the entry by ("list:XyZ12" in Klaviyo): a later sync finds it
    source_ref = models.CharField(max_length=255, blank=True, default="")
    active = models.BooleanField(default=True)
    # a CSV upload fills the entry's static segment when its import job is done
    audience_import = models.ForeignKey(
        "audiences.AudienceImport", null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )  # fmt: skip
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "channel", "segment"], name="channelsegment_unique"
            ),
            models.UniqueConstraint(
                fields=["workspace", "channel", "source", "source_ref"],
                condition=~models.Q(source_ref=""),
                name="channelsegment_unique_ref",
            ),
        ]
        indexes = [models.Index(fields=["workspace", "channel", "name"], name="channelsegment_ws")]
        ordering = ["name", "id"]

    def __str__(self):
        return f"{self.channel}: {self.name}"


class ChannelAudience(WorkspaceOwned):
    """A reusable audience of a channel: people in any include segment and in none of the
    exclude segments (and, to be sent to, reachable on the channel and not on Do Not
    Contact). Campaigns of the channel pick one; Meta audiences are exported instead."""

    channel = models.CharField(max_length=8)
    name = models.CharField(max_length=200)
    estimated_volume = models.BigIntegerField(null=True, blank=True)  # the marketer's figure
    include = models.ManyToManyField(ChannelSegment, related_name="included_by", blank=True)
    exclude = models.ManyToManyField(ChannelSegment, related_name="excluded_by", blank=True)
    meta_audience_id = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "workspace", "channel", Lower("name"), name="channelaudience_unique_name_ci"
            ),
        ]
        ordering = ["name", "id"]

    def __str__(self):
        return f"{self.channel}: {self.name}"


class SegmentSource(WorkspaceOwned):
    """Where a channel's segments come from besides Herald: a Klaviyo account (its key
    sealed like providers' secrets), synced on a schedule and by "Sync now"."""

    channel = models.CharField(max_length=8)
    kind = models.CharField(max_length=16, default="klaviyo")
    settings = models.JSONField(default=dict, blank=True)  # schedule_minutes, base_url
    secrets = models.TextField(blank=True, default="")
    last_full_sync_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    next_sync_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "channel"], name="segmentsource_unique")
        ]

    def __str__(self):
        return f"{self.channel}: {self.kind}"


class ChannelSync(Job):
    """A sync of a channel's segments from its source: lists and segments become entries,
    their profiles people, each entry's membership its static segment (replaced on a full
    sync, added to on an incremental one)."""

    channel = models.CharField(max_length=8)
    full = models.BooleanField(default=True)
    groups = models.IntegerField(default=0)
    entries_created = models.IntegerField(default=0)
    profiles = models.BigIntegerField(default=0)
    people_created = models.BigIntegerField(default=0)
    requests = models.IntegerField(default=0)

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["workspace", "channel", "-created_at"], name="sync_ws")]


class MetaExport(Job):
    """An export of a Meta channel audience's people to its custom audience."""

    audience = models.ForeignKey(ChannelAudience, on_delete=models.CASCADE, related_name="exports")
    replace = models.BooleanField(default=False)
    batches = models.IntegerField(default=0)
    sent = models.BigIntegerField(default=0)
    invalid = models.BigIntegerField(default=0)
    skipped = models.BigIntegerField(default=0)
    failed_batch = models.IntegerField(null=True, blank=True)
    session_id = models.CharField(max_length=32, blank=True, default="")

    class Meta(Job.Meta):
        pass
