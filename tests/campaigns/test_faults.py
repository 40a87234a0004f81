"""Faults during a real send: real Celery workers (separate processes) on a Redis of this
test, sending an SMS campaign to a local Twilio fake and an email campaign to a local SMTP
sink, while the test kills the worker with SIGKILL five times, restarts Redis and drops
every PostgreSQL connection of the database (what a PostgreSQL restart does to its
clients). Recovery is what production has: beat's minute task (reclaim the leases that
ran out, restart launches, start workers for sending campaigns), time advanced past the
lease. Every recipient ends sent, failed, skipped or `unknown`; nothing is left queued or
lost; the fake and the sink count 0 duplicates; `unknown` is at most the in-flight batch
per kill, and none at all with Twilio, which dedupes on our idempotency key.

The 50,000-recipient run of the same scenario is benchmarks/campaign_faults.py."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from accounts.audit import Actor
from campaigns.dispatch.send import BATCH, LEASE, reclaim
from campaigns.models import Campaign, Delivery
from campaigns.services import campaign_create, campaign_launch
from channels.services import provider_set
from config.celery import app
from people.models import Person
from segments.services import segment_create, static_members_change
from tests.channels.test_sms_transport import SID, TOKEN, FakeTwilio, twilio_server  # noqa: F401
from tests.segments.test_broker_restart import free_port, start_redis, stop

ROOT = Path(__file__).resolve().parents[2]
ACTOR = Actor.of_system("tests")
# benchmarks/campaign_faults.py runs these tests at 50,000 (HERALD_FAULTS_RECIPIENTS) and
# reads what each measured from HERALD_FAULTS_REPORT (a JSON lines file)
_SIZE = int(os.environ.get("HERALD_FAULTS_RECIPIENTS") or 0)
SMS_RECIPIENTS = _SIZE or 6_000
EMAIL_RECIPIENTS = _SIZE or 8_000
KILLS = 5
FINAL = ("sent", "delivered", "failed", "bounced", "skipped", "unknown")
pytestmark = pytest.mark.celery_worker


class Gate:
    """Holds the provider's answers once it has taken `at` messages, so that a fault lands
    while a batch is in flight (handed to the provider, its answers not yet recorded)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.taken = 0
        self.at = None
        self.waiting = 0
        self.open = threading.Event()
        self.open.set()

    def hold_at(self, n):
        with self.lock:
            self.at = n
            self.open.clear()

    def release(self):
        with self.lock:
            self.at = None
            self.open.set()

    def pass_through(self):
        with self.lock:
            self.taken += 1
            hold = self.at is not None and self.taken > self.at
            if hold:
                self.waiting += 1
        if hold:
            self.open.wait(timeout=120)
            with self.lock:
                self.waiting -= 1


class DedupingTwilio(FakeTwilio):
    """Twilio's Messages API answering a repeated idempotency token with the message it
    already created (no second SMS); `messages` counts the SMS it really sent per number."""

    def __init__(self, delay):
        super().__init__(delay=delay)
        self.gate = Gate()
        self.by_token = {}
        self.messages = Counter()

    def answer(self, request):
        token = request.headers.get("I-Twilio-Idempotency-Token")
        with self.lock:
            first = self.by_token.get(token)
        if first is not None:
            return first
        self.gate.pass_through()
        response = super().answer(request)
        with self.lock:
            if token not in self.by_token and response.status_code == 201:
                self.by_token[token] = response
                self.messages[request.form["To"]] += 1
        return response


class CountingSink:
    """An SMTP server that accepts everything, counting per recipient (a message counts
    once its data arrived, whether or not the sender was still there for the answer)."""

    def __init__(self):
        self.gate = Gate()
        self.messages = Counter()
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            for to in envelope.rcpt_tos:
                self.messages[to] += 1
        self.gate.pass_through()  # blocks this sink's loop: one sender at a time anyway
        return "250 2.0.0 Ok: queued"


@pytest.fixture
def private_redis(settings):
    port = free_port()
    state = {"proc": start_redis(port), "port": port, "url": f"redis://127.0.0.1:{port}/0"}
    original = app.conf.broker_url
    _fresh_pools()
    app.conf.broker_url = settings.REDIS_URL = state["url"]
    try:
        yield state
    finally:
        _fresh_pools()
        app.conf.broker_url = original
        stop(state["proc"])


def _fresh_pools():
    app._pool = None
    app.amqp._producer_pool = None


class Workers:
    """The Celery worker process of the test, started again after each kill."""

    def __init__(self, redis_url):
        db = connection.settings_dict
        host = quote(db["HOST"] or "", safe="")
        port = f":{db['PORT']}" if db["PORT"] else ""
        url = f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"
        self.env = dict(
            os.environ, REDIS_URL=redis_url, DATABASE_URL=url, ALLOW_PRIVATE_PROVIDER_HOSTS="1"
        )  # the local fakes
        self.proc = None
        self.log = []

    def start(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
             "-Q", "default,dispatch", "-n", f"faults-{os.getpid()}-{time.time_ns()}@%h",
             "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
            cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=20)
        self.log.append(self.proc.stdout.read())

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def workers(transactional_db, private_redis):
    workers = Workers(private_redis["url"])
    workers.start()
    yield workers
    workers.stop()


def _beat():
    """What beat's minute task does, sent through the broker to the worker."""
    _fresh_pools()
    app.send_task("campaigns.tasks.campaigns_due_task", retry=True)


def _lease_runs_out():
    """Time passes beyond the lease: the dead worker's deliveries are reclaimed (run here,
    with the clock advanced, while no worker holds a lease)."""
    return reclaim(now=timezone.now() + LEASE + timedelta(seconds=1))


def _counts(campaign) -> Counter:
    return Counter(
        Delivery.objects.filter(campaign=campaign, is_test=False).values_list("status", flat=True)
    )


def _wait(predicate, seconds, what, workers):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        assert workers.proc.poll() is None, workers.proc.stdout.read()[-3000:]
        time.sleep(0.1)
    workers.kill()
    pytest.fail(f"{what} did not happen within {seconds} s: {_counts_any()}\n"
                f"{workers.log[-1][-3000:]}")  # fmt: skip


def _counts_any():
    return list(Campaign.objects.values_list("status", "status_reason")), list(
        Delivery.objects.values_list("status").annotate(n=Count("id"))
    )


def _drop_database_connections():
    """What a PostgreSQL restart does to its clients: every other connection to the test
    database is closed under them (the other databases of the server are left alone)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def _people(workspace, n, channel):
    """n people with an address on the channel, written set-based (one INSERT ... SELECT)."""
    email = "'p' || g || '@example.com'" if channel == "email" else "''"
    phone = "'+1415' || lpad(g::text, 7, '0')" if channel == "sms" else "''"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO people_person (workspace_id, external_id, email, phone, first_name, "
            "last_name, gender, country, city, address, attributes, created_at, updated_at) "
            f"SELECT %s, 'p' || g, {email}, {phone}, '', '', '', '', '', '', '{{}}', now(), "
            "now() FROM generate_series(1, %s) g",
            [workspace.pk, n],
        )
    segment = segment_create(workspace=workspace, name=f"{channel} crowd", kind="static",
                             actor=ACTOR)  # fmt: skip
    static_members_change(segment=segment, people=Person.objects.for_workspace(workspace),
                          add=True, actor=ACTOR)  # fmt: skip
    return segment


def _open(gate):
    """Let the held answers go (to a dead worker's closed sockets, after a kill), and wait
    until the provider has processed them."""
    gate.release()
    deadline = time.monotonic() + 30
    while gate.waiting and time.monotonic() < deadline:
        time.sleep(0.02)


def _report(channel, counts, duplicates, started):
    path = os.environ.get("HERALD_FAULTS_REPORT")
    if path:
        seconds = round(time.monotonic() - started, 1)
        line = {"channel": channel, "counts": dict(counts), "duplicates": duplicates,
                "seconds": seconds}  # fmt: skip
        with open(path, "a") as out:
            out.write(json.dumps(line) + "\n")


def _run_with_faults(workspace, workers, private_redis, campaign, total, gate):
    """Kill the worker KILLS times as the send goes, restart Redis and drop the database
    connections once each; recover as beat does; wait until nothing is left to send."""
    campaign_launch(campaign=campaign, actor=ACTOR)  # after commit: the launch task

    faults = ["kill", "kill", "kill", "redis", "kill", "kill", "database"]
    assert faults.count("kill") == KILLS
    step = total // 16  # a kill also ends the in-flight batch: leave room for all seven
    for n, fault in enumerate(faults, start=1):
        gate.hold_at(gate.taken + step)
        _wait(lambda: gate.waiting > 0, 120, f"a batch in flight at fault {n} ({fault})", workers)
        status = Campaign.objects.get(pk=campaign.pk).status
        assert status == "sending", f"the campaign was {status} before fault {n} ({fault})"
        if fault == "kill":
            workers.kill()
            _open(gate)
            _lease_runs_out()
            workers.start()
            _beat()
        elif fault == "redis":  # stops, starts again empty (--save ""): beat refills it
            stop(private_redis["proc"])
            time.sleep(1)
            private_redis["proc"] = start_redis(private_redis["port"])
            _open(gate)
            _beat()
        else:  # every connection dropped: the worker's task fails, its leases wait
            dropped, deadline = 0, time.monotonic() + 30
            while not dropped and time.monotonic() < deadline:  # the worker's, mid-send
                dropped = _drop_database_connections()
                time.sleep(0.02)
            assert dropped >= 1, "the worker never held a database connection"
            _open(gate)  # the failed task's leases wait: the stall handler below

    def finished():
        counts = _counts(campaign)
        if counts["queued"] or counts["sending"]:
            _beat_if_stalled(counts)
            return False
        return Campaign.objects.get(pk=campaign.pk).status in ("sent", "failed")

    last = {"counts": None, "at": time.monotonic()}

    def _beat_if_stalled(counts):  # beat runs every minute in production: here on a stall
        if counts != last["counts"]:
            last.update(counts=counts, at=time.monotonic())
        elif time.monotonic() - last["at"] > 5:
            if Delivery.objects.filter(campaign=campaign, status="sending").exists():
                workers.stop()  # leases of a failed task: their time runs out, no live one
                _lease_runs_out()
                workers.start()
            _beat()
            last["at"] = time.monotonic()

    _wait(finished, 240 + total // 100, "the end of the campaign", workers)
    return _counts(campaign)


def test_an_sms_campaign_survives_kills_and_restarts_with_no_duplicate(
    workspace,
    workers,
    private_redis,
    twilio_server,  # noqa: F811
):
    twilio_server.clear()
    fake = DedupingTwilio(delay=0.002)
    twilio_server.expect_request(
        f"/2010-04-01/Accounts/{SID}/Messages.json", method="POST"
    ).respond_with_handler(fake)
    provider_set(workspace=workspace, channel="sms", kind="twilio",
                 settings={"account_sid": SID, "from": "+14155550100",
                           "base_url": twilio_server.url_for("/")},
                 secrets={"auth_token": TOKEN}, actor=ACTOR)  # fmt: skip
    crowd = _people(workspace, SMS_RECIPIENTS, "sms")
    campaign = campaign_create(workspace=workspace, name="Faults SMS", channel="sms",
                               content={"body": "Sale today"}, include=[crowd],
                               actor=ACTOR)  # fmt: skip
    started = time.monotonic()
    counts = _run_with_faults(
        workspace, workers, private_redis, campaign, SMS_RECIPIENTS, fake.gate
    )
    _report("sms", counts, sum(n - 1 for n in fake.messages.values()), started)
    assert sum(counts.values()) == SMS_RECIPIENTS
    assert set(counts) <= set(FINAL), counts
    assert counts["unknown"] == 0, counts  # Twilio dedupes our key: re-sent, not unknown
    assert counts["sent"] == SMS_RECIPIENTS, counts
    assert len(fake.messages) == SMS_RECIPIENTS
    assert max(fake.messages.values()) == 1, fake.messages.most_common(3)


def test_an_email_campaign_survives_kills_and_restarts_with_no_duplicate(
    workspace, workers, private_redis
):
    sink = CountingSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        provider_set(workspace=workspace, channel="email", kind="smtp",
                     settings={"host": "127.0.0.1", "port": port, "security": "none",
                               "from_email": "news@acme.test"}, secrets={},
                     actor=ACTOR)  # fmt: skip
        crowd = _people(workspace, EMAIL_RECIPIENTS, "email")
        campaign = campaign_create(workspace=workspace, name="Faults email", channel="email",
                                   content={"subject": "Hi", "text": "Sale"}, include=[crowd],
                                   actor=ACTOR)  # fmt: skip
        started = time.monotonic()
        counts = _run_with_faults(
            workspace, workers, private_redis, campaign, EMAIL_RECIPIENTS, sink.gate
        )
        _report("email", counts, sum(n - 1 for n in sink.messages.values()), started)
    finally:
        controller.stop()
    assert sum(counts.values()) == EMAIL_RECIPIENTS
    assert set(counts) <= set(FINAL), counts
    # handed to the sink with no answer recorded: never re-sent, at most a batch per kill
    # (and one for the dropped database connections)
    assert counts["unknown"] <= BATCH * (KILLS + 1), counts
    assert counts["sent"] + counts["unknown"] == EMAIL_RECIPIENTS, counts
    assert max(sink.messages.values()) == 1, sink.messages.most_common(3)
    # every message the sink took is recorded sent or unknown: none silently lost
    assert len(sink.messages) >= counts["sent"]
