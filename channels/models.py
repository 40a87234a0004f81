"""What channels keep: the Sandbox inbox (messages a sandbox provider recorded instead
of sending). Provider accounts and provider events come with their transports."""

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
    TWILIO = "twilio", "Twilio"
    SANDBOX = "sandbox", "Sandbox (records, sends nothing)"


class Provider(WorkspaceOwned):
    """The workspace's provider account of a channel (push: of a platform). Settings are
    plain; secrets are a sealed JSON object (channels.secrets), never shown again."""

    channel = models.CharField(max_length=16)  # email | sms | push
    platform = models.CharField(max_length=8, blank=True, default="")  # push: ios|android|web
    kind = models.CharField(max_length=16, choices=ProviderKind.choices)
    settings = models.JSONField(default=dict, blank=True)
    secrets = models.TextField(blank=True, default="")
    verified_at = models.DateTimeField(null=True, blank=True)
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
