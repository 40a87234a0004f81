"""Email through an email service provider's HTTP API (Mailgun, Postmark, SendGrid,
SparkPost, Brevo, Mailjet) with django-anymail: Anymail's backend of the ESP, built with
the workspace's own credentials (never from the installation's settings), one HTTP
session per batch, every answer classified. The same ESPs' tracking and inbound webhooks
are read with Anymail's views (channels.webhooks)."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from email.utils import formataddr
from urllib.parse import urlsplit

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailRecipientsRefused,
)
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives
from django.utils.module_loading import import_string

from channels.transports.base import (
    PERMANENT,
    SUPPRESS,
    TEMPORARY,
    OutboundMessage,
    Outcome,
    SendResult,
    Transport,
    TransportError,
)
from channels.transports.guard import BlockedHost, private_allowed, resolve


@dataclass(frozen=True)
class Esp:
    """What Herald needs of one ESP: its Anymail backend and webhook views, and how the
    provider's settings and secrets map onto Anymail's keyword arguments."""

    label: str
    module: str  # anymail.backends.<module> / anymail.webhooks.<module>
    views: str  # the webhook view classes' prefix (MailgunTrackingWebhookView...)
    settings: tuple[str, ...] = ()  # ESP settings besides from_email, from_name, api_url
    secrets: tuple[str, ...] = ("api_key",)
    required_secrets: tuple[str, ...] = ("api_key",)
    # provider secret name -> Anymail keyword (Postmark calls its key a server token)
    renamed: dict[str, str] = field(default_factory=dict)
    # the secrets the webhook views check signatures with (besides basic auth)
    webhook_secrets: tuple[str, ...] = ()

    def backend(self):
        return import_string(f"anymail.backends.{self.module}.EmailBackend")

    def webhook_view(self, direction: str):
        suffix = "TrackingWebhookView" if direction == "tracking" else "InboundWebhookView"
        return import_string(f"anymail.webhooks.{self.module}.{self.views}{suffix}")

    def kwargs(self, settings: dict, secrets: dict) -> dict:
        """Anymail's keyword arguments for the backend."""
        values = {k: settings[k] for k in (*self.settings, "api_url") if settings.get(k)}
        for name in self.secrets:
            if secrets.get(name) and name not in self.webhook_secrets:
                values[self.renamed.get(name, name)] = secrets[name]
        return values


ESPS = {
    "mailgun": Esp(
        "Mailgun",
        "mailgun",
        "Mailgun",
        settings=("sender_domain",),
        secrets=("api_key", "webhook_signing_key"),
        required_secrets=("api_key", "webhook_signing_key"),
        webhook_secrets=("webhook_signing_key",),
    ),  # fmt: skip
    "postmark": Esp(
        "Postmark",
        "postmark",
        "Postmark",
        settings=("message_stream",),
        renamed={"api_key": "server_token"},
    ),  # fmt: skip
    "sendgrid": Esp("SendGrid", "sendgrid", "SendGrid"),
    "sparkpost": Esp("SparkPost", "sparkpost", "SparkPost", settings=("subaccount",)),
    "brevo": Esp("Brevo", "brevo", "Brevo"),
    "mailjet": Esp(
        "Mailjet",
        "mailjet",
        "Mailjet",
        secrets=("api_key", "secret_key"),
        required_secrets=("api_key", "secret_key"),
    ),  # fmt: skip
}


def classify_anymail(error: AnymailError) -> TransportError:
    """An Anymail failure as a TransportError: refused recipients are suppress (the ESP
    keeps them on its own suppression list: a bounce or complaint there); no answer, 429
    and 5xx temporary; 401/403 permanent (the key); other API errors permanent."""
    if isinstance(error, AnymailRecipientsRefused):
        return TransportError(SUPPRESS, f"The ESP refused the address: {error}")
    if isinstance(error, AnymailAPIError):
        status = error.status_code
        said = str(error).splitlines()[0] if str(error) else "no details"
        if status is None or status == 429 or status >= 500:
            return TransportError(TEMPORARY, f"The ESP did not take the message: {said}",
                                  code=status)  # fmt: skip
        if status in (401, 403):
            return TransportError(
                PERMANENT, f"The ESP refused the credentials ({status}): check the API key. "
                f"{said}", code=status,
            )  # fmt: skip
        return TransportError(PERMANENT, f"The ESP refused the message ({status}): {said}",
                              code=status)  # fmt: skip
    return TransportError(PERMANENT, f"The message cannot be sent through the ESP: {error}")


class EspTransport(Transport):
    channel = "email"

    def __init__(
        self,
        *,
        esp: str,
        from_email: str,
        from_name: str = "",
        settings: dict | None = None,
        secrets: dict | None = None,
        timeout: float = 20,
        allow_private: bool | None = None,
    ):
        if esp not in ESPS:
            raise ValueError(f"unknown ESP {esp!r}")
        self.esp = ESPS[esp]
        self.from_email = from_email
        self.from_name = from_name
        settings = settings or {}
        self._api_url = settings.get("api_url", "")
        self._allow_private = private_allowed(allow_private)
        self._backend = self.esp.backend()(
            fail_silently=False, timeout=timeout, **self.esp.kwargs(settings, secrets or {})
        )

    def close(self) -> None:
        self._backend.close()

    def _check_api_url(self) -> TransportError | None:
        """The one host a workspace may choose (api_url, for EU regions and gateways) is
        checked before the batch: Anymail's requests session has no connect-time hook,
        and the ESPs' own API hosts are public names Herald does not need to check."""
        if not self._api_url:
            return None
        parts = urlsplit(self._api_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            resolve(parts.hostname or "", port, allow_private=self._allow_private)
        except BlockedHost as e:
            return TransportError(PERMANENT, str(e))
        return None

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        refused = self._check_api_url()
        if refused:
            return [refused for _ in messages]
        try:
            self._backend.open()
        except (AnymailError, ImproperlyConfigured) as e:
            failed = TransportError(PERMANENT, f"The ESP account is not usable: {e}")
            return [failed for _ in messages]
        return [self._send_one(m) for m in messages]

    def _send_one(self, message: OutboundMessage) -> Outcome:
        email = EmailMultiAlternatives(
            subject=message.subject,
            body=message.text,
            from_email=formataddr((message.from_name or self.from_name, self.from_email)),
            to=[message.address],
            reply_to=[message.reply_to] if message.reply_to else None,
            headers=dict(message.headers),
            connection=self._backend,
        )
        if message.html:
            email.attach_alternative(message.html, "text/html")
        if message.reference:  # echoed in the ESP's webhooks with the event
            email.metadata = {"herald_ref": message.reference}
        # Herald rewrites links and adds its own pixel (campaigns): the ESP's would count twice
        email.track_clicks = False
        email.track_opens = False
        try:
            self._backend.send_messages([email])
        except AnymailError as e:
            return classify_anymail(e)
        except (OSError, ValueError, TypeError) as e:  # a broken answer Anymail passed on
            return TransportError(TEMPORARY, f"The ESP answered something unreadable: {e}")
        status = email.anymail_status
        recipient = status.recipients.get(message.address.lower()) or next(
            iter(status.recipients.values()), None
        )
        message_id = (recipient.message_id if recipient else None) or status.message_id
        said = recipient.status if recipient else ", ".join(sorted(status.status or ()))
        return SendResult(provider_message_id=str(message_id or ""), detail=str(said or ""))
