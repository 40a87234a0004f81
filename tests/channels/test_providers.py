"""Provider accounts: bad settings name the field and store nothing; secrets are sealed
at rest, write-only, kept when not re-entered, readable after a key rotation; and
get_transport sends through the configured account (a real SMTP server here)."""

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ValidationError

from accounts.audit import Actor
from accounts.models import AuditEntry
from channels.models import Provider, SandboxMessage
from channels.providers import NoProvider, get_transport
from channels.secrets import SecretsUnreadable, reseal, unseal
from channels.services import provider_set
from channels.transports.base import OutboundMessage, SendResult
from channels.transports.email import SmtpTransport

ACTOR = Actor(system="tests")
SMTP = {"host": "127.0.0.1", "port": 2525, "security": "none", "from_email": "news@acme.test"}


def test_bad_settings_name_each_field_and_store_nothing(workspace):
    with pytest.raises(ValidationError) as raised:
        provider_set(
            workspace=workspace, channel="email", kind="smtp", actor=ACTOR,
            settings={"host": "bad host!", "port": 70000, "from_email": "nope", "colour": "red"},
            secrets={"dkim_private_key": "-----BEGIN NOTHING-----"},
        )  # fmt: skip
    errors = raised.value.message_dict
    named = {"host", "port", "from_email", "colour", "dkim_domain", "dkim_private_key"}
    assert set(errors) == named
    assert "PEM" in errors["dkim_private_key"][0]
    with pytest.raises(ValidationError) as raised:
        provider_set(workspace=workspace, channel="sms", kind="smtp", settings={}, secrets={},
                     actor=ACTOR)  # fmt: skip
    assert "twilio" in raised.value.message_dict["kind"][0]
    with pytest.raises(ValidationError) as raised:
        provider_set(
            workspace=workspace, channel="sms", kind="twilio", actor=ACTOR,
            settings={"account_sid": "AC123", "from": "0612345678"}, secrets={},
        )  # fmt: skip
    assert set(raised.value.message_dict) == {"account_sid", "from", "auth_token"}
    assert not Provider.objects.for_workspace(workspace).exists()


def test_secrets_are_sealed_write_only_and_kept_when_not_re_entered(workspace):
    provider = provider_set(
        workspace=workspace, channel="sms", kind="twilio", actor=ACTOR,
        settings={"account_sid": "AC" + "a" * 32, "from": "+14155550100"},
        secrets={"auth_token": "tok-secret-1"},
    )  # fmt: skip
    stored = Provider.objects.get(pk=provider.pk)
    assert "tok-secret-1" not in stored.secrets and stored.secrets
    assert unseal(stored.secrets) == {"auth_token": "tok-secret-1"}
    # a change of settings without the secret keeps it
    provider_set(
        workspace=workspace, channel="sms", kind="twilio", actor=ACTOR,
        settings={"account_sid": "AC" + "a" * 32, "from": "+14155550199"},
        secrets={"auth_token": ""},
    )  # fmt: skip
    stored.refresh_from_db()
    assert stored.settings["from"] == "+14155550199"
    assert unseal(stored.secrets) == {"auth_token": "tok-secret-1"}
    entries = AuditEntry.objects.filter(workspace=workspace, action="provider.set")
    assert entries.count() == 2
    assert all("tok-secret-1" not in str(e.summary) for e in entries)
    assert entries.first().summary["secrets_set"] == ["auth_token"]


def test_secrets_survive_a_key_rotation_and_a_dropped_key_says_so(workspace, settings):
    provider = provider_set(
        workspace=workspace, channel="sms", kind="twilio", actor=ACTOR,
        settings={"account_sid": "AC" + "b" * 32, "from": "+14155550100"},
        secrets={"auth_token": "tok-2"},
    )  # fmt: skip
    old = settings.PROVIDER_SECRET_KEYS
    new_key = Fernet.generate_key().decode()
    settings.PROVIDER_SECRET_KEYS = [new_key, *old]  # NEW,OLD
    assert unseal(provider.secrets) == {"auth_token": "tok-2"}
    rotated = reseal(provider.secrets)
    settings.PROVIDER_SECRET_KEYS = [new_key]  # the old key given up
    assert unseal(rotated) == {"auth_token": "tok-2"}
    with pytest.raises(SecretsUnreadable, match="no longer listed"):
        unseal(provider.secrets)


def test_get_transport_sends_through_the_configured_account(
    workspace, other_workspace, smtp_server
):
    with pytest.raises(NoProvider, match="No email provider"):
        get_transport("email", workspace)
    provider_set(workspace=workspace, channel="email", kind="smtp", actor=ACTOR,
                 settings={**SMTP, "port": smtp_server.port}, secrets={})  # fmt: skip
    transport = get_transport("email", workspace)
    assert isinstance(transport, SmtpTransport)
    with transport:
        result = transport.send(
            OutboundMessage(channel="email", address="ann@example.com", subject="Hi", text="Hi")
        )
    assert isinstance(result, SendResult)
    assert [to for to, _ in smtp_server.received] == [["ann@example.com"]]
    # another workspace's provider is its own
    with pytest.raises(NoProvider):
        get_transport("email", other_workspace)
    provider_set(workspace=other_workspace, channel="email", kind="sandbox", actor=ACTOR,
                 settings={}, secrets={})  # fmt: skip
    get_transport("email", other_workspace).send(
        OutboundMessage(channel="email", address="bob@example.com", subject="Hi", text="Hi")
    )
    assert SandboxMessage.objects.for_workspace(other_workspace).count() == 1
    assert len(smtp_server.received) == 1
