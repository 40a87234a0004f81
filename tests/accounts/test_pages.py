"""accounts/pages.py keyset_page: the UI lists' one keyset pager (?after= / ?before=)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEntry
from accounts.pages import keyset_page
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db


def _walk(page_of, first):
    """Every page forwards from `first`, then back again: the ids of each page."""
    forward, page = [], first
    while True:
        forward.append([r.pk for r in page.items])
        if page.next_key is None:
            break
        page = page_of(after=page.next_key)
    backward = []
    while page.prev_key is not None:
        page = page_of(before=page.prev_key)
        backward.append([r.pk for r in page.items])
    return forward, backward


def test_pages_by_id_cover_every_row_once_both_ways(workspace):
    from people.models import Person

    ids = sorted((PersonFactory(workspace=workspace).pk for _ in range(7)), reverse=True)
    people = Person.objects.for_workspace(workspace)

    def page_of(**keys):
        return keyset_page(people, size=3, **keys)

    forward, backward = _walk(page_of, page_of())
    assert forward == [ids[0:3], ids[3:6], ids[6:7]]
    assert backward == [ids[3:6], ids[0:3]]
    assert page_of().prev_key is None
    assert page_of(after=ids[2], before=ids[5]).items == page_of(after=ids[2]).items


def test_pages_by_time_then_id_keep_the_entries_of_one_instant_together(workspace):
    now = timezone.now()
    for i in range(9):  # three entries per instant: pages must not split or skip them
        AuditEntry.objects.create(
            workspace=workspace, action="test.page", created_at=now - timedelta(seconds=i // 3)
        )
    entries = AuditEntry.objects.for_workspace(workspace).order_by("-created_at", "-id")
    everything = list(entries)
    order = ("-created_at", "-id")
    for size in (2, 4):
        pages = [keyset_page(entries, order=order, size=size)]
        while pages[-1].next_key:
            pages.append(keyset_page(entries, order=order, size=size, after=pages[-1].next_key))
        assert [row for page in pages for row in page.items] == everything
        back = keyset_page(entries, order=order, size=size, before=pages[-1].items[0].pk)
        assert back.items == pages[-2].items and back.next_key == pages[-2].next_key
    unknown = keyset_page(entries, order=order, size=4, after=10**15)
    assert unknown.items == everything[:4] and unknown.prev_key is None
