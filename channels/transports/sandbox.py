"""The Sandbox provider of every sending channel: the rendered message goes into the
workspace's Sandbox inbox (channels.models.SandboxMessage) and nowhere else. The demo
workspaces use it, so sending can be tried without any provider account."""

from collections.abc import Sequence

from channels.models import SandboxMessage
from channels.transports.base import OutboundMessage, Outcome, SendResult, Transport


class SandboxTransport(Transport):
    def __init__(self, *, workspace, channel: str):
        self.workspace = workspace
        self.channel = channel

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        """One INSERT for the batch; a message whose idempotency key was recorded before
        answers the first recording's id and is not recorded again."""
        rows = [
            SandboxMessage(
                workspace=self.workspace, channel=self.channel, address=m.address,
                subject=m.subject, text=m.text, html=m.html, title=m.title, body=m.body,
                from_name=m.from_name, reply_to=m.reply_to, data=m.data, headers=m.headers,
                reference=m.reference, idempotency_key=m.idempotency_key,
            )
            for m in messages
        ]  # fmt: skip
        keyed = [r for r in rows if r.idempotency_key]
        SandboxMessage.objects.bulk_create([r for r in rows if not r.idempotency_key])
        ids = {}
        if keyed:
            # ON CONFLICT DO NOTHING gives no ids back: the keys' rows are read after
            SandboxMessage.objects.bulk_create(keyed, ignore_conflicts=True)
            ids = dict(
                SandboxMessage.objects.for_workspace(self.workspace)
                .filter(idempotency_key__in=[r.idempotency_key for r in keyed])
                .values_list("idempotency_key", "pk")
            )
        outcomes: list[Outcome] = []
        for row in rows:
            pk = ids[row.idempotency_key] if row.idempotency_key else row.pk
            outcomes.append(
                SendResult(
                    provider_message_id=f"sandbox-{pk}", detail="Recorded in the Sandbox inbox"
                )
            )
        return outcomes
