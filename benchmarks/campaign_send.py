"""A 100,000-recipient email campaign sent end to end by 2 real Celery workers to a local
SMTP sink in another process, against raw smtplib over the same number of connections and
a naive one-Celery-task-per-email sender, in one run.

Issue target (campaigns, "Numbers"): "A 100,000-recipient email campaign to a local SMTP
sink in another process, 2 workers: >= 500 emails/s from launch to last sent, >= 50% of
raw smtplib to the same sink with the same number of connections, >= 10x a naive
one-Celery-task-per-email sender measured beside it. Memory of a worker flat (<= 300 MB
RSS) through the 100k campaign."

Prints ONE line:
    campaign_send recipients=N sent=S workers=2 connections=2 rate=..emails/s raw=../s
    ratio=..% naive=../s vs_naive=..x peak_rss_mb=.. (targets >=500/s >=50% >=10x <=300MB)

What it does:

1. (Re)creates the database herald_bench_csend and migrates it; COPYs --recipients people
   (default 100,000) with emails: every 200th on email Do Not Contact, every 500th with
   the address of the person before (skipped as a duplicate address). An SMTP provider
   pointing at the sink and an Everyone email campaign (Liquid in the subject, text and a
   ~4 KB HTML body: name, city, plan, an `if`).
2. Starts the sink (aiosmtpd in a subprocess, accepting every message and counting them,
   the distinct recipients and the connections they came on) and 2 Celery workers
   (`celery worker --pool solo -Q dispatch`, as deployed), on Redis db 13.
3. The campaign: campaign_launch (the service the API and the UI call) -> the launch job
   on a worker (the freeze) -> 2 dispatch tasks (claim, render, send over one SMTP
   connection each, record). Timed from the launch to the last delivery recorded sent
   (max sent_at - launched_at); the sink must hold exactly the sent count, each address
   once, over 2 connections (each worker keeps one for its whole dispatch). Each
   worker's VmRSS (/proc/<pid>/status) is sampled every 100 ms meanwhile: the peak is
   printed.
4. Raw: 2 processes, each one smtplib connection, send as many messages to the same sink:
   the same bytes (--raw-sample, default 1,000, of the campaign's messages built by the
   transport beforehand, cycled; no rendering timed); rate = messages / time from go to
   the last done.
5. Naive: --naive (default 5,000) Celery tasks, one per email, on the same 2 workers, each
   loading the person and the campaign, checking Do Not Contact, compiling and rendering
   the templates and sending one message through Django's SMTP backend (a connection per
   message); rate = messages / time from the first enqueue to the sink holding them all.

Run:
    flock /tmp/bench.lock .venv/bin/python benchmarks/campaign_send.py
    flock /tmp/bench.lock .venv/bin/python benchmarks/campaign_send.py --recipients 5000
"""

import argparse
import json
import os
import pickle
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from celery import shared_task

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DB = "herald_bench_csend"
PG_SERVER = "postgres://root@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379/13"
for _name, _value in {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "DEBUG": "0",  # as deployed: no query log in the workers
    "SECRET_KEY": "bench-only-secret-key-" + "k" * 50,
    "PROVIDER_SECRET_KEYS": "dGVzdC1vbmx5LXByb3ZpZGVyLXNlY3JldC1rZXktMzI=",
    "ALLOWED_HOSTS": "127.0.0.1",
    "SECURE_SSL_REDIRECT": "0",
    "STATIC_MANIFEST": "0",
    "LOG_LEVEL": "WARNING",
    # the sink listens on 127.0.0.1: a private host, allowed as for tests
    "ALLOW_PRIVATE_PROVIDER_HOSTS": "1",
}.items():
    os.environ.setdefault(_name, _value)
# its own database and Redis db, whatever the shell has (the database is dropped at the end)
os.environ.update(DATABASE_URL=f"{PG_SERVER}/{DB}", REDIS_URL=REDIS)

TARGET_RATE, TARGET_RAW, TARGET_NAIVE, TARGET_RSS_MB = 500, 50, 10, 300
WORKERS = 2
FROM = "news@herald.test"

SINK = """
import asyncio, sys
from aiosmtpd.controller import Controller

class Sink:
    count = 0
    seen = set()
    peers = set()
    async def handle_DATA(self, server, session, envelope):
        Sink.count += 1
        Sink.seen.update(envelope.rcpt_tos)
        Sink.peers.add(session.peer)
        return "250 OK"

controller = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
for line in sys.stdin:
    print(Sink.count, len(Sink.seen), len(Sink.peers), flush=True)
"""

# One smtplib connection sending `count` of the pre-built messages (cycled) after "go".
RAW = """
import pickle, smtplib, sys, time
port, count, path, sender = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(path, "rb") as f:
    messages = pickle.load(f)
smtp = smtplib.SMTP("127.0.0.1", port)
smtp.ehlo()
print("ready", flush=True)
sys.stdin.readline()
for i in range(count):
    address, data = messages[i % len(messages)]
    smtp.sendmail(sender, [address], data)
smtp.quit()
print("done", flush=True)
"""

CONTENT = {
    "subject": "{{ person.first_name | default: 'Hello' }}, spring is here: 20% off",
    "preheader": "Everything is 20% off until Sunday",
    "from_name": "Herald Shop",
    "text": (
        "Hi {{ person.first_name | default: 'there' }},\n\n"
        "Everything in our {{ person.city | default: 'online' }} shop is 20% off until "
        "Sunday.\n{% if person.attributes.plan == 'pro' %}As a Pro member you get free "
        "delivery too.\n{% endif %}\nSee you soon,\nThe Herald Shop team\n"
    ),
    "html": (
        "<html><head><style>h1 { color: #224466; } .note { font-size: 13px; }</style></head>"
        '<body><table width="600" align="center"><tr><td>'
        "<h1>Hi {{ person.first_name | default: 'there' }}, spring is here</h1>"
        "<p>Everything in our {{ person.city | default: 'online' }} shop is 20% off until "
        "Sunday.</p>"
        "{% if person.attributes.plan == 'pro' %}<p>As a Pro member you get free delivery "
        "too.</p>{% endif %}"
        + "".join(
            f"<tr><td><h2>Product {n}</h2><p>A fine thing, now 20% off. Soft, warm and made "
            f'to last: the one you wanted last winter.</p><p><a href="https://shop.example'
            f'.com/p/{n}">See it</a></p></td></tr>'
            for n in range(12)
        )
        + '<p class="note">You get this because you signed up at shop.example.com.</p>'
        "</td></tr></table></body></html>"
    ),
}
FIRST_NAMES = ("Ann", "Bob", "Chloé", "David", "Emma", "Farid", "Grace", "Hugo", "Inès",
               "Jonas", "Karin", "Luca", "Maya", "Noah", "Olga", "Pavel")  # fmt: skip
CITIES = ("London", "Paris", "Berlin", "Madrid", "Rome", "Oslo", "Lisbon", "Vienna")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- The naive sender: what the workers import (-I benchmarks.campaign_send) --------------


@shared_task(name="benchmarks.campaign_send.naive_send_task", acks_late=True)
def naive_send_task(campaign_id: int, person_id: int):
    """One email per task: load the person and the campaign, check Do Not Contact,
    render, send through Django's default SMTP backend (EMAIL_HOST: the sink)."""
    from django.core.mail import EmailMultiAlternatives

    from campaigns.models import Campaign
    from campaigns.templating import compile_content, person_context
    from people.models import DoNotContact, Person

    campaign = Campaign.objects.unscoped().get(pk=campaign_id)
    person = (
        Person.objects.for_workspace(campaign.workspace_id)
        .select_related("company")
        .get(pk=person_id)
    )
    if (
        DoNotContact.objects.for_workspace(campaign.workspace_id)
        .filter(channel="email", address=person.email)
        .exists()
    ):
        return
    content = compile_content("email", campaign.content).render(person_context(person))
    email = EmailMultiAlternatives(
        subject=content["subject"], body=content["text"], to=[person.email],
        from_email=f"{content['from_name']} <{FROM}>",
    )  # fmt: skip
    email.attach_alternative(content["html"], "text/html")
    email.send()


# --- Setup --------------------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, check=True)


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')


def build(recipients: int, port: int):
    """The workspace, its people (COPY), Do Not Contact, the provider and the campaign."""
    from django.db import connection

    from accounts.audit import Actor
    from accounts.models import Workspace
    from campaigns.services import campaign_create
    from channels.services import provider_set

    actor = Actor(system="benchmark")
    rng = random.Random(14)
    ws = Workspace.objects.create(name="Bench", slug="bench")
    dnc = 0
    with connection.cursor() as cursor:
        with cursor.cursor.copy(
            "COPY people_person (workspace_id, external_id, email, phone, first_name, last_name,"
            " gender, country, city, address, attributes, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(recipients):
                # every 500th has the address of the one before: a duplicate address
                n = i - 1 if i % 500 == 499 else i
                copy.write_row((ws.pk, f"p{i}", f"person{n}@example.com", "",
                                rng.choice(FIRST_NAMES), "Lee", "", "UK", rng.choice(CITIES), "",
                                json.dumps({"plan": rng.choice(("free", "pro", "team"))}),
                                "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))  # fmt: skip
        with cursor.cursor.copy(
            "COPY people_donotcontact (workspace_id, channel, address, reason, source, created_at)"
            " FROM STDIN"
        ) as copy:
            for i in range(7, recipients, 200):
                copy.write_row((ws.pk, "email", f"person{i}@example.com", "", "manual",
                                "2026-01-01T00:00:00Z"))  # fmt: skip
                dnc += 1
        cursor.execute("VACUUM ANALYZE people_person")
        cursor.execute("VACUUM ANALYZE people_donotcontact")
    provider_set(workspace=ws, channel="email", kind="smtp",
                 settings={"host": "127.0.0.1", "port": port, "security": "none",
                           "from_email": FROM, "from_name": "Herald Shop"},
                 secrets={}, actor=actor)  # fmt: skip
    campaign = campaign_create(workspace=ws, name="Spring sale", channel="email",
                               content=CONTENT, everyone=True, actor=actor)  # fmt: skip
    return ws, campaign, actor


def start_workers(env) -> list[subprocess.Popen]:
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                "solo",
                "-Q",
                "dispatch",
                "-n",
                f"bench-csend-{n}-{os.getpid()}@%h",
                "--loglevel",
                "WARNING",
                "--without-mingle",
                "--without-gossip",
                "-I",
                "benchmarks.campaign_send",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip (the banner on stdout; warnings and errors on stderr)
        for n in range(WORKERS)
    ]


def stop(procs) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_ready(app, procs) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.poll() is not None:
                raise SystemExit("a worker stopped at start-up")
        if len(app.control.ping(timeout=0.5)) >= len(procs):
            return
    raise SystemExit("the workers did not answer within 60 s")


class RssSampler(threading.Thread):
    """The peak VmRSS (MB) of each process, read every `every` seconds."""

    def __init__(self, pids, every=0.1):
        super().__init__(daemon=True)
        self.pids, self.every = pids, every
        self.peak = dict.fromkeys(pids, 0.0)
        self.running = True

    def run(self):
        while self.running:
            for pid in self.pids:
                try:
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                mb = int(line.split()[1]) / 1024
                                self.peak[pid] = max(self.peak[pid], mb)
                                break
                except OSError:
                    pass
            time.sleep(self.every)


# --- The three runs -----------------------------------------------------------------------


def run_campaign(campaign, actor, pids, timeout: float):
    from django.db import connection

    from campaigns.models import Campaign
    from campaigns.services import campaign_launch

    sampler = RssSampler(pids)
    sampler.start()
    campaign_launch(campaign=campaign, actor=actor)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Campaign.objects.unscoped().filter(pk=campaign.pk).values_list(
            "status", flat=True).get()  # fmt: skip
        if status not in ("sending",):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"the campaign was still sending after {timeout:.0f} s")
    sampler.running = False
    sampler.join()
    if status != "sent":
        raise SystemExit(f"the campaign ended {status}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE d.status = 'sent'), "
            "count(*) FILTER (WHERE d.status = 'skipped'), count(*), "
            "extract(epoch FROM max(d.sent_at) - c.launched_at) "
            "FROM campaigns_delivery d JOIN campaigns_campaign c ON c.id = d.campaign_id "
            "WHERE d.campaign_id = %s AND NOT d.is_test GROUP BY c.launched_at",
            [campaign.pk],
        )
        sent, skipped, total, seconds = cursor.fetchone()
    return sent, skipped, total, float(seconds), sampler.peak


def raw_messages(campaign, port: int, count: int) -> list[tuple[str, bytes]]:
    """`count` of the campaign's messages as the transport builds them (the same bytes)."""
    from campaigns.dispatch.send import _current, _message
    from campaigns.models import Delivery
    from campaigns.templating import compile_content, person_context_from_row
    from channels.transports.email import SmtpTransport

    transport = SmtpTransport(host="127.0.0.1", port=port, security="none", from_email=FROM,
                              from_name="Herald Shop")  # fmt: skip
    compiled = compile_content("email", campaign.content)
    ids = list(
        Delivery.objects.for_workspace(campaign.workspace_id)
        .filter(campaign=campaign, status="sent")
        .order_by("id")
        .values_list("id", flat=True)[:count]
    )
    messages = []
    for row in _current(ids, "email"):
        message = _message(campaign, compiled.render(person_context_from_row(row)), row, row["id"])
        messages.append((message.address, transport.render(message)[0]))
    return messages


def run_raw(port: int, messages, count: int) -> float:
    with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as f:
        pickle.dump(messages, f)
    shares = [count // WORKERS + (1 if n < count % WORKERS else 0) for n in range(WORKERS)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RAW, str(port), str(share), f.name, FROM],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for share in shares
    ]
    try:
        for proc in procs:
            assert proc.stdout.readline().strip() == "ready"
        began = time.perf_counter()
        for proc in procs:
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            if proc.stdout.readline().strip() != "done":
                raise SystemExit("a raw smtplib sender failed")
        return time.perf_counter() - began
    finally:
        stop(procs)
        os.unlink(f.name)


def run_naive(campaign, received, sample: int) -> tuple[int, float]:
    from people.models import DoNotContact, Person

    workspace = campaign.workspace_id
    blocked = DoNotContact.objects.for_workspace(workspace).filter(channel="email")
    people = list(
        Person.objects.for_workspace(workspace)
        .exclude(email__in=blocked.values("address"))
        .order_by("id")
        .values_list("id", flat=True)[:sample]
    )
    before = received()[0]
    began = time.perf_counter()
    for person_id in people:
        naive_send_task.apply_async((campaign.pk, person_id), queue="dispatch")
    deadline = time.monotonic() + 3600
    while received()[0] < before + len(people):
        if time.monotonic() > deadline:
            raise SystemExit("the naive sender did not finish within an hour")
        time.sleep(0.1)
    return len(people), time.perf_counter() - began


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=5_000, help="emails of the naive sample")
    parser.add_argument("--raw-sample", type=int, default=1_000,
                        help="distinct pre-built messages the raw senders cycle")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    port = free_port()
    os.environ["EMAIL_HOST"], os.environ["EMAIL_PORT"] = "127.0.0.1", str(port)
    log(f"database {DB}: creating and migrating")
    recreate_database()
    import django

    django.setup()
    from django.db import connection

    from config.celery import app

    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert sink.stdout.readline().strip() == "ready"

    def received() -> tuple[int, int, int]:
        """(messages, distinct recipients, connections) the sink has taken so far."""
        sink.stdin.write("?\n")
        sink.stdin.flush()
        count, distinct, connections = sink.stdout.readline().split()
        return int(count), int(distinct), int(connections)

    workers = []
    try:
        log(f"building {args.recipients:,} people")
        _ws, campaign, actor = build(args.recipients, port)
        app.control.purge()
        workers = start_workers(dict(os.environ))
        wait_ready(app, workers)
        connection.close()  # the polling below opens a fresh one

        log("campaign: launch -> freeze -> 2 dispatch tasks")
        sent, skipped, total, seconds, peaks = run_campaign(
            campaign, actor, [w.pid for w in workers], timeout=max(600, args.recipients / 50)
        )
        count, distinct, connections = received()
        if (count, distinct) != (sent, sent) or sent + skipped != total:
            raise SystemExit(f"the sink holds {count} messages to {distinct} addresses; the "
                             f"ledger: {sent} sent, {skipped} skipped of {total}")  # fmt: skip
        if connections != WORKERS:  # each worker keeps one SMTP connection for its dispatch
            raise SystemExit(f"the campaign used {connections} SMTP connections")
        rate = sent / seconds
        log(f"campaign: {sent:,} sent, {skipped:,} skipped in {seconds:.1f} s ({rate:.0f}/s), "
            f"peak RSS {', '.join(f'{mb:.0f}' for mb in peaks.values())} MB")  # fmt: skip

        log("raw smtplib: 2 connections")
        campaign.refresh_from_db()
        raw_s = run_raw(port, raw_messages(campaign, port, args.raw_sample), sent)
        if received()[0] != 2 * sent:
            raise SystemExit("the sink did not get every raw message")
        raw_rate = sent / raw_s
        log(f"raw: {sent:,} in {raw_s:.1f} s ({raw_rate:.0f}/s)")

        log(f"naive: {args.naive:,} tasks, one per email")
        naive_n, naive_s = run_naive(campaign, received, args.naive)
        naive_rate = naive_n / naive_s
        log(f"naive: {naive_n:,} in {naive_s:.1f} s ({naive_rate:.0f}/s)")
    finally:
        stop(workers)
        sink.kill()
        connection.close()
    print(
        f"campaign_send recipients={args.recipients} sent={sent} workers={WORKERS} "
        f"connections={connections} "
        f"rate={rate:.0f}emails/s raw={raw_rate:.0f}/s ratio={100 * rate / raw_rate:.0f}% "
        f"naive={naive_rate:.0f}/s vs_naive={rate / naive_rate:.1f}x "
        f"peak_rss_mb={max(peaks.values()):.0f} (targets >={TARGET_RATE}/s "
        f">={TARGET_RAW}% >={TARGET_NAIVE}x <={TARGET_RSS_MB}MB)"
    )
    if not args.keep:
        drop_database()


if __name__ == "__main__":
    main()
