"""The Sandbox provider records each rendered message in the workspace's Sandbox inbox
and sends nothing; a message re-sent with the same idempotency key is recorded once."""

from channels.models import SandboxMessage
from channels.transports.base import OutboundMessage, SendResult
from channels.transports.sandbox import SandboxTransport


def test_messages_are_recorded_in_the_workspace_inbox_once_per_key(workspace, other_workspace):
    sandbox = SandboxTransport(workspace=workspace, channel="email")
    batch = [
        OutboundMessage(channel="email", address="ann@example.com", subject="Hi", html="<b>Hi</b>",
                        idempotency_key="d-1", reference="1"),
        OutboundMessage(channel="email", address="bob@example.com", subject="Hi", text="Hi"),
    ]  # fmt: skip
    first = sandbox.send_many(batch)
    again = sandbox.send_many(batch[:1])  # a retried delivery
    assert all(isinstance(o, SendResult) for o in first + again)
    assert again[0].provider_message_id == first[0].provider_message_id
    rows = SandboxMessage.objects.for_workspace(workspace).order_by("address")
    assert [(m.address, m.html, m.reference) for m in rows] == [
        ("ann@example.com", "<b>Hi</b>", "1"),
        ("bob@example.com", "", ""),
    ]
    assert first[1].provider_message_id == f"sandbox-{rows[1].pk}"
    # the same key in another workspace is another message
    SandboxTransport(workspace=other_workspace, channel="email").send(batch[0])
    assert SandboxMessage.objects.for_workspace(other_workspace).count() == 1
    assert SandboxMessage.objects.for_workspace(workspace).count() == 2
