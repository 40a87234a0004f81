"""iOS push straight to Apple (APNs) over HTTP/2: token-based authentication with the
team's .p8 key (an ES256 JWT, `iss` the team id, `kid` the key id), minted once and reused
by every thread until it is 40 minutes old (Apple refuses tokens older than an hour and
throttles new ones made more often than every 20 minutes), and a batch multiplexed as
concurrent streams over one connection.

Apple's answers (https://developer.apple.com/documentation/usernotifications/handling-
notification-responses-from-apns): Unregistered (410), BadDeviceToken and
DeviceTokenNotForTopic are suppress, with Apple's reason as `code` (the caller removes the
token; a BadDeviceToken also means a development build's token sent to production or the
reverse, so the environment must match the app's build); TooManyRequests and 5xx
temporary; ExpiredProviderToken and other 403s make one new token and one retry, then
permanent; InvalidProviderToken, BadTopic, TopicDisallowed, PayloadTooLarge permanent.
The `apns-id` Apple answers is the provider message id."""

import json
import re
import threading
import time
from collections.abc import Callable, Sequence

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

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
    aps,
    invalid_data,
    network_error,
    not_json,
    push_client,
    push_content,
    send_concurrently,
)

APNS_HOSTS = {
    "production": "https://api.push.apple.com",
    "sandbox": "https://api.sandbox.push.apple.com",
}
TOKEN_REFRESH_SECONDS = 40 * 60
MAX_PAYLOAD_BYTES = 4096  # an alert notification's payload
SUPPRESS_REASONS = {
    "Unregistered": "the app was uninstalled or the token expired",
    "BadDeviceToken": "the token is not a device token of this environment (a sandbox "
    "build's token sent to production, or the reverse)",
    "DeviceTokenNotForTopic": "the token belongs to another app than the topic",
}
TEMPORARY_REASONS = {
    "TooManyRequests", "TooManyProviderTokenUpdates", "InternalServerError",
    "ServiceUnavailable", "Shutdown", "IdleTimeout",
}  # fmt: skip
PERMANENT_HINTS = {
    "InvalidProviderToken": "the team id, key id or .p8 key is wrong, or the key was revoked",
    "BadTopic": "the topic is not the app's bundle id",
    "TopicDisallowed": "the key may not send to this topic",
    "MissingTopic": "the provider has no topic (the app's bundle id)",
    "PayloadTooLarge": f"the message is over {MAX_PAYLOAD_BYTES} bytes: shorten it",
    "BadCertificateEnvironment": "the key is for the other environment",
    "ExpiredProviderToken": "Apple found even a new token expired: check this server's clock",
}
# 403s a new provider token cannot cure; any other 403 gets one new token and one retry
_NOT_CURED_BY_NEW_TOKEN = {"InvalidProviderToken", "TopicDisallowed", "BadCertificateEnvironment"}
_TOKEN = re.compile(r"^[0-9A-Fa-f]{64,200}$")


def load_p8_key(pem: str) -> ec.EllipticCurvePrivateKey:
    """The EC P-256 private key of an APNs .p8 file's text; raises ValueError saying
    what it is instead."""
    try:
        key = load_pem_private_key(pem.strip().encode(), password=None)
    except (ValueError, TypeError) as e:
        raise ValueError(
            "This is not a PEM private key: paste the whole .p8 file, from "
            "-----BEGIN PRIVATE KEY----- to -----END PRIVATE KEY-----."
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError("This key is not an EC P-256 key: APNs keys (.p8 files) are.")
    return key


def classify_apns(status: int, reason: str) -> TransportError:
    """Apple's answer other than 200 as a TransportError (module docstring)."""
    said = f"APNs {status}" + (f" {reason}" if reason else "")
    if reason in SUPPRESS_REASONS:
        return TransportError(
            SUPPRESS, f"Remove the token: {SUPPRESS_REASONS[reason]}. {said}", code=reason
        )
    if reason in TEMPORARY_REASONS or status == 429 or status >= 500:
        return TransportError(TEMPORARY, said, code=reason or status)
    hint = PERMANENT_HINTS.get(reason)
    return TransportError(PERMANENT, said + (f" ({hint})" if hint else ""), code=reason or status)


def apns_payload(content: PushContent) -> dict:
    """Apple's JSON payload: `aps` with the alert and its options, the app's data beside it."""
    payload: dict = dict(content.app_data())
    if content.image:
        payload["image"] = content.image
    if content.buttons:  # shown by the notification category's actions; urls for the app
        payload["buttons"] = list(content.buttons)
    payload["aps"] = aps(content)
    return payload


class ApnsTransport(Transport):
    channel = "push"

    def __init__(
        self,
        *,
        team_id: str,
        key_id: str,
        topic: str,
        p8_key: str,
        environment: str = "production",
        base_url: str = "",
        timeout: float = 10,
        concurrency: int = 4,
        allow_private: bool | None = None,
        verify=True,
        clock: Callable[[], float] = time.time,
    ):
        if not base_url and environment not in APNS_HOSTS:
            raise ValueError("The APNs environment is production or sandbox")
        self.team_id = team_id
        self.key_id = key_id
        self.topic = topic
        self.concurrency = max(1, concurrency)
        self.clock = clock
        self.base_url = base_url or APNS_HOSTS[environment]
        self._key = load_p8_key(p8_key)
        self._client = push_client(
            base_url=self.base_url, timeout=timeout,
            concurrency=self.concurrency, allow_private=allow_private, http2=True,
            verify=verify,
        )  # fmt: skip
        self._token_lock = threading.Lock()
        self._token = ""
        self._token_made = 0.0

    def close(self) -> None:
        self._client.close()

    def provider_token(self, rejected: str = "") -> str:
        """The JWT every request carries: made again when 40 minutes old, or when Apple
        refused `rejected` and no other thread has replaced it yet."""
        with self._token_lock:
            now = self.clock()
            if (
                not self._token
                or now - self._token_made >= TOKEN_REFRESH_SECONDS
                or (rejected and rejected == self._token)
            ):
                self._token = jwt.encode(
                    {"iss": self.team_id, "iat": int(now)}, self._key, algorithm="ES256",
                    headers={"kid": self.key_id},
                )  # fmt: skip
                self._token_made = now
            return self._token

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        # One after another over the one HTTP/2 connection: threads sharing an httpcore
        # sync HTTP/2 connection race on its socket (EAGAIN, "Resource temporarily
        # unavailable", seen under load), so Apple's multiplexing is not used from threads.
        return send_concurrently(self._send_one, messages, 1)

    def headers(self, message: OutboundMessage, content: PushContent) -> dict[str, str]:
        ttl = DEFAULT_TTL if content.ttl is None else content.ttl
        headers = {
            "apns-topic": self.topic,
            "apns-push-type": "alert",
            # 5: delivered when the device is awake anyway, as a passive notification is
            "apns-priority": "5" if content.ios.get("interruption_level") == "passive" else "10",
            "apns-expiration": str(int(self.clock()) + ttl) if ttl else "0",
        }
        key = message.idempotency_key
        if key and len(key) <= 64 and key.isascii() and key.isprintable():
            headers["apns-collapse-id"] = key  # a resend replaces the first, not adds to it
        return headers

    def _send_one(self, message: OutboundMessage) -> Outcome:
        device = message.address.strip().strip("<>").replace(" ", "").lower()
        if not _TOKEN.match(device):  # also keeps anything but hex out of the request path
            return TransportError(
                SUPPRESS, "This is not an APNs device token (64 hexadecimal characters).",
                code="BadDeviceToken",
            )  # fmt: skip
        try:
            content = push_content(message)
        except PushDataError as e:
            return invalid_data(e)
        body = json.dumps(apns_payload(content), separators=(",", ":"), ensure_ascii=False)
        body = body.encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            return classify_apns(413, "PayloadTooLarge")
        headers = self.headers(message, content)
        rejected = ""
        for _ in range(2):
            token = self.provider_token(rejected)
            try:
                response = self._client.post(
                    f"/3/device/{device}", content=body,
                    headers={**headers, "authorization": f"bearer {token}"},
                )  # fmt: skip
            except NETWORK_ERRORS as e:
                return network_error("APNs", e)
            if response.status_code == 200:
                return SendResult(
                    provider_message_id=response.headers.get("apns-id", ""), detail="accepted"
                )
            try:
                answer = response.json()
            except ValueError:
                return not_json("APNs", response)
            reason = answer.get("reason") if isinstance(answer, dict) else None
            reason = reason if isinstance(reason, str) else ""
            if (
                response.status_code == 403
                and reason not in _NOT_CURED_BY_NEW_TOKEN
                and not rejected
            ):
                rejected = token  # ExpiredProviderToken and the like: one new token, one retry
                continue
            return classify_apns(response.status_code, reason)
        return classify_apns(response.status_code, reason)
