"""The Twilio transport against a local fake of Twilio's Messages API in another process,
vs raw httpx posting the same forms over the same number of connections in the same run.

Issue target (transports): "SMS (Twilio fake): >= 500 messages/s with 4 concurrent
connections."

Prints ONE line:
    sms_send messages=N connections=4 rate=../s raw=../s target=500/s ratio=..%
(ratio = rate / 500; " latency=..ms" is added when --latency is given.)

What it does: starts a fake of POST /2010-04-01/Accounts/{sid}/Messages.json (a
subprocess: an asyncio server speaking HTTP/1.1 with keep-alive; it checks Basic auth and
the form fields, answers Twilio's 201 JSON body with a fresh SM sid and counts what it
took), then sends --messages (default 5,000) in batches of --batch (default 500), one
channels.transports.sms.TwilioTransport per batch (as a sending task would hold one) with
concurrency=--connections (default 4): every outcome must be a SendResult with its own sid
and the fake must have taken every message. Then the floor: the same messages as forms
urlencoded beforehand, posted by --connections threads over one plain httpx.Client of as
many connections per batch (no form building, no answer parsing, no address check).

On loopback a round trip costs next to nothing, so the client's CPU bounds both figures
and concurrency buys little; --latency MS makes the fake wait before each answer, as
Twilio's round trip does, which is what the connections are there to overlap.

Run:
    .venv/bin/python benchmarks/sms_send.py
"""

import argparse
import base64
import logging
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
# settings need them; the benchmark never connects to either
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
# the fake listens on 127.0.0.1: a private host, allowed as for tests
os.environ.setdefault("ALLOW_PRIVATE_PROVIDER_HOSTS", "1")

TARGET = 500  # messages/s
SID, TOKEN = "AC" + "5" * 32, "benchmark-auth-token"
FROM = "+15005550006"
CALLBACK = "https://herald.test/webhooks/twilio/status"

FAKE = r"""
import asyncio, json, sys, threading, uuid
from email.utils import formatdate
from urllib.parse import parse_qs

port, sid, auth = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
latency = float(sys.argv[4]) / 1000
path = f"/2010-04-01/Accounts/{sid}/Messages.json".encode()
taken = 0

def answer(status, reason, body, close=False):
    data = json.dumps(body).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n" + ("Connection: close\r\n" if close else "")
            + "\r\n")
    return head.encode() + data

def error(status, reason, code, message):
    return answer(status, reason, {"code": code, "message": message, "status": status,
        "more_info": f"https://www.twilio.com/docs/errors/{code}"})

def message(form):
    global taken
    to, body = form.get("To", [""])[0], form.get("Body", [""])[0]
    sender, service = form.get("From", [""])[0], form.get("MessagingServiceSid", [""])[0]
    if not to:
        return error(400, "Bad Request", 21604, "A 'To' phone number is required.")
    if not body:
        return error(400, "Bad Request", 21602, "Message body is required.")
    if not sender and not service:
        return error(400, "Bad Request", 21603, "A 'From' phone number is required.")
    taken += 1
    sm, now = "SM" + uuid.uuid4().hex, formatdate(usegmt=True)
    return answer(201, "Created", {
        "account_sid": sid, "api_version": "2010-04-01", "body": body,
        "date_created": now, "date_sent": None, "date_updated": now,
        "direction": "outbound-api", "error_code": None, "error_message": None,
        "from": sender or None, "messaging_service_sid": service or None, "num_media": "0",
        "num_segments": "1", "price": None, "price_unit": "USD", "sid": sm,
        "status": "queued", "subresource_uris": {
            "media": f"/2010-04-01/Accounts/{sid}/Messages/{sm}/Media.json"},
        "to": to, "uri": f"/2010-04-01/Accounts/{sid}/Messages/{sm}.json",
    })

async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            method, target, _ = lines[0].split(b" ", 2)
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            if method != b"POST" or target != path:
                writer.write(error(404, "Not Found", 20404, "The requested resource was not found"))
            elif headers.get(b"authorization") != auth:
                writer.write(error(401, "Unauthorized", 20003, "Authenticate"))
            elif not headers.get(b"content-type", b"").startswith(
                b"application/x-www-form-urlencoded"
            ):
                writer.write(error(400, "Bad Request", 21604, "A 'To' phone number is required."))
            else:
                if latency:
                    await asyncio.sleep(latency)
                writer.write(message(parse_qs(body.decode())))
            await writer.drain()
            if headers.get(b"connection", b"").lower() == b"close":
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

def counts():
    for _ in sys.stdin:
        print(taken, flush=True)

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=128)
    threading.Thread(target=counts, daemon=True).start()
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0, help="ms the fake waits to answer")
    args = parser.parse_args()

    import django

    django.setup()
    # the root logger is at INFO, where httpx logs every request: measure the sending
    logging.getLogger("httpx").setLevel(logging.WARNING)
    import httpx

    from channels.transports.base import OutboundMessage, SendResult
    from channels.transports.sms import TwilioTransport

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    auth = "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE, str(port), SID, auth, str(args.latency)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert fake.stdout.readline().strip() == "ready"

    def taken() -> int:
        fake.stdin.write("?\n")
        fake.stdin.flush()
        return int(fake.stdout.readline())

    messages = [
        OutboundMessage(
            channel="sms", address=f"+1415{i:07d}",
            body=f"Spring sale: everything is 20% off until Sunday. Code SPRING{i}. "
            "Reply STOP to opt out.",
            idempotency_key=f"delivery-{i}", reference=str(i),
        )
        for i in range(args.messages)
    ]  # fmt: skip
    batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
    try:
        sids = set()
        began = time.perf_counter()
        for batch in batches:
            with TwilioTransport(
                account_sid=SID, auth_token=TOKEN, from_number=FROM, status_callback=CALLBACK,
                base_url=url, concurrency=args.connections,
            ) as sms:  # fmt: skip
                outcomes = sms.send_many(batch)
            for outcome in outcomes:
                if not isinstance(outcome, SendResult):
                    raise SystemExit(f"the transport failed: {outcome!r}")
                sids.add(outcome.provider_message_id)
        transport_s = time.perf_counter() - began
        if len(sids) != args.messages or taken() != args.messages:
            raise SystemExit("the fake did not take every message from the transport")

        path = f"/2010-04-01/Accounts/{SID}/Messages.json"
        raw_batches = [
            [
                (
                    urlencode(
                        {"To": m.address, "Body": m.body, "From": FROM, "StatusCallback": CALLBACK}
                    ).encode(),
                    {"I-Twilio-Idempotency-Token": m.idempotency_key},
                )
                for m in batch
            ]
            for batch in batches
        ]
        headers = {
            "Authorization": auth, "Accept": "application/json", "User-Agent": "Herald",
            "Content-Type": "application/x-www-form-urlencoded",
        }  # fmt: skip
        limits = httpx.Limits(
            max_connections=args.connections, max_keepalive_connections=args.connections
        )
        began = time.perf_counter()
        for batch in raw_batches:
            with (
                httpx.Client(base_url=url, headers=headers, limits=limits) as client,
                ThreadPoolExecutor(max_workers=args.connections) as threads,
            ):
                statuses = list(
                    threads.map(
                        lambda form: (
                            client.post(path, content=form[0], headers=form[1]).status_code
                        ),
                        batch,
                    )
                )
            if any(status != 201 for status in statuses):
                raise SystemExit(f"raw httpx failed: {statuses[:5]}")
        raw_s = time.perf_counter() - began
        if taken() != 2 * args.messages:
            raise SystemExit("the fake did not take every raw message")
    finally:
        fake.kill()
    rate, raw_rate = args.messages / transport_s, args.messages / raw_s
    print(
        f"sms_send messages={args.messages} connections={args.connections} "
        f"rate={rate:.0f}/s raw={raw_rate:.0f}/s target={TARGET}/s "
        f"ratio={100 * rate / TARGET:.0f}%"
        + (f" latency={args.latency:g}ms" if args.latency else "")
    )


if __name__ == "__main__":
    main()
