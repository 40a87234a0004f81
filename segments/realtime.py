"""Real-time segments kept current (shared/ARCHITECTURE.md, Data flow 2).

Every write path records who changed and what in the outbox (people.changes, the
PersonChange table) in the transaction of the change. evaluate_pending, run by a task
after commit and by the beat sweep, takes the outbox rows of one workspace at a time and,
in one transaction with them:

- re-checks only those people against only the real-time segments whose rules name what
  changed (references), with the segment compiler restricted to their ids: one statement
  per segment per batch, never one per person;
- in dependency order (a segment whose rules name another comes after it, and is
  re-checked when that one's members changed);
- writes the entries and exits as membership changes plus SegmentTransition rows;
- marks the outbox rows processed.

A worker that dies mid-batch rolls the whole transaction back: the rows are taken again,
and nothing was written twice. The workspace's advisory lock keeps two workers from
applying an older evaluation over a newer one. recheck_time_windows (beat) re-checks the
segments whose rules hold for a time ("in the last 30 days"): time changes them without
any write.
"""

import contextlib
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.exceptions import EmptyResultSet
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.audit import Actor, audit_record
from audiences.models import TargetAudience
from people.changes import (
    ANY_RULE,
    LIST_AT_MOST,
    attr_key,
    audience_key,
    event_key,
    segment_key,
    tag_key,
)
from people.models import PersonChange, Tag
from segments.models import RefreshStatus, Segment, SegmentKind
from segments.rules import RuleError, parse_rules
from segments.rules.schema import (
    RELATIVE_DATE_OPS,
    AttributeCondition,
    AudienceCondition,
    EventCondition,
    RelativeDate,
    SegmentCondition,
    TagCondition,
    iter_nodes,
)
from segments.selectors import rules_people
from segments.signals import membership_moved

log = logging.getLogger(__name__)

BATCH_ROWS = 500  # outbox rows taken at once (one transaction)
_LOCK_NAMESPACE = 0x4853_5254  # "HSRT": advisory locks of real-time evaluation, per workspace


@dataclass(frozen=True)
class Rules:
    """What a segment's rules read, for deciding which changes concern it."""

    references: frozenset[str]
    segments: frozenset[int]
    timed: bool  # holds for a time: re-checked by the clock


def rules_of(rules) -> Rules:
    """The references of a rule tree (raises RuleError for a tree that does not parse)."""
    refs, segments, timed = set(), set(), False
    for node in iter_nodes(parse_rules(rules)):
        if isinstance(node, AttributeCondition):
            refs.add(attr_key(node.attribute))
            if node.op in RELATIVE_DATE_OPS or isinstance(node.value, RelativeDate):
                timed = True
        elif isinstance(node, EventCondition):
            refs.add(event_key(node.event))
            timed = timed or node.time.op != "any_time"
        elif isinstance(node, TagCondition):
            refs.add(tag_key(node.tag))
        elif isinstance(node, AudienceCondition):
            refs.add(audience_key(node.audience))
        elif isinstance(node, SegmentCondition):
            refs.add(segment_key(node.segment))
            segments.add(node.segment)
    return Rules(frozenset(refs), frozenset(segments), timed)


@dataclass
class Outcome:
    entered: int = 0
    exited: int = 0
    segments: dict[int, tuple[int, int]] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)


def _target_sql(segment: Segment, *, now: datetime, person_ids=None) -> tuple[str, list]:
    people = rules_people(
        workspace=segment.workspace, rules=segment.rules, now=now, person_ids=person_ids
    )
    try:
        return people.order_by().values("id").query.sql_with_params()
    except EmptyResultSet:
        return "SELECT NULL::bigint AS id WHERE false", []


def apply_membership(
    segment: Segment,
    *,
    now: datetime,
    person_ids: list[int] | None = None,
    moved: set[int] | None = None,
) -> tuple[int, int]:
    """Bring the stored members of `segment` up to its rules, for `person_ids` only or
    (None) for everybody: one statement that exits who no longer matches, enters who now
    matches (again, for those who had left) and writes a SegmentTransition per change.
    Returns (entered, exited); `moved`, when given, gets the ids of the people who
    entered or exited. The caller holds the workspace's evaluation lock."""
    target, params = _target_sql(segment, now=now, person_ids=person_ids)
    # %(name)s placeholders: the compiler's %s are renamed p0, p1... (its %% stay as they are)
    names = {f"p{i}": value for i, value in enumerate(params)}
    counter = iter(names)
    target = re.sub(
        r"%%|%s", lambda m: m.group() if m.group() == "%%" else f"%({next(counter)})s", target
    )
    if person_ids is not None:
        # inside the target, where the planner takes it down to the people's primary key:
        # the rules are evaluated for these people only
        target = f"SELECT q.id FROM ({target}) q WHERE q.id = ANY(%(ids)s)"  # noqa: S608
        # Driven from the ids, each one probe of segmentmember_current (a LATERAL with
        # LIMIT 1, which the planner cannot turn into a join): written as a join, the
        # planner hashed every member of the segment instead (60 ms of a 117 ms statement
        # at 95,000 members for 1,000 people, benchmarks/realtime_ingest.py).
        gone = """
            UPDATE segments_segmentmember m SET exited_at = %(now)s
             WHERE m.exited_at IS NULL AND m.id = ANY(ARRAY(
                SELECT cur.id FROM unnest(%(ids)s::bigint[]) AS c(id)
                CROSS JOIN LATERAL (
                    SELECT s.id FROM segments_segmentmember s
                     WHERE s.segment_id = %(segment)s AND s.person_id = c.id
                       AND s.exited_at IS NULL LIMIT 1) cur
                WHERE NOT EXISTS (SELECT 1 FROM target t WHERE t.id = c.id)))"""
        new = """
            SELECT t.id FROM target t
              LEFT JOIN LATERAL (
                SELECT true AS here FROM segments_segmentmember s
                 WHERE s.segment_id = %(segment)s AND s.person_id = t.id
                   AND s.exited_at IS NULL LIMIT 1) cur ON true
             WHERE cur.here IS NULL"""
    else:
        gone = """
            UPDATE segments_segmentmember m SET exited_at = %(now)s
             WHERE m.segment_id = %(segment)s AND m.exited_at IS NULL
               AND NOT EXISTS (SELECT 1 FROM target t WHERE t.id = m.person_id)"""
        new = """
            SELECT t.id FROM target t WHERE NOT EXISTS (
                SELECT 1 FROM segments_segmentmember c
                 WHERE c.segment_id = %(segment)s AND c.person_id = t.id AND c.exited_at IS NULL)"""
    statement = f"""
        WITH target AS MATERIALIZED ({target}),
        gone AS ({gone}
            RETURNING m.person_id
        ),
        came AS (
            INSERT INTO segments_segmentmember
                (workspace_id, segment_id, person_id, entered_at, exited_at)
            -- the current members are left out first (new): ON CONFLICT DO UPDATE locks,
            -- that is writes, each row it conflicts with even when its WHERE skips it
            SELECT %(workspace)s, %(segment)s, n.id, %(now)s, NULL FROM ({new}) n
            ON CONFLICT (segment_id, person_id) DO UPDATE
                SET entered_at = EXCLUDED.entered_at, exited_at = NULL
                WHERE segments_segmentmember.exited_at IS NOT NULL
            RETURNING person_id
        ),
        moves AS (
            SELECT person_id, 'exited' AS kind FROM gone
            UNION ALL SELECT person_id, 'entered' FROM came
        ),
        written AS (
            INSERT INTO segments_segmenttransition (workspace_id, segment_id, person_id, kind, at)
            SELECT %(workspace)s, %(segment)s, person_id, kind, %(now)s FROM moves
            RETURNING person_id, kind
        )
        SELECT {"person_id, kind" if moved is not None else "NULL, kind"} FROM written
    """  # noqa: S608 - the compiler's SQL and fixed text; values are parameters
    values = {**names, "now": now, "segment": segment.pk, "workspace": segment.workspace_id}
    if person_ids is not None:
        values["ids"] = person_ids
    entered = exited = 0
    with connection.cursor() as cursor:
        cursor.execute(statement, values)
        for person_id, kind in cursor.fetchall():
            if kind == "entered":
                entered += 1
            else:
                exited += 1
            if moved is not None:
                moved.add(person_id)
    if entered or exited:
        Segment.objects.filter(pk=segment.pk).update(
            people_count=F("people_count") + entered - exited
        )
    return entered, exited


def _announce(workspace_id: int, segment_id: int, person_ids: set[int] | None) -> None:
    """membership_moved, once the transaction commits (caches of memberships drop them)."""
    ids = frozenset(person_ids) if person_ids is not None else None
    transaction.on_commit(lambda: membership_moved.send(
        sender=Segment, workspace_id=workspace_id, segment_id=segment_id,
        person_ids=ids))  # fmt: skip


def lock_workspace(workspace_id: int) -> None:
    """The workspace's evaluation lock, until the transaction ends."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, workspace_id])


def _in_dependency_order(segments: list[Segment], rules: dict[int, Rules]) -> list[Segment]:
    """Each segment after the real-time segments its rules name (a cycle cannot be saved:
    segments.services refuses one)."""
    by_id = {s.pk: s for s in segments}
    done, ordered = set(), []

    def visit(segment, path=()):
        if segment.pk in done or segment.pk in path:
            return
        for other in rules[segment.pk].segments:
            if other in by_id:
                visit(by_id[other], (*path, segment.pk))
        done.add(segment.pk)
        ordered.append(segment)

    for segment in segments:
        visit(segment)
    return ordered


def _realtime_segments(workspace_id: int) -> list[Segment]:
    return list(
        Segment.objects.unscoped()
        .select_related("workspace")
        .filter(workspace_id=workspace_id, kind=SegmentKind.REALTIME)
        .exclude(rules__isnull=True)
        .order_by("id")
    )


def _mark_failed(segment: Segment, reason: str) -> None:
    log.warning("real-time segment %s failed: %s", segment.pk, reason)
    Segment.objects.filter(pk=segment.pk).update(
        refresh_status=RefreshStatus.FAILED, refresh_error=reason[:2000]
    )


# What one outbox row says: the keys of what changed, and whose (None: anybody).
Change = tuple[frozenset[str], frozenset[int] | None]


def _targets(segment: Segment, rules: Rules, changes: list[Change], moved: dict) -> set | None:
    """The people `segment` must be re-checked for: those of the changes its rules name
    (every change for ANY_RULE), and those whose membership of a segment it names moved
    in this pass. None: everybody; an empty set: nobody."""
    targets: set[int] = set()
    for keys, ids in changes:
        if ANY_RULE in keys or rules.references & keys:
            if ids is None:
                return None
            targets |= ids
    for other in rules.segments:
        if other in moved:
            if moved[other] is None:
                return None
            targets |= moved[other]
    return targets


def _lost_reference(segment: Segment, rules: Rules, gone: set[str]) -> str:
    """Why `segment` cannot be evaluated: a tag or audience its rules name was deleted (in
    this pass, or earlier when the segment is marked failed already); "" when none."""
    named = {ref for ref in rules.references if ref.startswith(("tag:", "audience:"))}
    if not named or (not gone & named and segment.refresh_status != RefreshStatus.FAILED):
        return ""
    tags = {ref.removeprefix("tag:") for ref in named if ref.startswith("tag:")}
    audiences = {ref.removeprefix("audience:") for ref in named if ref.startswith("audience:")}
    found_tags = set(
        Tag.objects.unscoped()
        .filter(workspace_id=segment.workspace_id)
        .annotate(folded=Lower("name"))
        .filter(folded__in=tags)
        .values_list("folded", flat=True)
    )
    found_audiences = set(
        TargetAudience.objects.unscoped()
        .filter(workspace_id=segment.workspace_id)
        .annotate(folded=Lower("name"))
        .filter(folded__in=audiences)
        .values_list("folded", flat=True)
    )
    for name in sorted(tags - found_tags):
        return f"The tag “{name}” its rules name was deleted"
    for name in sorted(audiences - found_audiences):
        return f"The target audience “{name}” its rules name was deleted"
    return ""


def evaluate(
    *,
    workspace_id: int,
    changes: list[Change],
    now: datetime,
    force: set[int] = frozenset(),
    clock: dict[int, set[int]] | None = None,
) -> Outcome:
    """Re-check the workspace's real-time segments, in dependency order, each for only
    the people of the changes its rules name (_targets); those in `force` for everybody;
    those in `clock` also for the people time may have moved (_clock_candidates).
    Inside the caller's transaction, under the workspace lock. A segment whose rules no
    longer compile (a deleted tag or audience) is marked failed with the reason; the
    others go on."""
    outcome = Outcome()
    segments = _realtime_segments(workspace_id)
    rules: dict[int, Rules] = {}
    for segment in segments:
        try:
            rules[segment.pk] = rules_of(segment.rules)
        except RuleError as e:
            _mark_failed(segment, str(e))
    moved: dict[int, set[int] | None] = {}
    gone = {k.removeprefix("gone:") for keys, _ in changes for k in keys if k.startswith("gone:")}
    for segment in _in_dependency_order([s for s in segments if s.pk in rules], rules):
        lost = _lost_reference(segment, rules[segment.pk], gone)
        if lost:
            # its members stay as they were: emptying a segment because a tag was deleted
            # would send every flow it starts the wrong way
            reason = f"{lost}: the segment is not updated until it exists again."
            _mark_failed(segment, reason)
            outcome.failed[segment.pk] = reason
            continue
        # a segment back from failing is re-checked whole: changes went by meanwhile
        whole = segment.pk in force or segment.refresh_status == RefreshStatus.FAILED
        targets = None if whole else _targets(segment, rules[segment.pk], changes, moved)
        if targets is not None and clock and segment.pk in clock:
            targets |= clock[segment.pk]
        if targets is not None and not targets:
            continue
        ids = sorted(targets) if targets is not None else None
        who: set[int] | None = set() if ids is not None else None
        try:
            with transaction.atomic():
                entered, exited = apply_membership(segment, now=now, person_ids=ids, moved=who)
        except (RuleError, DatabaseError) as e:
            _mark_failed(segment, str(e))
            outcome.failed[segment.pk] = str(e)
            continue
        if segment.refresh_status == RefreshStatus.FAILED:
            Segment.objects.filter(pk=segment.pk).update(
                refresh_status=RefreshStatus.OK, refresh_error=""
            )
        if entered or exited:
            moved[segment.pk] = who  # None: a whole re-check, anybody may have moved
            _announce(workspace_id, segment.pk, who)
            outcome.segments[segment.pk] = (entered, exited)
            outcome.entered += entered
            outcome.exited += exited
    return outcome


def _claim(workspace_id: int | None) -> tuple[int | None, list[PersonChange]]:
    """The oldest pending outbox rows of one workspace nobody else is evaluating, locked
    for this transaction (FOR UPDATE SKIP LOCKED)."""
    pending = PersonChange.objects.unscoped().filter(processed_at__isnull=True)
    if workspace_id is None:
        first = pending.order_by("id").select_for_update(skip_locked=True).first()
        if first is None:
            return None, []
        workspace_id = first.workspace_id
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, workspace_id])
        if not cursor.fetchone()[0]:
            return workspace_id, []  # another worker evaluates this workspace now
    rows = list(
        pending.filter(workspace_id=workspace_id)
        .order_by("id")
        .select_for_update(skip_locked=True)[:BATCH_ROWS]
    )
    return workspace_id, rows


def evaluate_pending(
    *, workspace_id: int | None = None, max_batches: int = 200, now: datetime | None = None
) -> int:
    """Evaluate pending outbox rows, a batch of one workspace per transaction, until none
    is left (or max_batches). Returns the number of rows processed."""
    processed = 0
    busy: set[int] = set()
    for _ in range(max_batches):
        with transaction.atomic():
            ws, rows = _claim(workspace_id)
            if ws is None or (not rows and workspace_id is not None):
                break
            if not rows:
                busy.add(ws)
                if workspace_id is None and len(busy) > 20:
                    break
                continue
            at = now or timezone.now()
            many = sum(len(row.person_ids) for row in rows) > LIST_AT_MOST
            changes = [
                (frozenset(row.keys), None if row.everyone or many else frozenset(row.person_ids))
                for row in rows
            ]
            evaluate(workspace_id=ws, changes=changes, now=at)
            PersonChange.objects.unscoped().filter(pk__in=[r.pk for r in rows]).update(
                processed_at=at
            )
            processed += len(rows)
    return processed


# Past this gap since a segment's last clock run (the beat stopped for a while), the
# segment is re-checked whole instead of through the events its windows crossed.
CLOCK_WHOLE_AFTER = timedelta(hours=6)


@dataclass(frozen=True)
class _Boundaries:
    """What moves a segment with time: event names with the offsets of their windows'
    edges, and whether a date condition (which moves when the day changes) is among its
    rules."""

    edges: tuple[tuple[str, timedelta], ...]
    dated: bool


def _boundaries(rules) -> _Boundaries | None:
    """The time edges of a rule tree; None when nothing in it holds for a time."""
    edges, dated = set(), False
    for node in iter_nodes(parse_rules(rules)):
        if isinstance(node, AttributeCondition):
            if node.op in RELATIVE_DATE_OPS or isinstance(node.value, RelativeDate):
                dated = True
        elif isinstance(node, EventCondition) and node.time.op != "any_time":
            window = node.time
            amounts = (
                (window.start, window.end) if window.op == "between_last" else (window.amount,)
            )
            edges.update((node.event, timedelta(**{window.unit: n})) for n in amounts)
    return _Boundaries(tuple(sorted(edges)), dated) if edges or dated else None


def _clock_candidates(
    segment: Segment, bounds: _Boundaries, *, since: datetime | None, now: datetime
) -> set[int] | None:
    """The people whose membership time may have changed from `since` to `now` (None:
    anybody, re-check whole): those with an event of a windowed condition's name that
    crossed an edge of its window meanwhile, i.e. occurred between since - offset and
    now - offset (a person's count in the window changes only then; the property filters
    are left out, which only adds candidates). Date conditions move at midnight in the
    workspace's time zone: whole then. One query over (workspace, name, occurred_at)."""
    if since is None or now - since > CLOCK_WHOLE_AFTER:
        return None
    if bounds.dated:
        zone = segment.workspace.tzinfo
        if since.astimezone(zone).date() != now.astimezone(zone).date():
            return None
    if not bounds.edges:
        return set()
    parts, params = [], []
    for name, offset in bounds.edges:
        parts.append(
            "SELECT person_id FROM people_event WHERE workspace_id = %s AND name = %s "
            "AND occurred_at >= %s AND occurred_at <= %s"
        )
        params += [segment.workspace_id, name, since - offset, now - offset]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ".join(parts), params)
        return {person_id for (person_id,) in cursor.fetchall()}


def recheck_time_windows(*, now: datetime | None = None) -> int:
    """Move every real-time segment whose rules hold for a time (an event in the last N
    days, a date within N days) to `now`: time moves people in and out without any write.
    Each is re-checked for the people whose events crossed an edge of its windows since
    its last run (a few per run, at any number of people), whole when the day changed
    for its date conditions or it has no last run. Beat runs it every 30 seconds. Returns
    the number of segments re-checked."""
    now = now or timezone.now()
    timed: dict[int, dict[int, _Boundaries]] = {}
    realtime_segments = Segment.objects.unscoped().filter(kind=SegmentKind.REALTIME)
    for pk, workspace_id, rules in realtime_segments.exclude(rules__isnull=True).values_list(
        "pk", "workspace_id", "rules"
    ):
        try:
            bounds = _boundaries(rules)
        except RuleError:
            continue
        if bounds is not None:
            timed.setdefault(workspace_id, {})[pk] = bounds
    for workspace_id, found in timed.items():
        with transaction.atomic():
            lock_workspace(workspace_id)
            # read under the lock: another clock run may have just moved them
            segments = Segment.objects.unscoped().select_related("workspace").filter(pk__in=found)
            whole, clock = set(), {}
            for segment in segments:
                if segment.clock_at is not None and segment.clock_at >= now:
                    continue  # a later run got there first
                candidates = _clock_candidates(
                    segment, found[segment.pk], since=segment.clock_at, now=now
                )
                if candidates is None:
                    whole.add(segment.pk)
                else:
                    clock[segment.pk] = candidates
            if whole or clock:
                evaluate(workspace_id=workspace_id, changes=[], now=now, force=whole, clock=clock)
                Segment.objects.unscoped().filter(pk__in=[*whole, *clock]).update(clock_at=now)
    return sum(len(found) for found in timed.values())


@dataclass(frozen=True)
class Drift:
    """A stored segment against a recompute from scratch: who should be in and is not
    (missing), and who is in and should not be (extra); a few external ids of each."""

    segment: Segment
    missing: int
    extra: int
    missing_sample: list[str]
    extra_sample: list[str]

    @property
    def drifted(self) -> bool:
        return bool(self.missing or self.extra)


CLOCK_GRACE = timedelta(seconds=35)  # the clock's period (30 s) and its run


def segment_drift(segment: Segment, *, now: datetime | None = None, sample: int = 5) -> Drift:
    """Compare the stored members of a real-time or query segment with its rules
    evaluated now: set-based queries, nothing changed. For a real-time segment with a
    time window, a person is drift only when wrong both now and CLOCK_GRACE ago: a window
    that closed since the clock's last pass is the next pass's work, not drift."""
    now = now or timezone.now()
    target, params = _target_sql(segment, now=now)
    timed = False
    if segment.kind == SegmentKind.REALTIME:
        with contextlib.suppress(RuleError):
            timed = rules_of(segment.rules).timed
    if timed:
        earlier, earlier_params = _target_sql(segment, now=now - CLOCK_GRACE)
        should = f"SELECT id FROM ({target}) a INTERSECT SELECT id FROM ({earlier}) b"  # noqa: S608
        could = f"SELECT id FROM ({target}) a UNION SELECT id FROM ({earlier}) b"  # noqa: S608
        should_params = could_params = [*params, *earlier_params]
    else:
        should, could, should_params, could_params = target, target, params, params
    counts = {}
    samples = {}
    queries = {
        "missing": (
            f"SELECT p.external_id FROM ({should}) t JOIN people_person p ON p.id = t.id "  # noqa: S608
            "WHERE NOT EXISTS (SELECT 1 FROM segments_segmentmember m WHERE m.segment_id = %s "
            "AND m.person_id = t.id AND m.exited_at IS NULL)",
            [*should_params, segment.pk],
        ),
        "extra": (
            "SELECT p.external_id FROM segments_segmentmember m "  # noqa: S608
            "JOIN people_person p ON p.id = m.person_id "
            "WHERE m.segment_id = %s AND m.exited_at IS NULL "
            f"AND NOT EXISTS (SELECT 1 FROM ({could}) t WHERE t.id = m.person_id)",
            [segment.pk, *could_params],
        ),
    }
    with connection.cursor() as cursor:
        for name, (sql, values) in queries.items():
            counted = f"SELECT count(*) OVER (), external_id FROM ({sql}) d LIMIT %s"  # noqa: S608
            cursor.execute(counted, [*values, sample])
            rows = cursor.fetchall()
            counts[name] = rows[0][0] if rows else 0
            samples[name] = [r[1] for r in rows]
    return Drift(segment, counts["missing"], counts["extra"], samples["missing"], samples["extra"])


def repair(segment: Segment, *, actor: Actor, now: datetime | None = None) -> tuple[int, int]:
    """Bring the segment's members to its rules, with transitions: (entered, exited).
    audit: "segment.repair" with the counts."""
    now = now or timezone.now()
    with transaction.atomic():
        lock_workspace(segment.workspace_id)
        entered, exited = apply_membership(segment, now=now)
        audit_record(
            workspace=segment.workspace_id,
            actor=actor,
            action="segment.repair",
            obj=segment,
            summary={"entered": entered, "exited": exited},
        )
    return entered, exited
