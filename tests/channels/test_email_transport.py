"""The SMTP transport against a real SMTP server (aiosmtpd): one connection per batch,
one recipient per message, text + HTML, DKIM that a verifier accepts, and every reply
code classified (magic addresses answer 451, 550 5.1.1, 552, 554 and 421)."""

import base64
from email import message_from_bytes, policy

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from channels.transports.base import (
    PERMANENT,
    SUPPRESS,
    TEMPORARY,
    OutboundMessage,
    SendResult,
    TransportError,
)
from channels.transports.email import SmtpTransport, classify_reply
from tests.channels.conftest import free_port


def transport(server, **options):
    return SmtpTransport(
        host="127.0.0.1", port=server.port, security="none", from_email="news@herald.test",
        from_name="Herald News", **options,
    )  # fmt: skip


def email(to, **fields):
    return OutboundMessage(
        channel="email", address=to, subject=fields.pop("subject", "Spring sale"),
        text=fields.pop("text", "Hello in text"), html=fields.pop("html", "<p>Hello in HTML</p>"),
        **fields,
    )  # fmt: skip


def test_a_batch_goes_over_one_connection_and_each_refusal_is_classified(smtp_server):
    batch = [
        email("ann@example.com"),
        email("nobody@example.com"),
        email("defer@example.com"),
        email("full@example.com"),
        email("spam@example.com"),
        email("policy@example.com"),
        email("bob@example.com"),
    ]
    with transport(smtp_server) as smtp:
        outcomes = smtp.send_many(batch)
    kinds = [o.kind if isinstance(o, TransportError) else "sent" for o in outcomes]
    assert kinds == ["sent", SUPPRESS, TEMPORARY, PERMANENT, PERMANENT, PERMANENT, "sent"]
    assert [o.code for o in outcomes if isinstance(o, TransportError)] == [550, 451, 552, 554, 550]
    assert "User unknown" in outcomes[1].message
    # one connection carried the batch, refusals included; one recipient per message
    assert smtp_server.connections == 1
    assert [to for to, _ in smtp_server.received] == [["ann@example.com"], ["bob@example.com"]]
    # the provider message id is the Message-ID the receiver got
    received = message_from_bytes(smtp_server.received[0][1], policy=policy.default)
    assert isinstance(outcomes[0], SendResult)
    assert received["Message-ID"] == f"<{outcomes[0].provider_message_id}>"


def test_a_421_drops_the_connection_and_the_next_message_reconnects(smtp_server):
    with transport(smtp_server) as smtp:
        outcomes = smtp.send_many(
            [email("ann@example.com"), email("closing@example.com"), email("bob@example.com")]
        )
    assert outcomes[1].kind == TEMPORARY and outcomes[1].code == 421
    assert isinstance(outcomes[2], SendResult)
    assert smtp_server.connections == 2
    assert len(smtp_server.received) == 2


def test_text_html_headers_and_sender(smtp_server):
    message = email(
        "ann@example.com",
        reply_to="help@herald.test",
        headers={
            "List-Unsubscribe": "<https://herald.test/u/abc>, <mailto:u+abc@herald.test>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        subject="Grüße zum Frühling",
    )
    with transport(smtp_server) as smtp:
        smtp.send(message)
    received = message_from_bytes(smtp_server.received[0][1], policy=policy.default)
    assert str(received["Subject"]) == "Grüße zum Frühling"
    assert str(received["From"]) == "Herald News <news@herald.test>"
    assert str(received["Reply-To"]) == "help@herald.test"
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received.get_body(("plain",)).get_content().strip() == "Hello in text"
    assert received.get_body(("html",)).get_content().strip() == "<p>Hello in HTML</p>"


def test_dkim_signature_verifies_and_covers_the_unsubscribe_headers(smtp_server):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    asked = []

    def dns(name, timeout=5):  # the DNS lookup of the verifier: no resolver here
        asked.append(name)
        return record if name == b"s1._domainkey.herald.test." else b""

    message = email(
        "ann@example.com",
        headers={"List-Unsubscribe": "<https://herald.test/u/abc>",
                 "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
    )  # fmt: skip
    with transport(
        smtp_server, dkim_domain="herald.test", dkim_selector="s1", dkim_private_key=private_pem
    ) as smtp:
        smtp.send(message)
    raw = smtp_server.received[0][1]
    assert dkim.verify(raw, dnsfunc=dns)
    assert asked == [b"s1._domainkey.herald.test."]
    signature = message_from_bytes(raw, policy=policy.compat32)["DKIM-Signature"]
    signed = signature.split("h=")[1].split(";")[0].replace("\r\n", "").replace(" ", "")
    assert {"list-unsubscribe", "list-unsubscribe-post", "from", "subject"} <= {
        h.strip().lower() for h in signed.split(":")
    }
    # a receiver that sees the unsubscribe header changed rejects the signature
    tampered = raw.replace(b"https://herald.test/u/abc", b"https://evil.test/u/abc")
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_a_server_that_is_not_there_is_a_temporary_error_for_each_message():
    smtp = SmtpTransport(
        host="127.0.0.1", port=free_port(), security="none", from_email="n@herald.test",
        timeout=2,
    )  # fmt: skip
    outcomes = smtp.send_many([email("a@example.com"), email("b@example.com")])
    assert [o.kind for o in outcomes] == [TEMPORARY, TEMPORARY]
    assert "Could not connect" in outcomes[0].message
    with pytest.raises(TransportError) as raised:
        smtp.send(email("a@example.com"))
    assert raised.value.temporary


def test_a_header_with_a_line_break_is_refused_before_anything_is_sent(smtp_server):
    with transport(smtp_server) as smtp:
        outcome = smtp.send_many([email("a@example.com", subject="Hi\r\nBcc: all@example.com")])
    assert outcome[0].kind == PERMANENT and "could not be built" in outcome[0].message
    assert smtp_server.received == []


@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (421, "4.3.2 closing", TEMPORARY),
        (450, "4.2.1 mailbox busy", TEMPORARY),
        (550, "5.1.1 user unknown", SUPPRESS),
        (550, "5.1.10 null MX", SUPPRESS),
        (550, "5.7.1 relaying denied", PERMANENT),
        (552, "5.2.2 mailbox full", PERMANENT),
        (554, "5.7.1 spam", PERMANENT),
    ],
)
def test_reply_codes_are_classified(code, text, kind):
    assert classify_reply(code, text.encode()).kind == kind


def test_the_message_parses_back_exactly_whatever_its_text(smtp_server):
    """Long and non-ASCII subjects, text with "=" signs, long lines and bare CRs, an
    internationalized address: what a mail client parses is what was sent."""
    text = "Prix = 20 € ; " + "très long " * 40 + "\rfin\r\nligne 2\n"
    subject = "Ventes de printemps : " + "économisez " * 12
    messages = [
        email("ann@example.com", subject=subject, text=text, html="<p>Été = 20 %</p>"),
        email("zoë@exämple.com", subject="Hi", text="plain only", html=""),
    ]
    with transport(smtp_server) as smtp:
        outcomes = smtp.send_many(messages)
    assert all(isinstance(o, SendResult) for o in outcomes)  # aiosmtpd offers SMTPUTF8
    assert smtp_server.received[1][0] == ["zoë@exämple.com"]
    received = message_from_bytes(smtp_server.received[0][1], policy=policy.default)
    assert str(received["Subject"]) == subject
    assert received.get_content_type() == "multipart/alternative"
    plain = received.get_body(("plain",)).get_content()
    assert plain.replace("\r\n", "\n") == text.replace("\r\n", "\n").replace("\r", "\n")
    assert received.get_body(("html",)).get_content().strip() == "<p>Été = 20 %</p>"
    assert all(len(line) <= 998 for line in smtp_server.received[0][1].split(b"\r\n"))


def _certificate(tmp_path):
    """A self-signed certificate for 127.0.0.1 (the test's own authority)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(
            "127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )  # fmt: skip
    return cert_file, key_file


def test_starttls_is_negotiated_and_an_untrusted_certificate_is_refused(tmp_path):
    import ssl

    from aiosmtpd.controller import Controller

    from tests.channels.conftest import Server

    cert_file, key_file = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    server = Server()
    port = free_port()
    controller = Controller(
        server, hostname="127.0.0.1", port=port, tls_context=server_tls, require_starttls=True
    )
    controller.start()
    try:
        trusting = ssl.create_default_context(cafile=str(cert_file))
        smtp = SmtpTransport(host="127.0.0.1", port=port, security="starttls",
                             from_email="news@herald.test", ssl_context=trusting)  # fmt: skip
        with smtp:
            assert isinstance(smtp.send(email("ann@example.com")), SendResult)
        assert [to for to, _ in server.received] == [["ann@example.com"]]
        # the system's authorities do not know this certificate: no message goes in clear
        doubting = SmtpTransport(host="127.0.0.1", port=port, security="starttls",
                                 from_email="news@herald.test", timeout=5)  # fmt: skip
        (outcome,) = doubting.send_many([email("bob@example.com")])
        assert outcome.kind == TEMPORARY and "certificate" in outcome.message.lower()
        # a server that requires STARTTLS refuses a client that skips it
        clear = SmtpTransport(host="127.0.0.1", port=port, security="none",
                              from_email="news@herald.test")  # fmt: skip
        (refused,) = clear.send_many([email("carl@example.com")])
        assert isinstance(refused, TransportError) and refused.code == 530
        assert len(server.received) == 1
    finally:
        controller.stop()


def test_implicit_tls_on_connect_for_port_465(tmp_path):
    """security "ssl": TLS from the first byte (port 465), through the address check's
    socket (GuardedSMTP_SSL wraps the socket the guard connected)."""
    import ssl

    from aiosmtpd.controller import Controller

    from tests.channels.conftest import Server

    cert_file, key_file = _certificate(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    server = Server()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port, ssl_context=server_tls)
    controller.start()
    try:
        trusting = ssl.create_default_context(cafile=str(cert_file))
        smtp = SmtpTransport(host="127.0.0.1", port=port, security="ssl",
                             from_email="news@herald.test", ssl_context=trusting)  # fmt: skip
        with smtp:
            results = smtp.send_many([email("ann@example.com"), email("bob@example.com")])
        assert all(isinstance(r, SendResult) for r in results)
        assert [to for to, _ in server.received] == [["ann@example.com"], ["bob@example.com"]]
        assert server.connections == 1
        # speaking plain SMTP to a TLS port gets nowhere, and says so
        clear = SmtpTransport(host="127.0.0.1", port=port, security="none",
                              from_email="news@herald.test", timeout=3)  # fmt: skip
        (outcome,) = clear.send_many([email("carl@example.com")])
        assert outcome.kind == TEMPORARY
        assert len(server.received) == 2
    finally:
        controller.stop()
