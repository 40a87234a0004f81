"""What the three push transports share: the push options a message carries in `data`,
read and checked once (push_content), the guarded HTTP client they send over, up to
`concurrency` requests in flight, and the classification of network failures.

The transports themselves: FCM HTTP v1 (push_fcm.py), APNs over HTTP/2 (push_apns.py),
Web Push with VAPID (push_webpush.py). Each maps the same options to its provider's
payload, so a campaign writes one message and every platform shows it.

`OutboundMessage.data` of a push message may carry:

    image, deep_link              URLs
    buttons                       up to 3 {"id", "label", "url"}
    ios                           {"sound", "badge", "category", "interruption_level",
                                   "thread_id"}
    android                       {"channel_id", "priority" normal|high, "ttl" seconds,
                                   "icon", "color" #rrggbb}
    ttl                           seconds the provider keeps an undelivered message
                                  (falls back to android.ttl, then to four weeks)
    custom                        {str: str} delivered to the app as data

The message's `reference` travels as `herald_ref` so the app can report opens."""

import logging
import os
import re
import ssl
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import h2.exceptions
import httpx

from channels.transports.base import (
    PERMANENT,
    TEMPORARY,
    OutboundMessage,
    Outcome,
    TransportError,
)
from channels.transports.guard import http_transport, is_blocked, private_allowed

DEFAULT_TTL = 28 * 24 * 3600  # four weeks, FCM's default and the longest push services keep
MAX_BUTTONS = 3
INTERRUPTION_LEVELS = ("passive", "active", "time-sensitive", "critical")
ANDROID_PRIORITIES = ("normal", "high")
logger = logging.getLogger(__name__)
_COLOR = re.compile(r"^#[0-9A-Fa-f]{6}$")
_APS_NAMES = (
    ("sound", "sound"), ("badge", "badge"), ("category", "category"),
    ("thread_id", "thread-id"), ("interruption_level", "interruption-level"),
)  # fmt: skip


class PushDataError(ValueError):
    """A push option in a message's data that no provider could send as it is."""


@dataclass(frozen=True)
class PushContent:
    """A push message's content and options, checked: what every platform maps."""

    title: str
    body: str
    image: str
    deep_link: str
    buttons: tuple[dict, ...]  # {"id", "label"} and "url" when given
    ios: dict
    android: dict
    custom: dict[str, str]
    reference: str
    ttl: int | None  # None: the transport's default

    def app_data(self) -> dict[str, str]:
        """What the app receives as string data: the custom values, then Herald's own
        keys (which a custom key of the same name cannot override)."""
        data = dict(self.custom)
        if self.reference:
            data["herald_ref"] = self.reference
        if self.deep_link:
            data["deep_link"] = self.deep_link
        return data


def _text(value, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise PushDataError(f"data.{path} is text, not {type(value).__name__}.")
    return value


def _seconds(value, path: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PushDataError(f"data.{path} is a whole number of seconds (0 or more).")
    return value


def _options(data: Mapping, name: str) -> dict:
    value = data.get(name) or {}
    if not isinstance(value, Mapping):
        raise PushDataError(f"data.{name} is an object of options.")
    return dict(value)


def push_content(message: OutboundMessage) -> PushContent:
    """The push options of `message.data`, checked; raises PushDataError naming the
    first bad one (data.android.priority, data.buttons.2.label...)."""
    data = message.data or {}
    if not isinstance(data, Mapping):
        raise PushDataError("data is an object of push options.")
    buttons = data.get("buttons") or []
    if not isinstance(buttons, list | tuple):
        raise PushDataError("data.buttons is a list of {id, label, url}.")
    if len(buttons) > MAX_BUTTONS:
        raise PushDataError(f"data.buttons has {len(buttons)} buttons: at most {MAX_BUTTONS}.")
    checked_buttons = []
    for i, button in enumerate(buttons):
        if not isinstance(button, Mapping):
            raise PushDataError(f"data.buttons.{i} is an object {{id, label, url}}.")
        entry = {
            "id": _text(button.get("id"), f"buttons.{i}.id"),
            "label": _text(button.get("label"), f"buttons.{i}.label"),
        }
        for key in ("id", "label"):
            if not entry[key]:
                raise PushDataError(f"data.buttons.{i}.{key} is required.")
        if url := _text(button.get("url"), f"buttons.{i}.url"):
            entry["url"] = url
        checked_buttons.append(entry)

    ios = _options(data, "ios")
    ios_checked = {}
    for key in ("sound", "category", "thread_id"):
        if value := _text(ios.get(key), f"ios.{key}"):
            ios_checked[key] = value
    badge = ios.get("badge")
    if badge is not None:
        if isinstance(badge, bool) or not isinstance(badge, int) or badge < 0:
            raise PushDataError("data.ios.badge is a whole number (0 clears the badge).")
        ios_checked["badge"] = badge
    level = _text(ios.get("interruption_level"), "ios.interruption_level")
    if level and level not in INTERRUPTION_LEVELS:
        raise PushDataError(
            "data.ios.interruption_level is one of " + ", ".join(INTERRUPTION_LEVELS) + "."
        )
    if level:
        ios_checked["interruption_level"] = level

    android = _options(data, "android")
    android_checked = {}
    for key in ("channel_id", "icon"):
        if value := _text(android.get(key), f"android.{key}"):
            android_checked[key] = value
    priority = _text(android.get("priority"), "android.priority")
    if priority and priority not in ANDROID_PRIORITIES:
        raise PushDataError("data.android.priority is normal or high.")
    if priority:
        android_checked["priority"] = priority
    color = _text(android.get("color"), "android.color")
    if color and not _COLOR.match(color):
        raise PushDataError("data.android.color is a colour like #1a73e8.")
    if color:
        android_checked["color"] = color
    android_ttl = _seconds(android.get("ttl"), "android.ttl")
    if android_ttl is not None:
        android_checked["ttl"] = android_ttl
    ttl = _seconds(data.get("ttl"), "ttl")

    custom = data.get("custom") or {}
    if not isinstance(custom, Mapping):
        raise PushDataError("data.custom is an object of text values.")
    custom_checked = {}
    for key, value in custom.items():
        if not isinstance(key, str) or not key:
            raise PushDataError("data.custom keys are non-empty text.")
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, int | float):
            value = str(value)
        elif not isinstance(value, str):
            raise PushDataError(f"data.custom.{key} is text, not {type(value).__name__}.")
        custom_checked[key] = value

    return PushContent(
        title=message.title,
        body=message.body,
        image=_text(data.get("image"), "image"),
        deep_link=_text(data.get("deep_link"), "deep_link"),
        buttons=tuple(checked_buttons),
        ios=ios_checked,
        android=android_checked,
        custom=custom_checked,
        reference=message.reference,
        ttl=ttl if ttl is not None else android_checked.get("ttl"),
    )


def aps(content: PushContent) -> dict:
    """The `aps` dictionary of an alert (APNs directly, or FCM's apns.payload)."""
    aps: dict = {}
    alert = {k: v for k, v in (("title", content.title), ("body", content.body)) if v}
    if alert:
        aps["alert"] = alert
    for ours, apple in _APS_NAMES:
        if ours in content.ios:
            aps[apple] = content.ios[ours]
    if content.image:
        aps["mutable-content"] = 1  # the app's notification service extension adds it
    return aps


def invalid_data(error: PushDataError) -> TransportError:
    return TransportError(PERMANENT, f"The message cannot be sent: {error}", code="invalid_data")


# --- HTTP ------------------------------------------------------------------------------


def tls_verify(verify) -> ssl.SSLContext | bool:
    """httpx's `verify` from an SSL context, True/False or a CA bundle's path."""
    if isinstance(verify, str | os.PathLike):
        return ssl.create_default_context(cafile=os.fspath(verify))
    return verify


def push_client(
    *,
    base_url: str = "",
    timeout: float,
    concurrency: int,
    allow_private: bool | None,
    http2: bool,
    verify=True,
) -> httpx.Client:
    """One client for a transport's life: at most `concurrency` connections, each new one
    through the SSRF check (guard.http_transport)."""
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        timeout=timeout,
        headers={"User-Agent": "Herald"},
        transport=http_transport(
            allow_private=private_allowed(allow_private),
            http2=http2,
            verify=tls_verify(verify),
            max_connections=concurrency,
        ),
    )


# What a request that got no usable answer raises: httpx's errors, and h2's own when an
# HTTP/2 connection breaks under streams still reading (httpcore lets those through).
NETWORK_ERRORS = (httpx.HTTPError, h2.exceptions.H2Error)


def network_error(provider: str, error: Exception) -> TransportError:
    """A request that got no answer: a refused host is permanent (a setting to change);
    a timeout, a refused or reset connection, an answer cut short, a broken HTTP/2
    connection or TLS trouble are temporary."""
    if is_blocked(error):
        return TransportError(PERMANENT, str(error), code="blocked_host")
    if isinstance(error, httpx.TimeoutException):
        return TransportError(TEMPORARY, f"{provider} did not answer in time: {error}")
    if isinstance(error, h2.exceptions.H2Error):
        return TransportError(TEMPORARY, f"Could not reach {provider}: HTTP/2 failed: {error}")
    return TransportError(TEMPORARY, f"Could not reach {provider}: {error or type(error).__name__}")


def not_json(provider: str, response: httpx.Response) -> TransportError:
    """An answer that is not the provider's JSON (a proxy's HTML page, an empty body)."""
    kind = TEMPORARY if response.status_code >= 500 or response.status_code == 429 else PERMANENT
    return TransportError(
        kind,
        f"{provider} answered {response.status_code} with something that is not JSON "
        f"({response.headers.get('content-type', 'no content type')})",
        code=response.status_code,
    )


def excerpt(response: httpx.Response, limit: int = 200) -> str:
    """The start of an answer's text, on one line, for an error message."""
    text = " ".join(response.text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def send_concurrently(
    send_one: Callable[[OutboundMessage], Outcome],
    messages: Sequence[OutboundMessage],
    concurrency: int,
) -> list[Outcome]:
    """send_one over the messages with up to `concurrency` in flight, outcomes in order.
    A message whose sending raised what no one foresaw is answered permanent and logged:
    raising would lose the outcomes of the batch's other messages, already sent, and a
    caller retrying the whole batch would send them twice."""

    def guarded(message: OutboundMessage) -> Outcome:
        try:
            return send_one(message)
        except Exception as e:
            logger.exception("push transport failed on a message")
            return TransportError(
                PERMANENT, f"The transport failed on this message: {type(e).__name__}: {e}",
                code="transport_error",
            )  # fmt: skip

    if len(messages) <= 1 or concurrency <= 1:
        return [guarded(m) for m in messages]
    workers = min(concurrency, len(messages))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="push") as pool:
        return list(pool.map(guarded, messages))
