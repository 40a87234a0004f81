"""Event ingest: batches of events COPYed in, unknown people created, the catalogue kept."""

from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.audit import Actor, audit_record
from accounts.text import has_forbidden_character
from people.attributes import NOT_STORABLE, unstorable
from people.changes import ANY_RULE, event_key, record_change
from people.models import Person
from people.services._common import MAX_BATCH


@dataclass
class EventBatchResult:
    accepted: int = 0
    errors: list[dict] = field(default_factory=list)


def _parse_occurred_at(value, now):
    if value is None or value == "":
        return now
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"occurred_at {value!r} is not an ISO 8601 date-time")
    else:
        raise ValueError("occurred_at must be an ISO 8601 date-time string")
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def event_ingest_batch(*, workspace, items: list[dict], actor: Actor, now=None) -> EventBatchResult:
    """Store a batch of events (up to 1000) in one transaction; durable when it returns.

    Unknown people are created with their external id. Rows go in with one COPY on
    PostgreSQL (a multi-row INSERT elsewhere); the event catalogue is updated with one
    statement per distinct name. audit: one "event.ingest_batch" entry with the counts.
    """
    if len(items) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} events")
    now = now or timezone.now()
    result = EventBatchResult()
    rows = []
    for index, item in enumerate(items):
        person = item.get("person")
        name = item.get("name")
        if not isinstance(person, str) or not person.strip() or len(person) > 255:
            result.errors.append({"index": index, "msg": "person (an external_id) is required"})
            continue
        if has_forbidden_character(person):
            result.errors.append({"index": index, "msg": f"person {NOT_STORABLE}"})
            continue
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            result.errors.append({"index": index, "msg": "name is required (1-200 characters)"})
            continue
        if has_forbidden_character(name):
            result.errors.append({"index": index, "msg": f"name {NOT_STORABLE}"})
            continue
        properties = item.get("properties") or {}
        if not isinstance(properties, dict):
            result.errors.append({"index": index, "msg": "properties must be an object"})
            continue
        bad = unstorable(properties, "properties")
        if bad:
            result.errors.append({"index": index, "msg": f"{bad[0]}: {bad[1]}"})
            continue
        try:
            occurred_at = _parse_occurred_at(item.get("occurred_at"), now)
        except ValueError as e:
            result.errors.append({"index": index, "msg": str(e)})
            continue
        rows.append((person.strip(), name.strip(), occurred_at, properties))
    if not rows:
        return result
    with transaction.atomic():
        external_ids = {r[0] for r in rows}
        known = _person_ids(workspace=workspace, external_ids=list(external_ids))
        ids = _person_ids_creating_unknown(
            workspace=workspace, external_ids=external_ids, known=known
        )
        _insert_events(
            workspace=workspace, rows=[(ids[e], n, at, p) for e, n, at, p in rows], received_at=now
        )
        _update_event_catalogue(workspace=workspace, rows=rows)
        record_change(
            workspace=workspace,
            keys=[event_key(name) for name in {r[1] for r in rows}],
            person_ids=ids.values(),
        )
        created = [pk for external_id, pk in ids.items() if external_id not in known]
        record_change(workspace=workspace, keys=[ANY_RULE], person_ids=created)
        audit_record(
            workspace=workspace,
            actor=actor,
            action="event.ingest_batch",
            object_type="event",
            summary={
                "accepted": len(rows),
                "refused": len(result.errors),
                "people": len(ids),
                "names": len({r[1] for r in rows}),
            },
        )
    result.accepted = len(rows)
    return result


def _person_ids(*, workspace, external_ids: list[str]) -> dict[str, int]:
    # One array parameter rather than an IN list of up to 1000: the client-side binding of
    # psycopg splits and quotes every placeholder of a query in Python.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT external_id, id FROM people_person "
            "WHERE workspace_id = %s AND external_id = ANY(%s)",
            [workspace.pk, external_ids],
        )
        return dict(cursor.fetchall())


def _person_ids_creating_unknown(
    *, workspace, external_ids: set[str], known: dict[str, int] | None = None
) -> dict[str, int]:
    """{external_id: id} of the batch's people; the unknown ones are created first.

    Hot path: events nearly always come from people who exist, so they are read first and
    only the missing ones are inserted. Building and inserting (ON CONFLICT DO NOTHING) a
    Person for every id of a 1000-event batch was ~70% of a request's time
    (benchmarks/event_ingest.py).
    """
    if known is None:
        known = _person_ids(workspace=workspace, external_ids=list(external_ids))
    ids = dict(known)
    missing = sorted(external_ids.difference(ids))
    if missing:
        # Sorted: concurrent batches creating the same unknown people insert them in the
        # same order and wait for each other rather than deadlock. A person a concurrent
        # batch created meanwhile is skipped here and read back below.
        Person.objects.bulk_create(
            [Person(workspace=workspace, external_id=e, attributes={}) for e in missing],
            ignore_conflicts=True,
        )
        ids.update(_person_ids(workspace=workspace, external_ids=missing))
    return ids


def _insert_events(*, workspace, rows, received_at):
    from psycopg.types.json import Jsonb

    with connection.cursor() as cursor:
        copy_sql = (
            "COPY people_event (workspace_id, person_id, name, occurred_at, properties, "
            "received_at) FROM STDIN"
        )
        with cursor.cursor.copy(copy_sql) as copy:
            for person_id, name, occurred_at, properties in rows:
                copy.write_row(
                    (workspace.pk, person_id, name, occurred_at, Jsonb(properties), received_at)
                )


def _update_event_catalogue(*, workspace, rows):
    """Adds the batch to the catalogue rows of its event names.

    Concurrent batches of a workspace touch the same catalogue rows, and each row stays
    locked until its batch commits: rows are always locked in name order, so two batches
    wait for each other instead of deadlocking (found by benchmarks/event_ingest.py).
    """
    stats: dict[str, list] = {}
    for _, name, occurred_at, _ in rows:
        s = stats.setdefault(name, [occurred_at, occurred_at, 0])
        s[0] = min(s[0], occurred_at)
        s[1] = max(s[1], occurred_at)
        s[2] += 1
    ordered = sorted(stats.items())
    # Hot path: one upsert for every name of the batch instead of an INSERT plus one UPDATE
    # per name; VALUES are applied in the order given, hence in name order.
    values = ", ".join(["(%s, %s, %s, %s, %s)"] * len(ordered))
    params = [v for name, (a, b, n) in ordered for v in (workspace.pk, name, a, b, n)]
    sql = (
        "INSERT INTO people_eventtype (workspace_id, name, first_seen, last_seen, count) "  # noqa: S608
        f"VALUES {values} ON CONFLICT (workspace_id, name) DO UPDATE SET "
        "first_seen = LEAST(people_eventtype.first_seen, EXCLUDED.first_seen), "
        "last_seen = GREATEST(people_eventtype.last_seen, EXCLUDED.last_seen), "
        "count = people_eventtype.count + EXCLUDED.count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
