"""Changes to channels: provider accounts (secrets write-only, audited by name only)."""

from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from channels.models import Provider
from channels.providers import clean_provider, transport_for
from channels.secrets import SecretsUnreadable, seal, unseal
from channels.transports.base import SUPPRESS, OutboundMessage, TransportError
from people.selectors import dnc_is_blocked


@transaction.atomic
def provider_set(
    *,
    workspace,
    channel: str,
    kind: str,
    settings: dict,
    secrets: dict,
    actor: Actor,
    platform: str = "",
) -> Provider:
    """Set the workspace's provider of `channel` (ValidationError naming each bad field;
    nothing is stored then). Secrets not given keep their stored value while the kind
    stays the same; a secret given as "" is not a change. audit: "provider.set" (the kind
    and the names of the settings and secrets, never their values)."""
    provider = (
        Provider.objects.for_workspace(workspace)
        .select_for_update()
        .filter(channel=channel, platform=platform)
        .first()
    )
    kept = unseal(provider.secrets) if provider and provider.kind == kind else {}
    merged = {**kept, **{k: v for k, v in secrets.items() if v}}
    clean_settings, clean_secrets = clean_provider(
        channel=channel, kind=kind, settings=settings, secrets=merged
    )
    if provider is None:
        provider = Provider(workspace=workspace, channel=channel, platform=platform)
    provider.kind = kind
    provider.settings = clean_settings
    provider.secrets = seal(clean_secrets)
    provider.verified_at = None  # a changed account has not been tried yet
    provider.save()
    audit_record(
        workspace=workspace,
        actor=actor,
        action="provider.set",
        obj=provider,
        summary={
            "channel": channel, "platform": platform, "kind": kind,
            "settings": sorted(clean_settings), "secrets_set": sorted(clean_secrets),
        },
    )  # fmt: skip
    return provider


def provider_test(*, provider: Provider, message: OutboundMessage, actor: Actor) -> dict:
    """Send `message` now through `provider` and answer what the provider said (sent,
    provider_message_id, said, error_kind); a success marks the account verified.
    audit: "provider.test" (the channel, kind and outcome, never the address)."""
    blocked = dnc_is_blocked(
        workspace=provider.workspace_id, channel=provider.channel, address=message.address
    )
    try:
        if blocked:  # nobody on Do Not Contact is sent anything, a test included
            raise TransportError(
                SUPPRESS, f"{message.address} is on Do Not Contact for {provider.channel}: "
                "nothing was sent. Try another address.",
            )  # fmt: skip
        with transport_for(provider) as transport:
            result = transport.send(message)
    except TransportError as e:
        outcome = {"sent": False, "provider_message_id": None, "said": e.message,
                   "error_kind": e.kind}  # fmt: skip
    except SecretsUnreadable as e:
        outcome = {"sent": False, "provider_message_id": None, "said": str(e),
                   "error_kind": "permanent"}  # fmt: skip
    else:
        Provider.objects.filter(pk=provider.pk).update(verified_at=timezone.now())
        outcome = {"sent": True, "provider_message_id": result.provider_message_id,
                   "said": result.detail, "error_kind": None}  # fmt: skip
    audit_record(
        workspace=provider.workspace_id,
        actor=actor,
        action="provider.test",
        obj=provider,
        summary={"channel": provider.channel, "kind": provider.kind, "sent": outcome["sent"],
                 "error_kind": outcome["error_kind"]},
    )  # fmt: skip
    return outcome
