"""/api/v1/channels/{channel}/provider: set (422 naming the field), read (secrets never
returned, only their names), try one message against a real SMTP server; another
workspace's provider is not there."""

from channels.models import SandboxMessage

SMTP = {"host": "127.0.0.1", "security": "none", "from_email": "news@acme.test"}


def test_set_read_and_try_an_smtp_provider(api_client, smtp_server):
    assert api_client.get("/api/v1/channels/email/provider").status_code == 404
    bad = api_client.put(
        "/api/v1/channels/email/provider",
        {"kind": "smtp", "settings": {**SMTP, "port": "x"}, "secrets": {}},
        content_type="application/json",
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["loc"] == ["body", "port"]
    put = api_client.put(
        "/api/v1/channels/email/provider",
        {"kind": "smtp", "settings": {**SMTP, "port": smtp_server.port, "username": "news"},
         "secrets": {"password": "hunter2-secret"}},
        content_type="application/json",
    )  # fmt: skip
    assert put.status_code == 200, put.content
    got = api_client.get("/api/v1/channels/email/provider").json()
    assert got["kind"] == "smtp" and got["secrets_set"] == ["password"]
    assert got["verified_at"] is None and "hunter2-secret" not in str(got)
    # aiosmtpd offers no AUTH without TLS: the provider's answer is shown, classified
    tried = api_client.post(
        "/api/v1/channels/email/provider/test", {"to": "ann@example.com"},
        content_type="application/json",
    ).json()  # fmt: skip
    assert tried["sent"] is False and tried["error_kind"] == "permanent"
    assert "STARTTLS" in tried["said"]
    api_client.put(
        "/api/v1/channels/email/provider",
        {"kind": "smtp", "settings": {**SMTP, "port": smtp_server.port}, "secrets": {}},
        content_type="application/json",
    )
    tried = api_client.post(
        "/api/v1/channels/email/provider/test", {"to": "ann@example.com"},
        content_type="application/json",
    ).json()  # fmt: skip
    assert tried["sent"] is True and tried["provider_message_id"]
    assert [to for to, _ in smtp_server.received] == [["ann@example.com"]]
    assert api_client.get("/api/v1/channels/email/provider").json()["verified_at"]


def test_sandbox_provider_records_the_test_and_push_platforms_are_apart(api_client, workspace):
    for path in ("/api/v1/channels/sms/provider", "/api/v1/channels/push/provider/ios"):
        put = api_client.put(path, {"kind": "sandbox"}, content_type="application/json")
        assert put.status_code == 200, put.content
    assert api_client.get("/api/v1/channels/push/provider/android").status_code == 404
    assert api_client.get("/api/v1/channels/push/provider/ios").json()["kind"] == "sandbox"
    tried = api_client.post(
        "/api/v1/channels/sms/provider/test", {"to": "+14155550100"},
        content_type="application/json",
    ).json()  # fmt: skip
    assert tried["sent"] is True
    message = SandboxMessage.objects.for_workspace(workspace).get()
    assert (message.channel, message.address) == ("sms", "+14155550100")
    unknown = api_client.put(
        "/api/v1/channels/fax/provider", {"kind": "sandbox"}, content_type="application/json"
    )
    assert unknown.status_code == 422


def test_another_workspaces_provider_is_not_found(api_client, other_workspace):
    from accounts.audit import Actor
    from channels.services import provider_set

    provider_set(workspace=other_workspace, channel="email", kind="sandbox", settings={},
                 secrets={}, actor=Actor(system="tests"))  # fmt: skip
    assert api_client.get("/api/v1/channels/email/provider").status_code == 404
    tried = api_client.post(
        "/api/v1/channels/email/provider/test",
        {"to": "a@example.com"},
        content_type="application/json",
    )
    assert tried.status_code == 404


def test_a_test_message_to_an_address_on_do_not_contact_is_not_sent(api_client, workspace):
    from accounts.audit import Actor
    from people.services.dnc import dnc_add

    dnc_add(workspace=workspace, channel="email", address="Blocked@Example.com",
            actor=Actor(system="tests"))  # fmt: skip
    api_client.put("/api/v1/channels/email/provider", {"kind": "sandbox"},
                   content_type="application/json")  # fmt: skip
    tried = api_client.post(
        "/api/v1/channels/email/provider/test", {"to": "blocked@example.com"},
        content_type="application/json",
    ).json()  # fmt: skip
    assert tried["sent"] is False and tried["error_kind"] == "suppress"
    assert "Do Not Contact" in tried["said"]
    assert not SandboxMessage.objects.for_workspace(workspace).exists()


def test_the_test_button_reaches_twilio_and_an_esp_through_their_apis(api_client, httpserver):
    """Each kind's "send a test message" against a local fake of the provider's API."""
    sid = "AC" + "2" * 32
    httpserver.expect_request(
        f"/2010-04-01/Accounts/{sid}/Messages.json", method="POST"
    ).respond_with_json({"sid": "SM" + "3" * 32, "status": "queued"}, status=201)
    httpserver.expect_request("/v3/acme.test/messages", method="POST").respond_with_json(
        {"id": "<test.1@acme.test>", "message": "Queued. Thank you."}
    )
    put = api_client.put(
        "/api/v1/channels/sms/provider",
        {"kind": "twilio", "settings": {"account_sid": sid, "from": "+14155550100",
                                        "base_url": httpserver.url_for("/")},
         "secrets": {"auth_token": "tok"}},
        content_type="application/json",
    )  # fmt: skip
    assert put.status_code == 200, put.content
    tried = api_client.post(
        "/api/v1/channels/sms/provider/test", {"to": "+14155550111"},
        content_type="application/json",
    ).json()  # fmt: skip
    assert tried == {"sent": True, "provider_message_id": "SM" + "3" * 32, "said": "queued",
                     "error_kind": None}  # fmt: skip
    put = api_client.put(
        "/api/v1/channels/email/provider",
        {"kind": "anymail", "settings": {"esp": "mailgun", "from_email": "news@acme.test",
                                         "api_url": httpserver.url_for("/v3")},
         "secrets": {"api_key": "key-1", "webhook_signing_key": "sign-1"}},
        content_type="application/json",
    )  # fmt: skip
    assert put.status_code == 200, put.content
    got = api_client.get("/api/v1/channels/email/provider").json()
    assert got["secrets_set"] == ["api_key", "webhook_secret", "webhook_signing_key"]
    tried = api_client.post(
        "/api/v1/channels/email/provider/test", {"to": "ann@example.com"},
        content_type="application/json",
    ).json()  # fmt: skip
    assert tried["sent"] is True and tried["provider_message_id"] == "<test.1@acme.test>"
    assert len(httpserver.log) == 2


def test_a_secret_given_as_null_is_removed(api_client):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()  # fmt: skip
    signed = {**SMTP, "port": 2525, "dkim_domain": "acme.test", "dkim_selector": "s1"}
    put = api_client.put(
        "/api/v1/channels/email/provider",
        {"kind": "smtp", "settings": signed, "secrets": {"dkim_private_key": pem,
                                                         "password": "pw"}},
        content_type="application/json",
    )  # fmt: skip
    assert put.json()["secrets_set"] == ["dkim_private_key", "password"]
    # DKIM off: the domain and selector dropped, the key removed (kept, it would refuse)
    put = api_client.put(
        "/api/v1/channels/email/provider",
        {"kind": "smtp", "settings": {**SMTP, "port": 2525},
         "secrets": {"dkim_private_key": None}},
        content_type="application/json",
    )  # fmt: skip
    assert put.status_code == 200, put.content
    assert put.json()["secrets_set"] == ["password"]
