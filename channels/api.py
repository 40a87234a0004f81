"""Provider accounts over the API (shared/API.md, "Providers"): read, set, try one."""

from datetime import datetime
from typing import Literal

from django.http import Http404
from ninja import Field, Router, Schema

from accounts.audit import Actor
from channels import services
from channels.models import Provider
from channels.secrets import SecretsUnreadable, unseal
from channels.selectors import find_provider
from config.api import InputSchema, also_answers, error_response

router = Router(tags=["channels"])
Channel = Literal["email", "sms", "push", "meta"]
Platform = Literal["ios", "android", "web"]


class ProviderIn(InputSchema):
    kind: Literal["smtp", "anymail", "twilio", "fcm", "apns", "webpush", "meta", "sandbox"]
    settings: dict[str, str | int | float | bool | None] = {}
    # write-only; "" keeps the stored value, null removes it
    secrets: dict[str, str | None] = {}


class ProviderOut(Schema):
    kind: str
    settings: dict
    secrets_set: list[str]
    verified_at: datetime | None


class ProviderTestIn(InputSchema):
    # an email address, a phone number, a device token or a Web Push subscription's JSON
    to: str = Field(min_length=1, max_length=4000)
    # push: the platform whose provider sends it (none: the all-platforms account)
    platform: Platform | None = None


class ProviderTestOut(Schema):
    sent: bool
    provider_message_id: str | None
    said: str
    error_kind: str | None


def _provider(request, channel: str, platform: str = "") -> Provider:
    provider = find_provider(workspace=request.workspace, channel=channel, platform=platform)
    if provider is None:
        raise Http404(f"No {channel} provider is set up.")
    return provider


def _out(provider: Provider) -> dict:
    try:
        secrets_set = sorted(unseal(provider.secrets))
    except SecretsUnreadable:
        secrets_set = []
    return {
        "kind": provider.kind, "settings": provider.settings, "secrets_set": secrets_set,
        "verified_at": provider.verified_at,
    }  # fmt: skip


def _set(request, channel, payload, platform=""):
    provider = services.provider_set(
        workspace=request.workspace, channel=channel, platform=platform, kind=payload.kind,
        settings=payload.settings, secrets=payload.secrets, actor=Actor.from_request(request),
    )  # fmt: skip
    return _out(provider)


@router.get("/channels/{channel}/provider", response=ProviderOut, summary="The channel's provider")
def provider_get(request, channel: Channel):
    return _out(_provider(request, channel))


@router.put("/channels/{channel}/provider", response=ProviderOut, summary="Set the provider")
def provider_put(request, channel: Channel, payload: ProviderIn):
    return _set(request, channel, payload)


@router.post(
    "/channels/{channel}/provider/test",
    response=ProviderTestOut,
    summary="Send one message now and answer what the provider said",
    openapi_extra=also_answers(404),
)
def provider_test(request, channel: Channel, payload: ProviderTestIn):
    if channel == "meta":
        return error_response(
            request,
            422,
            "Meta receives audiences, not messages: export an audience to try the account.",
            [{"loc": ["path", "channel"], "msg": "meta sends no messages"}],
        )
    provider = _provider(request, channel, (payload.platform or "") if channel == "push" else "")
    message = services.provider_test_message(channel=channel, address=payload.to)
    return services.provider_test(
        provider=provider, message=message, actor=Actor.from_request(request)
    )


# after the test route: /channels/push/provider/test is the test, not a platform
@router.get("/channels/push/provider/{platform}", response=ProviderOut,
            summary="The push provider of a platform")  # fmt: skip
def push_provider_get(request, platform: Platform):
    return _out(_provider(request, "push", platform))


@router.put("/channels/push/provider/{platform}", response=ProviderOut,
            summary="Set the push provider of a platform")  # fmt: skip
def push_provider_put(request, platform: Platform, payload: ProviderIn):
    return _set(request, "push", payload, platform)
