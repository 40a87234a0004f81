"""Browser push (the Web Push protocol, RFC 8030) to the endpoint of each browser's
PushSubscription: the payload encrypted for that browser (RFC 8291, aes128gcm, by
pywebpush's WebPusher.encode), authorized with a VAPID token (RFC 8292, ES256 signed by
the workspace's key, `aud` the endpoint's origin, `sub` the contact the push service may
write to), sent over the transport's guarded httpx client.

The endpoint comes from a browser, so it is untrusted input: it goes through the same
connect-time SSRF check as every provider host (pywebpush's own sending uses `requests`,
which would bypass it, and would open a connection per message). A VAPID token is made
once per push service origin and reused for 12 hours.

Push services answer 201; 404 and 410 say the subscription is gone (suppress: the caller
removes it, `code` is the status); 429 and 5xx are temporary; 400, 401, 403, 413 and the
other refusals permanent."""

import base64
import binascii
import json
import re
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
    load_pem_private_key,
)
from pywebpush import WebPusher, WebPushException

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
from channels.transports.push import (
    DEFAULT_TTL,
    NETWORK_ERRORS,
    PushContent,
    PushDataError,
    excerpt,
    invalid_data,
    network_error,
    push_client,
    push_content,
    send_concurrently,
)

VAPID_LIFETIME = 12 * 3600  # push services accept up to 24 hours
VAPID_RENEW_BEFORE = 3600  # a token is not sent with less than an hour left
MAX_BODY_BYTES = 4096  # what push services must accept (RFC 8030 section 7.2)
PERMANENT_HINTS = {
    400: "the push service refused the request",
    401: "the push service refused the VAPID signature",
    403: "the subscription was made with another VAPID key than this provider's",
    413: f"the encrypted message is over {MAX_BODY_BYTES} bytes: shorten it",
}
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_vapid_key(text: str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key of a VAPID key in any form pywebpush and py-vapid take: PEM,
    base64url of the 32-byte private number (what `vapid --gen` and web-push print) or
    base64url DER. Raises ValueError saying what it is instead."""
    text = text.strip()
    key = None
    if text.startswith("-----BEGIN"):
        try:
            key = load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError) as e:
            raise ValueError("This is not a PEM private key without a password.") from e
    else:
        try:
            raw = _b64decode("".join(text.split()))
        except (binascii.Error, ValueError) as e:
            raise ValueError("This is neither a PEM key nor a base64url VAPID key.") from e
        try:
            if len(raw) == 32:
                key = ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
            else:
                key = load_der_private_key(raw, password=None)
        except (ValueError, TypeError) as e:
            raise ValueError(
                "This is not a VAPID private key: give the PEM or the base64url private key."
            ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("A VAPID key is an EC P-256 key: this is another kind of key.")
    return key


def vapid_public_key(private_key: str | ec.EllipticCurvePrivateKey) -> str:
    """The application server key browsers subscribe with (PushManager.subscribe's
    applicationServerKey): base64url of the public key's uncompressed point."""
    if isinstance(private_key, str):
        private_key = load_vapid_key(private_key)
    point = private_key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    return _b64encode(point)


def parse_subscription(address: str) -> tuple[str, dict]:
    """(endpoint, subscription info) of a PushSubscription's JSON; raises ValueError
    saying what is wrong with it."""
    try:
        subscription = json.loads(address)
    except ValueError as e:
        raise ValueError("The address is not a push subscription's JSON.") from e
    if not isinstance(subscription, dict):
        raise ValueError("The address is not a push subscription's JSON object.")
    endpoint = subscription.get("endpoint")
    try:
        parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
        valid = parts and parts.scheme in ("https", "http") and parts.hostname and parts.port != 0
    except ValueError:  # a port that is not a number
        valid = False
    if not valid or parts.username is not None:
        raise ValueError("The push subscription has no endpoint URL (https://...).")
    keys = subscription.get("keys")
    if not isinstance(keys, dict):
        raise ValueError("The push subscription has no keys (p256dh, auth).")
    try:
        p256dh = _b64decode(str(keys.get("p256dh") or ""))
        auth = _b64decode(str(keys.get("auth") or ""))
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except (binascii.Error, ValueError) as e:
        raise ValueError("The push subscription's p256dh key is not a P-256 public key.") from e
    if len(auth) != 16:
        raise ValueError("The push subscription's auth secret is not 16 bytes.")
    return endpoint, {
        "endpoint": endpoint,
        "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]},
    }


def webpush_payload(content: PushContent) -> dict:
    """What the service worker's push handler reads: showNotification's title and options,
    the url to open, and the data the page reports opens with."""
    payload: dict = {"title": content.title, "body": content.body}
    if content.image:
        payload["image"] = content.image
    if content.deep_link:
        payload["url"] = content.deep_link
    if content.buttons:
        payload["actions"] = [
            {"action": b["id"], "title": b["label"], **({"url": b["url"]} if "url" in b else {})}
            for b in content.buttons
        ]
    data = dict(content.custom)
    if content.reference:
        data["herald_ref"] = content.reference
    if data:
        payload["data"] = data
    return payload


def classify_webpush(response: httpx.Response) -> TransportError:
    status = response.status_code
    said = f"The push service answered {status}" + (
        f": {text}" if (text := excerpt(response)) else ""
    )
    if status in (404, 410):
        return TransportError(
            SUPPRESS, f"The browser's subscription is gone: remove it. {said}", code=status
        )
    if status == 429 or status >= 500:
        return TransportError(TEMPORARY, said, code=status)
    hint = PERMANENT_HINTS.get(status)
    return TransportError(PERMANENT, said + (f" ({hint})" if hint else ""), code=status)


class WebPushTransport(Transport):
    channel = "push"

    def __init__(
        self,
        *,
        vapid_subject: str,
        vapid_private_key: str,
        timeout: float = 10,
        concurrency: int = 4,
        allow_private: bool | None = None,
        verify=True,
        clock: Callable[[], float] = time.time,
    ):
        self.vapid_subject = vapid_subject
        self.concurrency = max(1, concurrency)
        self.clock = clock
        self._key = load_vapid_key(vapid_private_key)
        self.public_key = vapid_public_key(self._key)
        self._client = push_client(
            timeout=timeout, concurrency=self.concurrency, allow_private=allow_private,
            http2=True, verify=verify,
        )  # fmt: skip
        self._vapid_lock = threading.Lock()
        self._vapid: dict[str, tuple[str, int]] = {}  # origin -> (token, expiry)

    def close(self) -> None:
        self._client.close()

    def vapid_authorization(self, endpoint: str) -> str:
        """`vapid t=<JWT>,k=<public key>` for the endpoint's push service."""
        parts = urlsplit(endpoint)  # checked by parse_subscription
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        origin = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
        now = int(self.clock())
        with self._vapid_lock:
            token, expiry = self._vapid.get(origin, ("", 0))
            if expiry - now < VAPID_RENEW_BEFORE:
                expiry = now + VAPID_LIFETIME
                token = jwt.encode(
                    {"aud": origin, "exp": expiry, "sub": self.vapid_subject}, self._key,
                    algorithm="ES256", headers={"typ": "JWT"},
                )  # fmt: skip
                self._vapid[origin] = (token, expiry)
        return f"vapid t={token},k={self.public_key}"

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        return send_concurrently(self._send_one, messages, self.concurrency)

    def headers(self, message: OutboundMessage, content: PushContent) -> dict[str, str]:
        headers = {
            "TTL": str(DEFAULT_TTL if content.ttl is None else content.ttl),
            "Urgency": "high" if content.android.get("priority") == "high" else "normal",
            "Content-Type": "application/octet-stream",
            "Content-Encoding": "aes128gcm",
        }
        if _TOPIC.match(message.idempotency_key):  # a resend replaces the undelivered one
            headers["Topic"] = message.idempotency_key
        return headers

    def _send_one(self, message: OutboundMessage) -> Outcome:
        try:
            endpoint, subscription = parse_subscription(message.address)
        except ValueError as e:
            return TransportError(PERMANENT, str(e), code="invalid_subscription")
        try:
            content = push_content(message)
        except PushDataError as e:
            return invalid_data(e)
        plaintext = json.dumps(webpush_payload(content), separators=(",", ":"), ensure_ascii=False)
        try:
            body = WebPusher(subscription).encode(plaintext.encode(), "aes128gcm")["body"]
        except (WebPushException, ValueError) as e:
            return TransportError(
                PERMANENT,
                f"Could not encrypt for this subscription: {e}",
                code="invalid_subscription",
            )
        if len(body) > MAX_BODY_BYTES:
            return TransportError(
                PERMANENT, f"The message is too large for Web Push ({PERMANENT_HINTS[413]}).",
                code=413,
            )  # fmt: skip
        headers = self.headers(message, content)
        headers["Authorization"] = self.vapid_authorization(endpoint)
        try:
            response = self._client.post(endpoint, content=body, headers=headers)
        except NETWORK_ERRORS as e:
            return network_error("the push service", e)
        except httpx.InvalidURL as e:
            return TransportError(PERMANENT, f"The endpoint is not a usable URL: {e}",
                                  code="invalid_subscription")  # fmt: skip
        if 200 <= response.status_code < 300:
            return SendResult(
                provider_message_id=response.headers.get("location", ""),
                detail=str(response.status_code),
            )
        return classify_webpush(response)
