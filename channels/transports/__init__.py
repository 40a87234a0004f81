"""One transport per channel behind one interface (base.py): email over SMTP (email.py)
or an ESP's API through django-anymail (esp.py), SMS through Twilio (sms.py), push through
FCM, APNs and Web Push (push.py and push_*.py), the Sandbox inbox (sandbox.py); every
connection to a host a workspace chose goes through the address check (guard.py)."""

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
