"""Reads about segments: who is in one, by kind, always through the one compiler."""

import re
from datetime import datetime, timedelta

from django.db.models import BooleanField, Exists, ExpressionWrapper, OuterRef, Q, QuerySet
from django.http import Http404

from accounts.text import has_forbidden_character
from people.models import Person
from segments.models import (
    PENDING,
    STORED_KINDS,
    Segment,
    SegmentKind,
    SegmentMember,
    SegmentRefresh,
    SegmentTransition,
)
from segments.rules import RuleError, compile_rules, iter_nodes, parse_rules
from segments.rules.schema import SegmentCondition

# An id typed as a search: ASCII digits (str.isdigit() also takes "²", which int() refuses),
# at most as many as a bigint holds.
_ID = re.compile(r"[0-9]{1,18}")


def segment_list(*, workspace, q: str | None = None, kind: str | None = None) -> QuerySet[Segment]:
    """The workspace's segments by name; `q` is an id (ASCII digits) or part of a name."""
    segments = Segment.objects.for_workspace(workspace)
    if q and q.strip():
        q = q.strip()
        if has_forbidden_character(q):  # no name holds a NUL, and PostgreSQL cannot compare one
            return segments.none()
        if _ID.fullmatch(q):
            segments = segments.filter(pk=int(q))
        else:
            segments = segments.filter(name__icontains=q)
    if kind:
        segments = segments.filter(kind=kind)
    return segments.order_by("name")


def segment_users(*, workspace) -> dict[int, list[Segment]]:
    """For each segment id, the segments whose rules name it ("in segment X")."""
    users: dict[int, list[Segment]] = {}
    for segment in segment_list(workspace=workspace):
        if not segment.rules:
            continue
        try:
            nodes = iter_nodes(parse_rules(segment.rules))
            named = {n.segment for n in nodes if isinstance(n, SegmentCondition)}
        except RuleError:
            continue
        for segment_id in named:
            users.setdefault(segment_id, []).append(segment)
    return users


def get_segment_or_404(*, workspace, pk) -> Segment:
    try:
        return Segment.objects.for_workspace(workspace).get(pk=pk)
    except (Segment.DoesNotExist, ValueError, TypeError):
        raise Http404("No such segment in this workspace.") from None


def rules_people(*, workspace, rules: dict, now: datetime, person_ids=None) -> QuerySet[Person]:
    """People of the workspace matching a JSON rule tree at `now` (one query); with
    `person_ids`, compiled for being asked about those people only (compile_rules)."""
    tree = parse_rules(rules)
    return Person.objects.for_workspace(workspace).filter(
        compile_rules(tree, workspace=workspace, now=now, person_ids=person_ids)
    )


def current_members(segment: Segment) -> QuerySet[SegmentMember]:
    return SegmentMember.objects.filter(segment=segment, exited_at__isnull=True)


def segment_people(*, segment: Segment, now: datetime) -> QuerySet[Person]:
    """The segment's people now: stored members for real-time, static and query segments,
    the rules evaluated at `now` for snapshots, everybody for "everyone"."""
    people = Person.objects.for_workspace(segment.workspace)
    if segment.kind == SegmentKind.EVERYONE:
        return people
    if segment.kind == SegmentKind.SNAPSHOT:
        return rules_people(workspace=segment.workspace, rules=segment.rules, now=now)
    return people.filter(Exists(current_members(segment).filter(person=OuterRef("pk"))))


def segment_contains(*, segment: Segment, person: Person, now: datetime) -> bool:
    """Whether one person is in the segment: one indexed query, for experiments and flags."""
    if segment.kind == SegmentKind.EVERYONE:
        return person.workspace_id == segment.workspace_id
    if segment.kind == SegmentKind.SNAPSHOT:
        tree = parse_rules(segment.rules)
        return (
            Person.objects.for_workspace(segment.workspace)
            .filter(pk=person.pk)
            .filter(compile_rules(tree, workspace=segment.workspace, now=now))
            .exists()
        )
    return current_members(segment).filter(person=person).exists()


def refresh_history(*, segment: Segment, limit: int = 20) -> list[SegmentRefresh]:
    return list(SegmentRefresh.objects.filter(segment=segment).order_by("-started_at")[:limit])


def pending_refresh(*, segment: Segment) -> SegmentRefresh | None:
    """The segment's refresh waiting for a worker or running, if any (at most one)."""
    return SegmentRefresh.objects.filter(segment=segment, status__in=PENDING).first()


def pending_refreshes(*, workspace) -> dict[int, SegmentRefresh]:
    """The workspace's pending refreshes by segment id, for the segment list."""
    rows = SegmentRefresh.objects.for_workspace(workspace).filter(status__in=PENDING)
    return {row.segment_id: row for row in rows}


def last_refresh(*, segment: Segment) -> SegmentRefresh | None:
    return (
        SegmentRefresh.objects.filter(segment=segment)
        .select_related("segment")
        .order_by("-started_at", "-pk")
        .first()
    )


def segment_names(*, workspace, ids: set[int]) -> dict[int, str]:
    """Names of the workspace's segments among `ids` (one query; none when empty)."""
    if not ids:
        return {}
    rows = Segment.objects.for_workspace(workspace).filter(pk__in=ids)
    return dict(rows.values_list("pk", "name"))


def flag_segments(*, workspace) -> QuerySet[Segment]:
    """The segments a feature flag or experiment may target: those whose membership is
    stored (real-time, query, static), everyone, and the built-in ones (one indexed query
    per person). A snapshot is worked out when it is used, so it is not one."""
    return Segment.objects.for_workspace(workspace).filter(
        Q(kind__in=[*STORED_KINDS, SegmentKind.EVERYONE]) | ~Q(predefined="")
    )


def person_segments(
    *, workspace, person: Person, now: datetime
) -> list[tuple[Segment, datetime | None]]:
    """(segment, entered_at) for each flag segment the person is in now, by name: stored
    members from SegmentMember (one query), everyone with the person's creation, the
    built-in ones evaluated for this person alone (entered_at unknown: None)."""
    stored = (
        SegmentMember.objects.filter(
            workspace=workspace, person=person, exited_at__isnull=True,
            segment__kind__in=list(STORED_KINDS),
        )
        .select_related("segment")
    )  # fmt: skip
    found = [(m.segment, m.entered_at) for m in stored]
    computed = []
    for segment in Segment.objects.for_workspace(workspace).filter(
        Q(kind=SegmentKind.EVERYONE) | (~Q(predefined="") & Q(kind=SegmentKind.SNAPSHOT))
    ):
        if segment.kind == SegmentKind.EVERYONE:
            found.append((segment, person.created_at))
        else:
            computed.append(segment)
    if computed:
        # the built-in ones, each a condition of one query for this person
        flags = {
            f"in_{s.pk}": ExpressionWrapper(
                compile_rules(parse_rules(s.rules), workspace=workspace, now=now),
                output_field=BooleanField(),
            )
            for s in computed
        }
        row = Person.objects.filter(pk=person.pk).annotate(**flags).values(*flags).first()
        found += [(s, None) for s in computed if row and row[f"in_{s.pk}"]]
    return sorted(found, key=lambda pair: pair[0].name.lower())


def transitions_per_hour(*, segment: Segment, now: datetime, hours: int = 7 * 24) -> dict:
    """Entries and exits of the segment per hour over the last `hours` (one grouped query
    over transition_segment_at), every hour present (0 when nothing moved), for the chart."""
    from django.db import connection

    start = (now - timedelta(hours=hours - 1)).replace(minute=0, second=0, microsecond=0)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_trunc('hour', at), kind, count(*) FROM segments_segmenttransition "
            "WHERE segment_id = %s AND at >= %s GROUP BY 1, 2",
            [segment.pk, start],
        )
        counts = {(hour, kind): n for hour, kind, n in cursor.fetchall()}
    labels, entered, exited = [], [], []
    for i in range(hours):
        hour = start + timedelta(hours=i)
        labels.append(hour.isoformat())
        entered.append(counts.get((hour, "entered"), 0))
        exited.append(counts.get((hour, "exited"), 0))
    return {"labels": labels, "entered": entered, "exited": exited}


def realtime_freshness(*, segment: Segment) -> dict:
    """How current a real-time segment is: its last transition, the last change of the
    workspace evaluated, and its outbox (changes waiting, since when)."""
    from django.db import connection

    last = (
        SegmentTransition.objects.filter(segment=segment)
        .order_by("-at")
        .values_list("at", flat=True)
        .first()
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT max(processed_at), count(*) FILTER (WHERE processed_at IS NULL), "
            "min(created_at) FILTER (WHERE processed_at IS NULL) FROM people_personchange "
            "WHERE workspace_id = %s",
            [segment.workspace_id],
        )
        processed, pending, oldest = cursor.fetchone()
    return {
        "last_transition": last,
        "last_processed": processed,
        "pending": pending,
        "oldest_pending": oldest,
    }
