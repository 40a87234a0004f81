"""manage.py rotate_provider_secrets: after NEW,OLD every secret opens with NEW alone."""

from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command

from accounts.audit import Actor
from channels.models import Provider
from channels.secrets import SecretsUnreadable, unseal
from channels.services import provider_set


def test_rotation_moves_every_secret_to_the_new_key(workspace, other_workspace, settings):
    for ws in (workspace, other_workspace):
        provider_set(
            workspace=ws, channel="sms", kind="twilio", actor=Actor(system="tests"),
            settings={"account_sid": "AC" + "c" * 32, "from": "+14155550100"},
            secrets={"auth_token": f"token-{ws.slug}"},
        )  # fmt: skip
    old = list(settings.PROVIDER_SECRET_KEYS)
    new = Fernet.generate_key().decode()
    settings.PROVIDER_SECRET_KEYS = [new, *old]
    out = StringIO()
    call_command("rotate_provider_secrets", stdout=out)
    assert "2 provider account(s) re-encrypted" in out.getvalue()
    settings.PROVIDER_SECRET_KEYS = [new]
    tokens = sorted(unseal(p.secrets)["auth_token"] for p in Provider.objects.unscoped())
    assert tokens == ["token-acme", "token-other-co"]
    # a secret under a key no longer listed is named, not lost
    settings.PROVIDER_SECRET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError, match="could not be decrypted"):
        call_command("rotate_provider_secrets", stdout=StringIO())
    with pytest.raises(SecretsUnreadable):
        unseal(Provider.objects.unscoped().first().secrets)
