"""Outbound connections to provider hosts, checked at connect time (SSRF): a host a
workspace typed in (an SMTP server, a Twilio base_url, a gateway) must resolve to public
addresses only, unless the installation allows private ones
(ALLOW_PRIVATE_PROVIDER_HOSTS=1, for tests and on-premises gateways).

The check runs on the addresses the socket then connects to, not on the name before a
second lookup, so a name that resolves to a public address once and to 127.0.0.1 the next
time (DNS rebinding) cannot slip through."""

import ipaddress
import smtplib
import socket
from functools import partial

import httpcore
import httpx
from django.conf import settings
from django.core.mail.backends.smtp import EmailBackend


class BlockedHost(httpcore.ConnectError, OSError):
    """The host resolves to an address Herald may not connect to for a workspace.
    (An httpcore.ConnectError so httpx reports it as httpx.ConnectError; an OSError
    through httpcore's base class too, so smtplib callers see a connection failure.)"""


def private_allowed(allow_private: bool | None = None) -> bool:
    """An explicit choice, else the installation's ALLOW_PRIVATE_PROVIDER_HOSTS."""
    if allow_private is not None:
        return allow_private
    return bool(getattr(settings, "ALLOW_PRIVATE_PROVIDER_HOSTS", False))


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def resolve(host: str, port: int, *, allow_private: bool) -> list[tuple]:
    """getaddrinfo of (host, port) for TCP; raises BlockedHost when any address is
    private, loopback, link-local, reserved or multicast (and private ones are not
    allowed), or when the name does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise BlockedHost(f"The host {host!r} does not resolve: {e}") from e
    if not allow_private:
        for *_, sockaddr in infos:
            ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
            if _refused(ip):
                raise BlockedHost(
                    f"The host {host!r} resolves to {ip}, a private or reserved address: "
                    "provider hosts must be public (an installation can allow private "
                    "ones with ALLOW_PRIVATE_PROVIDER_HOSTS=1)."
                )
    return infos


def connect(
    host: str, port: int, timeout: float | None, source_address=None, *, allow_private: bool
) -> socket.socket:
    """A connected TCP socket to the first reachable checked address of host."""
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in resolve(host, port, allow_private=allow_private):
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not None:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as e:
            sock.close()
            last = e
    raise last or OSError(f"could not connect to {host}:{port}")


def is_blocked(error: BaseException) -> bool:
    """Whether an exception (an httpx or smtplib one) comes from a refused host."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, BlockedHost):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


# --- httpx ---------------------------------------------------------------------------


class _GuardedNetwork(httpcore.SyncBackend):
    def __init__(self, allow_private: bool):
        self.allow_private = allow_private

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        last: Exception | None = None
        for *_, sockaddr in resolve(host, port, allow_private=self.allow_private):
            try:  # connect to the checked address itself; TLS still names the host (SNI)
                return super().connect_tcp(
                    sockaddr[0], port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as e:
                last = e
        raise last or httpcore.ConnectError(f"could not connect to {host}:{port}")


def http_transport(
    *, allow_private: bool, http2: bool = False, verify=True, max_connections: int = 10
) -> httpx.HTTPTransport:
    """An httpx transport whose every new connection goes through the address check.
    httpx has no public way to hand its pool a network backend, so the pool it builds is
    replaced by one built the same way with the checking backend."""
    transport = httpx.HTTPTransport(verify=verify, http2=http2)
    pool = transport._pool
    transport._pool = httpcore.ConnectionPool(
        ssl_context=pool._ssl_context,
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=pool._keepalive_expiry,
        http1=True,
        http2=http2,
        network_backend=_GuardedNetwork(allow_private),
    )
    return transport


# --- smtplib (through Django's SMTP backend) -----------------------------------------


class GuardedSMTP(smtplib.SMTP):
    _allow_private = False

    def __init__(self, *args, allow_private: bool | None = None, **kwargs):
        if allow_private is not None:  # set before SMTP.__init__ connects
            self._allow_private = allow_private
        super().__init__(*args, **kwargs)

    def _get_socket(self, host, port, timeout):
        if timeout is not None and not timeout:
            raise ValueError("Non-blocking socket (timeout=0) is not supported")
        return connect(host, port, timeout, self.source_address, allow_private=self._allow_private)


class GuardedSMTP_SSL(smtplib.SMTP_SSL, GuardedSMTP):  # noqa: N801 - smtplib's naming
    """SMTP_SSL wraps the socket GuardedSMTP connected (MRO: SMTP_SSL, GuardedSMTP)."""

    def __init__(self, *args, allow_private: bool | None = None, **kwargs):
        if allow_private is not None:
            self._allow_private = allow_private
        smtplib.SMTP_SSL.__init__(self, *args, **kwargs)


class GuardedEmailBackend(EmailBackend):
    """Django's SMTP backend connecting through the address check."""

    def __init__(self, *args, allow_private: bool = False, **kwargs):
        self.allow_private = allow_private
        super().__init__(*args, **kwargs)

    @property
    def connection_class(self):
        smtp = GuardedSMTP_SSL if self.use_ssl else GuardedSMTP
        return partial(smtp, allow_private=self.allow_private)
