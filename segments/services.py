"""Writes about segments. Membership is computed with the one compiler and written with
one set-based statement per step; never a loop over people."""

from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from accounts.audit import Actor, audit_record
from accounts.degraded import send_after_commit
from accounts.jobs import MAX_ATTEMPTS, attempt_lock
from accounts.services import workspace_create
from accounts.text import has_forbidden_character
from audiences.models import MemberSource
from audiences.services import (
    audience_add_people,
    audience_remove_people,
    get_or_create_unaudited,
)
from people.changes import record_change, segment_key
from people.models import Person
from people.sql import insert_for_people
from segments import realtime
from segments.models import (
    PENDING,
    RULE_KINDS,
    RefreshStatus,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentRefresh,
    SegmentSnapshot,
)
from segments.rules import RuleError, check_catalogue, iter_nodes, parse_rules
from segments.rules.compiler import check_inlining
from segments.rules.schema import SegmentCondition, check_realtime
from segments.selectors import current_members, segment_people, segment_users

MIN_REFRESH_MINUTES = 5
MAX_REFRESH_MINUTES = 366 * 24 * 60  # a year

PREDEFINED = {
    "active_mobile_users": (
        "Active Mobile Users",
        {
            "event": "App Launch",
            "count": {"op": "gte", "value": 1},
            "time": {"op": "within_last", "amount": 30, "unit": "days"},
        },
    ),
    "inactive_mobile_users": (
        "Inactive Mobile Users",
        {
            "all": [
                {"event": "App Launch"},
                {
                    "event": "App Launch",
                    "count": {"op": "eq", "value": 0},
                    "time": {"op": "within_last", "amount": 30, "unit": "days"},
                },
            ]
        },
    ),
}


class SegmentConflict(ValueError):
    """A change the segment's state forbids (HTTP 409): the message says why and what to do."""


def _clean_name(name: str | None) -> str:
    """A segment's name with its whitespace collapsed; RuleError("name") unless it is 1-200
    characters that PostgreSQL can store."""
    name = " ".join((name or "").split())
    if not name or len(name) > 200:
        raise RuleError("name", "a segment needs a name of 1-200 characters")
    if has_forbidden_character(name):
        raise RuleError("name", "a segment name cannot contain a NUL character")
    return name


def _check_rules(*, workspace, kind: str, rules, segment_id=None):
    """The parsed tree, checked against the catalogues and the kind's limits."""
    if kind not in RULE_KINDS:
        if rules not in (None, {}):
            raise RuleError("", f"a {SegmentKind(kind).label.lower()} segment has no rules")
        return None
    if rules in (None, {}):
        raise RuleError("", "this kind of segment needs rules")
    tree = parse_rules(rules, workspace=workspace)
    types = check_catalogue(tree, workspace=workspace)
    if kind == SegmentKind.REALTIME:
        check_realtime(tree, types=types)
    for node in iter_nodes(tree):
        if isinstance(node, SegmentCondition):
            _check_no_cycle(
                workspace=workspace, start=node.segment, path=node.path, forbidden=segment_id
            )
    # Refused now rather than at every count: snapshots that inline too much or nest too deep.
    check_inlining(tree, workspace=workspace)
    return tree


def _check_no_cycle(*, workspace, start: int, path: str, forbidden: int | None):
    """Refuse a segment condition whose chain of segments leads back to `forbidden`."""
    seen, todo = set(), [start]
    while todo:
        current = todo.pop()
        if current == forbidden:
            raise RuleError(path, "a segment cannot depend on itself (directly or through others)")
        if current in seen:
            continue
        seen.add(current)
        segment = Segment.objects.for_workspace(workspace).filter(pk=current).first()
        if segment is None:
            raise RuleError(path, f"there is no segment {current} in this workspace")
        if segment.rules:
            todo += [
                n.segment
                for n in iter_nodes(parse_rules(segment.rules))
                if isinstance(n, SegmentCondition)
            ]


def _lock_named_segments(*, workspace, rules, path: str = "rules") -> None:
    """Inside the transaction that saves `rules`: lock the segments they name, so none is
    deleted before the save commits, and refuse rules naming one deleted meanwhile."""
    if not rules:
        return
    named = {n.segment for n in iter_nodes(parse_rules(rules)) if isinstance(n, SegmentCondition)}
    if not named:
        return
    found = set(
        Segment.objects.for_workspace(workspace)
        .filter(pk__in=named)
        .select_for_update(no_key=True)
        .values_list("pk", flat=True)
    )
    missing = sorted(named - found)
    if missing:
        raise RuleError(path, f"there is no segment {missing[0]} in this workspace")


def _check_schedule(minutes) -> None:
    if not minutes or minutes < MIN_REFRESH_MINUTES:
        raise RuleError(
            "refresh_every_minutes",
            f"a scheduled query refreshes every {MIN_REFRESH_MINUTES} minutes or more",
        )
    if minutes > MAX_REFRESH_MINUTES:
        raise RuleError("refresh_every_minutes", "a scheduled query refreshes at least once a year")


def segment_create(
    *,
    workspace,
    name: str,
    kind: str,
    rules=None,
    refresh_every_minutes=None,
    actor: Actor,
    now: datetime | None = None,
    compute: bool = True,
) -> Segment:
    """Create a segment and compute it (a segment with rules or Everyone; a static list
    starts empty): before this returns, or, with compute=False (the UI), as a job
    (segment_recount_start). audit: "segment.create" (its first computation is part of
    it when computed here)."""
    now = now or timezone.now()
    name = _clean_name(name)
    if kind not in SegmentKind.values:
        raise RuleError("kind", f"“{kind}” is not a kind of segment")
    if kind == SegmentKind.QUERY:
        _check_schedule(refresh_every_minutes)
    elif refresh_every_minutes:
        raise RuleError("refresh_every_minutes", "only query segments refresh on a schedule")
    _check_rules(workspace=workspace, kind=kind, rules=rules)
    try:
        with transaction.atomic():
            _lock_named_segments(workspace=workspace, rules=rules)
            segment = Segment.objects.create(
                workspace=workspace,
                name=name,
                kind=kind,
                rules=rules or None,
                refresh_every_minutes=refresh_every_minutes if kind == SegmentKind.QUERY else None,
                created_by=actor.user,
            )
            audit_record(
                workspace=workspace,
                actor=actor,
                action="segment.create",
                obj=segment,
                summary={"kind": kind},
            )
    except IntegrityError:
        raise SegmentConflict(f"A segment named “{name}” already exists.") from None
    if kind != SegmentKind.STATIC:
        if compute:
            _refresh(segment=segment, now=now)
        else:
            segment_recount_start(segment=segment, actor=actor)
    return segment


def segment_update(
    *,
    segment: Segment,
    name: str | None = None,
    rules=None,
    refresh_every_minutes=None,
    actor: Actor,
    now: datetime | None = None,
    compute: bool = True,
) -> Segment:
    """Rename, change rules or schedule. A real-time segment's rules never change (409);
    editing a snapshot never changes what was frozen for its requesters. New rules are
    computed (a query segment refreshes, a snapshot is recounted) before this returns, or
    with compute=False (the UI) as a job (segment_recount_start).
    audit: "segment.update" with the names of the fields saved (never the rules' values)."""
    now = now or timezone.now()
    fields = []
    if rules is not None and rules != segment.rules:
        if segment.kind == SegmentKind.REALTIME:
            raise SegmentConflict(
                "A real-time segment's rules cannot change after creation: its members' "
                "entry and exit history depends on them. Duplicate it with the new rules."
            )
        if segment.predefined:
            raise SegmentConflict("A built-in segment's rules cannot change; duplicate it.")
        _check_rules(
            workspace=segment.workspace, kind=segment.kind, rules=rules, segment_id=segment.pk
        )
        segment.rules = rules
        fields.append("rules")
    if name is not None:
        segment.name = _clean_name(name)
        fields.append("name")
    if refresh_every_minutes is not None:
        if segment.kind != SegmentKind.QUERY:
            raise RuleError("refresh_every_minutes", "only query segments refresh on a schedule")
        _check_schedule(refresh_every_minutes)
        segment.refresh_every_minutes = refresh_every_minutes
        segment.next_refresh_at = now
        fields += ["refresh_every_minutes", "next_refresh_at"]
    if fields:
        try:
            with transaction.atomic():
                if "rules" in fields:
                    _lock_named_segments(workspace=segment.workspace, rules=segment.rules)
                segment.save(update_fields=[*fields, "updated_at"])
                audit_record(
                    workspace=segment.workspace_id,
                    actor=actor,
                    action="segment.update",
                    obj=segment,
                    summary={"fields": fields},
                )
        except IntegrityError:
            raise SegmentConflict(f"A segment named “{segment.name}” already exists.") from None
        if "rules" in fields:
            if compute:
                _refresh(segment=segment, now=now)
            else:
                segment_recount_start(segment=segment, actor=actor)
    return segment


def segment_delete(*, segment: Segment, actor: Actor) -> None:
    """Deletes the segment, unless it is built in or other segments' rules name it
    (deleting it would leave those rules pointing at nothing). audit: "segment.delete" """
    if segment.predefined:
        raise SegmentConflict("Built-in segments cannot be deleted.")
    with transaction.atomic():
        # Rules that start naming the segment lock its row first (_lock_named_segments),
        # so none can while it goes.
        Segment.objects.filter(pk=segment.pk).select_for_update().first()
        users = segment_users(workspace=segment.workspace).get(segment.pk, [])
        if users:
            names = ", ".join(f"“{user.name}”" for user in users[:5])
            more = f" and {len(users) - 5} more" if len(users) > 5 else ""
            raise SegmentConflict(
                f"“{segment.name}” cannot be deleted: the rules of {names}{more} use it. "
                "Take it out of their rules first (or delete them)."
            )
        audit_record(
            workspace=segment.workspace_id,
            actor=actor,
            action="segment.delete",
            obj=segment,
            summary={"kind": segment.kind},
        )
        segment.delete()


def _people_sql(people: QuerySet[Person]) -> tuple[str, list]:
    return people.order_by().values("id").query.sql_with_params()


def _enter(segment: Segment, people: QuerySet[Person], *, now: datetime) -> int:
    """`people` enter the segment (again, for those who had exited); returns how many
    were not current members."""
    return insert_for_people(
        table="segments_segmentmember",
        columns="workspace_id, segment_id, person_id, entered_at, exited_at",
        values="%s, %s, p.id, %s, NULL",
        params=[segment.workspace_id, segment.pk, now],
        people=people,
        on_conflict=(
            "ON CONFLICT (segment_id, person_id) DO UPDATE "
            "SET entered_at = EXCLUDED.entered_at, exited_at = NULL "
            "WHERE segments_segmentmember.exited_at IS NOT NULL"
        ),
    )


class RefreshPending(SegmentConflict):
    """A refresh of the segment is already waiting or running."""


_LOCK_NAMESPACE = 0x4853_4547 << 32  # "HSEG": advisory lock keys of segment refresh jobs


def segment_refresh(
    *, segment: Segment, actor: Actor, now: datetime | None = None
) -> SegmentRefresh:
    """Recompute the segment in this request (the API's and the beat's way; the UI queues
    a job with segment_recount_start): a stored segment refreshes in one transaction
    (people who no longer match exit, people who newly match enter, history kept); a
    computed one is counted. A failure is recorded on the segment and in its refresh
    history with the reason. Raises RefreshPending when a refresh is already waiting or
    running. audit: "segment.refresh" with the counts, when it succeeds."""
    now = now or timezone.now()
    refresh = _run_inline(segment=segment, now=now, actor=actor)
    if refresh is None:
        raise RefreshPending(
            f"“{segment.name}” is being refreshed already; its count updates when that ends."
        )
    return refresh


def _refresh(*, segment: Segment, now: datetime) -> SegmentRefresh:
    """segment_refresh as part of an action audited by its caller (a create, an update).
    When a refresh is already pending, that one is returned: it reads the rules when it
    runs."""
    refresh = _run_inline(segment=segment, now=now, actor=None)
    if refresh is None:
        return SegmentRefresh.objects.filter(segment=segment, status__in=PENDING).first()
    return refresh


def _run_inline(*, segment: Segment, now: datetime, actor: Actor | None):
    """A refresh row in status running, computed here; None when another refresh of the
    segment is pending (one per segment, by a constraint)."""
    try:
        with transaction.atomic():
            refresh = SegmentRefresh.objects.create(
                workspace_id=segment.workspace_id,
                segment=segment,
                requested_by=actor.user if actor else None,
                started_at=now,
                attempts=1,
                status=RefreshStatus.RUNNING,
            )
    except IntegrityError:
        return None
    with _attempt(refresh.pk):  # the row is new: its lock is free
        _compute(segment=segment, refresh=refresh, now=now, actor=actor)
    return refresh


def segment_recount_start(*, segment: Segment, actor: Actor) -> SegmentRefresh:
    """Queue the segment's recomputation as a job (a stored segment refreshes, a computed
    one is counted) and return its row, which a worker runs after commit
    (segments.tasks.segment_refresh_task). At most one waits or runs per segment: asking
    again returns that one. The segment's page and list show it waiting, then running,
    then its count. audit: "segment.refresh_request" (a user's or key's, not the beat's)
    and then "segment.refresh" by the worker, for the user who asked."""
    with transaction.atomic():
        Segment.objects.filter(pk=segment.pk).select_for_update().first()
        pending = SegmentRefresh.objects.filter(segment=segment, status__in=PENDING).first()
        if pending is not None:
            return pending
        now = timezone.now()
        refresh = SegmentRefresh.objects.create(
            workspace_id=segment.workspace_id,
            segment=segment,
            requested_by=actor.user,
            started_at=now,
            status=RefreshStatus.QUEUED,
        )
        Segment.objects.filter(pk=segment.pk).update(refresh_status=RefreshStatus.QUEUED)
        if actor.user is not None or actor.api_key is not None:
            # a person's request (with their IP); the beat's own refreshes are the worker's
            audit_record(
                workspace=segment.workspace_id,
                actor=actor,
                action="segment.refresh_request",
                obj=segment,
            )
        _enqueue(refresh.pk)
    segment.refresh_status = RefreshStatus.QUEUED
    return refresh


def _enqueue(refresh_id: int) -> None:
    """Send the refresh to a worker after commit (with the broker down, the beat's
    reclaim_stale_refreshes sends it again)."""
    from segments.tasks import segment_refresh_task

    send_after_commit(segment_refresh_task, refresh_id)


def _attempt(refresh_id: int):
    return attempt_lock(_LOCK_NAMESPACE + refresh_id)


def segment_refresh_run(refresh_id: int) -> None:
    """The worker's side of segment_recount_start: claim the queued refresh (an attempt,
    at most MAX_ATTEMPTS) and compute it. A re-delivered message whose first attempt is
    still alive (its lock is held) leaves it alone; one whose worker died redoes it, which
    is safe because the computation commits in one transaction."""
    jobs = SegmentRefresh.objects.unscoped().filter(pk=refresh_id)
    with _attempt(refresh_id) as got:
        if not got:
            return
        now = timezone.now()
        claimed = jobs.filter(status__in=PENDING, attempts__lt=MAX_ATTEMPTS).update(
            status=RefreshStatus.RUNNING, attempts=F("attempts") + 1, started_at=now
        )
        refresh = jobs.select_related("segment__workspace", "requested_by").first()
        if refresh is None or refresh.status not in PENDING:
            return
        segment = refresh.segment
        if not claimed:
            _failed(
                segment,
                refresh,
                now=now,
                reason=f"Gave up after {MAX_ATTEMPTS} attempts: each one stopped its worker "
                "(out of memory or time). Simplify the rules or ask an operator.",
            )
            return
        actor = Actor(user=refresh.requested_by, system="segment refresh worker")
        _compute(segment=segment, refresh=refresh, now=now, actor=actor)


def reclaim_stale_refreshes(*, now: datetime | None = None, older_than=timedelta(minutes=10)):
    """Beat: refreshes still waiting or running long after they were asked for lost their
    message (a broker restart) or their worker: deliver them again (segment_refresh_run
    leaves alone one whose worker still works on it). Returns their ids."""
    now = now or timezone.now()
    stale = list(
        SegmentRefresh.objects.unscoped()
        .filter(status__in=PENDING, started_at__lt=now - older_than)
        .values_list("pk", flat=True)[:500]
    )
    for refresh_id in stale:
        _enqueue(refresh_id)
    return stale


def _compute(*, segment: Segment, refresh: SegmentRefresh, now: datetime, actor: Actor | None):
    """Run `refresh` (a row in status running): refresh a stored segment, count another."""
    try:
        with transaction.atomic():
            if segment.stores_members and segment.rules:
                entered, exited, count = _apply_rules(segment, now=now)
            else:
                entered, exited = 0, 0
                count = segment_people(segment=segment, now=now).count()
            _finish(segment, refresh, now=now, count=count, entered=entered, exited=exited)
            if actor is not None:
                audit_record(
                    workspace=segment.workspace_id,
                    actor=actor,
                    action="segment.refresh",
                    obj=segment,
                    summary={"entered": entered, "exited": exited, "people": count},
                )
    except Exception as e:  # noqa: BLE001 - any failure is shown on the segment
        reason = str(e) if isinstance(e, RuleError) else f"{e.__class__.__name__}: {e}"
        _failed(segment, refresh, now=now, reason=reason)
        if not isinstance(e, RuleError | connection.Database.Error):
            raise


def _apply_rules(segment: Segment, *, now: datetime) -> tuple[int, int, int]:
    """(entered, exited, members now) of a stored segment brought up to its rules, with
    its transitions, under the workspace's real-time lock (segments.realtime); the
    real-time segments naming it re-check after commit."""
    realtime.lock_workspace(segment.workspace_id)
    entered, exited = realtime.apply_membership(segment, now=now)
    if entered or exited:
        record_change(workspace=segment.workspace_id, everyone=True, keys=[segment_key(segment.pk)])
    return entered, exited, current_members(segment).count()


def _failed(segment, refresh, *, now, reason: str) -> None:
    SegmentRefresh.objects.unscoped().filter(pk=refresh.pk).update(
        status=RefreshStatus.FAILED, error=reason[:2000], finished_at=timezone.now()
    )
    refresh.refresh_from_db()
    Segment.objects.filter(pk=segment.pk).update(
        refresh_status=RefreshStatus.FAILED,
        refresh_error=reason[:2000],
        next_refresh_at=_next_refresh(segment, now),
    )
    segment.refresh_from_db()


def _next_refresh(segment: Segment, now: datetime):
    if segment.kind == SegmentKind.QUERY and segment.refresh_every_minutes:
        return now + timedelta(minutes=segment.refresh_every_minutes)
    return None


def _finish(segment, refresh, *, now, count, entered=0, exited=0):
    refresh.status = RefreshStatus.OK
    refresh.finished_at = timezone.now()
    refresh.entered, refresh.exited, refresh.people_count = entered, exited, count
    refresh.save(update_fields=["status", "finished_at", "entered", "exited", "people_count"])
    Segment.objects.filter(pk=segment.pk).update(
        people_count=count,
        computed_at=now,
        refresh_status=RefreshStatus.OK,
        refresh_error="",
        next_refresh_at=_next_refresh(segment, now),
    )
    segment.refresh_from_db()


def claim_due_segments(*, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Ids of query segments due for a refresh, each claimed once: their next refresh is
    pushed forward by a conditional update, so a second beat (or a slow worker) that runs
    meanwhile does not enqueue them again."""
    now = now or timezone.now()
    due = list(
        Segment.objects.unscoped()
        .filter(kind=SegmentKind.QUERY, next_refresh_at__lte=now)
        .exclude(refresh_status__in=PENDING)
        .values_list("pk", "next_refresh_at", "refresh_every_minutes")[:limit]
    )
    claimed = []
    for pk, next_at, every in due:
        pushed = now + timedelta(minutes=every or MIN_REFRESH_MINUTES)
        if (
            Segment.objects.unscoped()
            .filter(pk=pk, next_refresh_at=next_at)
            .update(next_refresh_at=pushed)
        ):
            claimed.append(pk)
    return claimed


def segment_count(*, segment: Segment, now: datetime | None = None) -> int:
    """Count the segment's people now and remember it (the list shows the last count)."""
    now = now or timezone.now()
    count = segment_people(segment=segment, now=now).count()
    Segment.objects.filter(pk=segment.pk).update(people_count=count, computed_at=now)
    segment.people_count, segment.computed_at = count, now
    return count


def segment_freeze(
    *, segment: Segment, requester: str, actor: Actor, now: datetime | None = None
) -> SegmentSnapshot:
    """Freeze the segment's people for a requester (campaign or flow), once: asking again
    returns the same frozen members, whatever the segment's rules have become since.
    audit: "segment.freeze", the first time."""
    now = now or timezone.now()
    existing = SegmentSnapshot.objects.filter(segment=segment, requester=requester).first()
    if existing:
        return existing
    people = segment_people(segment=segment, now=now)
    with transaction.atomic():
        snapshot = SegmentSnapshot.objects.create(
            workspace=segment.workspace,
            segment=segment,
            requester=requester[:100],
            rules=segment.rules or {},
            frozen_at=now,
        )
        snapshot.people_count = insert_for_people(
            table="segments_snapshotmember",
            columns="workspace_id, snapshot_id, person_id",
            values="%s, %s, p.id",
            params=[segment.workspace_id, snapshot.pk],
            people=people,
            on_conflict="ON CONFLICT DO NOTHING",
        )
        if snapshot.people_count:
            snapshot.save(update_fields=["people_count"])
        audit_record(
            workspace=segment.workspace_id,
            actor=actor,
            action="segment.freeze",
            obj=segment,
            summary={"snapshot_id": snapshot.pk, "people": snapshot.people_count},
        )
    return snapshot


def static_members_change(
    *, segment: Segment, people: QuerySet[Person], add: bool, actor: Actor,
    now: datetime | None = None,
) -> int:  # fmt: skip
    """Add people to (or remove them from) a static segment; returns how many changed.
    audit: one "segment.add_people" or "segment.remove_people" entry with the count."""
    if segment.kind != SegmentKind.STATIC:
        raise SegmentConflict("Only static segments take people by hand; the others follow rules.")
    now = now or timezone.now()
    with transaction.atomic():
        record_change(workspace=segment.workspace_id, keys=[segment_key(segment.pk)], people=people)
        if add:
            changed = _enter(segment, people, now=now)
        else:
            changed = (
                current_members(segment)
                .filter(person_id__in=people.order_by().values("id"))
                .update(exited_at=now)
            )
        count = current_members(segment).count()
        Segment.objects.filter(pk=segment.pk).update(people_count=count, computed_at=now)
        audit_record(
            workspace=segment.workspace_id,
            actor=actor,
            action="segment.add_people" if add else "segment.remove_people",
            obj=segment,
            summary={"people": changed},
        )
    segment.refresh_from_db()
    return changed


def segment_to_audience(
    *, segment: Segment, audience_name: str, action: str, actor: Actor,
    now: datetime | None = None,
) -> int:  # fmt: skip
    """Add the segment's people to a target audience (created if needed), or remove them,
    in one statement; returns how many memberships changed. audit: one
    "segment.to_audience" entry (the audience, the action, the count)."""
    now = now or timezone.now()
    if has_forbidden_character(audience_name):
        raise RuleError("audience", "an audience name cannot contain a NUL character")
    people = segment_people(segment=segment, now=now)
    if action not in ("add", "remove"):
        raise RuleError("action", "action is add or remove")
    with transaction.atomic():
        created = False
        if action == "add":
            audience, created = get_or_create_unaudited(
                workspace=segment.workspace, name=audience_name
            )
            changed = audience_add_people(
                audience=audience, people=people, actor=actor, source=MemberSource.SEGMENT,
                source_segment_id=segment.pk, audit=False,
            )  # fmt: skip
        else:
            from audiences.selectors import get_audience_by_name

            audience = get_audience_by_name(workspace=segment.workspace, name=audience_name)
            if audience is None:
                raise RuleError("audience", f"there is no audience named “{audience_name}”")
            changed = audience_remove_people(
                audience=audience, people=people, actor=actor, audit=False
            )
        audit_record(
            workspace=segment.workspace_id,
            actor=actor,
            action="segment.to_audience",
            obj=segment,
            summary={
                "audience_id": audience.pk,
                "action": action,
                "people": changed,
                "audience_created": created,
            },
        )
    return changed


def workspace_setup(
    *, name: str, owner, actor: Actor, time_zone: str = "UTC", slug: str | None = None
):
    """A new workspace (accounts' workspace_create: owner, audit "workspace.create") with
    its built-in segments, in one transaction: every workspace has them from its first
    moment. Here, not in accounts, because accounts sits below segments in the app chain."""
    with transaction.atomic():
        workspace = workspace_create(
            name=name, owner=owner, actor=actor, time_zone=time_zone, slug=slug
        )
        ensure_predefined(workspace=workspace)
    return workspace


EVERYONE_KEY = "everyone"  # the built-in Everyone segment (kind everyone, no rules)


def ensure_predefined(*, workspace) -> None:
    """The built-in segments every workspace has (idempotent). Called by workspace_setup,
    seed_demo and the test factories; nothing creates them behind a caller's back."""
    if not Segment.objects.for_workspace(workspace).filter(predefined=EVERYONE_KEY).exists():
        taken = Segment.objects.for_workspace(workspace).filter(name__iexact="Everyone").exists()
        Segment.objects.create(
            workspace=workspace,
            name="Everyone (built-in)" if taken else "Everyone",
            kind=SegmentKind.EVERYONE,
            predefined=EVERYONE_KEY,
        )
    for key, (name, rules) in PREDEFINED.items():
        if Segment.objects.for_workspace(workspace).filter(predefined=key).exists():
            continue
        taken = Segment.objects.for_workspace(workspace).filter(name__iexact=name).exists()
        Segment.objects.create(
            workspace=workspace,
            name=f"{name} (built-in)" if taken else name,
            kind=SegmentKind.SNAPSHOT,
            rules=rules,
            predefined=key,
        )


def segments_forget_person(*, person: Person) -> None:
    """A person about to be erased leaves the counts of the stored segments they are a
    current member of (people.erasure), before the cascade removes their rows."""
    Segment.objects.filter(
        pk__in=SegmentMember.objects.filter(person=person, exited_at__isnull=True).values(
            "segment_id"
        )
    ).update(people_count=F("people_count") - 1)


def static_members_replace(
    *, segment: Segment, people: QuerySet[Person], actor: Actor, now: datetime | None = None
) -> tuple[int, int]:
    """Make `people` the static segment's members, set-based: those not among them exit,
    the others enter (a sync's full pull replaces, so removals at the source show).
    (entered, exited). audit: one "segment.replace_people" entry with both counts."""
    if segment.kind != SegmentKind.STATIC:
        raise SegmentConflict("Only static segments take people by hand; the others follow rules.")
    now = now or timezone.now()
    with transaction.atomic():
        Segment.objects.select_for_update().filter(pk=segment.pk).first()
        wanted = people.order_by().values("id")
        leaving = current_members(segment).exclude(person_id__in=wanted)
        record_change(
            workspace=segment.workspace_id, keys=[segment_key(segment.pk)],
            people=Person.objects.filter(pk__in=leaving.values("person_id")),
        )  # fmt: skip
        exited = leaving.update(exited_at=now)
        record_change(workspace=segment.workspace_id, keys=[segment_key(segment.pk)], people=people)
        entered = _enter(segment, people, now=now)
        count = current_members(segment).count()
        Segment.objects.filter(pk=segment.pk).update(people_count=count, computed_at=now)
        audit_record(
            workspace=segment.workspace_id, actor=actor, action="segment.replace_people",
            obj=segment, summary={"entered": entered, "exited": exited},
        )  # fmt: skip
    segment.refresh_from_db()
    return entered, exited
