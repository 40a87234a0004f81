"""channels.sync_services (the Klaviyo sync job) against the local fake of Klaviyo
(tests/channels/klaviyo_fake.py), the client and the fake on one VirtualClock: pacing,
Retry-After waits and backoff take no real time. Herald's side is real: the services,
the TEMP tables, the people write path and the segment services."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import Actor
from accounts.jobs import JobStatus
from accounts.services import api_key_create
from channels.list_services import (
    channel_segment_delete,
    channel_segment_update,
    segment_source_set,
)
from channels.models import ChannelSegment, ChannelSync, SegmentSource
from channels.sync_services import (
    INCREMENTAL_OVERLAP,
    channel_sync_run,
    channel_sync_start,
    channel_syncs_start_due,
)
from people.models import Person
from segments.models import Segment, SegmentKind
from segments.selectors import current_members
from segments.services import segment_create, static_members_change
from tests.channels.klaviyo_fake import API_KEY, FakeKlaviyo, VirtualClock, serving
from tests.factories import PersonFactory

ACTOR = Actor(system="tests")
T0 = datetime(2026, 3, 1, tzinfo=UTC)  # when the fake's members joined
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)  # the first sync
LIST, SEGMENT = "list:L00001", "segment:S00001"


@pytest.fixture(scope="module")
def stage():
    """One server for the module (stopping one takes half a second); each test puts its
    own fake on it."""
    stage = SimpleNamespace(fake=None)
    with serving(lambda request: stage.fake.handle(request)) as base:
        stage.url = base
        yield stage


@pytest.fixture
def clock():
    return VirtualClock()


@pytest.fixture
def fake(stage, clock):
    stage.fake = FakeKlaviyo(clock=clock)
    return stage.fake


def connect(workspace, stage, *, channel="email", api_key=API_KEY, schedule=60):
    return segment_source_set(
        workspace=workspace, channel=channel, kind="klaviyo",
        settings={"schedule_minutes": schedule, "base_url": stage.url},
        secrets={"api_key": api_key}, actor=ACTOR,
    )  # fmt: skip


@pytest.fixture
def source(workspace, stage, fake):
    return connect(workspace, stage)


@pytest.fixture
def sync(workspace, clock):
    """Start a sync of the email channel and run it (as the worker would), on the clock."""

    def run(*, full=True, now=NOW, ws=None) -> ChannelSync:
        job = channel_sync_start(workspace=ws or workspace, channel="email", actor=ACTOR, full=full)
        return channel_sync_run(sync_id=job.pk, now=now, clock=clock, sleep=clock.sleep)

    return run


def entry(workspace, ref, channel="email") -> ChannelSegment:
    return ChannelSegment.objects.for_workspace(workspace).get(
        channel=channel, source="klaviyo", source_ref=ref
    )


def members(workspace, ref) -> set[str]:
    """The external ids of the entry's current members."""
    people = current_members(entry(workspace, ref).segment).values("person_id")
    return set(Person.objects.filter(pk__in=people).values_list("external_id", flat=True))


def k(profile_id: str) -> str:
    return f"klaviyo:{profile_id}"


@pytest.fixture
def account(fake):
    """A list of five profiles (matched by email, by phone, new, an invalid email, an
    invalid phone) and a segment of three, one of them also in the list."""
    ids = SimpleNamespace()
    ids.list = fake.add_group("list", "Newsletter")
    ids.segment = fake.add_group("segment", "VIP")
    ids.a = fake.add_profile(email=" A@Example.com", first_name="Ada")
    ids.b = fake.add_profile(phone_number="+1 212 555 0101")
    ids.c = fake.add_profile(email="c@example.com", first_name="Cy", last_name="Lee")
    ids.d = fake.add_profile(email="not-an-email", phone_number="+12125550104")
    ids.e = fake.add_profile(email="e@example.com", phone_number="+1555")
    ids.f = fake.add_profile(email="f@example.com")
    for n, profile in enumerate([ids.a, ids.b, ids.c, ids.d, ids.e]):
        fake.join("list", ids.list, profile, T0 + timedelta(seconds=n))
    for n, profile in enumerate([ids.a, ids.c, ids.f]):
        fake.join("segment", ids.segment, profile, T0 + timedelta(seconds=n))
    return ids


@pytest.fixture
def herald_people(workspace):
    """Who Herald knows already: a by email, b by phone."""
    return SimpleNamespace(
        a=PersonFactory(
            workspace=workspace, external_id="crm-a", email="a@example.com", first_name="Alice"
        ),
        b=PersonFactory(workspace=workspace, external_id="crm-b", email="", phone="+12125550101"),
    )


def bulk(fake, kind, group_id, n, *, tag="bulk", joined=T0) -> list[str]:
    ids = []
    for i in range(n):
        profile = fake.add_profile(email=f"{tag}{i}@example.com")
        fake.join(kind, group_id, profile, joined + timedelta(seconds=i))
        ids.append(profile)
    return ids


# --- a full sync -------------------------------------------------------------------------


def test_a_full_sync_makes_entries_people_and_memberships(
    workspace, other_workspace, source, fake, account, herald_people, sync
):
    stranger = PersonFactory(workspace=other_workspace, external_id="x-c", email="c@example.com")

    job = sync()

    assert job.status == JobStatus.DONE, job.detail
    assert (job.groups, job.entries_created, job.profiles) == (2, 2, 8)
    assert job.people_created == 4  # c, d, e and f
    assert job.requests == fake.requests == 2 + 2  # lists, segments, one page each
    assert job.error_count == 2
    assert "1 invalid email address and 1 invalid phone number left out" in job.detail
    newsletter, vip = entry(workspace, LIST), entry(workspace, SEGMENT)
    assert (newsletter.name, newsletter.external_id, newsletter.link, newsletter.active) == (
        "Newsletter", account.list, f"https://www.klaviyo.com/lists/{account.list}", True,
    )  # fmt: skip
    assert vip.link == f"https://www.klaviyo.com/lists/{account.segment}"
    assert newsletter.segment.name == "Newsletter (email Klaviyo list)"
    assert vip.segment.name == "VIP (email Klaviyo segment)"
    assert newsletter.segment.kind == vip.segment.kind == SegmentKind.STATIC
    assert members(workspace, LIST) == {"crm-a", "crm-b", k(account.c), k(account.d), k(account.e)}
    assert members(workspace, SEGMENT) == {"crm-a", k(account.c), k(account.f)}
    assert newsletter.segment.people_count == 5
    people = Person.objects.for_workspace(workspace)
    c = people.get(external_id=k(account.c))
    assert (c.email, c.first_name, c.last_name) == ("c@example.com", "Cy", "Lee")
    d, e = people.get(external_id=k(account.d)), people.get(external_id=k(account.e))
    assert (d.email, d.phone) == ("", "+12125550104")  # the invalid email left out
    assert (e.email, e.phone) == ("e@example.com", "")  # the invalid phone left out
    herald_people.a.refresh_from_db()
    assert herald_people.a.first_name == "Alice"  # an existing person is not rewritten
    assert people.count() == 6
    stranger.refresh_from_db()  # the other workspace's c is not matched, nor changed
    assert Person.objects.for_workspace(other_workspace).count() == 1
    source.refresh_from_db()
    assert source.last_sync_at == source.last_full_sync_at == NOW
    assert source.next_sync_at == NOW + timedelta(minutes=60)


def test_a_second_full_sync_replaces_and_matches_by_klaviyo_id(
    workspace, source, fake, account, herald_people, sync
):
    sync()
    fake.leave("list", account.list, account.c)
    fake.profiles[account.f]["email"] = "f.new@example.com"  # only its Klaviyo id is left

    job = sync(now=NOW + timedelta(days=1))

    assert job.status == JobStatus.DONE, job.detail
    assert (job.people_created, job.entries_created) == (0, 0)
    assert members(workspace, LIST) == {"crm-a", "crm-b", k(account.d), k(account.e)}
    assert members(workspace, SEGMENT) == {"crm-a", k(account.c), k(account.f)}
    assert Person.objects.for_workspace(workspace).count() == 6


def test_an_incremental_sync_adds_only_who_joined_since_the_last(
    workspace, source, fake, account, herald_people, sync
):
    sync()
    later = NOW + timedelta(hours=1)
    joiner = fake.add_profile(email="g@example.com")
    fake.join("list", account.list, joiner, later)
    fake.leave("list", account.list, account.c)  # left: an incremental sync cannot see it
    new_list = fake.add_group("list", "Launch")  # a new group is read whole
    old_member = fake.add_profile(email="h@example.com")
    fake.join("list", new_list, old_member, T0)
    before = fake.requests

    job = sync(full=False, now=NOW + timedelta(hours=2))

    assert job.status == JobStatus.DONE, job.detail
    assert not job.full and job.profiles == 2 and job.people_created == 2
    assert members(workspace, LIST) == {
        "crm-a", "crm-b", k(account.c), k(account.d), k(account.e), k(joiner),
    }  # fmt: skip
    assert members(workspace, f"list:{new_list}") == {k(old_member)}
    since = f"greater-or-equal(joined_group_at,{(NOW - INCREMENTAL_OVERLAP):%Y-%m-%dT%H:%M:%SZ})"
    filters = {s.path: s.args.get("filter") for s in fake.log[before:]}
    assert filters[f"/api/lists/{account.list}/profiles"] == since
    assert filters[f"/api/segments/{account.segment}/profiles"] == since
    assert filters[f"/api/lists/{new_list}/profiles"] is None
    source.refresh_from_db()
    assert source.last_full_sync_at == NOW and source.last_sync_at == NOW + timedelta(hours=2)


def test_an_incremental_sync_without_a_previous_one_is_a_full_one(
    workspace, source, fake, account, sync
):
    job = sync(full=False)

    assert job.status == JobStatus.DONE and job.full
    assert len(members(workspace, LIST)) == 5


def test_an_inactive_entry_is_never_read_nor_changed_and_edits_are_kept(
    workspace, source, fake, account, herald_people, sync
):
    sync()
    vip = entry(workspace, SEGMENT)
    channel_segment_update(entry=vip, changes={"active": False}, actor=ACTOR)
    channel_segment_update(
        entry=entry(workspace, LIST), changes={"name": "Weekly news", "link": ""}, actor=ACTOR
    )
    fake.leave("segment", account.segment, account.a)
    fake.groups["list"][account.list].name = "Newsletter (renamed)"
    before = fake.requests

    job = sync(now=NOW + timedelta(days=1))

    assert job.status == JobStatus.DONE, job.detail
    assert "1 inactive entry left alone" in job.detail
    assert f"/api/segments/{account.segment}/profiles" not in {s.path for s in fake.log[before:]}
    assert members(workspace, SEGMENT) == {"crm-a", k(account.c), k(account.f)}
    assert not entry(workspace, SEGMENT).active
    newsletter = entry(workspace, LIST)
    assert (newsletter.name, newsletter.link) == ("Weekly news", "")


def test_a_deleted_entry_comes_back(workspace, source, fake, account, herald_people, sync):
    sync()
    channel_segment_delete(entry=entry(workspace, LIST), actor=ACTOR)

    job = sync(now=NOW + timedelta(days=1))

    assert job.status == JobStatus.DONE and job.entries_created == 1
    back = entry(workspace, LIST)
    assert back.name == "Newsletter" and back.active
    # the deleted entry's segment stays (channel_segment_delete): the new one is numbered
    assert back.segment.name == "Newsletter (email Klaviyo list) 2"
    assert len(members(workspace, LIST)) == 5


def test_another_workspaces_entries_are_untouched(
    workspace, other_workspace, stage, source, fake, account, sync
):
    theirs = segment_create(workspace=other_workspace, name="Newsletter (email Klaviyo list)",
                            kind=SegmentKind.STATIC, actor=ACTOR)  # fmt: skip
    their_person = PersonFactory(workspace=other_workspace, email="a@example.com")
    static_members_change(segment=theirs, people=Person.objects.filter(pk=their_person.pk),
                          add=True, actor=ACTOR)  # fmt: skip
    their_entry = ChannelSegment.objects.create(
        workspace=other_workspace, channel="email", segment=theirs, name="Theirs",
        source="klaviyo", source_ref=LIST,
    )  # fmt: skip

    job = sync()

    assert job.status == JobStatus.DONE
    their_entry.refresh_from_db()
    assert (their_entry.name, their_entry.segment_id) == ("Theirs", theirs.pk)
    assert list(current_members(theirs).values_list("person_id", flat=True)) == [their_person.pk]
    ours = entry(workspace, LIST)
    assert ours.pk != their_entry.pk and ours.segment.workspace_id == workspace.pk
    assert ours.segment.name == "Newsletter (email Klaviyo list)"  # names are per workspace


def test_the_sync_makes_no_query_per_profile(workspace, other_workspace, stage, source, fake, sync):
    connect(other_workspace, stage)
    small = fake.add_group("list", "Small")
    bulk(fake, "list", small, 10, tag="small")

    def queries(ws) -> int:
        with CaptureQueriesContext(connection) as captured:
            job = sync(ws=ws)
        assert job.status == JobStatus.DONE, job.detail
        return len(captured)

    few = queries(workspace)
    bulk(fake, "list", small, 90, tag="more")  # still one page

    assert queries(other_workspace) == few
    assert Person.objects.for_workspace(other_workspace).count() == 100


def test_lists_gone_from_klaviyo_leave_their_entries_as_they_were(
    workspace, stage, source, fake, account, herald_people, sync
):
    doomed = fake.add_group("list", "Spring sale")
    bulk(fake, "list", doomed, 3)
    sync()
    fake.groups["segment"].pop(account.segment)  # deleted in Klaviyo between two syncs

    class Vanishing(FakeKlaviyo):
        """Deletes the Spring sale list once it has been listed: its pull finds a 404."""

        def handle(self, request):
            response = super().handle(request)
            if request.path == "/api/segments":
                self.groups["list"].pop(doomed)
            return response

    vanishing = Vanishing(clock=fake.clock)
    vanishing.groups, vanishing.profiles = fake.groups, fake.profiles
    stage.fake = vanishing
    fake.leave("list", account.list, account.c)

    job = sync(now=NOW + timedelta(days=1))

    assert job.status == JobStatus.DONE, job.detail
    assert "1 entry no longer in Klaviyo left as it was" in job.detail
    assert "Deleted in Klaviyo during the sync, left as they were: “Spring sale”" in job.detail
    assert len(members(workspace, f"list:{doomed}")) == 3
    assert members(workspace, SEGMENT) == {"crm-a", k(account.c), k(account.f)}
    assert k(account.c) not in members(workspace, LIST)  # the rest was synced


# --- what goes wrong ---------------------------------------------------------------------


def test_a_refused_key_fails_the_job_and_changes_nothing(
    workspace, stage, source, fake, account, herald_people, sync
):
    sync()
    connect(workspace, stage, api_key="pk_" + "0" * 34)
    fake.leave("list", account.list, account.a)

    job = sync(now=NOW + timedelta(days=1))

    assert job.status == JobStatus.FAILED
    assert job.detail.startswith("Klaviyo refused the API key")
    assert "401" in job.detail and "the segments are as they were" in job.detail
    assert "Set the Klaviyo key again" in job.detail
    assert members(workspace, LIST) == {"crm-a", "crm-b", k(account.c), k(account.d), k(account.e)}
    source.refresh_from_db()
    assert source.last_sync_at == NOW


def test_a_refused_first_sync_creates_nothing(workspace, stage, fake, account, sync):
    connect(workspace, stage, api_key="pk_" + "0" * 34)

    job = sync()

    assert job.status == JobStatus.FAILED and job.requests == 1
    assert not ChannelSegment.objects.for_workspace(workspace).exists()
    assert not Person.objects.for_workspace(workspace).exists()


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("503", "Klaviyo did not answer (503) after 6 tries: the sync stopped and the "
                "segments are as they were; try again later."),
        ("malformed", "is not JSON"),
    ],
)  # fmt: skip
def test_klaviyo_failing_mid_sync_leaves_the_previous_memberships(
    workspace, source, fake, account, herald_people, sync, clock, kind, said
):
    sync()
    big = fake.add_group("list", "Big")
    bulk(fake, "list", big, 1_150)  # 12 pages: a batch of 10 is staged before the failure
    fake.leave("list", account.list, account.c)
    before = fake.requests
    # lists, segments, Newsletter, 11 pages of Big, then the 12th fails (6 times for 5xx)
    fake.fail(at=before + 15, kind=kind, times=6 if kind == "503" else 1)

    job = sync(now=NOW + timedelta(days=1))

    assert job.status == JobStatus.FAILED
    assert said in job.detail and "the segments are as they were" in job.detail
    assert job.requests == fake.requests - before
    assert job.profiles == 4 + 1_100  # c left the Newsletter
    assert members(workspace, LIST) == {"crm-a", "crm-b", k(account.c), k(account.d), k(account.e)}
    assert not ChannelSegment.objects.for_workspace(workspace).filter(source_ref=f"list:{big}")
    # the people of the pages staged stay (found again by Klaviyo id next time)
    assert Person.objects.for_workspace(workspace).filter(email__startswith="bulk").count() == 1_000
    source.refresh_from_db()
    assert source.last_sync_at == NOW

    job = sync(now=NOW + timedelta(days=2))  # Klaviyo is back

    assert job.status == JobStatus.DONE, job.detail
    assert job.people_created == 150
    assert len(members(workspace, f"list:{big}")) == 1_150
    assert k(account.c) not in members(workspace, LIST)


def test_a_429_is_waited_out_and_the_sync_completes(
    workspace, source, fake, account, herald_people, sync, clock
):
    fake.forced_retry_after = 3
    fake.fail(at=3, kind="429")  # the Newsletter's first page

    job = sync()

    assert job.status == JobStatus.DONE, job.detail
    assert fake.throttled == 1 and 3 in clock.slept
    assert job.requests == 5
    assert len(members(workspace, LIST)) == 5


def test_unreadable_secrets_fail_the_job_asking_for_the_key_again(
    workspace, source, fake, account, sync
):
    SegmentSource.objects.for_workspace(workspace).update(secrets="not-a-fernet-token")

    job = sync()

    assert job.status == JobStatus.FAILED
    assert job.detail.endswith("Set the Klaviyo key again, then sync.")
    assert fake.requests == 0


def test_a_finished_sync_is_not_run_again(workspace, source, fake, account, sync, clock):
    job = sync()
    requests = fake.requests

    again = channel_sync_run(sync_id=job.pk, clock=clock, sleep=clock.sleep)

    assert again.status == JobStatus.DONE and fake.requests == requests


# --- the schedule ----------------------------------------------------------------------


def test_due_sources_start_a_sync_full_once_a_day(workspace, other_workspace, stage, fake):
    now = NOW
    sources = {
        channel: connect(workspace, stage, channel=channel)
        for channel in ("email", "sms", "push", "meta")
    }
    theirs = connect(other_workspace, stage, channel="email")
    unscheduled = connect(other_workspace, stage, channel="sms", schedule=None)
    due = now - timedelta(minutes=1)
    SegmentSource.objects.unscoped().filter(pk__in=[s.pk for s in sources.values()]).update(
        next_sync_at=due
    )
    # email: never synced in full -> full; sms: full sync an hour ago -> incremental
    SegmentSource.objects.unscoped().filter(pk=sources["sms"].pk).update(
        last_full_sync_at=now - timedelta(hours=1), last_sync_at=now - timedelta(hours=1)
    )
    # push: a sync already queued -> left due; meta: due in the future -> not yet
    channel_sync_start(workspace=workspace, channel="push", actor=ACTOR)
    SegmentSource.objects.unscoped().filter(pk=sources["meta"].pk).update(
        next_sync_at=now + timedelta(1)
    )
    SegmentSource.objects.unscoped().filter(pk=theirs.pk).update(
        next_sync_at=due, last_full_sync_at=now - timedelta(hours=25)
    )
    SegmentSource.objects.unscoped().filter(pk=unscheduled.pk).update(next_sync_at=due)

    assert channel_syncs_start_due(now=now) == 3

    started = {
        (s.workspace_id, s.channel): s.full
        for s in ChannelSync.objects.unscoped().filter(status=JobStatus.QUEUED)
    }
    assert started == {
        (workspace.pk, "email"): True,
        (workspace.pk, "sms"): False,
        (workspace.pk, "push"): True,  # the one queued before
        (other_workspace.pk, "email"): True,
    }
    nexts = dict(SegmentSource.objects.unscoped().values_list("pk", "next_sync_at"))
    assert nexts[sources["email"].pk] == nexts[sources["sms"].pk] == now + timedelta(hours=1)
    assert nexts[sources["push"].pk] == due
    assert channel_syncs_start_due(now=now) == 0  # taken: nothing is due twice


# --- through the API ---------------------------------------------------------------------


def test_the_api_sets_the_source_starts_a_sync_and_reports_it(
    api_client, client, workspace, other_workspace, stage, fake, account, clock
):
    answer = api_client.put(
        "/api/v1/channels/email/source",
        {"kind": "klaviyo", "settings": {"schedule_minutes": 60, "base_url": stage.url},
         "secrets": {"api_key": API_KEY}},
        content_type="application/json",
    )  # fmt: skip
    assert answer.status_code == 200, answer.content
    assert answer.json()["secrets_set"] == ["api_key"]

    answer = api_client.post("/api/v1/channels/email/sync")
    assert answer.status_code == 202, answer.content
    sync_id = answer.json()["id"]
    assert api_client.post("/api/v1/channels/email/sync").status_code == 409  # one at a time
    channel_sync_run(sync_id=sync_id, clock=clock, sleep=clock.sleep)  # the worker's part

    report = api_client.get(f"/api/v1/channels/email/syncs/{sync_id}").json()
    assert report["status"] == "done" and report["full"]
    assert (report["groups"], report["entries_created"], report["profiles"]) == (2, 2, 8)
    assert report["people_created"] == 6 and report["processed_rows"] == report["total_rows"] == 2
    listed = api_client.get("/api/v1/channels/email/segments").json()
    listed = listed["items"] if isinstance(listed, dict) else listed
    assert {(e["name"], e["source"]) for e in listed} == {
        ("Newsletter", "klaviyo"), ("VIP", "klaviyo"),
    }  # fmt: skip

    _key, theirs = api_key_create(workspace=other_workspace, name="t", actor=ACTOR)
    answer = client.get(
        f"/api/v1/channels/email/syncs/{sync_id}", HTTP_AUTHORIZATION=f"Bearer {theirs}"
    )
    assert answer.status_code == 404
    assert not Segment.objects.for_workspace(other_workspace).filter(name__contains="Klaviyo")
