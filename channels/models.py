"""What channels keep: the Sandbox inbox (messages a sandbox provider recorded instead
of sending), provider accounts, and provider events (what providers' webhooks reported
about sent messages, matched to deliveries by the campaigns app by provider message id)."""

import secrets

from django.db import models

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
