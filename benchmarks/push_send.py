"""The FCM transport against a local FCM fake in another process, with 4 concurrent
connections, and a raw httpx floor over the same fake in the same run.

Issue target (transports): "Push (FCM fake): >= 500 messages/s with 4 concurrent
connections".

Prints ONE line:
    push_send messages=N connections=4 rate=../s target=500/s ratio=..% raw=../s

What it does: makes a Google service account (a fresh RSA key), starts the fake (a
subprocess: an asyncio HTTP/1.1 keep-alive server with Google's token endpoint, which
verifies the JWT-bearer assertion with the account's public key, and FCM's
/v1/projects/{id}/messages:send, which checks the bearer token it issued and the message,
answering FCM's `{"name": "projects/.../messages/0:..."}`), then sends --messages
(default 5000) through channels.transports.push_fcm.FcmTransport.send_many with
concurrency=4 in batches of --batch (default 500) over one transport (one access token,
one pool of 4 keep-alive connections, each through the SSRF check), rendering every
message's v1 JSON. Then the floor: 4 threads posting the same messages' JSON, built
beforehand, over one plain httpx client limited to 4 connections. Both must have every
message accepted by the fake. `connections` is how many connections the fake saw the
transport's messages arrive on.

Run:
    .venv/bin/python benchmarks/push_send.py
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "1")
# settings need them; the benchmark never connects to either
os.environ.setdefault("DATABASE_URL", "postgres://root@127.0.0.1:5432/postgres")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
# the fake listens on 127.0.0.1: a private host, allowed as for tests
os.environ.setdefault("ALLOW_PRIVATE_PROVIDER_HOSTS", "1")

PROJECT = "herald-bench"
TARGET = 500

FAKE = r"""
import asyncio, json, sys, uuid
import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

port, email = int(sys.argv[1]), sys.argv[2]
public_key = load_pem_public_key(open(sys.argv[3], "rb").read())
issued, counts, serving = set(), {"messages": 0}, set()  # serving: connections that sent
SEND = b"/v1/projects/%s/messages:send" % sys.argv[4].encode()


def answer(status, body):
    data = json.dumps(body).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}[status]
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=UTF-8\r\n"
            b"Content-Length: %d\r\n\r\n" % (status, reason.encode(), len(data))) + data


def token(body):
    from urllib.parse import parse_qs
    form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
        return answer(400, {"error": "unsupported_grant_type"})
    try:
        jwt.decode(form.get("assertion", ""), public_key, algorithms=["RS256"], issuer=email,
                   audience="https://oauth2.googleapis.com/token")
    except jwt.InvalidTokenError:
        return answer(400, {"error": "invalid_grant",
                            "error_description": "Invalid JWT Signature."})
    access = "ya29." + uuid.uuid4().hex
    issued.add(access)
    return answer(200, {"access_token": access, "expires_in": 3599, "token_type": "Bearer"})


def send(headers, body, conn):
    if headers.get(b"authorization", b"")[7:].decode() not in issued:
        return answer(401, {"error": {"code": 401, "status": "UNAUTHENTICATED",
                                      "message": "Request had invalid credentials."}})
    message = json.loads(body).get("message") or {}
    if not isinstance(message.get("token"), str):
        return answer(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                      "message": "Recipient of the message is not set."}})
    counts["messages"] += 1
    serving.add(conn)
    return answer(200, {"name": "projects/%s/messages/0:%d%%31bd1c9631bd1c96"
                                % (sys.argv[4], counts["messages"])})


async def connection(reader, writer):
    conn = object()
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, path, _ = lines[0].split(b" ", 2)
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
            if method == b"POST" and path == b"/token":
                writer.write(token(body))
            elif method == b"POST" and path == SEND:
                writer.write(send(headers, body, conn))
            else:
                writer.write(answer(404, {"error": {"code": 404, "status": "NOT_FOUND"}}))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(connection, "127.0.0.1", port)
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        print(counts["messages"], len(serving), flush=True)
        serving.clear()

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()

    import django

    django.setup()
    import httpx
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from channels.transports.base import OutboundMessage, SendResult
    from channels.transports.push import push_content
    from channels.transports.push_fcm import FCM_SCOPE, FcmTransport, fcm_message

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    account = {
        "type": "service_account", "project_id": PROJECT, "private_key_id": "1" * 40,
        "private_key": key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()).decode(),
        "client_email": f"herald@{PROJECT}.iam.gserviceaccount.com", "client_id": "1" * 21,
        "token_uri": f"{base}/token",
    }  # fmt: skip
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as public_pem:
        public_pem.write(public)
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE, str(port), account["client_email"], public_pem.name, PROJECT],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert fake.stdout.readline().strip() == "ready"

    def counted() -> tuple[int, int]:
        fake.stdin.write("?\n")
        fake.stdin.flush()
        messages, connections = fake.stdout.readline().split()
        return int(messages), int(connections)

    messages = [
        OutboundMessage(
            channel="push", address=f"fcm-token-{i:06d}-" + "x" * 140, title="Spring sale",
            body="Everything is 20% off until Sunday", reference=f"delivery-{i}",
            data={"deep_link": "https://shop.herald.test/sale",
                  "android": {"channel_id": "offers", "priority": "high", "ttl": 86400},
                  "custom": {"coupon": "SPRING20", "campaign": "spring"}},
        )
        for i in range(args.messages)
    ]  # fmt: skip
    batches = [messages[i : i + args.batch] for i in range(0, len(messages), args.batch)]
    try:
        with FcmTransport(
            project_id=PROJECT, service_account_json=account, base_url=base,
            concurrency=args.concurrency,
        ) as fcm:  # fmt: skip
            fcm.send_many(messages[:1])  # the access token, outside the timing
            counted()
            began = time.perf_counter()
            for batch in batches:
                outcomes = fcm.send_many(batch)
                if not all(isinstance(o, SendResult) for o in outcomes):
                    failed = next(o for o in outcomes if not isinstance(o, SendResult))
                    raise SystemExit(f"the transport failed: {failed!r}")
            transport_s = time.perf_counter() - began
        sent, connections = counted()
        if sent != args.messages + 1:
            raise SystemExit(f"the fake got {sent} messages from the transport")

        now = int(time.time())
        assertion = jwt.encode(
            {"iss": account["client_email"], "scope": FCM_SCOPE, "iat": now, "exp": now + 3600,
             "aud": "https://oauth2.googleapis.com/token"}, key, algorithm="RS256",
        )  # fmt: skip
        bodies = [json.dumps(fcm_message(m, push_content(m)), separators=(",", ":")).encode()
                  for m in messages]  # fmt: skip
        with httpx.Client(
            limits=httpx.Limits(max_connections=args.concurrency), timeout=10
        ) as raw:  # fmt: skip
            access = raw.post(f"{base}/token", data={
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion}).json()["access_token"]  # fmt: skip
            headers = {"Authorization": f"Bearer {access}", "Content-Type": "application/json"}
            url = f"{base}/v1/projects/{PROJECT}/messages:send"
            failures = []

            def post(share):
                for body in share:
                    if raw.post(url, content=body, headers=headers).status_code != 200:
                        failures.append(body)

            shares = [bodies[i :: args.concurrency] for i in range(args.concurrency)]
            threads = [threading.Thread(target=post, args=(share,)) for share in shares]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            raw_s = time.perf_counter() - began
        if failures or counted()[0] != 2 * args.messages + 1:
            raise SystemExit("the fake did not accept every raw message")
    finally:
        fake.kill()
        os.unlink(public_pem.name)
    rate, raw_rate = args.messages / transport_s, args.messages / raw_s
    print(
        f"push_send messages={args.messages} connections={connections} rate={rate:.0f}/s "
        f"target={TARGET}/s ratio={100 * rate / TARGET:.0f}% raw={raw_rate:.0f}/s"
    )


if __name__ == "__main__":
    main()
