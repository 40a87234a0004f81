"""The Meta export job (channels.export_services.meta_export_run) end to end against the
fake Graph API (tests/channels/meta_fake.py): which people go (the audience's people
reachable for Meta, never anyone on email or SMS Do Not Contact), hashed, in batches of
one session; the job row's progress, counts and outcome; failures named by batch; and
the API that starts and reports an export."""

import hashlib
import re

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.audit import Actor
from accounts.jobs import JobStatus
from accounts.models import AuditEntry
from channels import export_services
from channels.export_services import meta_export_run, meta_export_start
from channels.list_services import (
    ListConflict,
    channel_audience_create,
    channel_audience_set_meta_id,
    channel_segment_add,
)
from channels.meta import FLAGGED, REPLACE_NOT_ATOMIC
from channels.models import MetaExport, Provider
from channels.services import provider_set
from people.models import Person
from people.services.dnc import dnc_add
from segments.services import segment_create, static_members_change
from tests.channels.meta_fake import FLAGGED as FLAGGED_ERROR
from tests.channels.meta_fake import TOKEN, fresh_graph, threaded_server
from tests.factories import PersonFactory

pytestmark = pytest.mark.django_db

ACTOR = Actor.of_system("tests")
AUDIENCE = "23851234567890123"
BASE = "/api/v1/channels/meta"


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def expected_row(person: Person) -> list[str]:
    """An independent spelling of Meta's rules for the people these tests make."""
    email = person.email.strip().lower()
    return [sha(email) if email else "", sha(person.phone[1:]) if person.phone else "",
            person.external_id]  # fmt: skip


def static(workspace, name, people):
    segment = segment_create(workspace=workspace, name=name, kind="static", actor=ACTOR)
    static_members_change(
        segment=segment, people=Person.objects.filter(pk__in=[p.pk for p in people]), add=True,
        actor=ACTOR,
    )  # fmt: skip
    return segment


def meta_audience(workspace, include, exclude=(), *, channel="meta", name="Lookalike seed"):
    entries = [
        channel_segment_add(workspace=workspace, channel=channel, segment=s, actor=ACTOR)
        for s in [*include, *exclude]
    ]
    audience = channel_audience_create(
        workspace=workspace, channel=channel, actor=ACTOR,
        data={"name": name, "include": [e.pk for e in entries[: len(include)]],
              "exclude": [e.pk for e in entries[len(include):]]},
    )  # fmt: skip
    if channel == "meta":
        channel_audience_set_meta_id(audience=audience, meta_audience_id=AUDIENCE, actor=ACTOR)
    return audience


@pytest.fixture(scope="module")
def server():
    with threaded_server() as server:
        yield server


@pytest.fixture
def graph(server):
    return fresh_graph(server)


@pytest.fixture
def provider(workspace, graph):
    return provider_set(
        workspace=workspace, channel="meta", kind="meta", actor=ACTOR,
        settings={"ad_account_id": "123", "base_url": graph.base_url},
        secrets={"access_token": TOKEN},
    )  # fmt: skip


@pytest.fixture
def small_batches(monkeypatch):
    """Four people a request, so a handful of people make several batches."""
    monkeypatch.setattr(export_services, "BATCH_SIZE", 4)


@pytest.fixture
def crowd(workspace, other_workspace):
    """The audience's people, the ones it must leave out and why."""
    make = PersonFactory
    sendable = [
        make(workspace=workspace, email=f"ann{i}@example.com", phone=f"+4479111000{i:02d}")
        for i in range(5)
    ] + [
        make(workspace=workspace, email="  Mixed.Case@Example.COM ", phone=""),
        make(workspace=workspace, email="", phone="+14155550123"),
        make(workspace=workspace, email="only.email@example.com", phone=""),
        make(workspace=workspace, email="", phone="+33612345678"),
    ]
    # reachable for Meta (a phone), but the phone has no country code: Meta cannot match it
    unusable = make(workspace=workspace, email="", phone="07911 123456")
    email_dnc = make(workspace=workspace, email="blocked@example.com", phone="+447911200001")
    sms_dnc = make(workspace=workspace, email="texts.blocked@example.com", phone="+447911200002")
    dnc_add(workspace=workspace, channel="email", address="blocked@example.com", actor=ACTOR)
    dnc_add(workspace=workspace, channel="sms", address="+447911200002", actor=ACTOR)
    no_address = make(workspace=workspace, email="", phone="")
    excluded = [make(workspace=workspace, email=f"excluded{i}@example.com") for i in range(2)]
    outsider = make(workspace=workspace, email="not.in.the.audience@example.com")
    # the same address elsewhere, on no list: another workspace's DNC and people apart
    make(workspace=other_workspace, email="blocked@example.com")

    members = [*sendable, unusable, email_dnc, sms_dnc, no_address, *excluded]
    include = static(workspace, "Customers", members)
    exclude = static(workspace, "Churned", excluded)
    return {
        "audience": meta_audience(workspace, [include], [exclude]),
        "sendable": sendable,
        "unusable": unusable,
        "blocked": [email_dnc, sms_dnc],
        "left_out": [email_dnc, sms_dnc, no_address],
        "excluded": excluded,
        "outsider": outsider,
        "include": include,
    }


def start(audience, replace=False) -> MetaExport:
    return meta_export_start(audience=audience, actor=ACTOR, replace=replace)


def post_export(client, audience_id, body=None):
    return client.post(f"{BASE}/audiences/{audience_id}/export", body,
                       content_type="application/json")  # fmt: skip


def every_value(graph) -> set[str]:
    return {value for batch in graph.batches for row in batch.rows for value in row}


def never_sent(graph, people) -> None:
    values = every_value(graph)
    for person in people:
        for value in expected_row(person):
            assert not value or value not in values, f"{person.external_id} was sent"


# --- what goes to Meta -----------------------------------------------------------------


def test_an_export_sends_exactly_the_reachable_people_hashed_with_progress(
    graph, provider, crowd, small_batches
):
    job = start(crowd["audience"])
    with CaptureQueriesContext(connection) as queries:
        job = meta_export_run(export_id=job.pk)

    assert graph.problems == []
    sendable = crowd["sendable"]
    by_hashes = {tuple(expected_row(p)): p.external_id for p in [*sendable, crowd["unusable"]]}
    got = [by_hashes.get(tuple(row), f"unexpected {row}") for row in graph.members[AUDIENCE]]
    assert sorted(got) == sorted(p.external_id for p in sendable)
    never_sent(graph, [*crowd["left_out"], *crowd["excluded"], crowd["outsider"]])
    never_sent(graph, [crowd["unusable"]])  # nothing Meta can match: not sent at all

    taken = graph.taken()
    assert [b.edge for b in taken] == ["users"] * 3
    assert [len(b.rows) for b in taken] == [4, 4, 1]
    assert {b.session["session_id"] for b in taken} == {int(job.session_id)}
    assert [b.session["last_batch_flag"] for b in taken] == [False, False, True]
    assert {b.session["estimated_num_total"] for b in taken} == {10}  # 9 + the unusable one

    assert job.status == JobStatus.DONE, job.detail
    assert (job.total_rows, job.processed_rows) == (10, 10)
    assert (job.batches, job.sent, job.skipped, job.invalid) == (3, 9, 1, 0)
    assert job.failed_batch is None and job.attempts == 1
    assert job.started_at is not None and job.finished_at is not None
    assert job.detail == (
        "Sent 9 people in 3 batches. 1 person had no email or phone Meta can match (a phone "
        "needs its country code). 3 people of the audience left out: on email or SMS Do Not "
        "Contact, or with neither an email nor a phone."
    )

    sql = [q["sql"] for q in queries.captured_queries]
    progress = [int(m) for s in sql for m in re.findall(r'"processed_rows" = (\d+)', s)]
    assert progress == [0, 4, 8, 10, 10]  # the claim, each batch, the outcome
    steps = [m for s in sql for m in re.findall(r"Sent batch \d+ of \d+", s)]
    assert steps == ["Sent batch 1 of 3", "Sent batch 2 of 3", "Sent batch 3 of 3"]
    # the people are read by two queries (the count and the stream), not one per person
    assert len([s for s in sql if 'FROM "people_person"' in s]) == 2

    entry = AuditEntry.objects.get(action="meta_export.done")
    assert (entry.workspace_id, entry.object_type, entry.object_id) == (
        job.workspace_id, "metaexport", job.pk,
    )  # fmt: skip
    assert entry.summary == {
        "total_rows": 10, "processed_rows": 10, "batches": 3, "sent": 9, "invalid": 0,
        "skipped": 1,
    }  # fmt: skip


def test_nobody_on_email_or_sms_do_not_contact_is_ever_sent(workspace, graph, provider):
    people = [
        PersonFactory(workspace=workspace, email=f"p{i}@example.com", phone=f"+4479000000{i:02d}")
        for i in range(6)
    ]
    dnc_add(workspace=workspace, channel="email", address="P1@Example.com", actor=ACTOR)
    dnc_add(workspace=workspace, channel="sms", address="+447900000002", actor=ACTOR)
    dnc_add(workspace=workspace, channel="push", address="irrelevant-token", actor=ACTOR)
    audience = meta_audience(workspace, [static(workspace, "All", people)])

    job = meta_export_run(export_id=start(audience).pk)

    assert job.status == JobStatus.DONE, job.detail
    never_sent(graph, people[1:3])
    assert sorted(graph.members[AUDIENCE]) == sorted(
        expected_row(p) for p in [people[0], *people[3:]]
    )
    assert job.sent == 4 and job.total_rows == 4


def test_a_replace_goes_to_usersreplace_and_leaves_meta_the_new_people(
    workspace, graph, provider, crowd, small_batches
):
    assert meta_export_run(export_id=start(crowd["audience"]).pk).status == JobStatus.DONE
    static_members_change(
        segment=crowd["include"], people=Person.objects.filter(pk=crowd["sendable"][0].pk),
        add=False, actor=ACTOR,
    )  # fmt: skip
    graph.batches.clear()

    job = meta_export_run(export_id=start(crowd["audience"], replace=True).pk)

    assert graph.problems == []
    assert job.status == JobStatus.DONE, job.detail
    assert job.replace and job.sent == 8 and job.batches == 2
    assert {b.edge for b in graph.taken()} == {"usersreplace"}
    assert sorted(graph.members[AUDIENCE]) == sorted(
        expected_row(p) for p in crowd["sendable"][1:]
    )  # the person who left the segment is gone from Meta's audience too
    assert job.detail.startswith("Replaced the Meta audience's members with 8 people")


@pytest.mark.parametrize("replace", [False, True])
def test_a_failed_batch_fails_the_job_naming_the_batch(graph, provider, crowd, small_batches,
                                                       replace):  # fmt: skip
    graph.fail_at(2)

    job = meta_export_run(export_id=start(crowd["audience"], replace=replace).pk)

    assert job.status == JobStatus.FAILED
    assert job.failed_batch == 2
    assert job.detail.startswith("Batch 2 failed: ")
    assert "Meta took 1 batch (4 people) before batch 2." in job.detail
    assert (job.batches, job.sent, job.processed_rows) == (1, 4, 4)
    assert [b.session["batch_seq"] for b in graph.taken()] == [1]  # nothing after batch 2
    assert (REPLACE_NOT_ATOMIC in job.detail) is replace
    assert not AuditEntry.objects.filter(action="meta_export.done").exists()


@pytest.mark.parametrize("where", ["status", "upload"])
def test_an_audience_flagged_by_meta_is_named(graph, provider, crowd, where):
    if where == "status":
        graph.flag(AUDIENCE)  # operation_status 471: refused before any batch
    else:
        graph.fail_at(1, FLAGGED_ERROR)  # "Audience Upload Blocked" on the first batch

    job = meta_export_run(export_id=start(crowd["audience"], replace=True).pk)

    assert job.status == JobStatus.FAILED
    assert FLAGGED == "audience flagged by Meta" and FLAGGED in job.detail
    assert job.failed_batch == (None if where == "status" else 1)
    assert graph.taken() == [] and job.sent == 0


def test_an_expired_token_asks_to_connect_the_account_again(graph, provider, crowd):
    graph.expire_token()

    job = meta_export_run(export_id=start(crowd["audience"]).pk)

    assert job.status == JobStatus.FAILED
    assert "connect the Meta account again" in job.detail
    assert "it has expired" in job.detail
    assert graph.batches == []


def test_an_unreadable_token_fails_before_calling_meta(graph, provider, crowd):
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"access_token": "x"}').decode()
    Provider.objects.filter(pk=provider.pk).update(secrets=foreign)

    job = meta_export_run(export_id=start(crowd["audience"]).pk)

    assert job.status == JobStatus.FAILED
    assert "connect the Meta account again" in job.detail
    assert graph.batches == [] and graph.refused == []


def test_a_replace_with_nobody_to_send_is_refused_and_an_add_sends_nothing(
    workspace, graph, provider
):
    nobody = PersonFactory(workspace=workspace, email="gone@example.com")
    dnc_add(workspace=workspace, channel="email", address="gone@example.com", actor=ACTOR)
    audience = meta_audience(workspace, [static(workspace, "Gone", [nobody])])

    replace = meta_export_run(export_id=start(audience, replace=True).pk)
    assert replace.status == JobStatus.FAILED
    assert "a replace would empty the Meta audience" in replace.detail

    add = meta_export_run(export_id=start(audience).pk)
    assert add.status == JobStatus.DONE
    assert add.sent == 0 and add.batches == 0
    assert add.detail.startswith("Nobody in the audience has an email or phone Meta can match")
    assert graph.taken() == []


def test_a_finished_export_is_not_run_again(graph, provider, crowd):
    job = meta_export_run(export_id=start(crowd["audience"]).pk)
    assert job.status == JobStatus.DONE
    sent = len(graph.batches)

    again = meta_export_run(export_id=job.pk)  # a re-delivered task

    assert again.status == JobStatus.DONE and again.attempts == 1
    assert len(graph.batches) == sent


def test_an_export_whose_worker_died_every_time_is_given_up(graph, provider, crowd):
    job = start(crowd["audience"])
    MetaExport.objects.filter(pk=job.pk).update(status=JobStatus.RUNNING, attempts=3)

    job = meta_export_run(export_id=job.pk)  # the message delivered a fourth time

    assert job.status == JobStatus.FAILED
    assert job.detail.startswith("The export stopped its worker 3 times")
    assert graph.batches == []


# --- the API ---------------------------------------------------------------------------


def test_post_answers_202_and_get_follows_the_job(api_client, graph, provider, crowd,
                                                  other_workspace):  # fmt: skip
    audience = crowd["audience"]
    started = post_export(api_client, audience.pk, {"replace": True})
    assert started.status_code == 202, started.content
    export_id = started.json()["id"]
    queued = api_client.get(f"{BASE}/exports/{export_id}").json()
    assert queued["status"] == "queued" and queued["replace"] is True
    again = post_export(api_client, audience.pk)
    assert again.status_code == 409  # one export of an audience at a time

    meta_export_run(export_id=export_id)  # the task's body, as the worker runs it

    body = api_client.get(f"{BASE}/exports/{export_id}").json()
    assert {k: body[k] for k in ("id", "audience", "status", "replace", "batches", "sent",
                                 "invalid", "skipped", "failed_batch", "processed_rows",
                                 "total_rows")} == {
        "id": export_id, "audience": audience.pk, "status": "done", "replace": True,
        "batches": 1, "sent": 9, "invalid": 0, "skipped": 1, "failed_batch": None,
        "processed_rows": 10, "total_rows": 10,
    }  # fmt: skip
    assert body["detail"].startswith("Replaced the Meta audience's members with 9 people")
    assert {b.edge for b in graph.taken()} == {"usersreplace"}

    theirs = MetaExport.objects.create(
        workspace=other_workspace, audience=meta_audience(other_workspace, []),
    )  # fmt: skip
    assert api_client.get(f"{BASE}/exports/{theirs.pk}").status_code == 404
    assert post_export(api_client, theirs.audience_id).status_code == 404


def test_exports_are_refused_until_the_audience_and_account_are_ready(
    api_client, workspace, graph, crowd
):
    audience = crowd["audience"]
    no_provider = post_export(api_client, audience.pk)
    assert no_provider.status_code == 409, no_provider.content
    assert "Connect the Meta ad account first" in no_provider.content.decode()

    provider_set(
        workspace=workspace, channel="meta", kind="meta", actor=ACTOR,
        settings={"ad_account_id": "123", "base_url": graph.base_url},
        secrets={"access_token": TOKEN},
    )  # fmt: skip
    channel_audience_set_meta_id(audience=audience, meta_audience_id="", actor=ACTOR)
    no_id = post_export(api_client, audience.pk)
    assert no_id.status_code == 409
    assert "Meta custom audience id" in no_id.content.decode()

    email = meta_audience(workspace, [crowd["include"]], channel="email", name="Newsletter")
    assert post_export(api_client, email.pk).status_code == 404
    with pytest.raises(ListConflict, match="Only audiences of the Meta channel"):
        start(email)
    assert not MetaExport.objects.exists()
    assert graph.batches == []
