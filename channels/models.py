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
