"""Writes about people: upserts with typed attributes, events, tags, Do Not Contact.

Work over many people is set-based: one INSERT ... SELECT / bulk statement per batch,
never a query per person.
"""

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from psycopg import sql as psycopg_sql

from accounts.audit import Actor, audit_record
from accounts.jobs import UploadEmpty, UploadTooLarge, store_upload
from accounts.middleware import has_forbidden_character
from people.attributes import (
    NOT_STORABLE,
    AttributeTypeError,
    check_value,
    infer_type,
    key_problem,
    unstorable,
)
from people.imports import staging
from people.imports.checking import copy_line
from people.imports.source import LineSource, SourceError, iter_records, open_text
from people.models import (
    AttributeDefinition,
    Channel,
    Company,
    DncSource,
    DoNotContact,
    Person,
    PersonTag,
    PushToken,
    Tag,
    TagSource,
)
from people.normalize import InvalidAddress, normalize_address, normalize_email, normalize_phone
from people.sql import insert_for_people

PERSON_TEXT_FIELDS = [
    "email",
    "phone",
    "first_name",
    "last_name",
    "gender",
    "country",
    "city",
    "address",
]
MAX_BATCH = 1000
RESERVED_KEYS = {"tags", "audiences", "push_tokens", "id"}


class PersonInputError(ValueError):
    """A person's data cannot be stored; `field` names the part and the message says why."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


# --- Attributes -------------------------------------------------------------------------


def _attribute_names_problem(attributes: dict, catalogue: dict) -> PersonInputError | None:
    """The first attribute name that cannot be used, as the error to report; checked before
    anything is written, so a refused person adds nothing to the catalogue."""
    for key in attributes:
        problem = key_problem(key, known=catalogue)
        if problem is None and (key in Person._meta.fields_map or key in RESERVED_KEYS):
            problem = f"“{key}” is a built-in field, not a custom one"
        if problem:
            shown = f"attributes.{key}" if isinstance(key, str) and key.strip() else "attributes"
            field_name = "attributes" if has_forbidden_character(shown) else shown
            return PersonInputError(field_name, problem)
    return None


def _inferred_types(items: list[dict], catalogue: dict[str, str]) -> dict[str, str]:
    """Types for every attribute key of `items`: declared ones, then the type the first
    value seen implies for a new key. Writes nothing (see _catalogue_add)."""
    types = dict(catalogue)
    for attributes in items:
        for key, value in attributes.items():
            if key in types:
                continue
            try:
                kind = infer_type(value)
            except AttributeTypeError:
                continue  # reported when the value is checked
            if kind is not None:
                types[key] = kind
    return types


def _catalogue_add(*, workspace, new: dict[str, str]) -> dict[str, str]:
    """Add inferred keys to the catalogue (set-based, concurrent-safe); returns the types
    as stored: a concurrent writer may have typed a key first, and its type wins."""
    AttributeDefinition.objects.bulk_create(
        [
            AttributeDefinition(workspace=workspace, key=k, label=k, type=t, inferred=True)
            for k, t in new.items()
        ],
        ignore_conflicts=True,
    )
    return dict(
        AttributeDefinition.objects.for_workspace(workspace)
        .filter(key__in=list(new))
        .values_list("key", "type")
    )


def _check_attributes(attributes: dict, types: dict[str, str]) -> dict:
    checked = {}
    for key, value in attributes.items():
        if value is None:
            checked[key] = None
            continue
        bad = unstorable(value, f"attributes.{key}")
        if bad:
            raise PersonInputError(bad[0], f"attribute “{key}” {bad[1]}")
        if key not in types:
            raise PersonInputError(
                f"attributes.{key}", f"attribute “{key}” has an unsupported value {value!r}"
            )
        try:
            checked[key] = check_value(key, value, types[key])
        except AttributeTypeError as e:
            raise PersonInputError(f"attributes.{key}", str(e)) from None
    return checked


@transaction.atomic
def attribute_declare(
    *, workspace, key: str, type: str, actor: Actor, label: str = ""
) -> AttributeDefinition:
    """Declare or change an attribute's type (a marketer decides; later writes obey it).
    audit: "attribute.declare" (the key is a field name, not a value)."""
    definition, created = AttributeDefinition.objects.update_or_create(
        workspace=workspace,
        key=key,
        defaults={"type": type, "label": label or key, "inferred": False},
    )
    audit_record(
        workspace=workspace,
        actor=actor,
        action="attribute.declare",
        obj=definition,
        summary={"key": key, "type": type, "created": created},
    )
    return definition


# --- People -----------------------------------------------------------------------------


@dataclass
class BatchResult:
    created: int = 0
    updated: int = 0
    errors: list[dict] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)


def _clean_person(data: dict, types: dict[str, str]) -> dict:
    """Normalized, validated fields of one person (only the fields that were sent)."""
    clean = {}
    for name in PERSON_TEXT_FIELDS:
        if name not in data:
            continue
        value = data[name]
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise PersonInputError(name, f"{name} must be a string")
        if has_forbidden_character(value):
            raise PersonInputError(name, f"{name} {NOT_STORABLE}")
        value = value.strip()
        if value:
            try:
                if name == "email":
                    value = normalize_email(value)
                elif name == "phone":
                    value = normalize_phone(value)
            except InvalidAddress as e:
                raise PersonInputError(name, str(e)) from None
        max_length = Person._meta.get_field(name).max_length
        if len(value) > max_length:
            raise PersonInputError(name, f"{name} is longer than {max_length} characters")
        clean[name] = value
    if "company" in data:
        company = data["company"] or ""
        if not isinstance(company, str):
            raise PersonInputError("company", "company must be a string")
        if has_forbidden_character(company):
            raise PersonInputError("company", f"company {NOT_STORABLE}")
        company = company.strip()
        if len(company) > 200:
            raise PersonInputError("company", "company is longer than 200 characters")
        clean["company"] = company
    if "attributes" in data and data["attributes"] is not None:
        if not isinstance(data["attributes"], dict):
            raise PersonInputError("attributes", "attributes must be an object")
        clean["attributes"] = _check_attributes(data["attributes"], types)
    if "push_tokens" in data and data["push_tokens"] is not None:
        if not isinstance(data["push_tokens"], list):
            raise PersonInputError("push_tokens", "push_tokens must be a list")
        tokens = []
        for i, token in enumerate(data["push_tokens"]):
            if not isinstance(token, dict):
                raise PersonInputError(f"push_tokens.{i}", "a push token is an object")
            platform = token.get("platform")
            if platform not in {"ios", "android", "web"}:
                raise PersonInputError(
                    f"push_tokens.{i}.platform", "platform must be ios, android or web"
                )
            try:
                value = normalize_address("push", token.get("token") or "")
            except InvalidAddress as e:
                raise PersonInputError(f"push_tokens.{i}.token", str(e)) from None
            tokens.append((platform, value))
        clean["push_tokens"] = tokens
    return clean


def person_upsert_batch(*, workspace, items: list[dict], actor: Actor) -> BatchResult:
    """Create or update people by external_id; fields not sent are kept.

    Valid items are applied even when others fail; each failure is reported by index.
    One transaction, a constant number of statements per batch (no query per person).
    audit: one "person.upsert_batch" entry with the counts and the field names sent.
    """
    return _upsert_batch(
        workspace=workspace, items=items, actor=actor, action="person.upsert_batch"
    )


def _upsert_batch(*, workspace, items: list[dict], actor: Actor, action: str) -> BatchResult:
    if len(items) > MAX_BATCH:
        raise ValueError(f"a batch holds at most {MAX_BATCH} people")
    result = BatchResult()
    catalogue = dict(
        AttributeDefinition.objects.for_workspace(workspace).values_list("key", "type")
    )
    # First what needs no type (ids, attribute names), then the types, then the values;
    # the catalogue is written last, with only the keys of people who passed every check.
    candidates: list[tuple[int, str, dict]] = []
    for index, item in enumerate(items):
        external_id = item.get("external_id") if isinstance(item, dict) else None
        external_id = external_id.strip() if isinstance(external_id, str) else ""
        if not external_id or len(external_id) > 255:
            result.errors.append(
                {"index": index, "msg": "external_id is required (1-255 characters)"}
            )
            continue
        if has_forbidden_character(external_id):
            result.errors.append(
                {"index": index, "field": "external_id", "msg": f"external_id {NOT_STORABLE}"}
            )
            continue
        attributes = item.get("attributes")
        problem = (
            _attribute_names_problem(attributes, catalogue)
            if isinstance(attributes, dict)
            else None
        )
        if problem:
            result.errors.append({"index": index, "field": problem.field, "msg": problem.message})
            continue
        candidates.append((index, external_id, item))
    types = _inferred_types(
        [i["attributes"] for _, _, i in candidates if isinstance(i.get("attributes"), dict)],
        catalogue,
    )
    valid: dict[str, tuple[int, dict]] = {}
    for index, external_id, item in candidates:
        try:
            clean = _clean_person(item, types)
        except PersonInputError as e:
            result.errors.append({"index": index, "field": e.field, "msg": e.message})
            continue
        if external_id in valid:  # the same person twice in a batch: the later item wins
            previous = valid[external_id][1]
            attributes = {**previous.get("attributes", {}), **clean.get("attributes", {})}
            clean = {**previous, **clean}
            if attributes:
                clean["attributes"] = attributes
        valid[external_id] = (index, clean)
    new = {
        key: types[key]
        for _, clean in valid.values()
        for key, value in clean.get("attributes", {}).items()
        if value is not None and key not in catalogue
    }
    if new:
        stored = _catalogue_add(workspace=workspace, new=new)
        _recheck_retyped(valid, {k: t for k, t in stored.items() if new.get(k) != t}, result)
    result.errors.sort(key=lambda e: e["index"])
    if not valid:
        return result
    for attempt in range(2):
        try:
            with transaction.atomic():
                _apply_people(workspace=workspace, valid=valid, result=result)
                _audit_upsert(workspace=workspace, actor=actor, action=action, valid=valid,
                              result=result)  # fmt: skip
            break
        except IntegrityError:
            # A concurrent batch created one of these people between our read and insert:
            # the second pass sees it and updates instead.
            if attempt:
                raise
            result.created = result.updated = 0
            result.people = []
    return result


def _audit_upsert(*, workspace, actor, action, valid, result: BatchResult) -> None:
    fields = sorted({k for _, clean in valid.values() for k in clean if k != "attributes"})
    attributes = sorted({k for _, clean in valid.values() for k in clean.get("attributes", {})})
    single = action == "person.upsert" and len(result.people) == 1
    audit_record(
        workspace=workspace,
        actor=actor,
        action=action,
        obj=result.people[0] if single else None,
        object_type="" if single else "person",
        summary={
            "created": result.created,
            "updated": result.updated,
            "refused": len(result.errors),
            "fields": fields,
            "attributes": attributes,
        },
    )


def _recheck_retyped(valid: dict[str, tuple[int, dict]], retyped: dict[str, str], result):
    """A concurrent writer typed some new keys otherwise: the people whose values do not
    fit the type that won are refused, the others go on."""
    if not retyped:
        return
    for external_id, (index, clean) in list(valid.items()):
        for key, value in clean.get("attributes", {}).items():
            if key in retyped and value is not None:
                try:
                    check_value(key, value, retyped[key])
                except AttributeTypeError as e:
                    field_name = f"attributes.{key}"
                    result.errors.append({"index": index, "field": field_name, "msg": str(e)})
                    del valid[external_id]
                    break


def _apply_people(*, workspace, valid: dict[str, tuple[int, dict]], result: BatchResult):
    company_names = {c["company"] for _, c in valid.values() if c.get("company")}
    companies = {}
    if company_names:
        Company.objects.bulk_create(
            [Company(workspace=workspace, name=n) for n in company_names], ignore_conflicts=True
        )
        companies = dict(
            Company.objects.for_workspace(workspace)
            .filter(name__in=company_names)
            .values_list("name", "id")
        )
    existing = {
        p.external_id: p
        for p in Person.objects.for_workspace(workspace)
        .filter(external_id__in=list(valid))
        .select_for_update()
    }
    now = timezone.now()
    to_create, to_update, changed_fields = [], [], set()
    for external_id, (_, clean) in valid.items():
        person = existing.get(external_id) or Person(
            workspace=workspace, external_id=external_id, created_at=now, attributes={}
        )
        for name in PERSON_TEXT_FIELDS:
            if name in clean:
                setattr(person, name, clean[name])
                changed_fields.add(name)
        if "company" in clean:
            person.company_id = companies.get(clean["company"]) if clean["company"] else None
            changed_fields.add("company")
        if "attributes" in clean:
            merged = dict(person.attributes or {})
            for key, value in clean["attributes"].items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            person.attributes = merged
            changed_fields.add("attributes")
        person.updated_at = now
        (to_update if person.pk else to_create).append(person)
    Person.objects.bulk_create(to_create, batch_size=500)
    if to_update and changed_fields:
        Person.objects.bulk_update(
            to_update, [*sorted(changed_fields), "updated_at"], batch_size=500
        )
    result.created, result.updated = len(to_create), len(to_update)
    result.people = to_create + to_update
    tokens = {
        p.pk: valid[p.external_id][1]["push_tokens"]
        for p in result.people
        if "push_tokens" in valid[p.external_id][1]
    }
    if tokens:
        _replace_push_tokens(workspace=workspace, tokens=tokens)


def _replace_push_tokens(*, workspace, tokens: dict[int, list[tuple[str, str]]]):
    """The sent list replaces a person's tokens; a token moves to the person who sent it last."""
    pairs = {(platform, token) for items in tokens.values() for platform, token in items}
    PushToken.objects.for_workspace(workspace).filter(person_id__in=list(tokens)).delete()
    for platform in {p for p, _ in pairs}:
        PushToken.objects.for_workspace(workspace).filter(
            platform=platform, token__in=[t for p, t in pairs if p == platform]
        ).delete()
    seen = set()
    rows = []
    for person_id, items in tokens.items():
        for platform, token in items:
            if (platform, token) not in seen:
                seen.add((platform, token))
                rows.append(
                    PushToken(
                        workspace=workspace, person_id=person_id, platform=platform, token=token
                    )
                )
    PushToken.objects.bulk_create(rows)


def person_upsert(*, workspace, external_id: str, data: dict, actor: Actor) -> tuple[Person, bool]:
    """One person (PUT): (person, created). Raises PersonInputError with the field.
    audit: "person.upsert" """
    result = _upsert_batch(
        workspace=workspace,
        items=[{**data, "external_id": external_id}],
        actor=actor,
        action="person.upsert",
    )
    if result.errors:
        error = result.errors[0]
        raise PersonInputError(error.get("field", "external_id"), error["msg"])
    return result.people[0], bool(result.created)


@transaction.atomic
def person_erase(*, person: Person, actor: Actor) -> None:
    """Erase the person, their events, tags, tokens and memberships (cascade). Their
    addresses stay on Do Not Contact as the list already holds them. audit:
    "person.erase" with the Herald id only, so the log never needs editing for it."""
    audit_record(workspace=person.workspace_id, actor=actor, action="person.erase", obj=person)
    person.delete()


# --- Events -----------------------------------------------------------------------------


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
        ids = _person_ids_creating_unknown(workspace=workspace, external_ids={r[0] for r in rows})
        _insert_events(
            workspace=workspace, rows=[(ids[e], n, at, p) for e, n, at, p in rows], received_at=now
        )
        _update_event_catalogue(workspace=workspace, rows=rows)
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


def _person_ids_creating_unknown(*, workspace, external_ids: set[str]) -> dict[str, int]:
    """{external_id: id} of the batch's people; the unknown ones are created first.

    Hot path: events nearly always come from people who exist, so they are read first and
    only the missing ones are inserted. Building and inserting (ON CONFLICT DO NOTHING) a
    Person for every id of a 1000-event batch was ~70% of a request's time
    (benchmarks/event_ingest.py).
    """
    ids = _person_ids(workspace=workspace, external_ids=list(external_ids))
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


# --- Tags -------------------------------------------------------------------------------


class TagExists(ValueError):
    pass


def _clean_tag_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValueError("A tag needs a name.")
    if len(name) > 100:
        raise ValueError("A tag name has at most 100 characters.")
    return name


def _audit_tag(*, workspace, actor, action, tag, **summary) -> None:
    audit_record(workspace=workspace, actor=actor, action=action, obj=tag, summary=summary)


def tag_create(*, workspace, name: str, actor: Actor) -> Tag:
    """audit: "tag.create" """
    name = _clean_tag_name(name)
    if Tag.objects.for_workspace(workspace).filter(name__iexact=name).exists():
        raise TagExists(f"The tag “{name}” already exists.")
    try:
        with transaction.atomic():
            tag = Tag.objects.create(workspace=workspace, name=name)
            _audit_tag(workspace=workspace, actor=actor, action="tag.create", tag=tag)
            return tag
    except IntegrityError:
        raise TagExists(f"The tag “{name}” already exists.") from None


def _tag_get_or_create(*, workspace, name: str) -> tuple[Tag, bool]:
    name = _clean_tag_name(name)
    tag = Tag.objects.for_workspace(workspace).filter(name__iexact=name).first()
    if tag:
        return tag, False
    try:
        with transaction.atomic():
            return Tag.objects.create(workspace=workspace, name=name), True
    except IntegrityError:
        return Tag.objects.for_workspace(workspace).get(name__iexact=name), False


def tag_get_or_create(*, workspace, name: str, actor: Actor) -> Tag:
    """audit: "tag.create", when the tag is new."""
    with transaction.atomic():
        tag, created = _tag_get_or_create(workspace=workspace, name=name)
        if created:
            _audit_tag(workspace=workspace, actor=actor, action="tag.create", tag=tag)
    return tag


@transaction.atomic
def tag_delete(*, tag: Tag, actor: Actor) -> int:
    """Removes the tag from everyone and deletes it; returns how many people had it.
    audit: "tag.delete" with that count."""
    count = PersonTag.objects.filter(tag=tag).count()
    _audit_tag(workspace=tag.workspace_id, actor=actor, action="tag.delete", tag=tag, people=count)
    tag.delete()
    return count


def _tags_assign(*, workspace, tag: Tag, people: QuerySet[Person], source: str) -> int:
    return insert_for_people(
        table="people_persontag",
        columns="workspace_id, person_id, tag_id, source, created_at",
        values="%s, p.id, %s, %s, %s",
        params=[workspace.pk, tag.pk, source, timezone.now()],
        people=people,
        on_conflict="ON CONFLICT (person_id, tag_id) DO NOTHING",
    )


@transaction.atomic
def tags_assign(
    *, workspace, tag: Tag, people: QuerySet[Person], actor: Actor, source: str = TagSource.MANUAL
) -> int:
    """Give `tag` to every person of `people` in one INSERT ... SELECT; returns how many
    people newly got it. `people` may be a filter over millions ("all N matching").
    audit: one "tag.assign" entry with the count."""
    changed = _tags_assign(workspace=workspace, tag=tag, people=people, source=source)
    _audit_tag(workspace=workspace, actor=actor, action="tag.assign", tag=tag, people=changed)
    return changed


@transaction.atomic
def tag_assign_by_name(
    *, workspace, name: str, people: QuerySet[Person], actor: Actor,
    source: str = TagSource.MANUAL,
) -> tuple[Tag, int]:  # fmt: skip
    """The tag named `name` (created when new) given to `people`: (tag, newly tagged).
    One action, one "tag.assign" entry (saying whether the tag was created)."""
    tag, created = _tag_get_or_create(workspace=workspace, name=name)
    changed = _tags_assign(workspace=workspace, tag=tag, people=people, source=source)
    _audit_tag(workspace=workspace, actor=actor, action="tag.assign", tag=tag, people=changed,
               tag_created=created)  # fmt: skip
    return tag, changed


@transaction.atomic
def tags_unassign(*, workspace, tag: Tag, people: QuerySet[Person], actor: Actor) -> int:
    """audit: one "tag.unassign" entry with the count."""
    deleted, _ = (
        PersonTag.objects.for_workspace(workspace)
        .filter(tag=tag, person_id__in=people.order_by().values("id"))
        .delete()
    )
    _audit_tag(workspace=workspace, actor=actor, action="tag.unassign", tag=tag, people=deleted)
    return deleted


def tag_people_by_external_ids(
    *, workspace, name: str, external_ids: list[str], actor: Actor, remove=False,
    source: str = TagSource.API,
) -> tuple[int, list[str]]:  # fmt: skip
    """API helper: (changed, unknown external ids). One "tag.assign" or "tag.unassign"
    entry (none when removing a tag that does not exist)."""
    wanted = list(dict.fromkeys(e for e in external_ids if isinstance(e, str)))
    people = Person.objects.for_workspace(workspace).filter(external_id__in=wanted)
    known = set(people.values_list("external_id", flat=True))
    unknown = [e for e in wanted if e not in known]
    if remove:
        tag = Tag.objects.for_workspace(workspace).filter(name__iexact=name.strip()).first()
        changed = (
            tags_unassign(workspace=workspace, tag=tag, people=people, actor=actor) if tag else 0
        )
    else:
        _tag, changed = tag_assign_by_name(
            workspace=workspace, name=name, people=people, actor=actor, source=source
        )
    return changed, unknown


# --- Do Not Contact ---------------------------------------------------------------------


def dnc_add(
    *,
    workspace,
    channel: str,
    address: str,
    reason: str = "",
    actor: Actor,
    source: str = DncSource.MANUAL,
):
    """One address onto Do Not Contact (dnc_import is the set-based way for a file, with
    the same normalization): (entry, created). Idempotent; raises InvalidAddress.
    audit: "dnc.add" (the entry's id and channel, never the address), when added."""
    if channel not in Channel.values:
        raise InvalidAddress(f"“{channel}” is not a channel (email, sms or push).")
    normalized = normalize_address(channel, address)
    with transaction.atomic():
        entry, created = DoNotContact.objects.get_or_create(
            workspace=workspace,
            channel=channel,
            address=normalized,
            defaults={"reason": (reason or "")[:255], "source": source, "created_by": actor.user},
        )
        if created:
            audit_record(
                workspace=workspace,
                actor=actor,
                action="dnc.add",
                obj=entry,
                summary={"channel": channel, "source": source},
            )
    return entry, created


@transaction.atomic
def dnc_remove(*, entry: DoNotContact, actor: Actor) -> None:
    """audit: "dnc.remove" """
    audit_record(
        workspace=entry.workspace_id,
        actor=actor,
        action="dnc.remove",
        obj=entry,
        summary={"channel": entry.channel},
    )
    entry.delete()


# Addresses COPYed into the staging table at a time: the most the import holds in memory.
DNC_IMPORT_BATCH = 5000
DNC_INVALID_LISTED = 500  # invalid lines kept for the report; the others are counted
_DNC_HEADERS = {"address", "email", "phone", "token"}
_DNC_STAGE = "dnc_import_stage"
NOT_UTF8 = "The file is not UTF-8 text. Save it as CSV UTF-8 and try again."


@dataclass
class DncImportResult:
    added: int = 0
    already: int = 0
    # The first DNC_INVALID_LISTED invalid lines (line, raw, reason); invalid_count is all.
    invalid: list[tuple[int, str, str]] = field(default_factory=list)
    invalid_count: int = 0

    def refuse(self, line: int, raw: str, reason: str) -> None:
        self.invalid_count += 1
        if len(self.invalid) < DNC_INVALID_LISTED:
            self.invalid.append((line, raw[:200], reason))


def dnc_import(
    *,
    workspace,
    channel: str,
    stream,
    actor: Actor,
    reason: str = "",
    source: str = DncSource.IMPORT,
) -> DncImportResult:
    """Import addresses from a text stream: one per line, or the first CSV column.

    Streamed with bounded memory (the contact import's reader: one physical line of at
    most MAX_LINE_CHARS at a time): valid addresses are COPYed DNC_IMPORT_BATCH at a time
    into a TEMP table, then added with one INSERT ... SELECT ... ON CONFLICT DO NOTHING.
    A line that cannot be imported (bad address, over-long line or cell, broken quoting)
    is reported with its number and reason, and the rest goes on. All or nothing: one
    transaction; a file that is not UTF-8 raises SourceError and adds nothing.
    audit: one "dnc.import" entry with the counts."""
    if channel not in Channel.values:
        raise InvalidAddress(f"“{channel}” is not a channel (email, sms or push).")
    result = DncImportResult()
    lines = LineSource(stream)
    with transaction.atomic(), connection.cursor() as django_cursor:
        cursor = django_cursor.cursor  # psycopg's own cursor, for COPY
        stage = staging.Stage(cursor, _DNC_STAGE, ["line", "key"])
        stage.create()
        batch: list[str] = []
        for record in iter_records(stream, lines, ","):
            if record.error:
                result.refuse(record.line, lines.raw(), record.error)
                continue
            raw = record.cells[0].strip()
            if not raw or (record.line == 1 and raw.lower() in _DNC_HEADERS):
                continue
            try:
                address = normalize_address(channel, raw)
            except InvalidAddress as e:
                result.refuse(record.line, raw, str(e))
                continue
            batch.append(copy_line(record.line, [address]))
            if len(batch) >= DNC_IMPORT_BATCH:
                _dnc_stage_batch(stage, batch)
                batch = []
        _dnc_stage_batch(stage, batch)
        table = psycopg_sql.Identifier(_DNC_STAGE)
        # In address order: concurrent imports of the same addresses wait for each other
        # rather than deadlock.
        cursor.execute(
            psycopg_sql.SQL(
                "INSERT INTO people_donotcontact "
                "(workspace_id, channel, address, reason, source, created_by_id, created_at) "
                "SELECT %s, %s, s.key, %s, %s, %s, %s "
                "FROM (SELECT DISTINCT key FROM {} ) s ORDER BY s.key "
                "ON CONFLICT (workspace_id, channel, address) DO NOTHING"
            ).format(table),
            [
                workspace.pk,
                channel,
                (reason or "")[:255],
                source,
                actor.user_id,
                timezone.now(),
            ],
        )
        result.added = cursor.rowcount
        cursor.execute(psycopg_sql.SQL("SELECT count(DISTINCT key) FROM {}").format(table))
        result.already = cursor.fetchone()[0] - result.added
        stage.drop()
        audit_record(
            workspace=workspace,
            actor=actor,
            action="dnc.import",
            object_type="donotcontact",
            summary={
                "channel": channel,
                "added": result.added,
                "already": result.already,
                "invalid": result.invalid_count,
            },
        )
    return result


def _dnc_stage_batch(stage, batch: list[str]) -> None:
    """One COPY per batch: the rows leave Python memory here."""
    if batch:
        stage.write_data("".join(batch).encode(), len(batch))
        stage.flush()


def dnc_import_too_large(size: int | None) -> ValidationError:
    """The error for an upload over the limit, which is the contact import's
    (CONTACT_IMPORT_MAX_BYTES): both take lists of addresses of the same size."""
    limit = settings.CONTACT_IMPORT_MAX_BYTES
    megabytes = f"{limit / (1024 * 1024):,.1f} MB"
    if size:
        return ValidationError(
            f"The file is {size / (1024 * 1024):,.1f} MB; a Do Not Contact import takes files "
            f"up to {megabytes}. Split it into smaller files."
        )
    return ValidationError(
        f"The file is over {megabytes}, the largest a Do Not Contact import takes. "
        "Split it into smaller files."
    )


def dnc_import_file(*, workspace, channel: str, file, **kwargs) -> DncImportResult:
    """Import an uploaded file (see dnc_import). The upload is first put on disk, streamed,
    refused past CONTACT_IMPORT_MAX_BYTES; ValidationError for an empty file, one over the
    limit, or one that is not UTF-8 text (nothing is added then)."""
    with tempfile.TemporaryDirectory(prefix="herald-dnc-") as folder:
        path = Path(folder) / "upload.csv"
        try:
            store_upload(file, path, limit=settings.CONTACT_IMPORT_MAX_BYTES)
        except UploadEmpty:
            raise ValidationError("The file is empty.") from None
        except UploadTooLarge as e:
            raise dnc_import_too_large(e.size) from None
        with open_text(str(path), "utf-8-sig") as stream:
            try:
                return dnc_import(workspace=workspace, channel=channel, stream=stream, **kwargs)
            except SourceError:
                raise ValidationError(NOT_UTF8) from None
