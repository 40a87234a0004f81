"""A Meta custom-audience export of 1,000,000 people to a local fake of the Graph API in
another process.

Issue target (Meta custom audiences): "Meta export of 1M people: <= 60 s against the fake
(print hashing and sending shares)."

Prints ONE line:
    meta_export mode=job people=N sent=S batches=B elapsed=..s reading=..% hashing=..%
    sending=..% target<=60s ratio=..%
elapsed is the export end to end: meta_export_start (checks, the job row, the task sent
after commit, run eagerly as a worker would run it) through meta_export_run (the claim,
the count, one server-side cursor over the audience's reachable people, normalizing and
hashing them, batches of 10,000 over HTTP with the job's progress after each, the job
done). The shares are of elapsed: reading = the count and fetching the people from
PostgreSQL, hashing = normalizing + SHA-256, sending = JSON encoding, HTTP and the fake's
answer; ratio = 60 s / elapsed as a percentage (100% or more meets the target).

The default mode (job) uses its own database, herald_bench_meta (created, migrated and
dropped at the end; --keep keeps it): --people people (default 1,000,000) by COPY, a
static segment holding all of them and a small one (1 in 200) to exclude, each in the
Meta channel's segment list, a Meta channel audience including the first and excluding
the second, 1 in 500 people on email Do Not Contact and another 1 in 500 on SMS Do Not
Contact, some people with no email (1 in 50) or no phone (1 in 10) or neither (1 in
1,000), and the workspace's meta provider pointing at the fake. The fake is told the
SHA-256 of every Do Not Contact address and counts any that arrives (there must be none),
and sums the external ids it gets: count and sum must be those of exactly the people
expected (computed here from how the data was made, not by Herald's queries).

--client keeps the client-level figure: channels.meta.export() alone over --people rows
generated in memory (no database), one line `meta_export mode=client ...`.

The fake (an asyncio HTTP/1.1 server with keep-alive, a subprocess) answers POST
/{version}/{audience_id}/users and /usersreplace and GET /{version}/{audience_id}; it
checks the Bearer token, the schema, the width of every row, the session of every batch
(one session_id, batch_seq 1, 2, ..., estimated_num_total constant, nothing after
last_batch_flag, the flag on the last) and, to stay cheap, the hashes of a sample of 100
rows a batch by regex (64 lowercase hex for EMAIL and PHONE, EXTERN_ID not hashed).

Run (one benchmark at a time: the machine has 2 cores):
    .venv/bin/python benchmarks/meta_export.py [--people 1000000] [--replace] [--keep]
    .venv/bin/python benchmarks/meta_export.py --client
"""

import argparse
import hashlib
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET = 60.0  # seconds
TOKEN = "EAAHerald-benchmark-token"
AUDIENCE = "23851234567890123"
PG_SERVER = "postgres://root@127.0.0.1:5432"
DB_NAME = "herald_bench_meta"

FAKE = r"""
import asyncio, json, random, re, sys, threading

port, token = int(sys.argv[1]), sys.argv[2].encode()
# optional: a file of SHA-256 hex values that must never arrive (Do Not Contact addresses)
forbidden = set(json.load(open(sys.argv[3]))) if len(sys.argv) > 3 else set()
edge_path = re.compile(rb"^/v\d+\.\d+/(\d+)/(users|usersreplace)$")
node_path = re.compile(rb"^/v\d+\.\d+/(\d+)(\?.*)?$")
hex64 = re.compile(r"[0-9a-f]{64}")
SCHEMA = ["EMAIL", "PHONE", "EXTERN_ID"]
stats = {"rows": 0, "batches": 0, "problems": [], "last_flag_seen": False, "forbidden": 0,
         "extern_sum": 0}
session = {}

def answer(status, reason, body):
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data

def error(code, message):
    return answer(400, "Bad Request", {"error": {"message": message, "type": "OAuthException",
                                                 "code": code, "fbtrace_id": "BenchTrace"}})

def problem(text):
    if len(stats["problems"]) < 20:
        stats["problems"].append(text)

def upload(audience_id, body):
    try:
        params = json.loads(body)
        payload, s = params["payload"], params["session"]
        schema, data = payload["schema"], payload["data"]
        sid, seq = s["session_id"], s["batch_seq"]
        last, estimate = s["last_batch_flag"], s["estimated_num_total"]
    except (ValueError, KeyError, TypeError) as e:
        problem(f"malformed request: {e!r}")
        return error(100, "(#100) Invalid parameter")
    if schema != SCHEMA:
        problem(f"schema {schema!r}")
        return error(100, "(#100) Invalid schema")
    if not 0 < len(data) <= 10000 or any(len(row) != 3 for row in data):
        problem(f"batch {seq}: {len(data)} rows or a row not 3 wide")
        return error(100, "(#100) Invalid data")
    if not session:
        if seq != 1:
            problem(f"first batch_seq {seq}")
        session.update(session_id=sid, seq=seq, estimate=estimate, last=last)
    else:
        if sid != session["session_id"]:
            problem(f"session_id changed at batch {seq}")
        if seq != session["seq"] + 1:
            problem(f"batch_seq {session['seq']} then {seq}")
        if estimate != session["estimate"]:
            problem(f"estimated_num_total changed at batch {seq}")
        if session["last"]:
            problem(f"batch {seq} after last_batch_flag")
        session.update(seq=seq, last=last)
    for row in random.sample(data, min(100, len(data))):
        if any(v and not hex64.fullmatch(v) for v in row[:2]) or hex64.fullmatch(row[2]):
            problem(f"batch {seq}: a value hashed wrong: {row!r}")
            break
    if forbidden:
        hits = sum(1 for row in data if row[0] in forbidden or row[1] in forbidden)
        if hits:
            stats["forbidden"] += hits
            problem(f"batch {seq}: {hits} rows of people on Do Not Contact")
        # crm-0000123 -> 123: the sum over every row tells the fake got exactly the people
        stats["extern_sum"] += sum(int(row[2].rpartition("-")[2] or 0) for row in data)
    stats["rows"] += len(data)
    stats["batches"] += 1
    stats["last_flag_seen"] = last
    return answer(200, "OK", {"audience_id": audience_id, "session_id": str(sid),
                              "num_received": stats["rows"], "num_invalid_entries": 0,
                              "invalid_entry_samples": {}})

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
            if headers.get(b"authorization") != b"Bearer " + token:
                writer.write(error(190, "Invalid OAuth access token"))
            elif method == b"POST" and (match := edge_path.match(target)):
                writer.write(upload(match.group(1).decode(), body))
            elif method == b"GET" and (match := node_path.match(target)):
                writer.write(answer(200, "OK", {"id": match.group(1).decode(),
                    "operation_status": {"code": 200, "description": "Normal"}}))
            else:
                writer.write(error(100, "Unsupported request"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()

def report():
    for _ in sys.stdin:
        print(json.dumps(stats), flush=True)

async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=16)
    threading.Thread(target=report, daemon=True).start()
    print("ready", flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fake:
    """The fake Graph API in a subprocess; stats() asks it what it took."""

    def __init__(self, forbidden_path: str | None = None):
        self.port = free_port()
        argv = [sys.executable, "-c", FAKE, str(self.port), TOKEN]
        if forbidden_path:
            argv.append(forbidden_path)
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True)  # fmt: skip
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("the fake Graph API did not start")
        self.base_url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict:
        self.process.stdin.write("?\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def shares(elapsed: float, **seconds: float) -> str:
    return " ".join(f"{name}={100 * value / elapsed:.0f}%" for name, value in seconds.items())


# --- --client: channels.meta.export() over generated rows -------------------------------


def client_main(args) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DEBUG", "1")
    # settings need them; the client-level run never connects to either
    os.environ.setdefault("DATABASE_URL", f"{PG_SERVER}/postgres")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/9")
    # the fake listens on 127.0.0.1: a private host, allowed as for tests
    os.environ.setdefault("ALLOW_PRIVATE_PROVIDER_HOSTS", "1")
    import django

    django.setup()
    # the root logger is at INFO, where httpx logs every request: measure the export
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from channels.meta import MetaClient, export

    fake = Fake()
    # built beforehand, so the hashing share is the export's and not the generator's
    rows = [
        (f" Person.{i}@Example.COM", f"+4479{i:08d}" if i % 10 else "", f"crm-{i:07d}")
        for i in range(args.people)
    ]
    try:
        with MetaClient(TOKEN, base_url=fake.base_url) as client:
            began = time.perf_counter()
            result = export(client, AUDIENCE, rows, total=len(rows), replace=args.replace)
            elapsed = time.perf_counter() - began
        got = fake.stats()
    finally:
        fake.stop()
    if not result.ok:
        raise SystemExit(f"the export failed: {result.error}")
    if got["problems"] or got["rows"] != args.people or not got["last_flag_seen"]:
        raise SystemExit(f"the fake did not take every row cleanly: {got}")
    if result.sent != args.people or result.batches != got["batches"]:
        raise SystemExit(f"the export and the fake disagree: {result} {got}")
    print(
        f"meta_export mode=client people={result.sent} batches={result.batches} "
        f"elapsed={elapsed:.1f}s "
        + shares(elapsed, hashing=result.hashing_seconds, sending=result.sending_seconds)
        + f" target<={TARGET:.0f}s ratio={100 * TARGET / elapsed:.0f}%"
    )


# --- the default: the job end to end over a database of its own -----------------------


def person_row(i: int) -> tuple[str, str, str]:
    """Person i's (external_id, email, phone) as stored (emails lower-cased, phones
    E.164): 1 in 50 without an email, 1 in 10 without a phone, 1 in 1,000 neither."""
    email = "" if i % 50 == 5 or i % 1000 == 500 else f"person{i}@example.com"
    phone = "" if i % 10 == 0 else f"+4479{i:08d}"
    return f"crm-{i:07d}", email, phone


def excluded(i: int) -> bool:
    return i % 200 == 1


def on_email_dnc(i: int) -> bool:
    return i % 500 == 2


def on_sms_dnc(i: int) -> bool:
    return i % 500 == 3


def expected(n: int) -> tuple[int, int, list[str]]:
    """(count, sum of i) of the people the export must send, and the SHA-256 of every
    Do Not Contact address (Meta's normalization of the stored forms, spelled here)."""
    count = total = 0
    forbidden = []
    for i in range(1, n + 1):
        _, email, phone = person_row(i)
        if on_email_dnc(i) and email:
            forbidden.append(hashlib.sha256(email.encode()).hexdigest())
        if on_sms_dnc(i) and phone:
            forbidden.append(hashlib.sha256(phone[1:].encode()).hexdigest())
        if excluded(i) or on_email_dnc(i) or on_sms_dnc(i) or not (email or phone):
            continue
        count += 1
        total += i
    return count, total, forbidden


def bench_env(var_dir: str) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=f"{PG_SERVER}/{DB_NAME}",
        REDIS_URL=env.get("REDIS_URL", "redis://127.0.0.1:6379/9"),
        DEBUG="0",
        PROVIDER_SECRET_KEYS="dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
        SECRET_KEY="bench-only-secret-key-" + "k" * 50,
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="0",
        STATIC_MANIFEST="0",
        LOG_LEVEL="WARNING",
        HERALD_VAR_DIR=var_dir,
        DJANGO_SETTINGS_MODULE="config.settings",
        # the fake listens on 127.0.0.1, a private host: allowed as for tests
        ALLOW_PRIVATE_PROVIDER_HOSTS="1",
        # the task sent after commit runs in this process, as a worker would run it
        CELERY_TASK_ALWAYS_EAGER="1",
    )
    return env


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def migrate(env: dict) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode:
        raise SystemExit(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def load(workspace, n: int) -> tuple[int, int]:
    """The people by COPY, the two static segments' members and the Do Not Contact
    entries by set-based SQL; returns the two segments' ids."""
    workspace_id = workspace.pk
    from django.db import connection

    from accounts.audit import Actor
    from segments.services import segment_create

    actor = Actor(system="benchmark")
    now = datetime.now(UTC)
    columns = (
        "workspace_id, external_id, email, phone, first_name, last_name, gender, country, "
        "city, address, attributes, created_at, updated_at"
    )
    with connection.cursor() as c:
        with c.cursor.copy(f"COPY people_person ({columns}) FROM STDIN") as copy:
            for i in range(1, n + 1):
                external_id, email, phone = person_row(i)
                copy.write_row((workspace_id, external_id, email, phone, "Ann", "Smith", "",
                                "GB", "London", "", "{}", now, now))  # fmt: skip
        dnc = [("email", person_row(i)[1]) for i in range(1, n + 1) if on_email_dnc(i)]
        dnc += [("sms", person_row(i)[2]) for i in range(1, n + 1) if on_sms_dnc(i)]
        dnc_columns = "workspace_id, channel, address, reason, source, created_at"
        with c.cursor.copy(f"COPY people_donotcontact ({dnc_columns}) FROM STDIN") as copy:
            for channel, address in dnc:
                if address:
                    copy.write_row((workspace_id, channel, address, "benchmark", "manual", now))
    include = segment_create(workspace=workspace, name="Customers", kind="static", actor=actor)
    exclude = segment_create(workspace=workspace, name="Churned", kind="static", actor=actor)
    number = "substring(external_id from 5)::int"
    with connection.cursor() as cursor:
        for segment, where in ((include, "true"), (exclude, f"{number} %% 200 = 1")):
            cursor.execute(
                "INSERT INTO segments_segmentmember "  # noqa: S608 - constants only
                "(workspace_id, segment_id, person_id, entered_at, exited_at) "
                f"SELECT workspace_id, %s, id, %s, NULL FROM people_person "
                f"WHERE workspace_id = %s AND {where}",
                [segment.pk, now, workspace_id],
            )
            cursor.execute(
                "UPDATE segments_segment SET people_count = %s, computed_at = %s WHERE id = %s",
                [cursor.rowcount, now, segment.pk],
            )
        for table in ("people_person", "segments_segmentmember", "people_donotcontact"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    return include.pk, exclude.pk


def meta_audience(workspace, include: int, exclude: int, base_url: str):
    """The Meta channel's two entries, the audience over them and the meta provider."""
    from accounts.audit import Actor
    from channels.list_services import (
        channel_audience_create,
        channel_audience_set_meta_id,
        channel_segment_add,
    )
    from channels.services import provider_set
    from segments.models import Segment

    actor = Actor(system="benchmark")
    entries = [
        channel_segment_add(
            workspace=workspace, channel="meta", actor=actor, segment=Segment.objects.get(pk=pk)
        )  # fmt: skip
        for pk in (include, exclude)
    ]
    audience = channel_audience_create(
        workspace=workspace, channel="meta", actor=actor,
        data={"name": "Lookalike seed", "include": [entries[0].pk], "exclude": [entries[1].pk]},
    )  # fmt: skip
    channel_audience_set_meta_id(audience=audience, meta_audience_id=AUDIENCE, actor=actor)
    provider_set(
        workspace=workspace, channel="meta", kind="meta", actor=actor,
        settings={"ad_account_id": "1234567890", "base_url": base_url},
        secrets={"access_token": TOKEN},
    )  # fmt: skip
    return audience


class TimingsKept(logging.Handler):
    """Keeps the Timings meta_export_run logs when it ends."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.timings = None

    def emit(self, record):
        if getattr(record, "timings", None) is not None:
            self.timings = record.timings


def job_main(args) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="herald-meta-bench-"))
    env = bench_env(str(tmp / "var"))
    count, id_sum, forbidden = expected(args.people)
    forbidden_path = tmp / "forbidden.json"
    forbidden_path.write_text(json.dumps(forbidden))
    log(f"database {DB_NAME}: creating and migrating")
    recreate_database()
    fake = None
    try:
        migrate(env)
        os.environ.update(env)
        import django

        django.setup()
        from accounts.audit import Actor
        from accounts.models import Workspace
        from channels.export_services import meta_export_start
        from channels.models import MetaExport

        fake = Fake(str(forbidden_path))
        workspace = Workspace.objects.create(name="Bench", slug="bench")
        began = time.perf_counter()
        include, exclude = load(workspace, args.people)
        audience = meta_audience(workspace, include, exclude, fake.base_url)
        log(f"{args.people:,} people, segments and Do Not Contact in "
            f"{time.perf_counter() - began:.1f}s; {count:,} to send")  # fmt: skip

        kept = TimingsKept()
        service_log = logging.getLogger("channels.export_services")
        service_log.addHandler(kept)
        service_log.setLevel(logging.INFO)
        began = time.perf_counter()
        job = meta_export_start(audience=audience, actor=Actor(system="benchmark"),
                                replace=args.replace)  # fmt: skip
        elapsed = time.perf_counter() - began
        job = MetaExport.objects.unscoped().get(pk=job.pk)
        got = fake.stats()
    finally:
        if fake is not None:
            fake.stop()
        if not args.keep:
            from django.db import connections

            connections.close_all()
            drop_database()
            log(f"database {DB_NAME} dropped")
        shutil.rmtree(tmp, ignore_errors=True)

    if job.status != "done":
        raise SystemExit(f"the export did not finish: {job.status}: {job.detail}")
    if got["problems"] or not got["last_flag_seen"] or got["forbidden"]:
        raise SystemExit(f"the fake did not take every row cleanly: {got}")
    if (got["rows"], got["extern_sum"]) != (count, id_sum):
        raise SystemExit(f"the fake got other people than expected: {got}, want {count} rows")
    if (job.sent, job.batches, job.processed_rows) != (count, got["batches"], count):
        raise SystemExit(f"the job and the fake disagree: sent={job.sent} batches="
                         f"{job.batches} processed={job.processed_rows} {got}")  # fmt: skip
    timings = kept.timings
    log(f"job: {job.detail} (run {timings.elapsed:.1f}s)")
    print(
        f"meta_export mode=job people={args.people} sent={job.sent} batches={job.batches} "
        f"elapsed={elapsed:.1f}s "
        + shares(
            elapsed, reading=timings.reading, hashing=timings.hashing, sending=timings.sending
        )  # fmt: skip
        + f" target<={TARGET:.0f}s ratio={100 * TARGET / elapsed:.0f}%"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--replace", action="store_true", help="/usersreplace, not /users")
    parser.add_argument("--client", action="store_true",
                        help="channels.meta.export() alone over generated rows")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    if args.client:
        client_main(args)
    else:
        job_main(args)


if __name__ == "__main__":
    main()
