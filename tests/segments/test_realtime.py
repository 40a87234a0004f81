"""Real-time segments kept current: every write path records its change in the outbox,
the evaluation re-checks only those people against only the segments concerned, and each
entry and exit is written once as a SegmentTransition."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from accounts.audit import Actor
from audiences.services import audience_add_people, audience_create, audience_remove_people
from people.models import EventType, Person, PersonChange
from people.services.events import event_ingest_batch
from people.services.people import person_upsert
from people.services.tags import tag_get_or_create, tags_assign, tags_unassign
from segments import realtime
from segments.models import RefreshStatus, Segment, SegmentKind, SegmentMember, SegmentTransition
from segments.selectors import rules_people
from segments.services import segment_create, static_members_change
from segments.transitions import Cursor, read_transitions

ACTOR = Actor(system="tests")


def realtime_segment(workspace, name, rules):
    for event in ("Purchase", "Refund", "Signup"):  # the catalogue knows the events rules name
        EventType.objects.get_or_create(
            workspace=workspace, name=event,
            defaults={"first_seen": timezone.now(), "last_seen": timezone.now()},
        )  # fmt: skip
    return segment_create(
        workspace=workspace, name=name, kind=SegmentKind.REALTIME, rules=rules, actor=ACTOR
    )


def moves(segment):
    """The segment's transitions as (external id, kind), oldest first."""
    return [
        (t.person.external_id, t.kind)
        for t in SegmentTransition.objects.filter(segment=segment)
        .select_related("person")
        .order_by("txid", "id")
    ]


def members(segment):
    return sorted(
        SegmentMember.objects.filter(segment=segment, exited_at__isnull=True).values_list(
            "person__external_id", flat=True
        )
    )


def upsert(workspace, external_id, **data):
    return person_upsert(workspace=workspace, external_id=external_id, data=data, actor=ACTOR)[0]


def people_named(workspace, *external_ids):
    return Person.objects.for_workspace(workspace).filter(external_id__in=external_ids)


def test_each_entry_and_exit_is_recorded_once(workspace):
    """An attribute change, events, a tag and a window closing (time pinned), through a
    nested segment: each entry and exit exactly once, nothing for what concerns nobody."""
    now = timezone.now()
    upsert(workspace, "ann", city="Paris")
    upsert(workspace, "bob", city="Paris")
    londoners = realtime_segment(
        workspace, "Londoners", {"attribute": "city", "op": "is", "value": "London"}
    )
    buyers = realtime_segment(
        workspace,
        "Recent buyers",
        {"event": "Purchase", "count": {"op": "gte", "value": 1},
         "time": {"op": "within_last", "amount": 30, "unit": "days"}},
    )  # fmt: skip
    vip = realtime_segment(workspace, "VIP", {"tag": "vip", "op": "has"})
    vip_londoners = realtime_segment(
        workspace,
        "VIP Londoners",
        {"all": [{"segment": londoners.pk, "op": "in"}, {"segment": vip.pk, "op": "in"}]},
    )
    realtime.evaluate_pending()
    assert [moves(s) for s in (londoners, buyers, vip, vip_londoners)] == [[], [], [], []]

    upsert(workspace, "ann", city="London")  # attribute
    event_ingest_batch(
        workspace=workspace,
        items=[{"person": "bob", "name": "Purchase", "occurred_at": now - timedelta(days=2)}],
        actor=ACTOR,
    )
    realtime.evaluate_pending(now=now)
    assert moves(londoners) == [("ann", "entered")]
    assert moves(buyers) == [("bob", "entered")]

    tag = tag_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    tags_assign(workspace=workspace, tag=tag, people=people_named(workspace, "ann"), actor=ACTOR)
    realtime.evaluate_pending(now=now)
    assert moves(vip) == [("ann", "entered")]
    assert moves(vip_londoners) == [("ann", "entered")]  # after both segments it names

    upsert(workspace, "ann", city="Rome")
    realtime.evaluate_pending(now=now)
    assert moves(londoners) == [("ann", "entered"), ("ann", "exited")]
    assert moves(vip_londoners) == [("ann", "entered"), ("ann", "exited")]

    # the window closes 30 days after bob's purchase: the clock, no write
    realtime.recheck_time_windows(now=now + timedelta(days=27))
    assert moves(buyers) == [("bob", "entered")]
    realtime.recheck_time_windows(now=now + timedelta(days=29))
    realtime.recheck_time_windows(now=now + timedelta(days=29, seconds=30))
    assert moves(buyers) == [("bob", "entered"), ("bob", "exited")]

    # evaluating again changes nothing and writes nothing
    realtime.evaluate_pending(now=now)
    realtime.recheck_time_windows(now=now + timedelta(days=29))
    assert len(moves(londoners)) == len(moves(vip_londoners)) == 2 and len(moves(buyers)) == 2
    assert members(vip) == ["ann"] and members(londoners) == members(buyers) == []
    assert not PersonChange.objects.filter(workspace=workspace, processed_at__isnull=True)
    # the counts follow
    assert Segment.objects.get(pk=vip.pk).people_count == 1
    assert Segment.objects.get(pk=londoners.pk).people_count == 0


def test_only_the_segments_naming_what_changed_are_rechecked(workspace, monkeypatch):
    upsert(workspace, "ann", city="Paris")
    by_city = realtime_segment(
        workspace, "City", {"attribute": "city", "op": "is", "value": "Oslo"}
    )
    by_event = realtime_segment(workspace, "Event", {"event": "Signup"})
    realtime.evaluate_pending()
    checked = []
    original = realtime.apply_membership
    monkeypatch.setattr(
        realtime,
        "apply_membership",
        lambda segment, **kw: (
            checked.append((segment.pk, kw.get("person_ids"))) or original(segment, **kw)
        ),
    )
    ann = upsert(workspace, "ann", city="Oslo")
    realtime.evaluate_pending()
    # the city segment, for ann only; the event segment is not touched
    assert checked == [(by_city.pk, [ann.pk])]
    assert members(by_city) == ["ann"] and by_event.pk not in [c[0] for c in checked]


def test_every_write_path_records_its_change(workspace):
    """Tags, audiences and static segment membership move people in and out."""
    for ext in ("a", "b"):
        upsert(workspace, ext)
    audience = audience_create(workspace=workspace, name="Spring", actor=ACTOR)
    static = segment_create(
        workspace=workspace, name="Hand-picked", kind=SegmentKind.STATIC, actor=ACTOR
    )
    in_audience = realtime_segment(workspace, "In Spring", {"audience": "Spring", "op": "in"})
    in_static = realtime_segment(workspace, "In hand-picked", {"segment": static.pk, "op": "in"})
    tagged = realtime_segment(workspace, "Tagged", {"tag": "newsletter", "op": "has_not"})
    realtime.evaluate_pending()
    assert members(tagged) == ["a", "b"]

    audience_add_people(audience=audience, people=people_named(workspace, "a"), actor=ACTOR)
    static_members_change(
        segment=static, people=people_named(workspace, "b"), add=True, actor=ACTOR
    )
    tag = tag_get_or_create(workspace=workspace, name="Newsletter", actor=ACTOR)
    tags_assign(workspace=workspace, tag=tag, people=people_named(workspace, "a", "b"), actor=ACTOR)
    realtime.evaluate_pending()
    assert members(in_audience) == ["a"] and members(in_static) == ["b"] and members(tagged) == []

    audience_remove_people(audience=audience, people=people_named(workspace, "a"), actor=ACTOR)
    tags_unassign(workspace=workspace, tag=tag, people=people_named(workspace, "b"), actor=ACTOR)
    realtime.evaluate_pending()
    assert members(in_audience) == [] and members(tagged) == ["b"]
    tagged_moves = moves(tagged)
    assert sorted(tagged_moves[:2]) == [("a", "entered"), ("b", "entered")]  # at creation
    assert sorted(tagged_moves[2:4]) == [("a", "exited"), ("b", "exited")]  # tagged
    assert tagged_moves[4:] == [("b", "entered")]  # untagged
    # a person created is checked against every real-time segment, negated ones too
    upsert(workspace, "c")
    realtime.evaluate_pending()
    assert "c" in members(tagged)


def test_a_batch_that_fails_midway_is_done_again_without_duplicates(workspace, monkeypatch):
    upsert(workspace, "ann", city="Paris")
    londoners = realtime_segment(
        workspace, "Londoners", {"attribute": "city", "op": "is", "value": "London"}
    )
    realtime.evaluate_pending()
    upsert(workspace, "ann", city="London")

    def die(**kwargs):
        raise KeyboardInterrupt("the worker dies after writing the membership")

    original = realtime.evaluate
    monkeypatch.setattr(realtime, "evaluate", lambda **kw: (original(**kw), die())[0])
    with pytest.raises(KeyboardInterrupt):
        realtime.evaluate_pending()
    assert moves(londoners) == [] and members(londoners) == []  # rolled back, row pending
    monkeypatch.setattr(realtime, "evaluate", original)
    assert realtime.evaluate_pending() == 1
    assert moves(londoners) == [("ann", "entered")]
    assert realtime.evaluate_pending() == 0


def test_a_segment_whose_rules_break_is_marked_failed_and_the_others_go_on(workspace):
    upsert(workspace, "ann", city="London")
    good = realtime_segment(
        workspace, "Londoners", {"attribute": "city", "op": "is", "value": "London"}
    )
    broken = realtime_segment(
        workspace, "Broken", {"attribute": "city", "op": "is", "value": "Paris"}
    )
    Segment.objects.filter(pk=broken.pk).update(rules={"attribute": "city", "op": "nonsense"})
    upsert(workspace, "ann", city="London", first_name="Ann")
    upsert(workspace, "bob", city="London")
    realtime.evaluate_pending()
    broken.refresh_from_db()
    assert broken.refresh_status == RefreshStatus.FAILED and "op" in broken.refresh_error
    assert members(good) == ["ann", "bob"]


@pytest.mark.django_db(transaction=True)
def test_a_reader_misses_no_transition_when_transactions_commit_out_of_order(workspace):
    """Two batches in flight: the one with the higher ids commits first. A reader that
    goes by id alone would pass the lower ids and never see them; the cursor does not."""
    upsert(workspace, "ann")
    upsert(workspace, "bob")
    segment = segment_create(workspace=workspace, name="Hand", kind=SegmentKind.STATIC, actor=ACTOR)
    first_open, second_done = threading.Event(), threading.Event()

    def write(ext, *, wait=None, signal=None):
        try:
            with transaction.atomic():
                person = Person.objects.get(workspace=workspace, external_id=ext)
                SegmentTransition.objects.create(
                    workspace=workspace, segment=segment, person=person, kind="entered",
                    at=timezone.now(),
                )  # fmt: skip
                if signal:
                    signal.set()
                if wait:
                    wait.wait(10)
        finally:
            connection.close()

    early = threading.Thread(
        target=write, args=("ann",), kwargs={"signal": first_open, "wait": second_done}
    )
    early.start()
    first_open.wait(10)  # ann's row has the lower id, its transaction still open
    late = threading.Thread(target=write, args=("bob",))
    late.start()
    late.join(10)
    ids = list(SegmentTransition.objects.filter(segment=segment).values_list("id", flat=True))
    assert len(ids) == 1  # bob's, committed; ann's is not visible yet

    seen, cursor = read_transitions(workspace=workspace)
    assert seen == []  # bob's row waits: a transaction older than it is still running
    second_done.set()
    early.join(10)
    # both are read once no older transaction is open (another test database of the
    # same server may hold one for a moment: the frontier is the server's)
    deadline = time.monotonic() + 20
    while True:
        rows, new_cursor = read_transitions(workspace=workspace, after=cursor)
        if len(rows) == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    cursor = new_cursor
    assert sorted(r.person.external_id for r in rows) == ["ann", "bob"]
    assert read_transitions(workspace=workspace, after=cursor)[0] == []  # nothing twice
    assert Cursor.parse(str(cursor)) == cursor


def test_incremental_membership_equals_a_full_recompute_over_random_streams(workspace):
    """Random streams of attribute changes, events and tags, evaluated incrementally
    batch by batch, leave each segment with exactly the people a full recompute finds."""
    import random

    rng = random.Random(20261202)
    now = timezone.now()
    people = [f"p{i}" for i in range(40)]
    for ext in people:
        upsert(workspace, ext, city=rng.choice(["London", "Paris"]))
    tag = tag_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    rules = [
        {"attribute": "city", "op": "is", "value": "London"},
        {"event": "Purchase", "count": {"op": "gte", "value": 2}},
        {"not": {"tag": "vip", "op": "has"}},
        {"any": [{"all": [{"attribute": "city", "op": "is", "value": "Paris"},
                          {"tag": "vip", "op": "has"}]},
                 {"event": "Refund", "count": {"op": "eq", "value": 1}}]},
    ]  # fmt: skip
    segments = [realtime_segment(workspace, f"S{i}", r) for i, r in enumerate(rules)]
    nested = realtime_segment(
        workspace, "Nested", {"all": [{"segment": segments[0].pk, "op": "in"},
                                      {"segment": segments[2].pk, "op": "not_in"}]}
    )  # fmt: skip
    segments.append(nested)
    for _ in range(25):
        for _ in range(rng.randint(1, 6)):
            kind = rng.random()
            chosen = rng.sample(people, rng.randint(1, 4))
            if kind < 0.3:
                for ext in chosen:
                    upsert(workspace, ext, city=rng.choice(["London", "Paris", "Rome"]))
            elif kind < 0.7:
                event_ingest_batch(
                    workspace=workspace,
                    items=[{"person": ext, "name": rng.choice(["Purchase", "Refund"]),
                            "occurred_at": now.isoformat()} for ext in chosen],
                    actor=ACTOR,
                )  # fmt: skip
            else:
                change = tags_assign if rng.random() < 0.5 else tags_unassign
                change(
                    workspace=workspace,
                    tag=tag,
                    people=people_named(workspace, *chosen),
                    actor=ACTOR,
                )
        realtime.evaluate_pending(now=now)
    for segment in segments:
        segment.refresh_from_db()
        expected = sorted(
            rules_people(workspace=workspace, rules=segment.rules, now=now).values_list(
                "external_id", flat=True
            )
        )
        assert members(segment) == expected, segment.name
        assert segment.people_count == len(expected)
        # every change of membership is one transition: entries minus exits is the count
        kinds = [k for _, k in moves(segment)]
        assert kinds.count("entered") - kinds.count("exited") == len(expected)


def test_the_clock_moves_exactly_the_people_time_moved_every_30_seconds(workspace, monkeypatch):
    """Event windows of every kind (within, before, between, counts, none in the window)
    over random event times: run by run every 30 seconds, the clock re-checks only the
    people whose events crossed a window's edge, and each segment holds exactly the people
    a full recompute at that moment finds (exits and entries on time, none missed)."""
    import random

    rng = random.Random(20261203)
    start = timezone.now().replace(microsecond=0)
    people = [f"c{i}" for i in range(30)]
    for ext in people:
        upsert(workspace, ext)
    items = [
        {"person": rng.choice(people), "name": rng.choice(["Purchase", "Refund"]),
         "occurred_at": (start - timedelta(seconds=rng.randint(0, 40 * 60))).isoformat()}
        for _ in range(90)
    ]  # fmt: skip
    event_ingest_batch(workspace=workspace, items=items, actor=ACTOR)
    windows = [
        {"event": "Purchase", "time": {"op": "within_last", "amount": 10, "unit": "minutes"}},
        {"event": "Refund", "count": {"op": "gte", "value": 2},
         "time": {"op": "within_last", "amount": 1, "unit": "hours"}},
        {"event": "Purchase", "count": {"op": "eq", "value": 0},
         "time": {"op": "within_last", "amount": 5, "unit": "minutes"}},
        {"event": "Refund", "time": {"op": "before_last", "amount": 20, "unit": "minutes"}},
        {"event": "Purchase",
         "time": {"op": "between_last", "from": 5, "to": 15, "unit": "minutes"}},
    ]  # fmt: skip
    segments = [realtime_segment(workspace, f"W{i}", r) for i, r in enumerate(windows)]
    nested = realtime_segment(workspace, "Nested", {"segment": segments[0].pk, "op": "not_in"})
    realtime.evaluate_pending(now=start)
    realtime.recheck_time_windows(now=start)  # the first run: whole
    checked = []
    original = realtime.apply_membership
    monkeypatch.setattr(
        realtime,
        "apply_membership",
        lambda segment, **kw: checked.append(kw.get("person_ids")) or original(segment, **kw),
    )
    moved = 0
    for step in range(1, 61):  # 30 minutes, a run every 30 seconds
        at = start + timedelta(seconds=30 * step)
        realtime.recheck_time_windows(now=at)
        for segment in [*segments, nested]:
            expected = sorted(
                rules_people(workspace=workspace, rules=segment.rules, now=at).values_list(
                    "external_id", flat=True
                )
            )
            assert members(segment) == expected, (segment.name, step)
    for segment in [*segments, nested]:
        kinds = [k for _, k in moves(segment)]
        moved += len(kinds)
        assert kinds.count("entered") - kinds.count("exited") == len(members(segment))
    assert moved > 60  # time did move people: the check above is not vacuous
    # never a whole re-check after the first run, and a few people at a time
    assert checked and all(ids is not None and len(ids) <= 10 for ids in checked)


def test_the_clock_rechecks_whole_when_the_day_changes_for_date_conditions(workspace):
    """A relative date ("was within 7 days") changes at midnight in the workspace's time
    zone: the clock re-checks such a segment whole then, and only then."""
    from people.models import AttributeType
    from people.services.attributes import attribute_declare

    attribute_declare(workspace=workspace, key="renewed_on", type=AttributeType.DATE, actor=ACTOR)
    midnight = (
        timezone.now()
        .astimezone(workspace.tzinfo)
        .replace(hour=0, minute=0, second=0, microsecond=0)
    )
    before = midnight - timedelta(seconds=20)
    upsert(
        workspace,
        "dee",
        attributes={"renewed_on": (midnight - timedelta(days=8)).date().isoformat()},
    )
    renewed = realtime_segment(
        workspace, "Renewed lately",
        {"attribute": "renewed_on", "op": "was_within",
         "value": {"amount": 7, "unit": "days"}},
    )  # fmt: skip
    realtime.evaluate_pending(now=before)
    realtime.recheck_time_windows(now=before)
    assert members(renewed) == ["dee"]  # 7 days before yesterday's date
    realtime.recheck_time_windows(now=midnight + timedelta(seconds=10))
    assert members(renewed) == []  # 8 days before today's
    assert moves(renewed)[-1] == ("dee", "exited")


def test_segments_verify_reports_drift_and_repairs_it(workspace):
    from io import StringIO

    from django.core.management import call_command

    for ext, city in (("ann", "London"), ("bob", "London"), ("cy", "Paris")):
        upsert(workspace, ext, city=city)
    londoners = realtime_segment(
        workspace, "Londoners", {"attribute": "city", "op": "is", "value": "London"}
    )
    out = StringIO()
    call_command("segments_verify", stdout=out)
    assert "missing 0, extra 0" in out.getvalue() and "0 with drift" in out.getvalue()
    # drift made behind the evaluation's back: a write that recorded no change
    Person.objects.filter(workspace=workspace, external_id="bob").update(city="Rome")
    Person.objects.filter(workspace=workspace, external_id="cy").update(city="London")
    out = StringIO()
    with pytest.raises(SystemExit) as exit_:
        call_command("segments_verify", "--segment", str(londoners.pk), stdout=out)
    assert exit_.value.code == 1
    assert "missing 1, extra 1; missing e.g. cy; extra e.g. bob" in out.getvalue()
    out = StringIO()
    call_command("segments_verify", "--repair", stdout=out)
    assert "repaired (1 entered, 1 exited)" in out.getvalue()
    from accounts.models import AuditEntry

    entry = AuditEntry.objects.get(workspace=workspace, action="segment.repair")
    assert entry.summary == {"entered": 1, "exited": 1}
    assert members(londoners) == ["ann", "cy"]
    assert moves(londoners)[-2:] in (
        [("bob", "exited"), ("cy", "entered")],
        [("cy", "entered"), ("bob", "exited")],
    )


def test_the_segment_page_shows_freshness_and_entries_and_exits_per_hour(
    client, workspace, marketer
):
    upsert(workspace, "ann", city="Paris")
    londoners = realtime_segment(
        workspace, "Londoners", {"attribute": "city", "op": "is", "value": "London"}
    )
    realtime.evaluate_pending()
    upsert(workspace, "ann", city="London")
    upsert(workspace, "bob", city="London")
    client.force_login(marketer)
    waiting = client.get(f"/segments/{londoners.pk}/").content.decode()
    assert "2 changes, the oldest from" in waiting  # not evaluated yet
    realtime.evaluate_pending()
    upsert(workspace, "bob", city="Rome")
    realtime.evaluate_pending()
    page = client.get(f"/segments/{londoners.pk}/")
    chart = page.context["realtime"]["chart"]
    assert len(chart["labels"]) == 7 * 24
    assert (chart["entered"][-1], chart["exited"][-1]) == (2, 1)  # this hour
    assert sum(chart["entered"]) == 2 and sum(chart["exited"]) == 1
    html = page.content.decode()
    assert 'id="transitions-chart"' in html and "nothing: every change is in" in html
    assert "chart.umd.min.js" in html


def test_deleting_a_tag_or_audience_a_segment_names_marks_it_failed_and_keeps_its_members(
    workspace,
):
    from audiences.services import audience_delete
    from people.services.tags import tag_delete

    for ext in ("ann", "bob"):
        upsert(workspace, ext, city="London")
    tag = tag_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    tags_assign(workspace=workspace, tag=tag, people=people_named(workspace, "ann"), actor=ACTOR)
    audience = audience_create(workspace=workspace, name="Spring", actor=ACTOR)
    audience_add_people(audience=audience, people=people_named(workspace, "bob"), actor=ACTOR)
    vip = realtime_segment(workspace, "VIP", {"tag": "vip", "op": "has"})
    spring = realtime_segment(workspace, "In Spring", {"audience": "Spring", "op": "in"})
    londoners = realtime_segment(
        workspace, "Londoners", {"attribute": "city", "op": "is", "value": "London"}
    )
    realtime.evaluate_pending()
    tag_delete(tag=tag, actor=ACTOR)
    audience_delete(audience=audience, actor=ACTOR)
    upsert(workspace, "cy", city="London")
    realtime.evaluate_pending()
    for segment, word in ((vip, "tag “vip”"), (spring, "target audience “spring”")):
        segment.refresh_from_db()
        assert segment.refresh_status == RefreshStatus.FAILED
        assert word in segment.refresh_error and "was deleted" in segment.refresh_error
    assert members(vip) == ["ann"] and members(spring) == ["bob"]  # kept, nobody exited
    assert [k for _, k in moves(vip)] == ["entered"]
    assert members(londoners) == ["ann", "bob", "cy"]  # the others go on
    # later changes leave it failed while the tag is gone; a new tag of that name revives it
    upsert(workspace, "ann", city="Paris")
    realtime.evaluate_pending()
    vip.refresh_from_db()
    assert vip.refresh_status == RefreshStatus.FAILED and members(vip) == ["ann"]
    again = tag_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    tags_assign(workspace=workspace, tag=again, people=people_named(workspace, "cy"), actor=ACTOR)
    realtime.evaluate_pending()
    vip.refresh_from_db()
    # re-checked whole: ann's tag went with the old one, so she leaves now
    assert vip.refresh_status == RefreshStatus.OK and members(vip) == ["cy"]


def test_a_change_of_more_people_than_a_list_holds_is_recorded_as_everyone(workspace, monkeypatch):
    """A bulk action on "all N matching" writes one small outbox row, and the segments it
    names are re-checked whole, with the same result."""
    import people.changes

    monkeypatch.setattr(people.changes, "LIST_AT_MOST", 2)
    monkeypatch.setattr(realtime, "LIST_AT_MOST", 2)
    for ext in ("a", "b", "c"):
        upsert(workspace, ext)
    vip = realtime_segment(workspace, "VIP", {"tag": "vip", "op": "has"})
    realtime.evaluate_pending()
    tag = tag_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    tags_assign(
        workspace=workspace, tag=tag, people=people_named(workspace, "a", "b", "c"), actor=ACTOR
    )
    row = PersonChange.objects.filter(workspace=workspace, processed_at__isnull=True).get()
    assert row.everyone and row.person_ids == []
    realtime.evaluate_pending()
    assert members(vip) == ["a", "b", "c"]
