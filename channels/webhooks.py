"""Providers calling Herald back (public, no API key; shared/API.md "Tracking, unsubscribe,
provider webhooks"). Each URL names the provider account by its hook id, so a callback
finds its workspace and the secret its signature is checked with:

- /hooks/email/<hook>/tracking/ and /inbound/: the ESP's own webhook format, read and
  verified by django-anymail's view of that ESP (basic auth, plus the ESP's signature
  where it signs: Mailgun's webhook signing key...), built per account with its secrets.
- /hooks/twilio/status/<hook>/ and /inbound/<hook>/: Twilio's form posts, the
  X-Twilio-Signature checked with the account's auth token (twilio's RequestValidator).

A bad signature answers 403 and changes nothing; a body that is not what the provider
sends answers 400 saying so; an unknown hook 404."""

import logging

from anymail.exceptions import AnymailError, AnymailWebhookValidationFailure
from anymail.signals import AnymailInboundEvent, AnymailTrackingEvent
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, JsonResponse
from django.utils.datastructures import MultiValueDictKeyError
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods
from twilio.request_validator import RequestValidator

from channels import selectors, services
from channels.models import ProviderEventKind, ProviderKind
from channels.secrets import SecretsUnreadable, unseal
from channels.services import Reported
from channels.transports.esp import ESPS

log = logging.getLogger(__name__)

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
# Twilio's message statuses -> provider event kinds
# https://www.twilio.com/docs/messaging/api/message-resource#message-status-values
TWILIO_STATUS = {
    "accepted": ProviderEventKind.QUEUED,
    "scheduled": ProviderEventKind.QUEUED,
    "queued": ProviderEventKind.QUEUED,
    "sending": ProviderEventKind.QUEUED,
    "sent": ProviderEventKind.SENT,
    "delivered": ProviderEventKind.DELIVERED,
    "read": ProviderEventKind.OPENED,
    "undelivered": ProviderEventKind.FAILED,
    "failed": ProviderEventKind.FAILED,
    "canceled": ProviderEventKind.FAILED,
}
# error codes of a dead number (30005 unknown destination, 30006 landline or unreachable
# carrier) and of a recipient who opted out (21610): the number goes on Do Not Contact
TWILIO_DEAD_NUMBER = {"30005", "30006"}
TWILIO_OPTED_OUT = {"21610"}


def _error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def _unknown_hook() -> JsonResponse:
    return _error(404, "No provider account has this webhook address (was it replaced?).")


# --- email: Anymail ------------------------------------------------------------------


def _reported(event: AnymailTrackingEvent) -> Reported:
    reason = " ".join(x for x in (event.description, event.mta_response) if x)
    kind = event.event_type if event.event_type in ProviderEventKind.values else "unknown"
    return Reported(
        kind=kind,
        provider_message_id=str(event.message_id or ""),
        event_id=str(event.event_id or ""),
        address=str(event.recipient or ""),
        occurred_at=event.timestamp,
        reason=reason or str(event.reject_reason or ""),
        # the ESP refused to send because of its own suppression list
        suppress=event.event_type == "rejected" and event.reject_reason in ("bounced", "spam"),
    )


@csrf_exempt
@require_http_methods(["POST", "HEAD"])
def esp_webhook(request, hook_id: str, direction: str):
    provider = selectors.provider_by_hook(hook_id=hook_id, kind=ProviderKind.ANYMAIL)
    if provider is None or provider.settings.get("esp") not in ESPS:
        return _unknown_hook()
    if request.method == "HEAD":  # some ESPs check the URL answers before saving it
        return HttpResponse()
    esp = ESPS[provider.settings["esp"]]
    try:
        secrets = unseal(provider.secrets)
    except SecretsUnreadable:
        log.error("esp webhook %s: the provider's secrets cannot be decrypted", provider.pk)
        return _error(503, "This account's secrets cannot be read: set them again.")
    options = {"webhook_secret": f"herald:{secrets.get('webhook_secret', '')}"}
    options |= {name: secrets[name] for name in esp.webhook_secrets if secrets.get(name)}
    options |= esp.kwargs(provider.settings, secrets)
    try:
        view = esp.webhook_view(direction)(**options)
    except (ImproperlyConfigured, AnymailError) as e:
        return _error(503, f"This {esp.label} account is not set up for webhooks: {e}")
    view.setup(request, hook_id=hook_id, direction=direction)
    try:
        view.run_validators(request)  # basic auth, then the ESP's signature
        events = view.parse_events(request)
    except AnymailWebhookValidationFailure:
        return _error(403, f"The request is not signed as {esp.label} signs its webhooks.")
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, AnymailError,
            ImproperlyConfigured) as e:  # fmt: skip
        # a body the ESP's view cannot read (its validators read the body too)
        log.info("esp webhook %s: unreadable %s body: %r", provider.pk, esp.label, e)
        return _error(400, f"The body is not a {esp.label} {direction} webhook: {e}")
    if direction == "tracking":
        services.provider_events_record(
            provider=provider,
            events=[_reported(e) for e in events if isinstance(e, AnymailTrackingEvent)],
        )
    else:
        for event in events:
            if isinstance(event, AnymailInboundEvent) and event.message is not None:
                message = event.message
                sender = message.from_email.addr_spec if message.from_email else ""
                services.email_inbound(
                    provider=provider,
                    sender=sender,
                    subject=message.subject or "",
                    text=message.text or "",
                    message_id=str(event.event_id or message.get("Message-ID") or ""),
                    to=", ".join(a.addr_spec for a in message.to),
                )
    return HttpResponse()


# --- SMS: Twilio ---------------------------------------------------------------------


def _twilio_provider(request, hook_id):
    """(provider, None) when the request is signed by the account's auth token, else
    (None, the error answer)."""
    provider = selectors.provider_by_hook(hook_id=hook_id, kind=ProviderKind.TWILIO)
    if provider is None:
        return None, _unknown_hook()
    try:
        auth_token = unseal(provider.secrets).get("auth_token", "")
    except SecretsUnreadable:
        return None, _error(503, "This account's secrets cannot be read: set them again.")
    signature = request.headers.get("X-Twilio-Signature", "")
    # the URL as Twilio called it (scheme through SECURE_PROXY_SSL_HEADER behind a proxy)
    if not signature or not RequestValidator(auth_token).validate(
        request.build_absolute_uri(), request.POST, signature
    ):
        return None, _error(403, "The request is not signed with this account's auth token.")
    return provider, None


@csrf_exempt
@require_http_methods(["POST"])
def twilio_status(request, hook_id: str):
    provider, refused = _twilio_provider(request, hook_id)
    if refused:
        return refused
    try:
        sid, status = request.POST["MessageSid"], request.POST["MessageStatus"]
    except MultiValueDictKeyError as e:
        return _error(400, f"A status callback names the message and its status: no {e}.")
    code = request.POST.get("ErrorCode", "")
    kind = TWILIO_STATUS.get(status, ProviderEventKind.UNKNOWN)
    if code in TWILIO_OPTED_OUT:
        kind = ProviderEventKind.UNSUBSCRIBED
    elif code in TWILIO_DEAD_NUMBER:
        kind = ProviderEventKind.BOUNCED
    reason = f"{status}" + (f", error {code}" if code else "")
    if request.POST.get("ErrorMessage"):
        reason += f": {request.POST['ErrorMessage']}"
    services.provider_events_record(
        provider=provider,
        events=[
            Reported(
                kind=kind, provider_message_id=sid, event_id=f"{sid}:{status}",
                address=request.POST.get("To", ""), reason=reason,
            )
        ],
    )  # fmt: skip
    return HttpResponse(status=204)


@csrf_exempt
@require_http_methods(["POST"])
def twilio_inbound(request, hook_id: str):
    provider, refused = _twilio_provider(request, hook_id)
    if refused:
        return refused
    try:
        sender = request.POST["From"]
    except MultiValueDictKeyError:
        return _error(400, "An incoming message names who it is from (From).")
    services.sms_inbound(
        provider=provider,
        sender=sender,
        recipient=request.POST.get("To", ""),
        body=request.POST.get("Body", ""),
        message_sid=request.POST.get("MessageSid", "") or request.POST.get("SmsSid", ""),
    )
    # no reply: Twilio answers STOP / START itself (Advanced Opt-Out)
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")
