"""Concurrent event batches (two API workers) must not deadlock on the catalogue or on
creating the same unknown people."""

import threading

import pytest
from django.db import connection

from accounts.audit import Actor
from people.models import Event, EventType, Person
from people.services.events import event_ingest_batch


@pytest.mark.django_db(transaction=True)
def test_concurrent_batches_with_overlapping_names_and_new_people_all_land(workspace):
    names = [f"Event {i}" for i in range(20)]
    batches = []
    for b in range(6):
        order = names if b % 2 else list(reversed(names))  # opposite orders: the deadlock shape
        batches.append([{"person": f"new-{i % 50}", "name": n} for i, n in enumerate(order * 10)])
    errors = []

    def send(batch):
        try:
            event_ingest_batch(workspace=workspace, items=batch, actor=Actor(system="tests"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert Event.objects.for_workspace(workspace).count() == 6 * 200
    assert Person.objects.for_workspace(workspace).count() == 50
    assert sum(EventType.objects.for_workspace(workspace).values_list("count", flat=True)) == 1200
