"""Unsubscribe (shared/API.md "Tracking, unsubscribe"): the signed token of a delivery,
the List-Unsubscribe headers every marketing email carries, the SMS opt-out line, and the
unsubscribe itself (the delivery's address onto Do Not Contact for its channel).

The token is `<workspace>-<delivery>` (base 62) signed with django.core.signing under its
own salt: unguessable, never expiring (an unsubscribe link must keep working), checked
against SECRET_KEY and SECRET_KEY_FALLBACKS (a key rotation keeps old links working).

Settings read here:
- PUBLIC_BASE_URL: where the links point (https://herald.example.com). Without it, the
  demo's own address in development (DEBUG: http://127.0.0.1:HERALD_PORT, as `make run`
  serves), else https:// and the first concrete host of ALLOWED_HOSTS.
- UNSUBSCRIBE_MAILTO (empty by default): a mailbox that takes unsubscribe requests by
  email; when set, List-Unsubscribe also offers `mailto:` it, with the token in the
  subject, so whoever reads the mailbox can act on it."""

from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from campaigns.models import Delivery
from campaigns.tokens import b62, from_b62
from people.models import DncSource
from people.normalize import InvalidAddress
from people.services.dnc import dnc_add

SALT = "herald.campaigns.unsubscribe"
TOKEN_MAX = 120  # characters; a real token is about 50: anything longer is refused unread
ONE_CLICK = "List-Unsubscribe=One-Click"  # RFC 8058's POST body and header value


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, sep=".")


def make_token(workspace_id: int, delivery_id: int) -> str:
    return _signer().sign(f"{b62(workspace_id)}-{b62(delivery_id)}")


def read_token(token: str) -> tuple[int, int] | None:
    """(workspace id, delivery id) of a token signed here; None for anything else (forged,
    truncated, tampered, too long, not text of ours)."""
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        return None
    try:
        value = _signer().unsign(token)
        workspace, _, delivery = value.partition("-")
        return from_b62(workspace), from_b62(delivery)
    except (signing.BadSignature, ValueError):
        return None


def delivery_for_token(token: str) -> Delivery | None:
    """The delivery a token names, with its campaign and workspace; None when the token is
    not valid or the delivery is gone."""
    ids = read_token(token)
    if ids is None:
        return None
    workspace_id, delivery_id = ids
    return (
        Delivery.objects.for_workspace(workspace_id)
        .select_related("campaign", "workspace", "person")
        .filter(pk=delivery_id)
        .first()
    )


def public_base_url() -> str:
    """The absolute address of Herald for links in messages (see the module's doc)."""
    if settings.PUBLIC_BASE_URL:
        return settings.PUBLIC_BASE_URL.rstrip("/")
    if settings.DEBUG:
        return f"http://127.0.0.1:{getattr(settings, 'HERALD_PORT', 8000)}"
    hosts = [h.lstrip(".") for h in settings.ALLOWED_HOSTS if "*" not in h and h.strip(".")]
    return f"https://{hosts[0] if hosts else 'localhost'}"


def unsubscribe_url(workspace_id: int, delivery_id: int) -> str:
    return f"{public_base_url()}/u/{make_token(workspace_id, delivery_id)}"


def email_headers(campaign, delivery_id: int, address: str) -> dict[str, str]:
    """The headers a marketing email of this delivery carries: List-Unsubscribe (the
    one-click HTTPS URL, and a mailto: when UNSUBSCRIBE_MAILTO is set) and
    List-Unsubscribe-Post (RFC 8058)."""
    token = make_token(campaign.workspace_id, delivery_id)
    links = [f"<{public_base_url()}/u/{token}>"]
    mailbox = getattr(settings, "UNSUBSCRIBE_MAILTO", "")
    if mailbox:
        links.append(f"<mailto:{mailbox}?subject={quote(f'unsubscribe {token}')}>")
    return {"List-Unsubscribe": ", ".join(links), "List-Unsubscribe-Post": ONE_CLICK}


def sms_body(campaign, body: str) -> str:
    """The SMS body as sent: with the workspace's opt-out line on its own last line when
    it has one, unless the body already ends with it (any case)."""
    line = (campaign.workspace.sms_opt_out_line or "").strip()
    if not line:
        return body
    text = body.rstrip()
    if text.casefold().endswith(line.casefold()):
        return body
    return f"{text}\n{line}" if text else line


# --- the unsubscribe -----------------------------------------------------------------


class NothingToUnsubscribe(ValueError):
    """The delivery has no address that could go on Do Not Contact."""


@dataclass(frozen=True)
class Unsubscribed:
    channel: str
    address: str
    added: bool  # the address was not on Do Not Contact before
    first: bool  # this delivery had not been unsubscribed through before


def delivery_address(delivery: Delivery) -> str:
    """The address the message went to; for a delivery that has none recorded, the
    person's current one on the channel."""
    if delivery.address:
        return delivery.address
    column = {"email": "email", "sms": "phone"}.get(delivery.campaign.channel)
    return getattr(delivery.person, column, "") if column else ""


def delivery_unsubscribe(
    *, delivery: Delivery, actor: Actor, one_click: bool = False, now=None
) -> Unsubscribed:
    """Put the delivery's address on Do Not Contact for the campaign's channel (source
    "unsubscribe"), at once, and mark the delivery unsubscribed (once: the first time
    stays). Idempotent: a second call changes nothing. Raises NothingToUnsubscribe.
    audit: "dnc.unsubscribe" (delivery, campaign, channel; no address) when it changed
    anything, besides dnc_add's "dnc.add"."""
    now = now or timezone.now()
    campaign = delivery.campaign
    channel = campaign.channel
    address = delivery_address(delivery)
    if not address:
        raise NothingToUnsubscribe("This message has no address to unsubscribe.")
    with transaction.atomic():
        try:
            entry, added = dnc_add(
                workspace=delivery.workspace, channel=channel, address=address,
                reason=f"Unsubscribe link in “{campaign.name}”", actor=actor,
                source=DncSource.UNSUBSCRIBE,
            )  # fmt: skip
        except InvalidAddress as e:
            raise NothingToUnsubscribe(str(e)) from None
        first = bool(
            Delivery.objects.for_workspace(delivery.workspace_id)
            .filter(pk=delivery.pk, unsubscribed_at__isnull=True)
            .update(unsubscribed_at=now)
        )
        if added or first:
            audit_record(
                workspace=delivery.workspace_id, actor=actor, action="dnc.unsubscribe",
                obj=delivery, summary={"campaign": campaign.pk, "channel": channel,
                                       "dnc": entry.pk, "added": added,
                                       "one_click": one_click},
            )  # fmt: skip
    if first:
        delivery.unsubscribed_at = now
    return Unsubscribed(channel=channel, address=entry.address, added=added, first=first)


def masked(address: str, channel: str) -> str:
    """An address as the unsubscribe page shows it to whoever holds the link:
    a•••@example.com, +44•••••••56."""
    if channel == "email" and "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}•••@{domain}"
    if channel == "sms" and len(address) > 4:
        return f"{address[:3]}{'•' * (len(address) - 5)}{address[-2:]}"
    return "this device" if channel == "push" else "•••"
