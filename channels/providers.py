"""Provider accounts per workspace and channel: what each kind needs (checked field by
field, so a form or the API can name the bad one), and get_transport, the one way
campaigns and flows reach a provider."""

import re
from dataclasses import dataclass
from secrets import token_urlsafe

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.urls import reverse

from channels.models import Provider, ProviderKind
from channels.push_specs import PUSH_FIELDS, clean_apns, clean_fcm, clean_webpush
from channels.ratelimit import Throttled, bucket_key, default_burst
from channels.secrets import unseal
from channels.selectors import find_provider
from channels.transports.base import Transport
from channels.transports.email import SECURITY, SmtpTransport
from channels.transports.esp import ESPS, EspTransport
from channels.transports.push_apns import ApnsTransport
from channels.transports.push_fcm import FCM_API, FcmTransport
from channels.transports.push_webpush import WebPushTransport
from channels.transports.sandbox import SandboxTransport
from channels.transports.sms import TWILIO_API, TwilioTransport

SENDING_CHANNELS = ("email", "sms", "push")
KINDS_BY_CHANNEL = {
    "email": (ProviderKind.SMTP, ProviderKind.ANYMAIL, ProviderKind.SANDBOX),
    "sms": (ProviderKind.TWILIO, ProviderKind.SANDBOX),
    "push": (ProviderKind.FCM, ProviderKind.APNS, ProviderKind.WEBPUSH, ProviderKind.SANDBOX),
    # Meta sends nothing: its account is where channel audiences are exported to
    "meta": (ProviderKind.META,),
}
# which push services reach which platform (FCM delivers to Android, to iOS through APNs,
# and to browsers); "" is one account for every platform
KINDS_BY_PLATFORM = {
    "ios": (ProviderKind.APNS, ProviderKind.FCM, ProviderKind.SANDBOX),
    "android": (ProviderKind.FCM, ProviderKind.SANDBOX),
    "web": (ProviderKind.WEBPUSH, ProviderKind.FCM, ProviderKind.SANDBOX),
    "": (ProviderKind.FCM, ProviderKind.SANDBOX),
}
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True)
class Spec:
    settings: tuple[str, ...]
    secrets: tuple[str, ...]


SPECS = {
    ProviderKind.SMTP: Spec(
        (
            "host",
            "port",
            "username",
            "security",
            "from_email",
            "from_name",
            "dkim_domain",
            "dkim_selector",
        ),
        ("password", "dkim_private_key"),
    ),  # fmt: skip
    ProviderKind.ANYMAIL: Spec(
        (
            "esp",
            "from_email",
            "from_name",
            "api_url",
            "sender_domain",
            "message_stream",
            "subaccount",
        ),
        ("api_key", "secret_key", "webhook_signing_key", "webhook_secret"),
    ),  # fmt: skip
    ProviderKind.TWILIO: Spec(
        ("account_sid", "from", "messaging_service_sid", "base_url"), ("auth_token",)
    ),
    **{ProviderKind(kind): Spec(*fields) for kind, fields in PUSH_FIELDS.items()},
    ProviderKind.META: Spec(("ad_account_id", "base_url"), ("access_token",)),
    ProviderKind.SANDBOX: Spec((), ()),
}
_PUSH_CLEANERS = {
    ProviderKind.FCM: clean_fcm,
    ProviderKind.APNS: clean_apns,
    ProviderKind.WEBPUSH: clean_webpush,
}


class NoProvider(Exception):
    """The workspace has no provider for the channel: nothing can be sent on it."""


def clean_provider(
    *, channel: str, kind: str, settings: dict, secrets: dict, platform: str = ""
) -> tuple[dict, dict]:
    """(settings, secrets) of a provider of `kind` on `channel` (push: for `platform`),
    normalized; raises ValidationError naming each bad field. `secrets` are all the
    secrets (the stored ones merged with the new ones by the caller)."""
    if channel not in KINDS_BY_CHANNEL:
        raise ValidationError({"channel": f"“{channel}” is not a channel that sends messages."})
    if kind not in KINDS_BY_CHANNEL[channel]:
        kinds = ", ".join(KINDS_BY_CHANNEL[channel])
        raise ValidationError({"kind": f"A {channel} provider is one of: {kinds}."})
    if channel == "push" and kind not in KINDS_BY_PLATFORM.get(platform, ()):
        kinds = ", ".join(KINDS_BY_PLATFORM.get(platform, ()))
        where = f"the {platform} platform" if platform else "every platform at once"
        raise ValidationError({"kind": f"A push provider for {where} is one of: {kinds}."})
    spec = SPECS[ProviderKind(kind)]
    settings = dict(settings)
    limits, errors = _clean_rate(settings.pop("rate_per_second", None), settings.pop("burst", None))
    for name in set(settings) - set(spec.settings):
        errors[name] = f"“{name}” is not a setting of a {kind} provider."
    for name in set(secrets) - set(spec.secrets):
        errors[name] = f"“{name}” is not a secret of a {kind} provider."
    values = {k: (v.strip() if isinstance(v, str) else v) for k, v in settings.items()}
    secret_values = {k: v for k, v in secrets.items() if isinstance(v, str) and v}
    if kind == ProviderKind.SMTP:
        values, more = _clean_smtp(values, secret_values)
        errors |= more
    elif kind == ProviderKind.ANYMAIL:
        values, more = _clean_anymail(values, secret_values)
        errors |= more
    elif kind == ProviderKind.TWILIO:
        values, more = _clean_twilio(values, secret_values)
        errors |= more
    elif kind == ProviderKind.META:
        values, more = _clean_meta(values, secret_values)
        errors |= more
    elif kind in _PUSH_CLEANERS:
        values, more = _PUSH_CLEANERS[ProviderKind(kind)](values, secret_values)
        errors |= more
    if errors:
        raise ValidationError(errors)
    return values | limits, secret_values


def _number(value):
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool):
        return None
    return value if isinstance(value, int | float) else None


def _clean_rate(rate, burst) -> tuple[dict, dict]:
    """The account's rate limit, common to every kind: rate_per_second (messages a second,
    shared by all workers; none: as fast as the provider takes them) and burst (messages
    at once after a pause; default one second's worth)."""
    if rate in (None, ""):
        if burst not in (None, ""):
            return {}, {"burst": "A burst needs a rate per second."}
        return {}, {}
    rate = _number(rate)
    if rate is None or not 0 < rate <= 100_000:
        return {}, {"rate_per_second": "The rate is a number of messages a second (e.g. 10)."}
    if burst in (None, ""):
        return {"rate_per_second": rate, "burst": default_burst(rate)}, {}
    burst = _number(burst)
    if burst is None or burst != int(burst) or not 1 <= burst <= 100_000:
        return {}, {"burst": "The burst is a whole number of messages, at least 1."}
    return {"rate_per_second": rate, "burst": int(burst)}, {}


def _clean_smtp(values: dict, secrets: dict) -> tuple[dict, dict]:
    errors = {}
    host = str(values.get("host") or "")
    if not host or not _HOST.match(host):
        errors["host"] = "Give the SMTP server's host name (e.g. smtp.example.com)."
    security = values.get("security") or "starttls"
    if security not in SECURITY:
        errors["security"] = "Security is starttls, ssl or none."
    port = values.get("port") or {"ssl": 465, "starttls": 587}.get(security, 25)
    if isinstance(port, str) and port.isdigit():
        port = int(port)
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        errors["port"] = "The port is a number from 1 to 65535 (587 for STARTTLS, 465 for SSL)."
    from_email = str(values.get("from_email") or "")
    try:
        validate_email(from_email)
    except ValidationError:
        errors["from_email"] = "Give the address messages come from (news@example.com)."
    dkim = [bool(values.get("dkim_domain")), bool(values.get("dkim_selector")),
            bool(secrets.get("dkim_private_key"))]  # fmt: skip
    if any(dkim) and not all(dkim):
        errors["dkim_domain"] = "DKIM needs a domain, a selector and a private key, or none."
    if secrets.get("dkim_private_key"):
        try:
            load_pem_private_key(secrets["dkim_private_key"].encode(), password=None)
        except (ValueError, TypeError):
            errors["dkim_private_key"] = "The DKIM key is not a PEM private key without password."
    cleaned = {"host": host, "port": port, "security": security, "from_email": from_email}
    for optional in ("username", "from_name", "dkim_domain", "dkim_selector"):
        if values.get(optional):
            cleaned[optional] = str(values[optional])
    return cleaned, errors


def _clean_anymail(values: dict, secrets: dict) -> tuple[dict, dict]:
    errors = {}
    esp = str(values.get("esp") or "")
    if esp not in ESPS:
        names = ", ".join(sorted(ESPS))
        return {}, {"esp": f"Choose the email service: one of {names}."}
    spec = ESPS[esp]
    for name in set(values) - {"esp", "from_email", "from_name", "api_url", *spec.settings}:
        errors[name] = f"“{name}” is not a setting of {spec.label}."
    for name in set(secrets) - {*spec.secrets, "webhook_secret"}:
        errors[name] = f"“{name}” is not a secret of {spec.label}."
    for name in spec.required_secrets:
        if not secrets.get(name):
            errors[name] = f"Give the {spec.label} account's {name.replace('_', ' ')}."
    from_email = str(values.get("from_email") or "")
    try:
        validate_email(from_email)
    except ValidationError:
        errors["from_email"] = "Give the address messages come from (news@example.com)."
    if esp == "mailgun" and not values.get("sender_domain") and "@" in from_email:
        values["sender_domain"] = from_email.rpartition("@")[2]
    if values.get("api_url"):
        try:
            URLValidator(schemes=["https", "http"])(str(values["api_url"]))
        except ValidationError:
            errors["api_url"] = "The API address is a URL (https://api.eu.mailgun.net/v3)."
    if not secrets.get("webhook_secret"):  # the basic auth of its webhook URLs
        secrets["webhook_secret"] = token_urlsafe(24)
    cleaned = {"esp": esp, "from_email": from_email}
    for optional in ("from_name", "api_url", *spec.settings):
        if values.get(optional):
            cleaned[optional] = str(values[optional])
    return cleaned, errors


def _clean_meta(values: dict, secrets: dict) -> tuple[dict, dict]:
    errors = {}
    account = str(values.get("ad_account_id") or "").removeprefix("act_")
    if not account.isdigit():
        errors["ad_account_id"] = "The ad account id is a number (act_1234567890 or 1234567890)."
    if not secrets.get("access_token"):
        errors["access_token"] = "Give a system user's access token with ads_management."
    cleaned = {"ad_account_id": account}
    if values.get("base_url"):
        try:
            URLValidator(schemes=["https", "http"])(str(values["base_url"]))
        except ValidationError:
            errors["base_url"] = "The Graph API address is a URL (https://graph.facebook.com)."
        cleaned["base_url"] = str(values["base_url"]).rstrip("/")
    return cleaned, errors


def _clean_twilio(values: dict, secrets: dict) -> tuple[dict, dict]:
    errors = {}
    sid = str(values.get("account_sid") or "")
    if not re.fullmatch(r"AC[0-9a-fA-F]{32}", sid):
        errors["account_sid"] = "The Account SID is AC followed by 32 hexadecimal characters."
    sender, service = str(values.get("from") or ""), str(values.get("messaging_service_sid") or "")
    if not sender and not service:
        errors["from"] = "Give a From number (+14155550100) or a Messaging Service SID."
    elif sender and not _E164.match(sender):
        errors["from"] = "The From number is in international form: + and 7 to 15 digits."
    if service and not re.fullmatch(r"MG[0-9a-fA-F]{32}", service):
        errors["messaging_service_sid"] = "A Messaging Service SID is MG and 32 hex characters."
    base_url = str(values.get("base_url") or TWILIO_API)
    try:
        URLValidator(schemes=["https", "http"])(base_url)
    except ValidationError:
        errors["base_url"] = "The API address is a URL (https://api.twilio.com)."
    if not secrets.get("auth_token"):
        errors["auth_token"] = "Give the account's auth token."
    cleaned = {"account_sid": sid, "base_url": base_url}
    if sender:
        cleaned["from"] = sender
    if service:
        cleaned["messaging_service_sid"] = service
    return cleaned, errors


def public_url(name: str, hook_id: str) -> str:
    """The absolute URL of a webhook of Herald's, for a provider to call back: "" when the
    installation has no PUBLIC_BASE_URL (then no callback is asked for)."""
    base = django_settings.PUBLIC_BASE_URL
    return f"{base}{reverse(name, args=[hook_id])}" if base else ""


def webhook_urls(provider: Provider, base_url: str) -> dict[str, str]:
    """The URLs to paste into the provider's dashboard, by purpose. Email webhooks carry
    their basic auth (Anymail's protection for ESPs that sign nothing) in the URL."""
    base = base_url.rstrip("/")
    if provider.kind == ProviderKind.TWILIO:
        return {
            "status callback": f"{base}{reverse('twilio_status', args=[provider.hook_id])}",
            "incoming messages": f"{base}{reverse('twilio_inbound', args=[provider.hook_id])}",
        }
    if provider.kind == ProviderKind.ANYMAIL:
        secret = unseal(provider.secrets).get("webhook_secret", "")
        scheme, _, host = base.partition("://")
        return {
            purpose: f"{scheme}://herald:{secret}@{host}"
            f"{reverse(f'esp_{direction}', args=[provider.hook_id])}"
            for purpose, direction in (("tracking", "tracking"), ("inbound", "inbound"))
        }
    return {}


def transport_for(provider: Provider) -> Transport:
    """The transport of a stored provider account (its secrets decrypted), throttled by
    its rate limit when it has one (channels.ratelimit)."""
    transport = _transport(provider)
    rate = provider.settings.get("rate_per_second")
    if rate:
        burst = provider.settings.get("burst") or default_burst(rate)
        return Throttled(transport, key=bucket_key(provider.pk), rate=rate, burst=burst)
    return transport


def _transport(provider: Provider) -> Transport:
    settings, secrets = provider.settings, unseal(provider.secrets)
    match provider.kind:
        case ProviderKind.SMTP:
            return SmtpTransport(
                host=settings["host"], port=settings["port"], security=settings["security"],
                from_email=settings["from_email"], from_name=settings.get("from_name", ""),
                username=settings.get("username", ""), password=secrets.get("password", ""),
                dkim_domain=settings.get("dkim_domain", ""),
                dkim_selector=settings.get("dkim_selector", ""),
                dkim_private_key=secrets.get("dkim_private_key", ""),
            )  # fmt: skip
        case ProviderKind.ANYMAIL:
            return EspTransport(
                esp=settings["esp"], from_email=settings["from_email"],
                from_name=settings.get("from_name", ""), settings=settings, secrets=secrets,
            )  # fmt: skip
        case ProviderKind.TWILIO:
            return TwilioTransport(
                account_sid=settings["account_sid"], auth_token=secrets["auth_token"],
                from_number=settings.get("from", ""),
                messaging_service_sid=settings.get("messaging_service_sid", ""),
                base_url=settings.get("base_url", TWILIO_API),
                status_callback=public_url("twilio_status", provider.hook_id),
            )  # fmt: skip
        case ProviderKind.FCM:
            return FcmTransport(
                project_id=settings["project_id"],
                service_account_json=secrets["service_account_json"],
                base_url=settings.get("base_url", FCM_API),
                token_url=settings.get("token_url", ""),
            )
        case ProviderKind.APNS:
            return ApnsTransport(
                team_id=settings["team_id"], key_id=settings["key_id"], topic=settings["topic"],
                p8_key=secrets["p8_key"], environment=settings["environment"],
                base_url=settings.get("base_url", ""),
            )  # fmt: skip
        case ProviderKind.WEBPUSH:
            return WebPushTransport(
                vapid_subject=settings["vapid_subject"],
                vapid_private_key=secrets["vapid_private_key"],
            )
        case ProviderKind.SANDBOX:
            return SandboxTransport(workspace=provider.workspace, channel=provider.channel)
        case _:  # Meta: audiences are exported to it (channels.export_services), no messages
            raise NoProvider(f"A {provider.get_kind_display()} account sends no messages.")


def get_transport(channel: str, workspace, *, platform: str = "") -> Transport:
    """The transport of the workspace's provider for `channel` (push: `platform`); raises
    NoProvider when none is set up: a channel without a provider sends nothing, rather
    than pretending to."""
    provider = find_provider(workspace=workspace, channel=channel, platform=platform)
    if provider is None:
        raise NoProvider(
            f"No {channel} provider is set up for this workspace: choose one in Settings → "
            "Channels (the Sandbox records messages without sending them)."
        )
    return transport_for(provider)
