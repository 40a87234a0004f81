"""The one interface every sending channel speaks: an OutboundMessage goes in, a
SendResult or a classified TransportError comes out. Campaigns and flows only ever call
`get_transport(channel, workspace).send(...)` / `.send_many(...)` (channels.providers);
transports know nothing of segments or campaigns (an import-linter contract)."""

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

TEMPORARY = "temporary"  # try again later (backoff): a 4xx reply, a timeout, a 5xx
PERMANENT = "permanent"  # this message cannot be delivered as it is: do not retry
SUPPRESS = "suppress"  # the address is dead or opted out: it goes on Do Not Contact
ERROR_KINDS = (TEMPORARY, PERMANENT, SUPPRESS)


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message to one address. `address` is an email address, an E.164
    phone number or a push token; content fields unused by a channel stay empty."""

    channel: str  # email | sms | push
    address: str
    subject: str = ""  # email
    text: str = ""  # email plain-text part
    html: str = ""  # email HTML part
    body: str = ""  # sms, push
    title: str = ""  # push
    from_name: str = ""  # email: overrides the provider's from name
    reply_to: str = ""  # email
    data: dict = field(default_factory=dict)  # push: payload options and custom data
    headers: dict[str, str] = field(default_factory=dict)  # email: e.g. List-Unsubscribe
    idempotency_key: str = ""  # the same key is never sent twice where the provider allows
    reference: str = ""  # the sender's reference (a delivery id), echoed in callbacks


@dataclass(frozen=True)
class SendResult:
    """The provider took the message: its id is what its webhooks will name."""

    provider_message_id: str
    accepted: bool = True
    detail: str = ""  # what the provider said, for the "send a test" button


class TransportError(Exception):
    """A send that did not happen, classified: `kind` is temporary, permanent or suppress;
    `code` the provider's own (an SMTP reply code, a Twilio error code...)."""

    def __init__(self, kind: str, message: str, *, code: str | int | None = None):
        if kind not in ERROR_KINDS:
            raise ValueError(f"unknown error kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message

    @property
    def temporary(self) -> bool:
        return self.kind == TEMPORARY

    @property
    def suppress(self) -> bool:
        return self.kind == SUPPRESS

    def __repr__(self):
        return f"TransportError({self.kind!r}, {self.message!r}, code={self.code!r})"


Outcome = SendResult | TransportError


class Transport(ABC):
    """A configured provider account of one channel. send_many sends a batch reusing its
    connections (one SMTP connection; a pool of `concurrency` HTTP connections, or one
    HTTP/2 connection for APNs) and answers one outcome per message, in order: one bad
    address never fails the others."""

    channel = ""

    def send(self, message: OutboundMessage) -> SendResult:
        """One message; raises its TransportError."""
        (outcome,) = self.send_many([message])
        if isinstance(outcome, TransportError):
            raise outcome
        return outcome

    @abstractmethod
    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        """One outcome per message, in order."""

    def close(self) -> None:  # noqa: B027 - most transports keep nothing open
        """Release connections kept between batches (none by default)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
