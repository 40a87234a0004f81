"""Changes to flows: drafts, publish (a new version; people enter by the entry), pause,
resume, archive, people added by hand. Audited: "flow.create", "flow.update",
"flow.publish", "flow.paused", "flow.live", "flow.archived", "flow.add_people"."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import Actor, audit_record
from campaigns.flows import engine
from campaigns.flows.validation import clean_entry, clean_steps
from campaigns.models import Flow, FlowRun, FlowStatus, FlowVersion, Reentry, RunStatus
from people.models import Person


class FlowConflict(ValueError):
    """A change the flow's status forbids (HTTP 409)."""


def _clean_name(name) -> str:
    name = " ".join(str(name or "").split())
    if not name or len(name) > 200:
        raise ValidationError({"name": "Give the flow a name (at most 200 characters)."})
    return name


def _clean_reentry(reentry) -> str:
    if reentry not in Reentry.values:
        raise ValidationError({"reentry": "must be never, after_exit or always"})
    return reentry


def flow_create(*, workspace, name: str, actor: Actor, entry=None, steps=None,
                reentry: str = Reentry.NEVER) -> Flow:  # fmt: skip
    """A draft; its steps checked as far as a draft can be (clean_steps)."""
    name = _clean_name(name)
    entry = clean_entry(entry or {}, workspace=workspace)
    steps = clean_steps(steps, workspace=workspace) if steps else []
    with transaction.atomic():
        flow = Flow.objects.create(workspace=workspace, name=name, entry=entry, steps=steps,
                                   reentry=_clean_reentry(reentry),
                                   created_by=actor.user)  # fmt: skip
        audit_record(workspace=workspace, actor=actor, action="flow.create", obj=flow,
                     summary={"steps": len(steps)})  # fmt: skip
    return flow


def flow_update(*, flow: Flow, actor: Actor, name=None, entry=None, steps=None,
                reentry=None) -> Flow:  # fmt: skip
    """Change the draft (of a live flow too: published by flow_publish, as a new version;
    the people in keep theirs). An archived flow is not changed (409)."""
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        if locked.status == FlowStatus.ARCHIVED:
            raise FlowConflict("The flow is archived: it is not changed.")
        fields = []
        if name is not None:
            locked.name = _clean_name(name)
            fields.append("name")
        if entry is not None:
            if locked.version and entry != locked.entry:
                raise FlowConflict("The entry is set once the flow is published: make a new "
                                   "flow for another entry.")  # fmt: skip
            locked.entry = clean_entry(entry, workspace=locked.workspace_id)
            fields.append("entry")
        if steps is not None:
            locked.steps = clean_steps(steps, workspace=locked.workspace_id)
            fields.append("steps")
        if reentry is not None:
            locked.reentry = _clean_reentry(reentry)
            fields.append("reentry")
        if fields:
            locked.save(update_fields=[*fields, "updated_at"])
        audit_record(workspace=locked.workspace_id, actor=actor, action="flow.update",
                     obj=locked, summary={"fields": fields})  # fmt: skip
    return locked


def flow_publish(*, flow: Flow, actor: Actor, now=None) -> FlowVersion:
    """The draft as a new version, the flow live. The first publish lets people in by the
    entry: an audience's people now; a real-time segment's current members now and
    whoever enters it from then on (campaigns.flows.entry). audit: "flow.publish"."""
    now = now or timezone.now()
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        if locked.status == FlowStatus.ARCHIVED:
            raise FlowConflict("The flow is archived: it is not published again.")
        entry = clean_entry(locked.entry, workspace=locked.workspace_id, publish=True)
        steps = clean_steps(locked.steps, workspace=locked.workspace_id)
        first = not locked.version
        locked.version += 1
        version = FlowVersion.objects.create(
            workspace_id=locked.workspace_id, flow=locked, number=locked.version, entry=entry,
            steps=steps, reentry=locked.reentry, created_by=actor.user,
        )  # fmt: skip
        if any(s["type"] == "send" for s in steps):  # each send step: its own campaign
            from campaigns.flows.sending import step_campaigns

            version.steps = step_campaigns(locked, version, steps, actor=actor)
            version.save(update_fields=["steps"])
        locked.status = FlowStatus.LIVE
        locked.published_at = now
        locked.save(update_fields=["version", "status", "published_at", "updated_at"])
        audit_record(workspace=locked.workspace_id, actor=actor, action="flow.publish",
                     obj=locked, summary={"version": version.number})  # fmt: skip
        if first:
            from campaigns.flows.entry import start_entry

            start_entry(locked, now=now)
    return version


def _transition(flow: Flow, *, actor: Actor, to: str, allowed: tuple, message: str) -> Flow:
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        if locked.status not in allowed:
            raise FlowConflict(message)
        locked.status = to
        locked.save(update_fields=["status", "updated_at"])
        if to == FlowStatus.ARCHIVED:  # nobody stays in an archived flow
            open_runs = FlowRun.objects.filter(
                flow=locked, status__in=(RunStatus.ACTIVE, RunStatus.WAITING)
            )
            open_runs.update(status=RunStatus.EXITED, updated_at=timezone.now())
        audit_record(workspace=locked.workspace_id, actor=actor, action=f"flow.{to}",
                     obj=locked, summary={"status": to})  # fmt: skip
        if to == FlowStatus.LIVE:
            transaction.on_commit(engine._kick)
    return locked


def flow_pause(*, flow: Flow, actor: Actor) -> Flow:
    """Runs stay where they are until it resumes."""
    return _transition(flow, actor=actor, to=FlowStatus.PAUSED, allowed=(FlowStatus.LIVE,),
                       message="Only a live flow is paused.")  # fmt: skip


def flow_resume(*, flow: Flow, actor: Actor) -> Flow:
    return _transition(flow, actor=actor, to=FlowStatus.LIVE, allowed=(FlowStatus.PAUSED,),
                       message="Only a paused flow is resumed.")  # fmt: skip


def flow_archive(*, flow: Flow, actor: Actor) -> Flow:
    """Nobody enters or moves on any more; the people in are exited; its history stays."""
    return _transition(flow, actor=actor, to=FlowStatus.ARCHIVED,
                       allowed=(FlowStatus.DRAFT, FlowStatus.LIVE, FlowStatus.PAUSED),
                       message="The flow is archived already.")  # fmt: skip


def flow_add_people(*, flow: Flow, people, actor: Actor, source: str = "manual") -> int:
    """Let `people` (a queryset of the flow's workspace) in now, as the re-entry rule
    allows: the number of runs started. A flow that is not live takes nobody (409).
    audit: "flow.add_people" with the count."""
    flow.refresh_from_db(fields=["status", "version"])
    if flow.status not in (FlowStatus.LIVE, FlowStatus.PAUSED):
        raise FlowConflict("People are added to a live (or paused) flow: publish it first.")
    people = people.filter(workspace_id=flow.workspace_id) if hasattr(people, "filter") else (
        Person.objects.for_workspace(flow.workspace_id).filter(pk__in=list(people)))  # fmt: skip
    with transaction.atomic():
        started = engine.enter(flow, people, source=source)
        audit_record(workspace=flow.workspace_id, actor=actor, action="flow.add_people",
                     obj=flow, summary={"started": started, "source": source})  # fmt: skip
    return started
