"""One transport per channel behind one interface (base.py): email over SMTP (email.py),
the Sandbox inbox (sandbox.py)."""

from channels.transports.base import (
    ERROR_KINDS,
    PERMANENT,
    SUPPRESS,
    TEMPORARY,
    OutboundMessage,
    Outcome,
    SendResult,
    Transport,
    TransportError,
)

__all__ = [
    "ERROR_KINDS", "PERMANENT", "SUPPRESS", "TEMPORARY", "OutboundMessage", "Outcome",
    "SendResult", "Transport", "TransportError",
]  # fmt: skip
