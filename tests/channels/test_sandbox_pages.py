"""The Channels page and the Sandbox inbox as a member sees them: each channel's
provider, messages newest first by channel, an email's HTML shown in a sandboxed frame
served with a CSP that lets nothing run, an SMS with its segment count."""

from accounts.audit import Actor
from channels.services import provider_set
from channels.transports.base import OutboundMessage
from channels.transports.sandbox import SandboxTransport


def _record(workspace):
    SandboxTransport(workspace=workspace, channel="email").send(
        OutboundMessage(channel="email", address="ann@example.com", subject="Spring sale",
                        html='<p style="color:red">Hi <script>alert(1)</script></p>', text="Hi",
                        headers={"List-Unsubscribe": "<https://acme.test/u/1>"})
    )  # fmt: skip
    SandboxTransport(workspace=workspace, channel="sms").send(
        OutboundMessage(channel="sms", address="+14155550100", body="Sale ends tonight 🎉")
    )


def test_channels_page_shows_each_channels_provider(client, owner, workspace):
    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={}, secrets={},
                 actor=Actor(system="tests"))  # fmt: skip
    _record(workspace)
    client.force_login(owner)
    page = client.get("/channels/").content.decode()
    assert "Sandbox (records, sends nothing)" in page
    assert "No provider: nothing can be sent on this channel yet" in page  # sms and push
    assert "1 message in the Sandbox inbox" in page


def test_inbox_lists_filters_and_shows_messages(client, owner, workspace):
    _record(workspace)
    client.force_login(owner)
    inbox = client.get("/channels/sandbox/").content.decode()
    assert "Spring sale" in inbox and "Sale ends tonight" in inbox
    assert inbox.index("Sale ends tonight") < inbox.index("Spring sale")  # newest first
    only_sms = client.get("/channels/sandbox/?channel=sms").content.decode()
    assert "Sale ends tonight" in only_sms and "Spring sale" not in only_sms
    email = workspace_messages(workspace, "email")
    detail = client.get(f"/channels/sandbox/{email.pk}/").content.decode()
    assert f'src="/channels/sandbox/{email.pk}/html/"' in detail and 'sandbox=""' in detail
    assert "https://acme.test/u/1" in detail and "<script>alert" not in detail
    html = client.get(f"/channels/sandbox/{email.pk}/html/")
    assert html.content.decode().startswith('<p style="color:red">')
    csp = html["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "sandbox" in csp and "script-src" not in csp
    assert html["X-Frame-Options"] == "SAMEORIGIN"
    sms = workspace_messages(workspace, "sms")
    shown = client.get(f"/channels/sandbox/{sms.pk}/").content.decode()
    assert "UCS-2" in shown and "1 segment" in shown


def workspace_messages(workspace, channel):
    from channels.models import SandboxMessage

    return SandboxMessage.objects.for_workspace(workspace).get(channel=channel)
