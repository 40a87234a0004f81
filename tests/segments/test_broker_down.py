"""Nothing lost, nothing down: with Redis (broker and rate limit counters) not answering,
the API answers and writes succeed; what failed open is counted on /healthz; the outbox
keeps the real-time work, and the beat sweep does it once Redis is back."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.audit import Actor
from config.celery import app
from people.models import EventType, PersonChange
from people.services.people import person_upsert
from segments.models import SegmentKind, SegmentTransition
from segments.services import segment_create
from segments.tasks import realtime_clock_task

DEAD = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@contextmanager
def redis_down(settings):
    """Redis stops answering: the broker (Celery's connection pool) and the counters."""
    original = app.conf.broker_url

    def fresh_pools():
        # connections made from now on use app.conf.broker_url (kombu keeps one pool per
        # broker: the test Redis's is found again afterwards, open)
        app._pool = None
        app.amqp._producer_pool = None

    fresh_pools()
    app.conf.broker_url = DEAD
    settings.REDIS_URL = DEAD
    try:
        yield
    finally:
        fresh_pools()
        app.conf.broker_url = original


@pytest.mark.django_db(transaction=True)
def test_with_redis_down_the_api_answers_writes_succeed_and_the_sweep_catches_up(
    api_client, workspace, settings
):
    settings.API_RATE_LIMIT = "1000/m"
    EventType.objects.create(
        workspace=workspace, name="Purchase", first_seen=timezone.now(), last_seen=timezone.now()
    )
    person_upsert(workspace=workspace, external_id="ann", data={}, actor=Actor(system="t"))
    buyers = segment_create(
        workspace=workspace, name="Buyers", kind=SegmentKind.REALTIME,
        rules={"event": "Purchase"}, actor=Actor(system="t"),
    )  # fmt: skip
    realtime_clock_task()
    with redis_down(settings):
        sent = api_client.post(
            "/api/v1/events",
            {"events": [{"person": "ann", "name": "Purchase"}]},
            content_type="application/json",
        )
        assert sent.status_code == 202, sent.content
        assert api_client.get("/api/v1/people/ann").status_code == 200  # reads too
        health = Client().get("/healthz").json()
    assert health["checks"]["broker"] == "error"
    assert health["degraded"]["task_queue"]["count"] >= 1
    assert health["degraded"]["rate_limits"]["count"] >= 1
    assert health["outbox"]["pending"] >= 1
    # nothing was evaluated while Redis was down; the row waits
    assert not SegmentTransition.objects.filter(segment=buyers).exists()
    assert PersonChange.objects.filter(workspace=workspace, processed_at__isnull=True).exists()
    # Redis is back: the beat sweep takes what no task took
    realtime_clock_task()
    assert list(
        SegmentTransition.objects.filter(segment=buyers).values_list("kind", flat=True)
    ) == ["entered"]
    assert Client().get("/healthz").json()["outbox"]["pending"] == 0
    assert timezone.now() - SegmentTransition.objects.get(segment=buyers).at < timedelta(minutes=1)
