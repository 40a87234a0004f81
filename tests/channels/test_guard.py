"""Provider hosts are checked at connect time (SSRF): an SMTP server or an API base URL a
workspace typed in that resolves to a private, loopback or link-local address is refused
before anything is sent, unless the installation allows private hosts."""

import socket

import httpx
import pytest

from channels.transports.base import OutboundMessage
from channels.transports.email import SmtpTransport
from channels.transports.guard import BlockedHost, http_transport, is_blocked, resolve
from channels.transports.sms import TwilioTransport

SID = "AC" + "0" * 32


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "0.0.0.0",
     "100.64.0.1", "::1", "fe80::1", "fd00::1", "::ffff:127.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_private_and_reserved_addresses_are_refused(address):
    with pytest.raises(BlockedHost, match="private or reserved"):
        resolve(address, 443, allow_private=False)
    assert resolve(address, 443, allow_private=True)


def test_a_public_address_passes_and_an_unknown_name_is_refused():
    assert resolve("8.8.8.8", 443, allow_private=False)[0][4][0] == "8.8.8.8"
    with pytest.raises(BlockedHost, match="does not resolve"):
        resolve("no-such-host.invalid", 443, allow_private=False)


def test_a_name_is_judged_by_what_it_resolves_to(monkeypatch):
    """A public-looking name that resolves to the metadata address is refused (the check
    runs on the addresses the socket connects to)."""
    real = socket.getaddrinfo

    def rebinding(host, *args, **kwargs):
        if host == "api.example-gateway.com":
            return real("169.254.169.254", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(BlockedHost, match="169.254.169.254"):
        resolve("api.example-gateway.com", 443, allow_private=False)


def test_an_http_provider_on_a_private_host_is_a_permanent_error_and_nothing_is_sent(
    httpserver,
):
    httpserver.expect_request(f"/2010-04-01/Accounts/{SID}/Messages.json").respond_with_json(
        {"sid": "SM1", "status": "queued"}, status=201
    )
    blocked = TwilioTransport(
        account_sid=SID, auth_token="t", from_number="+14155550100",
        base_url=httpserver.url_for("/"), allow_private=False,
    )  # fmt: skip
    with blocked:
        (outcome,) = blocked.send_many([OutboundMessage("sms", "+14155550101", body="hi")])
    assert outcome.kind == "permanent" and "private or reserved" in outcome.message
    assert httpserver.log == []
    allowed = TwilioTransport(
        account_sid=SID, auth_token="t", from_number="+14155550100",
        base_url=httpserver.url_for("/"), allow_private=True,
    )  # fmt: skip
    with allowed:
        assert allowed.send(OutboundMessage("sms", "+14155550101", body="hi")).provider_message_id
    assert len(httpserver.log) == 1


def test_an_smtp_server_on_a_private_host_is_refused_before_connecting(smtp_server):
    for security in ("none", "ssl"):
        transport = SmtpTransport(
            host="127.0.0.1", port=smtp_server.port, security=security,
            from_email="news@example.com", allow_private=False,
        )  # fmt: skip
        with transport:
            (outcome,) = transport.send_many(
                [OutboundMessage("email", "ada@example.com", subject="Hi", text="Hello")]
            )
        assert outcome.kind == "permanent" and "private or reserved" in outcome.message
    assert smtp_server.connections == 0 and smtp_server.received == []


def test_the_http_transport_reports_a_blocked_host_as_a_connect_error():
    client = httpx.Client(transport=http_transport(allow_private=False))
    with client, pytest.raises(httpx.ConnectError) as caught:
        client.get("http://127.0.0.1:9/")
    assert is_blocked(caught.value)


def test_the_installation_setting_decides_when_the_caller_does_not(settings, httpserver):
    httpserver.expect_request("/x").respond_with_data("ok")
    settings.ALLOW_PRIVATE_PROVIDER_HOSTS = False
    transport = TwilioTransport(
        account_sid=SID, auth_token="t", from_number="+14155550100",
        base_url=httpserver.url_for("/"),
    )  # fmt: skip
    with transport:
        (outcome,) = transport.send_many([OutboundMessage("sms", "+14155550101", body="hi")])
    assert outcome.kind == "permanent"
