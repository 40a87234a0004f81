"""A task runs on a real Celery worker process consuming from Redis."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from axes.models import AccessAttempt
from django.db import connection
from django.utils import timezone

from accounts.tasks import clear_old_login_attempts_task
from config.celery import app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(transactional_db):
    """`celery worker` in its own process, on the test database and the test Redis."""
    db = connection.settings_dict
    env = dict(os.environ)
    host = quote(db["HOST"] or "", safe="")  # a socket folder (embedded server) or a name
    port = f":{db['PORT']}" if db["PORT"] else ""
    env["DATABASE_URL"] = f"postgres://{db['USER']}@{host}{port}/{db['NAME']}"
    app.control.purge()
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "-Q", "default,segments,imports,dispatch", "-n", f"test-{os.getpid()}@%h",
         "--loglevel", "INFO", "--without-mingle", "--without-gossip"],
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


def _attempt(days_ago):
    a = AccessAttempt.objects.create(
        user_agent="pytest", ip_address="10.0.0.1", username=f"{days_ago}@y.test",
        http_accept="*/*", path_info="/login/", failures_since_start=3,
    )  # fmt: skip
    AccessAttempt.objects.filter(pk=a.pk).update(
        attempt_time=timezone.now() - timedelta(days=days_ago)
    )
    return a


@pytest.mark.celery_worker
def test_a_task_sent_through_redis_is_executed_by_the_worker(worker):
    old, recent = _attempt(45), _attempt(1)
    clear_old_login_attempts_task.apply_async(kwargs={"days": 30})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not AccessAttempt.objects.filter(pk=old.pk).exists():
            break
        assert worker.poll() is None, worker.stdout.read()
        time.sleep(0.3)
    else:
        worker.terminate()
        pytest.fail("the worker did not run the task within 60 s:\n" + worker.stdout.read())
    assert AccessAttempt.objects.filter(pk=recent.pk).exists()


def test_tasks_are_routed_to_their_queues():
    route = app.amqp.router.route({}, "segments.tasks.segment_refresh_task")
    assert route["queue"].name == "segments"
    assert (
        app.amqp.router.route({}, "accounts.tasks.clear_expired_sessions_task")["queue"].name
        == "default"
    )


def test_reliable_task_defaults():
    task = app.tasks["accounts.tasks.clear_expired_sessions_task"]
    assert task.acks_late and task.reject_on_worker_lost
    assert task.max_retries == 5 and task.retry_backoff
    assert app.conf.worker_prefetch_multiplier == 1
    assert set(app.conf.beat_schedule) >= {"clear-expired-sessions", "clear-old-login-attempts"}


@pytest.mark.celery_worker
def test_a_queued_segment_refresh_is_run_by_the_worker(worker):
    """ "Refresh now" queues a job after its commit; the worker claims and computes it."""
    from accounts.audit import Actor
    from segments.models import RefreshStatus
    from segments.services import segment_create, segment_recount_start
    from tests.factories import PersonFactory, WorkspaceFactory

    workspace = WorkspaceFactory()
    PersonFactory(workspace=workspace, city="Oslo")
    PersonFactory(workspace=workspace, city="Rome")
    segment = segment_create(
        workspace=workspace, name="Oslo", kind="realtime",
        rules={"attribute": "city", "op": "is", "value": "Oslo"}, actor=Actor(system="t"),
    )  # fmt: skip
    PersonFactory(workspace=workspace, city="Oslo")
    refresh = segment_recount_start(segment=segment, actor=Actor(system="t"))  # sent on commit
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        refresh.refresh_from_db()
        if refresh.status not in (RefreshStatus.QUEUED, RefreshStatus.RUNNING):
            break
        assert worker.poll() is None, worker.stdout.read()
        time.sleep(0.3)
    else:
        worker.terminate()
        pytest.fail("the worker did not run the refresh within 60 s:\n" + worker.stdout.read())
    segment.refresh_from_db()
    assert (refresh.status, refresh.attempts, refresh.entered) == (RefreshStatus.OK, 1, 1)
    assert segment.people_count == 2 and segment.refresh_status == RefreshStatus.OK
