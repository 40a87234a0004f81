"""The SMTP transport against raw smtplib: the same messages to the same local SMTP sink
(aiosmtpd in another process), over the same number of connections, in one run.

Issue target (transports): "SMTP: 10,000 messages to a local aiosmtpd sink in another
process through the transport, vs raw smtplib over the same number of connections in the
same run: >= 70% of raw."

Prints ONE line:
    smtp_send messages=N connections=C transport=../s raw=../s ratio=..% (target >=70%)

What it does: starts an aiosmtpd sink (a subprocess that accepts and discards, counting
what it got), then sends --messages (default 10,000) in batches of --batch (default 500,
one connection each): first through channels.transports.email.SmtpTransport.send_many
(rendering text + HTML alternatives and headers, one recipient per message; DKIM off, as
raw does none), then through smtplib.SMTP.sendmail with the bytes built once beforehand
(the floor: no rendering). Both must have every message accepted by the sink.

Run:
    .venv/bin/python benchmarks/smtp_send.py
"""

import argparse
import os
import smtplib
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
# settings need them; the benchmark never connects to either
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
# the sink listens on 127.0.0.1: a private host, allowed as for tests
os.environ.setdefault("ALLOW_PRIVATE_PROVIDER_HOSTS", "1")

SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller

class Sink:
    count = 0
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        return "250 OK"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
for line in sys.stdin:
    print(Sink.count, flush=True)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()

    import django

    django.setup()
    from channels.transports.base import OutboundMessage, SendResult
    from channels.transports.email import SmtpTransport

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert sink.stdout.readline().strip() == "ready"

    def received() -> int:
        sink.stdin.write("?\n")
        sink.stdin.flush()
        return int(sink.stdout.readline())

    messages = [
        OutboundMessage(
            channel="email", address=f"person{i}@example.com", subject=f"Spring sale {i}",
            text="Hello,\n\nEverything is 20% off until Sunday.\n" * 5,
            html="<html><body><h1>Spring sale</h1>" + "<p>Everything is 20% off.</p>" * 5,
            headers={"List-Unsubscribe": f"<https://herald.test/u/{i}>",
                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        )
        for i in range(args.messages)
    ]  # fmt: skip
    batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
    try:
        began = time.perf_counter()
        for batch in batches:
            with SmtpTransport(
                host="127.0.0.1", port=port, security="none", from_email="news@herald.test",
                from_name="Herald",
            ) as smtp:  # fmt: skip
                outcomes = smtp.send_many(batch)
            if not all(isinstance(o, SendResult) for o in outcomes):
                raise SystemExit(f"the transport failed: {outcomes[0]!r}")
        transport_s = time.perf_counter() - began
        if received() != args.messages:
            raise SystemExit("the sink did not get every message from the transport")

        render = SmtpTransport(
            host="127.0.0.1", port=port, security="none", from_email="news@herald.test"
        )
        raw_batches = [[(m.address, render.render(m)[0]) for m in batch] for batch in batches]
        began = time.perf_counter()
        for batch in raw_batches:
            with smtplib.SMTP("127.0.0.1", port) as raw:
                for address, data in batch:
                    raw.sendmail("news@herald.test", [address], data)
        raw_s = time.perf_counter() - began
        if received() != 2 * args.messages:
            raise SystemExit("the sink did not get every raw message")
    finally:
        sink.kill()
    transport_rate, raw_rate = args.messages / transport_s, args.messages / raw_s
    print(
        f"smtp_send messages={args.messages} connections={len(batches)} "
        f"transport={transport_rate:.0f}messages/s raw={raw_rate:.0f}messages/s "
        f"ratio={100 * transport_rate / raw_rate:.0f}% (target >=70%)"
    )


if __name__ == "__main__":
    main()
