"""Changes to channels: provider accounts (secrets write-only, audited by name only),
and what providers report back through their webhooks: delivery events (a hard bounce or
a complaint puts the address on Do Not Contact) and inbound messages (an event on the
person they are from; SMS keywords STOP and START)."""

from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from channels.models import Provider, ProviderEvent, ProviderEventKind
from channels.providers import clean_provider, transport_for
from channels.secrets import SecretsUnreadable, seal, unseal
from channels.signals import provider_events_recorded
from channels.transports.base import SUPPRESS, OutboundMessage, TransportError
from people.models import DncSource, DoNotContact, PushToken
from people.normalize import InvalidAddress, normalize_address
from people.selectors import dnc_is_blocked, external_ids_with_address
from people.services.dnc import dnc_add_many
from people.services.events import event_ingest_batch

WEBHOOK_ACTOR = Actor.of_system("provider webhook")
# what a reported event does to its address on Do Not Contact
_SUPPRESSING = {
    ProviderEventKind.BOUNCED: DncSource.BOUNCE,
    ProviderEventKind.COMPLAINED: DncSource.BOUNCE,
    ProviderEventKind.UNSUBSCRIBED: DncSource.UNSUBSCRIBE,
}
# Twilio's opt-out and opt-in keywords (the whole message, any case), as its own
# Advanced Opt-Out handles them: https://help.twilio.com/articles/223134027
SMS_STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
SMS_START_WORDS = frozenset({"START", "UNSTOP"})
SMS_RECEIVED = "SMS Received"
EMAIL_RECEIVED = "Email Received"
INBOUND_BODY_MAX = 10_000  # characters of an inbound message kept on its event


@dataclass(frozen=True)
class Reported:
    """One event as a provider's webhook reported it, normalized."""

    kind: str
    provider_message_id: str = ""
    event_id: str = ""
    address: str = ""
    occurred_at: datetime | None = None
    reason: str = ""
    # a rejection the ESP made because of its own suppression list (a bounce, a complaint)
    suppress: bool = False


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
    stays the same; a secret given as "" is not a change, as None removes it.
    audit: "provider.set" (the kind and the names of the settings and secrets, never their
    values)."""
    provider = (
        Provider.objects.for_workspace(workspace)
        .select_for_update()
        .filter(channel=channel, platform=platform)
        .first()
    )
    try:
        kept = unseal(provider.secrets) if provider and provider.kind == kind else {}
    except SecretsUnreadable:  # sealed with a key since dropped: the new ones replace them
        kept = {}
    merged = {**kept, **{k: v for k, v in secrets.items() if v}}
    for name in [k for k, v in secrets.items() if v is None]:  # None removes a secret
        merged.pop(name, None)
    clean_settings, clean_secrets = clean_provider(
        channel=channel, kind=kind, settings=settings, secrets=merged, platform=platform
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


def provider_test_message(*, channel: str, address: str) -> OutboundMessage:
    """The one message "send a test message" sends on `channel` to `address` (the API's
    test endpoint and the Channels page's button)."""
    return OutboundMessage(
        channel=channel, address=address.strip(), subject="Herald test message",
        text="This is a test message from Herald: your provider works.",
        body="Herald test message: your provider works.", title="Herald test",
    )  # fmt: skip


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


def provider_events_record(*, provider: Provider, events: list[Reported]) -> int:
    """Store what a provider's webhook reported, in one transaction: one row per event
    (a retried webhook's events are recorded once, by the provider's event id), and the
    addresses of hard bounces, complaints and unsubscribes onto Do Not Contact, set-based.
    The number of events new to Herald. (Not audited per call: the DNC additions are.)"""
    now = timezone.now()
    rows = [
        ProviderEvent(
            workspace_id=provider.workspace_id, provider=provider, channel=provider.channel,
            kind=e.kind, provider_message_id=e.provider_message_id[:255],
            event_id=e.event_id[:255], address=e.address[:512],
            occurred_at=e.occurred_at or now, reason=e.reason,
        )
        for e in events
    ]  # fmt: skip
    suppressed: dict[str, set[str]] = {}
    for e in events:
        source = _SUPPRESSING.get(e.kind) or (DncSource.BOUNCE if e.suppress else None)
        if source and e.address:
            suppressed.setdefault(source, set()).add(e.address)
    with transaction.atomic():
        before = ProviderEvent.objects.for_workspace(provider.workspace_id).count()
        ProviderEvent.objects.bulk_create(rows, ignore_conflicts=True, batch_size=1000)
        added = ProviderEvent.objects.for_workspace(provider.workspace_id).count() - before
        # campaigns maps them onto its deliveries (channels import nothing of campaigns)
        provider_events_recorded.send(
            sender=ProviderEvent, workspace_id=provider.workspace_id,
            provider_message_ids=sorted({r.provider_message_id for r in rows} - {""}),
        )  # fmt: skip
        for source, addresses in suppressed.items():
            dnc_add_many(
                workspace=provider.workspace_id, channel=provider.channel, addresses=addresses,
                source=source, reason=f"Reported by the {provider.get_kind_display()} provider",
                actor=WEBHOOK_ACTOR,
            )  # fmt: skip
    return added


def _claim_inbound(provider: Provider, event_id: str, address: str, reason: str) -> bool:
    """Record an inbound message's provider event; False when it was recorded before (a
    retried webhook: its person event and keywords were handled then)."""
    if not event_id:
        ProviderEvent.objects.create(
            workspace_id=provider.workspace_id, provider=provider, channel=provider.channel,
            kind=ProviderEventKind.INBOUND, address=address, occurred_at=timezone.now(),
            reason=reason,
        )  # fmt: skip
        return True
    _, created = ProviderEvent.objects.get_or_create(
        workspace_id=provider.workspace_id, channel=provider.channel, event_id=event_id[:255],
        defaults={"provider": provider, "kind": ProviderEventKind.INBOUND, "address": address,
                  "occurred_at": timezone.now(), "reason": reason},
    )  # fmt: skip
    return created


def _inbound_person_events(provider, channel, address, name, properties) -> int:
    external_ids = external_ids_with_address(
        workspace=provider.workspace_id, channel=channel, address=address
    )
    if not external_ids:
        return 0
    result = event_ingest_batch(
        workspace=provider.workspace,
        items=[{"person": e, "name": name, "properties": properties} for e in external_ids],
        actor=WEBHOOK_ACTOR,
    )
    return result.accepted


def sms_keyword(body: str) -> str:
    """The opt-out / opt-in keyword a whole message is ("stop.", " Stop " -> "STOP"),
    or "" when it is a message like any other."""
    word = body.strip().strip(".!").strip().upper()
    return word if word in SMS_STOP_WORDS | SMS_START_WORDS else ""


@transaction.atomic
def sms_inbound(
    *, provider: Provider, sender: str, recipient: str, body: str, message_sid: str
) -> dict:
    """An SMS someone sent to the workspace's number: the event "SMS Received" on each
    person with that number (so flows can branch on replies); STOP and its synonyms put
    the number on Do Not Contact for SMS, START / UNSTOP take it off. Idempotent per
    message sid. Answers what was done."""
    try:
        address = normalize_address("sms", sender)
    except InvalidAddress:
        address = ""
    keyword = sms_keyword(body)
    done = {"people": 0, "keyword": keyword, "repeated": False}
    if not _claim_inbound(provider, message_sid, address or sender[:512], keyword):
        done["repeated"] = True
        return done
    if not address:
        return done
    done["people"] = _inbound_person_events(
        provider, "sms", address, SMS_RECEIVED,
        {"body": body[:INBOUND_BODY_MAX], "from": address, "to": recipient,
         "message_sid": message_sid, "keyword": keyword},
    )  # fmt: skip
    if keyword in SMS_STOP_WORDS:
        dnc_add_many(
            workspace=provider.workspace_id, channel="sms", addresses=[address],
            source=DncSource.UNSUBSCRIBE, reason=f"Replied {keyword}", actor=WEBHOOK_ACTOR,
        )  # fmt: skip
    elif keyword in SMS_START_WORDS:
        # the person's own opt-in lifts any block of the number, as Twilio's does
        for entry in DoNotContact.objects.for_workspace(provider.workspace_id).filter(
            channel="sms", address=address
        ):
            audit_record(
                workspace=provider.workspace_id, actor=WEBHOOK_ACTOR, action="dnc.remove",
                obj=entry, summary={"channel": "sms", "keyword": keyword},
            )  # fmt: skip
            entry.delete()
    return done


@transaction.atomic
def email_inbound(
    *, provider: Provider, sender: str, subject: str, text: str, message_id: str, to: str = ""
) -> int:
    """An email someone sent to the workspace's inbound address: the event "Email
    Received" (subject, body) on each person with that address. Idempotent per message
    id. The number of people it was recorded on."""
    try:
        address = normalize_address("email", sender)
    except InvalidAddress:
        address = ""
    if not _claim_inbound(provider, message_id, address or sender[:512], ""):
        return 0
    if not address:
        return 0
    return _inbound_person_events(
        provider, "email", address, EMAIL_RECEIVED,
        {"subject": subject[:998], "body": text[:INBOUND_BODY_MAX], "from": address, "to": to,
         "message_id": message_id},
    )  # fmt: skip


def suppressions_apply(*, workspace, channel: str, addresses, reason: str = "") -> int:
    """What a send's `suppress` outcomes mean, set-based: an email address or a phone
    number goes on Do Not Contact (source bounce); a push token is dead (the app was
    removed, the subscription expired), so it is deleted. The number of addresses."""
    addresses = {a for a in addresses if a}
    if not addresses:
        return 0
    if channel == "push":
        deleted, _ = PushToken.objects.for_workspace(workspace).filter(token__in=addresses).delete()
        return deleted
    return dnc_add_many(
        workspace=workspace, channel=channel, addresses=addresses, source=DncSource.BOUNCE,
        reason=reason or "The provider reported the address dead", actor=WEBHOOK_ACTOR,
    )  # fmt: skip
