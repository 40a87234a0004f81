"""Segment kinds: stored membership with entry and exit, snapshots frozen per requester,
static lists, scheduled queries, everyone, built-in segments, into audiences."""

from datetime import UTC, datetime, timedelta

import pytest

from accounts.audit import Actor
from audiences.models import TargetAudience
from people.models import Person
from people.services.events import event_ingest_batch
from people.services.people import person_upsert
from segments.models import RefreshStatus, Segment, SegmentKind, SegmentMember
from segments.rules import RuleError
from segments.selectors import segment_contains, segment_people
from segments.services import (
    SegmentConflict,
    ensure_predefined,
    segment_create,
    segment_freeze,
    segment_refresh,
    segment_to_audience,
    segment_update,
    static_members_change,
)

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LONDON = {"attribute": "city", "op": "is", "value": "London"}


@pytest.fixture
def people(workspace):
    made = {}
    for ext, city in [("a", "London"), ("b", "London"), ("c", "Paris")]:
        made[ext], _ = person_upsert(
            workspace=workspace,
            external_id=ext,
            data={"city": city, "attributes": {"langs": ["en"]}},
            actor=Actor(system="tests"),
        )
    return made


def ids(qs):
    return sorted(qs.values_list("external_id", flat=True))


def test_every_workspace_has_the_built_in_segments(workspace):
    names = set(
        Segment.objects.for_workspace(workspace)
        .exclude(predefined="")
        .values_list("name", flat=True)
    )
    assert names == {"Everyone", "Active Mobile Users", "Inactive Mobile Users"}


def test_the_built_in_everyone_segment_holds_every_person(workspace, people):
    everyone = Segment.objects.for_workspace(workspace).get(predefined="everyone")
    assert everyone.kind == SegmentKind.EVERYONE and everyone.rules is None
    assert sorted(ids(segment_people(segment=everyone, now=NOW))) == sorted(
        Person.objects.for_workspace(workspace).values_list("external_id", flat=True)
    )
    ensure_predefined(workspace=workspace)  # idempotent: still one
    assert Segment.objects.for_workspace(workspace).filter(kind=SegmentKind.EVERYONE).count() == 1


def test_built_in_mobile_segments_follow_app_launches(workspace, people):
    event_ingest_batch(
        workspace=workspace,
        items=[
            {"person": "a", "name": "App Launch", "occurred_at": NOW - timedelta(days=3)},
            {"person": "b", "name": "App Launch", "occurred_at": NOW - timedelta(days=45)},
        ],
        actor=Actor(system="tests"),
    )
    active = Segment.objects.for_workspace(workspace).get(predefined="active_mobile_users")
    inactive = Segment.objects.for_workspace(workspace).get(predefined="inactive_mobile_users")
    assert ids(segment_people(segment=active, now=NOW)) == ["a"]
    assert ids(segment_people(segment=inactive, now=NOW)) == ["b"]
    with pytest.raises(SegmentConflict):
        segment_update(segment=active, rules=LONDON, actor=Actor(system="tests"))


def test_realtime_segment_is_computed_on_creation_and_records_entry_and_exit(workspace, people):
    seg = segment_create(
        workspace=workspace,
        name="Londoners",
        kind="realtime",
        rules=LONDON,
        now=NOW,
        actor=Actor(system="tests"),
    )
    assert seg.people_count == 2 and seg.refresh_status == RefreshStatus.OK
    assert ids(segment_people(segment=seg, now=NOW)) == ["a", "b"]
    person_upsert(
        workspace=workspace, external_id="a", data={"city": "Rome"}, actor=Actor(system="tests")
    )
    person_upsert(
        workspace=workspace, external_id="c", data={"city": "London"}, actor=Actor(system="tests")
    )
    later = NOW + timedelta(hours=1)
    refresh = segment_refresh(segment=seg, now=later, actor=Actor(system="tests"))
    assert (refresh.entered, refresh.exited, refresh.people_count) == (1, 1, 2)
    left = SegmentMember.objects.get(segment=seg, person=people["a"])
    assert left.exited_at == later and left.entered_at == NOW
    assert segment_contains(segment=seg, person=people["c"], now=later)
    assert not segment_contains(segment=seg, person=people["a"], now=later)


def test_realtime_rules_cannot_change_and_refuse_list_attributes(workspace, people):
    seg = segment_create(
        workspace=workspace,
        name="RT",
        kind="realtime",
        rules=LONDON,
        now=NOW,
        actor=Actor(system="tests"),
    )
    with pytest.raises(SegmentConflict, match="Duplicate it"):
        segment_update(
            segment=seg,
            rules={"attribute": "city", "op": "is", "value": "Paris"},
            actor=Actor(system="tests"),
        )
    segment_update(segment=seg, name="Renamed", actor=Actor(system="tests"))  # the name may change
    with pytest.raises(RuleError, match="list attributes"):
        segment_create(
            workspace=workspace,
            name="Lists",
            kind="realtime",
            rules={"attribute": "langs", "op": "contains", "value": "en"},
            actor=Actor(system="tests"),
        )


def test_snapshot_is_frozen_per_requester_and_edits_never_change_it(workspace, people):
    seg = segment_create(
        workspace=workspace, name="Snap", kind="snapshot", rules=LONDON, actor=Actor(system="tests")
    )
    frozen = segment_freeze(
        segment=seg, requester="campaign:1", now=NOW, actor=Actor(system="tests")
    )
    assert frozen.people_count == 2
    segment_update(
        segment=seg,
        rules={"attribute": "city", "op": "is", "value": "Paris"},
        actor=Actor(system="tests"),
    )
    again = segment_freeze(
        segment=seg, requester="campaign:1", now=NOW, actor=Actor(system="tests")
    )
    assert again.pk == frozen.pk and again.people_count == 2
    assert set(frozen.members.values_list("person__external_id", flat=True)) == {"a", "b"}
    other = segment_freeze(segment=seg, requester="flow:7", now=NOW, actor=Actor(system="tests"))
    assert other.people_count == 1


def test_static_segment_takes_people_by_hand_only(workspace, people):
    seg = segment_create(
        workspace=workspace, name="Hand-picked", kind="static", actor=Actor(system="tests")
    )
    everyone = Person.objects.for_workspace(workspace)
    assert (
        static_members_change(
            segment=seg,
            people=everyone.filter(external_id__in=["a", "c"]),
            add=True,
            actor=Actor(system="tests"),
        )
        == 2
    )
    assert (
        static_members_change(
            segment=seg,
            people=everyone.filter(external_id="a"),
            add=True,
            actor=Actor(system="tests"),
        )
        == 0
    )
    assert (
        static_members_change(
            segment=seg,
            people=everyone.filter(external_id="a"),
            add=False,
            actor=Actor(system="tests"),
        )
        == 1
    )
    seg.refresh_from_db()
    assert seg.people_count == 1 and ids(segment_people(segment=seg, now=NOW)) == ["c"]
    rule_seg = segment_create(
        workspace=workspace,
        name="Rules",
        kind="snapshot",
        rules=LONDON,
        actor=Actor(system="tests"),
    )
    with pytest.raises(SegmentConflict):
        static_members_change(
            segment=rule_seg, people=everyone, add=True, actor=Actor(system="tests")
        )
    with pytest.raises(RuleError):
        segment_create(
            workspace=workspace,
            name="Static with rules",
            kind="static",
            rules=LONDON,
            actor=Actor(system="tests"),
        )


def test_query_segment_is_scheduled_and_a_failed_refresh_shows_why(workspace, people):
    seg = segment_create(
        workspace=workspace,
        name="Q",
        kind="query",
        rules=LONDON,
        refresh_every_minutes=15,
        now=NOW,
        actor=Actor(system="tests"),
    )
    assert seg.people_count == 2 and seg.next_refresh_at == NOW + timedelta(minutes=15)
    with pytest.raises(RuleError, match="5 minutes"):
        segment_create(
            workspace=workspace,
            name="Too often",
            kind="query",
            rules=LONDON,
            refresh_every_minutes=1,
            actor=Actor(system="tests"),
        )
    # a rule tree that no longer compiles (its attribute was removed from the catalogue)
    Segment.objects.filter(pk=seg.pk).update(rules={"attribute": "gone", "op": "is", "value": "x"})
    seg.refresh_from_db()
    refresh = segment_refresh(
        segment=seg, now=NOW + timedelta(minutes=15), actor=Actor(system="tests")
    )
    seg.refresh_from_db()
    assert refresh.status == seg.refresh_status == RefreshStatus.FAILED
    assert "unknown attribute" in seg.refresh_error and seg.people_count == 2


def test_everyone_is_everybody_of_the_workspace(workspace, other_workspace, people):
    person_upsert(workspace=other_workspace, external_id="z", data={}, actor=Actor(system="tests"))
    seg = segment_create(
        workspace=workspace, name="All", kind="everyone", actor=Actor(system="tests")
    )
    assert ids(segment_people(segment=seg, now=NOW)) == ["a", "b", "c"] and seg.people_count == 3


def test_segment_members_go_into_an_audience_in_one_statement(workspace, people):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    seg = segment_create(
        workspace=workspace,
        name="Londoners",
        kind="realtime",
        rules=LONDON,
        now=NOW,
        actor=Actor(system="tests"),
    )
    with CaptureQueriesContext(connection) as few:
        assert (
            segment_to_audience(
                segment=seg,
                audience_name="Spring",
                action="add",
                now=NOW,
                actor=Actor(system="tests"),
            )
            == 2
        )
    Person.objects.bulk_create(
        [Person(workspace=workspace, external_id=f"x{i}", city="London") for i in range(200)]
    )
    segment_refresh(segment=seg, now=NOW, actor=Actor(system="tests"))
    with CaptureQueriesContext(connection) as many:
        assert (
            segment_to_audience(
                segment=seg,
                audience_name="Spring",
                action="add",
                now=NOW,
                actor=Actor(system="tests"),
            )
            == 200
        )
    assert len(many) <= len(few)  # no query per person
    assert TargetAudience.objects.for_workspace(workspace).get(name="Spring").people_count == 202
    assert (
        segment_to_audience(
            segment=seg,
            audience_name="spring",
            action="remove",
            now=NOW,
            actor=Actor(system="tests"),
        )
        == 202
    )


def test_segment_names_are_unique_and_cycles_are_refused(workspace, people):
    first = segment_create(
        workspace=workspace, name="One", kind="static", actor=Actor(system="tests")
    )
    with pytest.raises(SegmentConflict):
        segment_create(workspace=workspace, name="one", kind="static", actor=Actor(system="tests"))
    a = segment_create(
        workspace=workspace,
        name="A",
        kind="snapshot",
        rules={"segment": first.pk, "op": "in"},
        actor=Actor(system="tests"),
    )
    b = segment_create(
        workspace=workspace,
        name="B",
        kind="snapshot",
        rules={"segment": a.pk, "op": "in"},
        actor=Actor(system="tests"),
    )
    with pytest.raises(RuleError, match="itself"):
        segment_update(segment=a, rules={"segment": b.pk, "op": "in"}, actor=Actor(system="tests"))
    assert a.kind == SegmentKind.SNAPSHOT
