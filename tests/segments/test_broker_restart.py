"""A real Celery worker evaluates real-time segments through a real Redis; the Redis is
stopped (writes still succeed, their outbox rows wait) and started again; the beat's
sweep, sent through it, evaluates what waited. Each change is one transition, none lost."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from accounts.audit import Actor
from config.celery import app
from people.models import PersonChange
from people.services.people import person_upsert
from segments.models import SegmentKind, SegmentTransition
from segments.services import segment_create

ROOT = Path(__file__).resolve().parents[2]
REDIS = shutil.which("redis-server")
pytestmark = pytest.mark.celery_worker


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_redis(port: int) -> subprocess.Popen:
    if REDIS is None:
        pytest.fail("redis-server is not installed (Debian's redis-server; .ci/run has it)")
    proc = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for(predicate, seconds=60, what="it"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {seconds} s")


@pytest.fixture
def private_redis(settings):
    """A Redis of this test alone (it is stopped midway), the app's broker meanwhile."""
    port = free_port()
    proc = start_redis(port)
    url = f"redis://127.0.0.1:{port}/0"
    original = app.conf.broker_url

    def fresh_pools():  # connections made from now on use app.conf.broker_url
        app._pool = None
        app.amqp._producer_pool = None

    fresh_pools()
    app.conf.broker_url = url
    settings.REDIS_URL = url
    state = {"proc": proc, "port": port, "url": url}
    try:
        yield state
    finally:
        fresh_pools()
        app.conf.broker_url = original
        stop(state["proc"])


@pytest.fixture
def worker(transactional_db, private_redis):
    db = connection.settings_dict
    env = dict(os.environ)
    host = quote(db["HOST"] or "", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"
    env["REDIS_URL"] = private_redis["url"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "-Q", "default,segments", "-n", f"restart-{os.getpid()}@%h", "--loglevel", "INFO",
         "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_the_broker_stops_and_starts_again_and_nothing_is_lost(workspace, private_redis, worker):
    actor = Actor(system="tests")
    person_upsert(workspace=workspace, external_id="ann", data={"city": "Paris"}, actor=actor)
    person_upsert(workspace=workspace, external_id="bob", data={"city": "Paris"}, actor=actor)
    oslo = segment_create(
        workspace=workspace, name="Oslo", kind=SegmentKind.REALTIME,
        rules={"attribute": "city", "op": "is", "value": "Oslo"}, actor=actor,
    )  # fmt: skip

    def moves():
        return sorted(
            SegmentTransition.objects.filter(segment=oslo).values_list(
                "person__external_id", "kind"
            )
        )

    # 1. with the broker up, the change reaches the worker after commit
    person_upsert(workspace=workspace, external_id="ann", data={"city": "Oslo"}, actor=actor)
    wait_for(lambda: moves() == [("ann", "entered")], what="the worker's evaluation")

    # 2. the broker stops: the write succeeds, its outbox row waits
    stop(private_redis["proc"])
    person_upsert(workspace=workspace, external_id="bob", data={"city": "Oslo"}, actor=actor)
    assert PersonChange.objects.filter(workspace=workspace, processed_at__isnull=True).exists()
    time.sleep(1)
    assert moves() == [("ann", "entered")]

    # 3. the broker starts again on the same port; the beat's sweep goes through it
    private_redis["proc"] = start_redis(private_redis["port"])
    app._pool = None
    app.amqp._producer_pool = None
    app.send_task("segments.tasks.realtime_clock_task", retry=True)
    wait_for(
        lambda: moves() == [("ann", "entered"), ("bob", "entered")],
        what="the sweep after the restart",
    )
    assert not PersonChange.objects.filter(workspace=workspace, processed_at__isnull=True).exists()
    assert worker.poll() is None, worker.stdout.read()
