"""A real SMTP server (aiosmtpd) whose magic addresses refuse as real servers do."""

import socket

import pytest
from aiosmtpd.controller import Controller

REFUSE_AT_RCPT = {
    "defer": "451 4.3.0 Try again later",
    "nobody": "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown",
    "policy": "550 5.7.1 Relaying denied",
    "closing": "421 4.3.2 Service shutting down, closing transmission channel",
}
REFUSE_AT_DATA = {"full": "552 5.2.2 Mailbox full", "spam": "554 5.7.1 Message rejected as spam"}


class Server:
    """Keeps each accepted message's raw bytes and counts the connections."""

    def __init__(self):
        self.received = []  # (recipients, raw bytes)
        self.connections = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        answer = REFUSE_AT_RCPT.get(address.split("@")[0])
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        answer = REFUSE_AT_DATA.get(envelope.rcpt_tos[0].split("@")[0])
        if answer:
            return answer
        self.received.append((list(envelope.rcpt_tos), envelope.original_content))
        return "250 2.0.0 Ok: queued"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    server = Server()
    port = free_port()
    controller = Controller(server, hostname="127.0.0.1", port=port)
    controller.start()
    server.port = port
    yield server
    controller.stop()
