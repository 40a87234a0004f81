"""Email over SMTP: Django's SMTP backend for the connection (STARTTLS or SSL, login,
timeouts), one connection per batch, one recipient per message, DKIM-signed with dkimpy,
every reply code classified."""

import binascii
import contextlib
import re
import smtplib
import ssl
import uuid
from collections.abc import Sequence
from email.header import Header
from email.utils import formataddr, formatdate, make_msgid

import dkim
from django.core.mail import EmailMultiAlternatives

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
from channels.transports.guard import GuardedEmailBackend, is_blocked, private_allowed

SECURITY = ("starttls", "ssl", "none")

# Signed with DKIM when present: what a receiver shows and what unsubscribing relies on
# (a List-Unsubscribe a relay could strip or rewrite would not be trusted by Gmail).
DKIM_HEADERS = (
    b"From", b"To", b"Subject", b"Date", b"Message-ID", b"Reply-To", b"MIME-Version",
    b"Content-Type", b"List-Unsubscribe", b"List-Unsubscribe-Post",
)  # fmt: skip

# "5.1.1 user unknown" and its relatives: the mailbox does not exist (RFC 3463)
_DEAD_MAILBOX = re.compile(rb"\b5\.1\.(1|2|3|10)\b")


def classify_reply(code: int, text: bytes | str) -> TransportError:
    """An SMTP reply that refused a message, as a TransportError: 421 and every 4xx are
    temporary (421: the server is closing the connection); 550 with 5.1.x (no such
    mailbox) is suppress; 552, 554 and the other 5xx are permanent."""
    raw = text.encode() if isinstance(text, str) else (text or b"")
    said = f"{code} {raw.decode(errors='replace')}".strip()
    if 400 <= code < 500:
        return TransportError(TEMPORARY, f"The server deferred the message: {said}", code=code)
    if code in (550, 551, 553) and _DEAD_MAILBOX.search(raw):
        return TransportError(SUPPRESS, f"The mailbox does not exist: {said}", code=code)
    return TransportError(PERMANENT, f"The server refused the message: {said}", code=code)


class SmtpTransport(Transport):
    channel = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        from_email: str,
        security: str = "starttls",
        username: str = "",
        password: str = "",
        from_name: str = "",
        dkim_domain: str = "",
        dkim_selector: str = "",
        dkim_private_key: str = "",
        timeout: float = 20,
        ssl_context: ssl.SSLContext | None = None,
        allow_private: bool | None = None,
    ):
        if security not in SECURITY:
            raise ValueError(f"security must be one of {', '.join(SECURITY)}")
        self.from_email = from_email
        self.from_name = from_name
        self.dkim = (
            (dkim_selector.encode(), dkim_domain.encode(), dkim_private_key.encode())
            if dkim_domain and dkim_selector and dkim_private_key
            else None
        )
        self._domain = from_email.rpartition("@")[2] or "localhost"
        # a provider account is not one of settings.MAILERS: the backend is built with its
        # own options (an alias marks it as configured, not read from EMAIL_* settings)
        self._backend = GuardedEmailBackend(
            allow_private=private_allowed(allow_private),
            alias="herald-provider",
            host=host,
            port=port,
            username=username or None,
            password=password or None,
            use_tls=security == "starttls",
            use_ssl=security == "ssl",
            timeout=timeout,
            fail_silently=False,
        )
        if ssl_context is not None:  # tests: trust a local certificate authority
            self._backend.__dict__["ssl_context"] = ssl_context

    # --- connection ----------------------------------------------------------------------

    def _open(self) -> TransportError | None:
        """Connect (and log in) unless connected; the reason as a TransportError if not."""
        if self._backend.connection is not None:
            return None
        try:
            self._backend.open()
        except smtplib.SMTPAuthenticationError as e:
            self._backend.connection = None
            return TransportError(
                PERMANENT,
                f"The server refused the username or password: {e.smtp_code} "
                f"{e.smtp_error.decode(errors='replace')}",
                code=e.smtp_code,
            )
        except smtplib.SMTPResponseException as e:
            self._backend.connection = None
            return classify_reply(e.smtp_code, e.smtp_error)
        except smtplib.SMTPNotSupportedError as e:  # a login where no AUTH is offered
            self._backend.connection = None
            return TransportError(
                PERMANENT,
                f"The server does not offer what the settings ask ({e}): check the security "
                "(most servers offer a login only after STARTTLS) and the username.",
            )
        except (OSError, smtplib.SMTPException) as e:  # refused, unreachable, TLS, timeout
            self._backend.connection = None
            if is_blocked(e):  # a private address: a setting to change, not a retry
                return TransportError(PERMANENT, str(e))
            return TransportError(TEMPORARY, f"Could not connect to the SMTP server: {e}")
        return None

    def close(self) -> None:
        try:
            self._backend.close()
        finally:
            self._backend.connection = None

    def _drop(self) -> None:
        """Forget a connection the server closed or broke (the next message reconnects)."""
        with contextlib.suppress(OSError, smtplib.SMTPException):  # broken already
            self._backend.connection.close()
        self._backend.connection = None

    # --- messages ------------------------------------------------------------------------

    def render(self, message: OutboundMessage) -> tuple[bytes, str]:
        """(the message as sent, its Message-ID): text and HTML alternatives, one
        recipient, the caller's headers, DKIM-signed when configured."""
        message_id = make_msgid(domain=self._domain)
        headers = {"Message-ID": message_id, **message.headers}
        if message.reply_to:
            headers["Reply-To"] = message.reply_to
        sender = formataddr((message.from_name or self.from_name, self.from_email), "utf-8")
        if message.address.isascii():
            raw = _mime(sender, message, headers)
        else:  # an internationalized address: the email package knows its encodings
            email = EmailMultiAlternatives(
                subject=message.subject, body=message.text or "", from_email=sender,
                to=[message.address], headers=headers,
            )  # fmt: skip
            if message.html:
                email.attach_alternative(message.html, "text/html")
            built = email.message()
            raw = built.as_bytes(policy=built.policy.clone(linesep="\r\n"))  # as on the wire
        if self.dkim:
            selector, domain, key = self.dkim
            signed = [h for h in DKIM_HEADERS if _has_header(raw, h)]
            signature = dkim.sign(raw, selector, domain, key, include_headers=signed)
            raw = signature + raw
        return raw, message_id

    def send_many(self, messages: Sequence[OutboundMessage]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for message in messages:
            outcomes.append(self._send_one(message))
        return outcomes

    def _send_one(self, message: OutboundMessage) -> Outcome:
        try:
            raw, message_id = self.render(message)
        except (ValueError, dkim.DKIMException) as e:  # a header with a line break, a bad key
            return TransportError(PERMANENT, f"The message could not be built: {e}")
        failed = self._open()
        if failed:
            return failed
        options = []
        if not message.address.isascii():
            connection = self._backend.connection
            try:
                connection.ehlo_or_helo_if_needed()
            except (smtplib.SMTPException, OSError) as e:
                self._drop()
                return TransportError(TEMPORARY, f"The SMTP connection broke: {e}")
            if not connection.has_extn("smtputf8"):
                return TransportError(
                    PERMANENT,
                    "The address is internationalized and the SMTP server does not offer "
                    "SMTPUTF8, which it needs to take it.",
                )
            options = ["SMTPUTF8"]
        try:
            refused = self._backend.connection.sendmail(
                self.from_email, [message.address], raw, mail_options=options
            )
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            outcome = classify_reply(code, text)
        except smtplib.SMTPSenderRefused as e:
            outcome = classify_reply(e.smtp_code, e.smtp_error)
            if outcome.kind == SUPPRESS:  # it is our sender that is refused, not the address
                outcome = TransportError(PERMANENT, outcome.message, code=outcome.code)
        except smtplib.SMTPResponseException as e:  # SMTPDataError and the rest
            outcome = classify_reply(e.smtp_code, e.smtp_error)
        except (smtplib.SMTPServerDisconnected, OSError) as e:
            self._drop()
            return TransportError(TEMPORARY, f"The SMTP connection broke: {e}")
        else:
            if refused:
                code, text = next(iter(refused.values()))
                return classify_reply(code, text)
            return SendResult(provider_message_id=message_id.strip("<>"), detail="250 accepted")
        if outcome.code == 421:  # the server closes the connection after a 421
            self._drop()
        else:
            self._reset()
        return outcome

    def _reset(self) -> None:
        """RSET after a refused transaction, so the connection can carry the next one."""
        try:
            self._backend.connection.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()


def _has_header(raw: bytes, name: bytes) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return re.search(rb"(?im)^" + re.escape(name) + rb":", head) is not None


# --- MIME ------------------------------------------------------------------------------
# Hand-written on the hot path: the email package (through Django's EmailMultiAlternatives)
# took 2.1 ms to build one two-part message, twice what sending it over SMTP takes
# (benchmarks/smtp_send.py); this builds the same multipart/alternative in ~0.1 ms. Header
# values are RFC 2047-encoded by email.header when they are not ASCII or are long; bodies
# are quoted-printable UTF-8 with CRLF line ends (binascii's C encoder).

_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII but ":" (RFC 5322 field name)


def _header(name: str, value: str) -> bytes:
    if not _HEADER_NAME.match(name):
        raise ValueError(f"“{name}” is not a header name")
    if "\r" in value or "\n" in value:
        raise ValueError(f"the {name} header cannot hold a line break")
    if value.isascii() and len(name) + len(value) < 900:
        return f"{name}: {value}\r\n".encode()
    encoded = Header(value, "utf-8", maxlinelen=76, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode()


def _qp(text: str) -> bytes:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    return binascii.b2a_qp(lines, istext=True).replace(b"\n", b"\r\n")


def _part(subtype: str, text: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode() + _qp(text)


def _mime(sender: str, message: OutboundMessage, headers: dict[str, str]) -> bytes:
    head = b"".join(
        [
            _header("From", sender),
            _header("To", message.address),
            _header("Subject", message.subject),
            _header("Date", formatdate(usegmt=True)),
            *(_header(name, value) for name, value in headers.items()),
            b"MIME-Version: 1.0\r\n",
        ]
    )
    if not message.html:
        return head + _part("plain", message.text or "") + b"\r\n"
    boundary = f"==herald-{uuid.uuid4().hex}".encode()
    return (
        head
        + b'Content-Type: multipart/alternative; boundary="' + boundary + b'"\r\n\r\n'
        + b"--" + boundary + b"\r\n" + _part("plain", message.text or "") + b"\r\n"
        + b"--" + boundary + b"\r\n" + _part("html", message.html) + b"\r\n"
        + b"--" + boundary + b"--\r\n"
    )  # fmt: skip
