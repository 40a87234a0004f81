"""Reads about segments: who is in one, by kind, always through the one compiler."""

import re
from datetime import datetime, timedelta

from django.db import connection
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


def flag_segment(*, workspace, pk: int) -> Segment | None:
    """The flag segment `pk` of `workspace` (see flag_segments), or None: one raw query by
    primary key, as an OpenFeature evaluation of one flag asks it on every page view."""
    found = next(
        iter(
            Segment.objects.raw(
                "SELECT * FROM segments_segment WHERE workspace_id = %s AND id = %s "
                "AND (kind = ANY(%s) OR predefined <> '')",
                [workspace.pk, pk, [*STORED_KINDS, SegmentKind.EVERYONE]],
            )
        ),
        None,
    )
    if found is not None:
        found.workspace = workspace
    return found


def segment_contains(*, segment: Segment, person: Person, now: datetime) -> bool:
    """Whether one person is in the segment: one indexed query, for experiments and flags
    (raw SQL: an OpenFeature client asks on every page view)."""
    if person.workspace_id != segment.workspace_id:
        return False
    if segment.kind == SegmentKind.EVERYONE:
        return True
    with connection.cursor() as cursor:
        if segment.kind == SegmentKind.SNAPSHOT:
            sql, params = _built_in_flags_sql(
                workspace=segment.workspace, segments=[segment], now=now
            )
            cursor.execute(sql, [*params, person.pk])
        else:
            cursor.execute(
                "SELECT true FROM segments_segmentmember "
                "WHERE segment_id = %s AND person_id = %s AND exited_at IS NULL",
                [segment.pk, person.pk],
            )
        row = cursor.fetchone()
    return bool(row and row[0])


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


# Compiled SQL of the built-in segments' flags, per (workspace, the segments and their
# versions, the second): an experiment or feature flag asks for one person's segments on
# every page view, and compiling the rules through the ORM costs more than the query. The
# windows of a rule ("in the last 30 days") move with `now`, so an entry lives one second.
_FLAGS_SQL: dict[tuple, tuple[str, list]] = {}
_FLAGS_SQL_MAX = 512


def _built_in_flags_sql(*, workspace, segments: list[Segment], now: datetime) -> tuple[str, list]:
    """(sql, params) of one row of booleans, one per segment, for the person whose id is the
    last parameter (appended by the caller); compiled at `now` to the second."""
    second = now.replace(microsecond=0)
    key = (workspace.pk, tuple((s.pk, s.updated_at) for s in segments), second)
    found = _FLAGS_SQL.get(key)
    if found is None:
        flags = {
            f"in_{s.pk}": ExpressionWrapper(
                compile_rules(parse_rules(s.rules), workspace=workspace, now=second),
                output_field=BooleanField(),
            )
            for s in segments
        }
        sql, params = (
            Person.objects.for_workspace(workspace)
            .order_by()
            .annotate(**flags)
            .values("id", *flags)
            .query.sql_with_params()
        )
        columns = ", ".join(f'flags."in_{s.pk}"' for s in segments)
        # the planner pushes the id condition into the subquery: one person's row is read.
        # Only integer ids and the ORM's own SQL go into the text; values stay parameters.
        found = (f"SELECT {columns} FROM ({sql}) flags WHERE flags.id = %s", list(params))  # noqa: S608
        if len(_FLAGS_SQL) >= _FLAGS_SQL_MAX:
            _FLAGS_SQL.clear()
        _FLAGS_SQL[key] = found
    return found


_PERSON_SEGMENTS_SQL = """
SELECT s.*, m.entered_at AS member_since
  FROM segments_segmentmember m JOIN segments_segment s ON s.id = m.segment_id
 WHERE m.workspace_id = %(ws)s AND m.person_id = %(person)s AND m.exited_at IS NULL
   AND s.workspace_id = %(ws)s AND s.kind = ANY(%(stored)s)
UNION ALL
SELECT s.*, NULL
  FROM segments_segment s
 WHERE s.workspace_id = %(ws)s
   AND (s.kind = %(everyone)s OR (s.predefined <> '' AND s.kind = %(snapshot)s))
"""


def person_segments(
    *, workspace, person: Person, now: datetime
) -> list[tuple[Segment, datetime | None]]:
    """(segment, entered_at) for each flag segment the person is in now, by name: stored
    members from SegmentMember, everyone with the person's creation (one query for both),
    the built-in ones evaluated for this person alone (one more query; entered_at unknown:
    None). Asked on every page view of an app that targets flags: two round trips."""
    rows = Segment.objects.raw(
        _PERSON_SEGMENTS_SQL,
        {
            "ws": workspace.pk,
            "person": person.pk,
            "stored": list(STORED_KINDS),
            "everyone": SegmentKind.EVERYONE,
            "snapshot": SegmentKind.SNAPSHOT,
        },
    )
    found, computed = [], []
    for segment in rows:
        if segment.member_since is not None:
            found.append((segment, segment.member_since))
        elif segment.kind == SegmentKind.EVERYONE:
            found.append((segment, person.created_at))
        else:
            computed.append(segment)
    if computed:
        sql, params = _built_in_flags_sql(workspace=workspace, segments=computed, now=now)
        with connection.cursor() as cursor:
            cursor.execute(sql, [*params, person.pk])
            row = cursor.fetchone()
        found += [(s, None) for s, member in zip(computed, row or (), strict=False) if member]
    return sorted(found, key=lambda pair: pair[0].name.lower())


def transitions_per_hour(*, segment: Segment, now: datetime, hours: int = 7 * 24) -> dict:
    """Entries and exits of the segment per hour over the last `hours` (one grouped query
    over transition_segment_at), every hour present (0 when nothing moved), for the chart."""

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
