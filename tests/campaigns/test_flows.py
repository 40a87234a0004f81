"""Flows (campaigns.flows): validation naming the bad step; publish making versions; people
entering from an audience source, by hand and from a real-time segment's transitions
(read with a cursor); the engine advancing them set-based through tags, audiences,
attributes, Do Not Contact, waits (time pinned), branches on a rule tree, random splits
and exit, each step once per run even when a batch is claimed again; re-entry rules;
pause keeping runs where they are; a step that fails marking its runs failed."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from accounts.audit import Actor
from audiences.models import AudienceMember
from audiences.services import audience_get_or_create
from campaigns.flows import engine
from campaigns.flows.entry import read_entries
from campaigns.flows.services import (
    FlowConflict,
    flow_add_people,
    flow_archive,
    flow_create,
    flow_pause,
    flow_publish,
    flow_resume,
    flow_update,
)
from campaigns.flows.validation import clean_steps
from campaigns.models import FlowRun, FlowRunStep
from people.models import DoNotContact, Person
from segments.services import segment_create, static_members_change
from tests.factories import PersonFactory

ACTOR = Actor.of_system("tests")
NOW = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)  # after the real clock: people enter due


@pytest.fixture
def crowd(workspace):
    from people.services.attributes import attribute_declare

    attribute_declare(workspace=workspace, key="plan", type="string", actor=ACTOR)
    return [PersonFactory(workspace=workspace, external_id=f"p{i}", email=f"p{i}@example.com",
                          attributes={"plan": "pro" if i % 2 else "free"})
            for i in range(10)]  # fmt: skip


def steps_onboarding(audience_id):
    return [
        {"id": "tag", "type": "add_tag", "tag": "Onboarding", "next": "wait"},
        {"id": "wait", "type": "wait", "for": {"amount": 1, "unit": "minutes"}, "next": "plan"},
        {"id": "plan", "type": "branch", "yes": "vip", "no": "done",
         "rules": {"all": [{"attribute": "plan", "op": "is", "value": "pro"}]}},
        {"id": "vip", "type": "add_to_audience", "audience": audience_id, "next": "mark"},
        {"id": "mark", "type": "set_attribute", "attribute": "onboarded", "value": True,
         "next": "done"},
        {"id": "done", "type": "exit"},
    ]  # fmt: skip


def live_flow(workspace, people, steps, **kwargs):
    flow = flow_create(workspace=workspace, name="Onboarding", actor=ACTOR, steps=steps,
                       entry={"type": "manual"}, **kwargs)  # fmt: skip
    flow_publish(flow=flow, actor=ACTOR, now=NOW)
    flow.refresh_from_db()
    flow_add_people(flow=flow, people=Person.objects.filter(pk__in=[p.pk for p in people]),
                    actor=ACTOR)  # fmt: skip
    return flow


def statuses(flow):
    return sorted(FlowRun.objects.filter(flow=flow).values_list("person__external_id", "step",
                                                                "status"))  # fmt: skip


def test_people_go_through_tag_wait_branch_audience_attribute_and_exit(workspace, crowd):
    vip, _ = audience_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    flow = live_flow(workspace, crowd, steps_onboarding(vip.pk))
    done = engine.advance(now=NOW)
    assert done["add_tag"] == 10 and done["wait"] == 10
    assert {s for _, s, _ in statuses(flow)} == {"wait"}
    assert Person.objects.filter(person_tags__tag__name="Onboarding").count() == 10
    # the wait holds until its minute is up
    assert engine.advance(now=NOW + timedelta(seconds=59)) == {}
    done = engine.advance(now=NOW + timedelta(minutes=1))
    assert done["branch"] == 10 and done["add_to_audience"] == 5 and done["exit"] == 10
    assert {st for _, _, st in statuses(flow)} == {"exited"}
    pro = {p.pk for p in crowd if p.attributes["plan"] == "pro"}
    members = AudienceMember.objects.filter(audience=vip).values_list("person_id", flat=True)
    assert set(members) == pro
    onboarded = Person.objects.filter(attributes__onboarded=True).values_list("pk", flat=True)
    assert set(onboarded) == pro
    # each step once per run, in the person's history
    outcomes = dict(FlowRunStep.objects.filter(step="plan").values_list("run__person_id",
                                                                        "outcome"))  # fmt: skip
    assert {k for k, v in outcomes.items() if v == "yes"} == pro


def test_a_batch_claimed_again_after_a_dead_worker_does_each_step_once(workspace, crowd):
    vip, _ = audience_get_or_create(workspace=workspace, name="VIP", actor=ACTOR)
    flow = live_flow(workspace, crowd, [
        {"id": "tag", "type": "add_tag", "tag": "Once", "next": "vip"},
        {"id": "vip", "type": "add_to_audience", "audience": vip.pk},
    ])  # fmt: skip
    runs = engine.claim(now=NOW)
    grouped = [(r[0], r[3], r[4]) for r in runs]
    version = FlowRun.objects.filter(flow=flow).first().version
    tag_step = version.steps[0]
    # the worker did the step, then died before the run was moved on: nothing committed
    # the move, so the step's row and effect happened together or not at all
    assert engine.execute(version, tag_step, grouped, now=NOW) == 10
    assert engine.execute(version, tag_step, grouped, now=NOW) == 0  # again: no effect twice
    FlowRun.objects.filter(flow=flow).update(lease_until=NOW - timedelta(seconds=1))
    engine.advance(now=NOW + timedelta(minutes=6))
    assert AudienceMember.objects.filter(audience=vip).count() == 10
    assert FlowRunStep.objects.filter(step="tag").count() == 10
    assert {st for _, _, st in statuses(flow)} == {"done"}


def test_reentry_rules(workspace, crowd):
    ann = crowd[:1]
    for rule, second_time in (("never", 0), ("after_exit", 1), ("always", 1)):
        flow = live_flow(workspace, ann, [{"id": "w", "type": "wait",
                                           "for": {"amount": 1, "unit": "hours"}}],
                         reentry=rule)  # fmt: skip
        engine.advance(now=NOW)
        again = flow_add_people(flow=flow, people=Person.objects.filter(pk=ann[0].pk), actor=ACTOR)
        if rule == "after_exit":
            assert again == 0  # still in
            engine.advance(now=NOW + timedelta(hours=2))
            again = flow_add_people(flow=flow, people=Person.objects.filter(pk=ann[0].pk),
                                    actor=ACTOR)  # fmt: skip
        assert again == second_time, rule


def test_a_split_divides_by_the_percentages_stably(workspace):
    people = [PersonFactory(workspace=workspace) for _ in range(400)]
    flow = live_flow(workspace, people, [
        {"id": "s", "type": "split", "paths": [{"percent": 25, "next": "a"},
                                              {"percent": 75, "next": "b"}]},
        {"id": "a", "type": "add_tag", "tag": "A"},
        {"id": "b", "type": "add_tag", "tag": "B"},
    ])  # fmt: skip
    engine.advance(now=NOW)
    a = Person.objects.filter(person_tags__tag__name="A").count()
    assert 70 <= a <= 130 and a + Person.objects.filter(person_tags__tag__name="B").count() == 400
    assert {st for _, _, st in statuses(flow)} == {"done"}


def test_wait_until_a_local_time(workspace):
    ann = PersonFactory(workspace=workspace, time_zone="America/New_York")
    flow = live_flow(workspace, [ann], [
        {"id": "w", "type": "wait", "until": "10:00", "time_zone": "recipient"}])  # fmt: skip
    engine.advance(now=NOW)  # 05:00 in New York
    run = FlowRun.objects.get(flow=flow)
    assert run.status == "waiting" and run.wake_at == datetime(2027, 6, 1, 14, tzinfo=UTC)


def test_wait_for_an_event_takes_yes_or_no(workspace):
    from people.services.events import event_ingest_batch

    ann, bob = PersonFactory(workspace=workspace), PersonFactory(workspace=workspace)
    flow = live_flow(workspace, [ann, bob], [
        {"id": "w", "type": "wait_for_event", "event": "Order Completed",
         "within": {"amount": 1, "unit": "days"}, "yes": "y", "no": "n"},
        {"id": "y", "type": "add_tag", "tag": "Bought"},
        {"id": "n", "type": "add_tag", "tag": "Did not buy"},
    ])  # fmt: skip
    engine.advance(now=NOW)
    event_ingest_batch(workspace=workspace, items=[{
        "person": ann.external_id, "name": "Order Completed",
        "occurred_at": (NOW + timedelta(hours=3)).isoformat()}], actor=ACTOR)  # fmt: skip
    # the event wakes Ann's run: she takes "yes" now, Bob waits on
    soon = NOW + timedelta(hours=3, minutes=1)
    assert engine.wake_on_events(now=soon) == 1
    engine.advance(now=soon)
    assert list(Person.objects.filter(person_tags__tag__name="Bought")) == [ann]
    assert not Person.objects.filter(person_tags__tag__name="Did not buy").exists()
    engine.advance(now=NOW + timedelta(days=1))
    assert list(Person.objects.filter(person_tags__tag__name="Bought")) == [ann]
    assert list(Person.objects.filter(person_tags__tag__name="Did not buy")) == [bob]
    assert {st for _, _, st in statuses(flow)} == {"done"}


def test_dnc_step_and_a_deleted_audience_fails_only_its_runs(workspace, crowd):
    gone, _ = audience_get_or_create(workspace=workspace, name="Gone", actor=ACTOR)
    flow = live_flow(workspace, crowd[:2], [
        {"id": "dnc", "type": "add_to_dnc", "channel": "email", "next": "aud"},
        {"id": "aud", "type": "add_to_audience", "audience": gone.pk},
    ])  # fmt: skip
    gone.delete()
    engine.advance(now=NOW)
    assert set(DoNotContact.objects.for_workspace(workspace).values_list("address", flat=True)) == {
        "p0@example.com", "p1@example.com"}  # fmt: skip
    runs = FlowRun.objects.filter(flow=flow)
    assert {r.status for r in runs} == {"failed"} and "deleted" in runs[0].error


def test_pause_keeps_runs_where_they_are_and_archive_exits_them(workspace, crowd):
    flow = live_flow(workspace, crowd[:3], [{"id": "t", "type": "add_tag", "tag": "X"}])
    flow_pause(flow=flow, actor=ACTOR)
    assert engine.advance(now=NOW) == {}
    assert {st for _, _, st in statuses(flow)} == {"active"}
    flow_resume(flow=flow, actor=ACTOR)
    assert engine.advance(now=NOW)["add_tag"] == 3
    with pytest.raises(FlowConflict):
        flow_resume(flow=flow, actor=ACTOR)
    other = live_flow(workspace, crowd[:3], [{"id": "w", "type": "wait",
                                             "for": {"amount": 1, "unit": "days"}}])  # fmt: skip
    engine.advance(now=NOW)
    flow_archive(flow=other, actor=ACTOR)
    assert {st for _, _, st in statuses(other)} == {"exited"}


def test_a_new_version_leaves_people_on_theirs(workspace, crowd):
    flow = live_flow(workspace, crowd[:2], [
        {"id": "w", "type": "wait", "for": {"amount": 1, "unit": "hours"}, "next": "old"},
        {"id": "old", "type": "add_tag", "tag": "Old"},
    ])  # fmt: skip
    engine.advance(now=NOW)
    flow_update(flow=flow, actor=ACTOR, steps=[{"id": "new", "type": "add_tag", "tag": "New"}])
    flow_publish(flow=flow, actor=ACTOR, now=NOW)
    flow.refresh_from_db()
    assert flow.version == 2
    flow_add_people(flow=flow, people=Person.objects.filter(pk=crowd[5].pk), actor=ACTOR)
    engine.advance(now=NOW + timedelta(hours=1))
    old = Person.objects.filter(person_tags__tag__name="Old").values_list("pk", flat=True)
    assert set(old) == {crowd[0].pk, crowd[1].pk}
    assert list(Person.objects.filter(person_tags__tag__name="New")) == [crowd[5]]


def test_people_enter_from_an_audience_source_at_publish(workspace, crowd):
    static = segment_create(workspace=workspace, name="Some", kind="static", actor=ACTOR)
    static_members_change(segment=static, people=Person.objects.filter(pk__in=[
        p.pk for p in crowd[:4]]), add=True, actor=ACTOR)  # fmt: skip
    flow = flow_create(workspace=workspace, name="From a segment", actor=ACTOR,
                       entry={"type": "audience", "from": {"segment": static.pk}},
                       steps=[{"id": "t", "type": "add_tag", "tag": "In"}])  # fmt: skip
    flow_publish(flow=flow, actor=ACTOR, now=NOW)
    assert FlowRun.objects.filter(flow=flow).count() == 4
    # a later edit of the segment changes nobody who entered
    static_members_change(segment=static, people=Person.objects.filter(pk=crowd[9].pk),
                          add=True, actor=ACTOR)  # fmt: skip
    assert FlowRun.objects.filter(flow=flow).count() == 4


@pytest.mark.django_db(transaction=True)
def test_people_enter_a_flow_as_they_enter_its_real_time_segment(workspace, crowd):
    """Committed transactions (the transitions are read below the oldest one running)."""
    realtime = segment_create(workspace=workspace, name="Pro", kind="realtime", actor=ACTOR,
                              rules={"all": [{"attribute": "plan", "op": "is",
                                              "value": "vip"}]})  # fmt: skip
    rt_flow = flow_create(workspace=workspace, name="Real-time", actor=ACTOR,
                          entry={"type": "segment_entry", "segment": realtime.pk},
                          steps=[{"id": "t", "type": "add_tag", "tag": "VIP now"}])  # fmt: skip
    flow_publish(flow=rt_flow, actor=ACTOR, now=NOW)
    assert FlowRun.objects.filter(flow=rt_flow).count() == 0
    from segments.realtime import apply_membership

    Person.objects.filter(pk__in=[crowd[0].pk, crowd[1].pk]).update(attributes={"plan": "vip"})
    apply_membership(realtime, now=NOW)
    # rows are read once every older transaction of the cluster has ended (another
    # process's open transaction holds them back a moment; nothing is ever missed)
    started, deadline = read_entries(), time.monotonic() + 60
    while started < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        started += read_entries()
    assert started == 2
    assert read_entries() == 0  # nothing read twice
    assert FlowRun.objects.filter(flow=rt_flow).count() == 2
    engine.advance(now=NOW)
    assert Person.objects.filter(person_tags__tag__name="VIP now").count() == 2




@pytest.mark.parametrize(("steps", "path"), [
    ([], "steps"),
    ([{"id": "a", "type": "add_tag", "tag": "x", "next": "b"}], "steps.a.next"),
    ([{"id": "a", "type": "branch", "yes": "b", "rules": {"all": [
      {"attribute": "plan", "op": "is", "value": "pro"}]}}, {"id": "b", "type": "exit"}],
     "steps.a.no"),
    ([{"id": "a", "type": "add_tag", "tag": "x", "next": "b"},
      {"id": "b", "type": "add_tag", "tag": "y", "next": "a"}], "steps.b.next"),
    ([{"id": "a", "type": "exit"}, {"id": "b", "type": "exit"}], "steps.b"),
    ([{"id": "a", "type": "send", "channel": "email", "content": {"subject": ""}}],
     "steps.a.content"),
    ([{"id": "a", "type": "add_to_audience", "audience": 999999}], "steps.a.audience"),
    ([{"id": "a", "type": "wait", "for": {"amount": 0, "unit": "hours"}}], "steps.a.for.amount"),
    ([{"id": "a", "type": "split", "paths": [{"percent": 50, "next": "b"},
      {"percent": 40, "next": "b"}]}, {"id": "b", "type": "exit"}], "steps.a.paths"),
    ([{"id": "a", "type": "teleport"}], "steps.a.type"),
])  # fmt: skip
def test_validation_names_the_bad_step(workspace, crowd, steps, path):
    with pytest.raises(ValidationError) as caught:
        clean_steps(steps, workspace=workspace)
    assert any(key.startswith(path) for key in caught.value.message_dict), caught.value


def test_publish_refuses_what_cannot_run(workspace):
    flow = flow_create(workspace=workspace, name="No entry", actor=ACTOR,
                       steps=[{"id": "t", "type": "add_tag", "tag": "x"}])  # fmt: skip
    with pytest.raises(ValidationError, match="enter"):
        flow_publish(flow=flow, actor=ACTOR)
    with pytest.raises(FlowConflict):
        flow_add_people(flow=flow, people=Person.objects.none(), actor=ACTOR)


def test_a_send_step_goes_through_the_ledger_once_per_run(workspace, run_jobs):
    from campaigns.dispatch.send import dispatch
    from campaigns.models import Campaign, Delivery
    from campaigns.selectors import campaigns_for
    from channels.models import SandboxMessage
    from channels.services import provider_set
    from people.services.dnc import dnc_add

    provider_set(workspace=workspace, channel="email", kind="sandbox", settings={}, secrets={},
                 actor=ACTOR)  # fmt: skip
    ann = PersonFactory(workspace=workspace, email="ann@example.com", first_name="Ann")
    bob = PersonFactory(workspace=workspace, email="bob@example.com")
    dnc_add(workspace=workspace, channel="email", address="bob@example.com", actor=ACTOR)
    flow = live_flow(workspace, [ann, bob], [
        {"id": "hello", "type": "send", "channel": "email",
         "content": {"subject": "Hi {{ person.first_name }}", "text": "Welcome"}},
    ], reentry="always")  # fmt: skip
    step_campaign = Campaign.objects.get(flow=flow)
    assert step_campaign.status == "sending" and step_campaign not in campaigns_for(workspace)
    runs = engine.claim(now=NOW)
    version = FlowRun.objects.filter(flow=flow).first().version
    step = version.steps[0]
    grouped = [(r[0], r[3], r[4]) for r in runs]
    with run_jobs():
        assert engine.execute(version, step, grouped, now=NOW) == 2
    assert engine.execute(version, step, grouped, now=NOW) == 0  # claimed again: not twice
    rows = Delivery.objects.filter(campaign=step_campaign)
    # queued, then sent by the dispatcher started on commit; Bob on Do Not Contact skipped
    assert sorted(rows.values_list("address", "status", "reason")) == [
        ("ann@example.com", "sent", ""), ("bob@example.com", "skipped", "dnc")]  # fmt: skip
    dispatch(step_campaign.pk)
    assert list(SandboxMessage.objects.values_list("address", "subject")) == [
        ("ann@example.com", "Hi Ann")]  # fmt: skip
    step_campaign.refresh_from_db()
    assert step_campaign.status == "sending"  # the flow queues more as people arrive
    # Ann enters again (re-entry "always"): a new run, a new message
    flow_add_people(flow=flow, people=Person.objects.filter(pk=ann.pk), actor=ACTOR)
    with run_jobs():
        engine.advance(now=NOW)
    dispatch(step_campaign.pk)
    assert SandboxMessage.objects.filter(address="ann@example.com").count() == 2
    assert rows.filter(person=ann).count() == 2
