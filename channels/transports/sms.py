"""SMS through Twilio's Messages API over httpx: Basic auth with the account SID and auth
token, From or a Messaging Service, a StatusCallback; a batch goes out over up to
`concurrency` keep-alive connections at once (Twilio takes one message per request, so one
connection waits a round trip per message), answered in order; Twilio's error codes
classified."""

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

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
from channels.transports.guard import http_transport, is_blocked, private_allowed

TWILIO_API = "https://api.twilio.com"
# https://www.twilio.com/docs/api/errors
SUPPRESS_CODES = {21610}  # the recipient replied STOP: never message them again
TEMPORARY_CODES = {20429, 20500, 20503, 30001}  # too many requests, Twilio-side trouble
PERMANENT_HINTS = {
    21211: "the number is not a valid phone number",
    21408: "the account may not send to this region",
    21612: "the number cannot be reached from this sender",
    21614: "the number is not a mobile number",
    20003: "the account SID or auth token is wrong",
}


def classify_twilio(status: int, code: int | None, message: str) -> TransportError:
    """A Twilio error answer as a TransportError: 21610 suppress; 20429, 429 and 5xx
    temporary; the other codes permanent."""
    said = (
        f"Twilio {status}"
        + (f" error {code}" if code else "")
        + (f": {message}" if message else "")
    )
    if code in SUPPRESS_CODES:
        return TransportError(SUPPRESS, f"The number unsubscribed (STOP). {said}", code=code)
    if code in TEMPORARY_CODES or status == 429 or status >= 500:
        return TransportError(TEMPORARY, said, code=code or status)
    hint = PERMANENT_HINTS.get(code or 0)
    return TransportError(
        PERMANENT, f"{said}" + (f" ({hint})" if hint else ""), code=code or status
    )


class TwilioTransport(Transport):
    channel = "sms"

    def __init__(
        self,
        *,
        account_sid: str,
        auth_token: str,
        from_number: str = "",
        messaging_service_sid: str = "",
        status_callback: str = "",
        base_url: str = TWILIO_API,
        timeout: float = 15,
        transport: httpx.BaseTransport | None = None,
        allow_private: bool | None = None,
        concurrency: int = 4,
    ):
        """`concurrency`: requests in flight at once in send_many, each on its own
        connection of the one client (1: one after the other, on one connection)."""
        if not from_number and not messaging_service_sid:
            raise ValueError("Twilio needs a From number or a Messaging Service SID")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self.account_sid = account_sid
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.status_callback = status_callback
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            auth=(account_sid, auth_token),
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "Herald"},
            # no HTTP(S)_PROXY from the environment: a proxy would connect in the guard's place
            trust_env=False,
            # the pool is the guarded transport's; limits also bound any proxy mount
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport
            or http_transport(
                allow_private=private_allowed(allow_private), max_connections=concurrency
            ),
        )

    def close(self) -> None:
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        self._client.close()

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        if self.concurrency == 1 or len(messages) <= 1:
            return [self._send_one(m) for m in messages]
        # map answers in the order of messages, whatever order Twilio answers in
        return list(self._workers().map(self._send_one, messages))

    def _workers(self) -> ThreadPoolExecutor:
        """The threads that keep `concurrency` requests in flight, started on first use
        (a transport that only ever sends one message starts none)."""
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix="herald-twilio"
                )
            return self._executor

    def _send_one(self, message: OutboundMessage) -> Outcome:
        form = {"To": message.address, "Body": message.body}
        if self.messaging_service_sid:
            form["MessagingServiceSid"] = self.messaging_service_sid
        else:
            form["From"] = self.from_number
        if self.status_callback:
            form["StatusCallback"] = self.status_callback
        headers = {}
        if message.idempotency_key:  # Twilio answers a repeated token with the first message
            headers["I-Twilio-Idempotency-Token"] = message.idempotency_key[:64]
        try:
            response = self._client.post(
                f"/2010-04-01/Accounts/{self.account_sid}/Messages.json", data=form, headers=headers
            )
        except httpx.TimeoutException as e:
            return TransportError(TEMPORARY, f"Twilio did not answer in time: {e}")
        except httpx.HTTPError as e:  # refused, reset, closed mid-answer, TLS
            if is_blocked(e):  # a private address: a setting to change, not a retry
                return TransportError(PERMANENT, str(e))
            return TransportError(TEMPORARY, f"Could not reach Twilio: {e}")
        try:
            answer = response.json()
        except ValueError:
            kind = TEMPORARY if response.status_code >= 500 else PERMANENT
            return TransportError(
                kind,
                f"Twilio answered {response.status_code} with something that is not JSON "
                f"({response.headers.get('content-type', 'no content type')})",
                code=response.status_code,
            )
        if not isinstance(answer, dict):
            answer = {}
        if response.status_code in (200, 201) and answer.get("sid"):
            return SendResult(
                provider_message_id=str(answer["sid"]), detail=str(answer.get("status", ""))
            )
        code = answer.get("code")
        return classify_twilio(
            response.status_code,
            code if isinstance(code, int) else None,
            str(answer.get("message", "")),
        )
